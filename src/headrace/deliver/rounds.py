"""The loop the worker and the tracker share: do a round of work, then wait for a wake-up, a stop, or a pause.

Both look at the store for due work (deliveries to claim, jobs to look at). When a round found nothing, they
sleep until the next due time the store reports, at most `IDLE_POLL` (other processes may queue work), and any
`wake` (ingest committed, a job failed and is re-run) cuts the sleep short.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

IDLE_POLL = 1.0  # how often an idle loop looks for work other processes queued

T = TypeVar("T")


async def idle_timeout(
    next_due: Callable[[], Awaitable[float | None]], clock: Callable[[], float], floor: float
) -> float:
    """Seconds to sleep when idle: until the store's next due time, between `floor` and IDLE_POLL."""
    try:
        due = await next_due()
    except Exception:
        return IDLE_POLL
    if due is None:
        return IDLE_POLL
    return min(IDLE_POLL, max(floor, due - clock()))


async def run_rounds(
    stop: asyncio.Event,
    wake: asyncio.Event,
    one_round: Callable[[], Awaitable[T]],
    pause_after: Callable[[T | None], Awaitable[float | None]],
    log: logging.Logger,
    what: str,
) -> None:
    """Until `stop`: run `one_round`, then sleep `pause_after(result)` seconds (None: go again at once) or
    until `wake` or `stop`. A round that raises is logged and counts as a round that found nothing."""
    while not stop.is_set():
        wake.clear()
        result: T | None
        try:
            result = await one_round()
        except Exception:
            log.exception("%s failed; trying again shortly", what)
            result = None
        timeout = await pause_after(result)
        if timeout is None:
            continue
        waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
