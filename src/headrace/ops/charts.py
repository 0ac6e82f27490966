"""The console's charts and a destination's recent errors, read from the store over a bounded window (never all
history) and kept a little while, so reloading a page does not count again."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from headrace.models import Activity, DeliveryError
from headrace.observe.metrics import Cached
from headrace.store.core import Store

# The console's chart windows: name -> (bucket seconds, buckets).
CHART_WINDOWS: dict[str, tuple[float, int]] = {"1h": (60.0, 60), "6h": (300.0, 72), "24h": (900.0, 96)}
ERRORS_WINDOW = 7 * 86400.0  # how far back a destination page looks for its last errors
CHART_CACHE = 15.0  # seconds a chart's numbers are reused (charts of 1- to 15-minute buckets)


class Charts:
    def __init__(self, store: Store, destinations: Callable[[], Sequence[str]], clock: Callable[[], float]) -> None:
        self.store = store
        self.destinations = destinations  # the configured names, as the running settings have them
        self.clock = clock
        # keys: windows x (configured destinations + 1): a bounded table
        self._kept: dict[tuple[str, str | None], Cached[Activity]] = {}

    async def activity(self, window: str = "6h", destination: str | None = None) -> Activity:
        """The charts over `window` (a key of CHART_WINDOWS) ending at the next bucket boundary; kept CHART_CACHE
        seconds per window and destination."""
        step, buckets = CHART_WINDOWS[window]

        async def count() -> Activity:
            until = math.ceil(self.clock() / step) * step
            since = until - step * buckets
            return await self.store.activity(since, step, buckets, list(self.destinations()), destination)

        kept = self._kept.setdefault((window, destination), Cached(CHART_CACHE, self.clock))
        return await kept.get(count)

    async def destination_errors(self, name: str, limit: int = 10) -> list[DeliveryError]:
        """A destination's newest errors of the last ERRORS_WINDOW seconds."""
        return await self.store.destination_errors(name, self.clock() - ERRORS_WINDOW, limit)
