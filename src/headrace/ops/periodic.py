"""The serving process's background loops (refusal flusher, retention, search indexer, alive record): one way to
wait for the next round or the stop, and one supervisor that starts the loops together, watches them and waits
for their last rounds at shutdown.

Each loop is a series of rounds whose state is in the store, and each already logs and retries what the store
refuses. An exception that still escapes one is a bug: the supervisor logs it with its traceback and starts the
loop again after RESTART_FIRST seconds, doubling to RESTART_MAX while it keeps failing, so one broken loop neither
dies silently (today's tasks were only looked at during shutdown) nor takes webhooks down with it. At shutdown
an escaping exception is logged and the rest of the shutdown goes on (the worker's drain, closing the store).
The delivery worker is not one of these loops: its claim, drain and release have their own protocol (server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("headrace.server")

RESTART_FIRST = 1.0  # seconds before a loop that raised is started again
RESTART_MAX = 60.0  # the longest wait between restarts of a loop that keeps raising


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less when `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Supervisor:
    """Background loops started together, restarted when one raises, waited for together after `stop`."""

    def __init__(self, stop: asyncio.Event, *, first: float = RESTART_FIRST, longest: float = RESTART_MAX) -> None:
        self.stop = stop
        self.first = first
        self.longest = longest
        self.restarts: dict[str, int] = {}  # loop name -> times it raised and was started again
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: set[str] = set()  # loops cancelled at the stop instead of awaited

    def start(self, name: str, loop: Callable[[], Awaitable[None]], *, cancel_at_stop: bool = False) -> None:
        """Run `loop()` (a coroutine that returns once `stop` is set) under watch, as `name` in the logs; with
        `cancel_at_stop`, a round under way is cancelled at the stop instead of awaited."""
        if name in self._tasks:
            raise ValueError(f"a background loop named {name!r} runs already")
        self.restarts[name] = 0
        self._tasks[name] = asyncio.create_task(self._watch(name, loop), name=f"headrace {name}")
        if cancel_at_stop:
            self._cancelled.add(name)

    async def _watch(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        delay = self.first
        while True:
            try:
                await loop()
                return  # it ended: the stop, or nothing to do (retention without a retention period)
            except Exception:
                if self.stop.is_set():
                    log.exception("background loop %s failed while stopping", name)
                    return
                self.restarts[name] += 1
                log.exception("background loop %s failed; starting it again in %gs", name, delay)
            await pause(self.stop, delay)
            if self.stop.is_set():
                return
            delay = min(delay * 2, self.longest)

    async def wait(self) -> None:
        """After `stop` is set: each loop's last round, in the order they were started (those started with
        `cancel_at_stop` are cancelled)."""
        for name, task in self._tasks.items():
            if name in self._cancelled:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
