"""Who gets the sandbox pool's next process: a fair share per script, with hostile scripts held to a small one.

Every pool run asks `Shares.acquire(name)` for a process first and gives it back with `release`. The rules:

- a script (in practice one destination's) may hold at most all processes but one;
- scripts that ran into a limit (CPU, wall clock, memory, a crash) in the last OVERRUN_MEMORY_S seconds
  together hold at most a quarter of the processes (at least one): one destination whose script always
  overruns, or several, cannot make the other destinations' trivial scripts wait for its turns;
- previews of an edited script (EDITED, from the console or the API) together hold at most a quarter of the
  processes too, and at most PREVIEW_QUEUE may be running or waiting at once; one more is refused at once;
- when a process comes free it goes to the waiting script that holds the fewest (the one that waited longest
  among equals), never by arrival order alone, so a burst from one script does not queue the others behind it.

It runs on the event loop and is not thread-safe: the pool calls `release` on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable

from headrace.transform import TransformError

EDITED = "edited script"  # the name an edited script runs under (previews): never "builtin:…", so never trusted
OVERRUN_MEMORY_S = 30.0  # a script that ran into a limit counts as overrunning for this long afterwards
PREVIEW_QUEUE = 4  # previews of edited scripts running or waiting at once; one more is refused


class Shares:
    def __init__(self, workers: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.workers = workers
        self.clock = clock
        self.free = workers
        self.held: Counter[str] = Counter()
        self._waiting: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._order = itertools.count()
        self._overran_at: dict[str, float] = {}
        self.small = max(1, workers // 4)  # the share of overrunning scripts together, and of previews

    def overrunning(self, name: str) -> bool:
        at = self._overran_at.get(name)
        if at is None:
            return False
        if self.clock() - at >= OVERRUN_MEMORY_S:
            del self._overran_at[name]
            return False
        return True

    def _may_take(self, name: str) -> bool:
        """Whether `name` may hold one more process (a free one is assumed)."""
        if name == EDITED:
            return self.held[name] < self.small
        if self.held[name] >= max(1, self.workers - 1):
            return False
        if self.overrunning(name):
            return sum(n for other, n in self.held.items() if self.overrunning(other)) < self.small
        return True

    async def acquire(self, name: str) -> None:
        """Wait for a process for a run of `name`; TransformError at once when too many previews are queued."""
        if name == EDITED and self.held[name] + len(self._waiting.get(name, ())) >= PREVIEW_QUEUE:
            raise TransformError(
                f"{name}: {PREVIEW_QUEUE} previews of edited scripts are running or waiting already; "
                "try again when one has finished",
                limit="busy",
            )
        if self.free > 0 and self._may_take(name):
            self._take(name)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (next(self._order), future)
        self._waiting.setdefault(name, deque()).append(entry)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(name)  # granted as it was cancelled: give the process back
            else:
                self._forget(name, entry)
            raise

    def release(self, name: str, *, overran: bool = False) -> None:
        """A run of `name` gave its process back; `overran` when it ran into a limit."""
        self.held[name] -= 1
        if self.held[name] <= 0:
            del self.held[name]
        self.free += 1
        if overran and name != EDITED:
            self._overran_at[name] = self.clock()
        self._dispatch()

    def waiting(self, name: str) -> int:
        return len(self._waiting.get(name, ()))

    def _take(self, name: str) -> None:
        self.held[name] += 1
        self.free -= 1

    def _forget(self, name: str, entry: tuple[int, asyncio.Future[None]]) -> None:
        queue = self._waiting.get(name)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(entry)
            if not queue:
                del self._waiting[name]

    def _dispatch(self) -> None:
        while self.free > 0:
            ready = [name for name, queue in self._waiting.items() if queue and self._may_take(name)]
            if not ready:
                return
            name = min(ready, key=lambda n: (self.held[n], self._waiting[n][0][0]))
            queue = self._waiting[name]
            _, future = queue.popleft()
            if not queue:
                del self._waiting[name]
            if future.done():
                continue  # its waiter was cancelled
            self._take(name)
            future.set_result(None)
