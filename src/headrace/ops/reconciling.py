"""`[sources.NAME] reconcile_every`: `serve` runs a reconcile with Dodo's API on a schedule (off by default).

A pass at start, then one every `reconcile_every`, per source that sets it: the objects Dodo created from
two periods before until `LAG` before now (each pass overlaps the one before, so an object created during a
pass is seen by the next), their missing events stored as `headrace reconcile --apply` stores them (origin
reconcile), and the window recorded (an outage inside it is no longer reported). `LAG` leaves Dodo time to
deliver what is happening now; what Dodo delivers after reconcile stored it is stored without a second
delivery. A pass that fails (Dodo unreachable, a 429 longer than the client waits, the store refusing
writes) is logged and tried again at the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from headrace.config import Settings
from headrace.config.sources import dodo_access
from headrace.dodo import reconcile
from headrace.dodo.api import base_url, open_client
from headrace.durations import parse_duration
from headrace.models import Route
from headrace.ops.periodic import pause
from headrace.store.core import Store

log = logging.getLogger("headrace.reconciling")

LAG = 15 * 60.0  # seconds: objects newer than this are left to Dodo's own delivery for now
IDLE = 60.0  # seconds between two looks at the settings (a reload may turn reconcile_every on)


async def reconcile_once(store: Store, settings: Settings, source: str, every: float, now: float) -> int:
    """One scheduled pass for `source`; returns how many events it stored."""
    config = settings.sources[source]
    assert config.api_key is not None  # the settings refuse reconcile_every without one
    access = dodo_access(config.api_key, config.mode, settings.base_dir)
    since, until = now - 2 * every, now - LAG

    async with open_client(base_url(access.mode, access.base_override), access.api_key.reveal()) as client:
        plan = await reconcile.make_plan(client, lambda keys: store.stored_keys(source, keys), source, since, until)
    stored, _ = await store_missing(store, settings, source, plan, since, until)
    if stored:
        log.warning(
            "reconcile of source %s stored %d event(s) Dodo had not delivered (origin reconcile): %s",
            source,
            stored,
            ", ".join(m.derived.event_key for m in plan.missing[:10]),
        )
    return stored


async def store_missing(
    store: Store, settings: Settings, source: str, plan: reconcile.Plan, since: float, until: float
) -> tuple[int, int]:
    """Store the events `plan` found missing, routed as `settings` route them now (origin reconcile), and record
    the window as reconciled (an outage inside it is no longer reported); returns (stored, already there).
    What `headrace reconcile --apply` and the scheduled pass both do."""

    def routes(event_type: str) -> Sequence[Route]:
        return [settings.route(name) for name in settings.destinations_for(source, event_type)]

    found = await reconcile.apply(store.ingest, routes, plan, time.time())
    await store.record_reconciled(source, since, until, time.time())
    return found


async def run(
    store: Store, settings: Callable[[], Settings], stop: asyncio.Event, clock: Callable[[], float] = time.time
) -> None:
    """Every source with reconcile_every, on its schedule, until `stop` (the settings as reloaded now)."""
    due: dict[str, float] = {}
    while not stop.is_set():
        current = settings()
        now = clock()
        for name, source in current.sources.items():
            if source.reconcile_every is None:
                continue
            every = parse_duration(source.reconcile_every)
            if due.get(name, 0.0) > now:
                continue
            due[name] = now + every
            try:
                await reconcile_once(store, current, name, every, now)
            except Exception as exc:  # Dodo or the store failed this pass: the next one tries again
                log.warning("scheduled reconcile of source %s failed: %s", name, exc)
        wait = min(due.values(), default=clock() + IDLE) - clock()
        await pause(stop, max(1.0, min(wait, IDLE)))
