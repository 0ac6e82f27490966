"""The loop the worker and the tracker share: do a round of work, then wait for a wake-up, a stop, or a pause.

Both look at the store for due work (deliveries to claim, jobs to look at). When a round found nothing, they
sleep until the next due time the store reports, at most `IDLE_POLL` (other processes may queue work), and any
`wake` (ingest committed, a job failed and is re-run) cuts the sleep short. Rounds that keep failing (a store
that cannot be written) back off to FAILURE_PAUSE_MAX and log a line now and then with a count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

IDLE_POLL = 1.0  # how often an idle loop looks for work other processes queued
FAILURE_PAUSE_MAX = 30.0  # seconds between rounds at most while they keep failing
FAILURE_LOG_EVERY = 60.0  # seconds between two lines about rounds that keep failing

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


def failure_pause(failures: int) -> float:
    """Seconds to wait after `failures` rounds in a row raised: 0.1 s doubling to FAILURE_PAUSE_MAX."""
    return min(FAILURE_PAUSE_MAX, 0.1 * 2.0 ** min(failures - 1, 16))


class Failures:
    """Rounds that raise in a row (a store that cannot be written, a database gone away): one line when they
    begin, one line with the count at most every FAILURE_LOG_EVERY seconds while they go on, one when a round
    succeeds again; never a traceback per round."""

    def __init__(self, log: logging.Logger, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.what, self.clock = log, what, clock
        self.count = 0
        self._logged_at = 0.0
        self._logged_count = 0

    def failed(self, exc: Exception) -> float:
        """Note a failed round; the seconds to wait before the next."""
        self.count += 1
        pause = failure_pause(self.count)
        reason = f"{type(exc).__name__}: {exc}"
        if self.count == 1:
            self.log.error("%s failed (%s); trying again in %.1f s, then less often", self.what, reason, pause)
            self._logged_at, self._logged_count = self.clock(), 1
        elif self.clock() - self._logged_at >= FAILURE_LOG_EVERY:
            self.log.error(
                "%s still failing: %d failures in a row, %d since the last line (last: %s); next try in %.0f s",
                self.what,
                self.count,
                self.count - self._logged_count,
                reason,
                pause,
            )
            self._logged_at, self._logged_count = self.clock(), self.count
        return pause

    def succeeded(self) -> None:
        if self.count:
            self.log.warning("%s works again after %d failed rounds", self.what, self.count)
        self.count = 0


async def run_rounds(
    stop: asyncio.Event,
    wake: asyncio.Event,
    one_round: Callable[[], Awaitable[T]],
    pause_after: Callable[[T | None], Awaitable[float | None]],
    log: logging.Logger,
    what: str,
) -> None:
    """Until `stop`: run `one_round`, then sleep `pause_after(result)` seconds (None: go again at once) or
    until `wake` or `stop`. Rounds that raise back off (`failure_pause`, only `stop` cuts that wait short) and
    are logged by `Failures`: a line when they begin, a count now and then, a line when they end."""
    failures = Failures(log, what)
    while not stop.is_set():
        wake.clear()
        result: T | None
        try:
            result = await one_round()
        except Exception as exc:
            pause = failures.failed(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            continue
        failures.succeeded()
        timeout = await pause_after(result)
        if timeout is None:
            continue
        waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
