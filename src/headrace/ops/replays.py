"""Replays: a new generation (so a new job id) of an event's deliveries, for every destination it matches under
today's config. One event or several by key, every delivery whose newest generation failed since a time, or the
events a bulk plan counted (ops/bulk.py) — what the API, the console and `headrace replay` call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from headrace.config import Settings
from headrace.models import EventFilter, no_event
from headrace.ops import bulk
from headrace.store.core import Store


@dataclass(frozen=True)
class ReplayResult:
    event_id: int
    job_ids: list[str]


class Replays:
    def __init__(
        self,
        store: Store,
        settings: Callable[[], Settings],
        clock: Callable[[], float],
        notify: Callable[[], None],
    ) -> None:
        self.store = store
        self.settings = settings  # the running settings (a reload replaces them)
        self.clock = clock
        self.notify = notify  # wakes the worker: the new deliveries are due now

    async def replay(self, keys: Sequence[str]) -> list[ReplayResult]:
        """A new generation for every destination each event (id or webhook-id) matches; LookupError for one
        not stored."""
        settings = self.settings()
        results = []
        for key in keys:
            event = await self.store.get_event(key)
            if event is None:
                raise LookupError(no_event(key))
            names = settings.destinations_for(event.source, event.event_type)
            job_ids = await self.store.replay(event.id, [settings.route(n) for n in names], self.clock())
            results.append(ReplayResult(event.id, job_ids))
        self.notify()
        return results

    async def failed(self, since: float) -> list[ReplayResult]:
        """A new generation for each delivery whose newest generation failed since `since`."""
        settings = self.settings()
        grouped: dict[int, list[str]] = {}
        for event_id, destination in await self.store.failed_since(since):
            if destination in settings.destinations:
                grouped.setdefault(event_id, []).append(destination)
        results = []
        for event_id, names in grouped.items():
            routes = [settings.route(n) for n in names]
            results.append(ReplayResult(event_id, await self.store.replay(event_id, routes, self.clock())))
        self.notify()
        return results

    async def plan(self, flt: EventFilter) -> bulk.Plan:
        """What a bulk replay of the events `flt` matches would send; bulk.TooMany past BULK_REPLAY_LIMIT."""
        return (await self._count(bulk.counting_filter(flt)))[0]

    async def _count(self, flt: EventFilter) -> tuple[bulk.Plan, list[tuple[int, list[str]]]]:
        mark = await self.store.delivery_mark()  # before listing: a replay racing the count shows as changed
        return bulk.plan_of(flt, await self.store.list_events(flt), mark, self.settings())

    async def bulk(self, token: str) -> tuple[bulk.Plan, list[ReplayResult]]:
        """Replay what a plan's token counted. Counted again under the same filter and newest event id, and
        sent only if nothing changed: the same deliveries per destination, and no counted event replayed (or
        re-run) since the count (bulk.Changed, with the new plan, otherwise). A token replays once, atomically:
        its first chunk's transaction claims it and checks again under a lock that serialises bulk replays
        (store.replay_counted), so concurrent confirmations of one count (or of two counts of the same events,
        on any instance) write one replay. A new generation per delivery, like `replay`, written bulk.CHUNK
        events per transaction."""
        counted = bulk.decode(token)
        plan, routed = await self._count(counted.flt)
        touched = set(await self.store.replayed_since(counted.mark, counted.max_event_id))
        if plan.destinations != counted.destinations or touched & {event_id for event_id, _ in routed}:
            raise bulk.Changed(plan)
        settings = self.settings()
        results: list[ReplayResult] = []
        todo = [(event_id, [settings.route(n) for n in names]) for event_id, names in routed if names]
        planned = [event_id for event_id, _ in todo]
        counted_at = (counted.mark, counted.max_event_id)
        for start in range(0, max(len(todo), 1), bulk.CHUNK):
            chunk = todo[start : start + bulk.CHUNK]
            claim = bulk.claim_key(token) if start == 0 else None
            job_ids = await self.store.replay_counted(chunk, self.clock(), counted_at, claim, planned)
            if job_ids is None:  # the token was used, or a racing replay wrote first: nothing was written
                raise bulk.Changed((await self._count(counted.flt))[0])
            results.extend(
                ReplayResult(event_id, ids) for (event_id, _), ids in zip(chunk, job_ids, strict=True) if ids
            )
            self.notify()
        return plan, results
