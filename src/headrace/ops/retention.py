"""Retention: delete what is older than [server] retention, a small batch per transaction.

`headrace serve` runs `run` in the background: a pass at start, then one every `INTERVAL`. A pass walks the
events received before the cutoff, oldest first, `BATCH` at a time; each batch is one short write transaction
followed by a pause of at least nine times its duration (`DUTY_FACTOR`), so pruning takes at most a tenth of
the event loop and of the write lock, and ingest keeps its turn at the database between batches.
What may go is decided once, in `models.prunable`: finished events (unrouted, delivered, cancelled, with no
job outcome still awaited); failed ones only when asked (`headrace db prune --include-failed`); never an
event with a pending or in-flight delivery. Rejection rows go the same way after [server]
rejection_retention. `headrace db prune` runs one pass for cron users.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from headrace.config import Settings
from headrace.ops.periodic import pause
from headrace.store.core import Store

log = logging.getLogger("headrace.retention")

BATCH = 100  # events (or rejection rows) per transaction: 20-40 ms of event loop on a loaded 2-core machine
PAUSE = 0.05  # least seconds between two batches: ingest writes go in between
# ...and at least this many times the last batch's duration, so a pass takes at most 1 / (1 + 9) = 10 % of the
# time of the event loop and of the database's write lock, however slow the disk or busy the machine.
DUTY_FACTOR = 9.0
INTERVAL = 600.0  # seconds between two passes of the serving process
RETRY_AFTER = 60.0  # seconds before a pass that failed is tried again


@dataclass(frozen=True)
class Pruned:
    """What one pass deleted: events (with their deliveries and attempts) and rejection rows."""

    events: int = 0
    rejections: int = 0
    scanned: int = 0  # events old enough that were looked at (kept ones included)
    batches: int = 0


async def prune(
    store: Store,
    now: float,
    *,
    retention: float | None,
    rejection_retention: float | None,
    include_failed: bool = False,
    batch: int = BATCH,
    pause: float = PAUSE,
    duty: float = DUTY_FACTOR,
    stop: asyncio.Event | None = None,
) -> Pruned:
    """One pass: events received more than `retention` seconds before `now`, then rejection rows older than
    `rejection_retention` (None: keep those). Between batches it waits `pause` or `duty` times the batch's
    duration, whichever is longer. Stops early, between batches, once `stop` is set."""
    if batch < 1:
        raise ValueError(f"batch {batch}: delete at least 1 row per transaction")
    events = rejections = scanned = batches = 0
    if retention is not None:
        after: tuple[float, int] | None = None
        while not _stopped(stop):
            started = time.monotonic()
            result = await store.prune_events(now - retention, after, batch, include_failed=include_failed)
            events, scanned, batches = events + result.deleted, scanned + result.scanned, batches + 1
            after = result.after
            if after is None:
                break
            await _pause(max(pause, duty * (time.monotonic() - started)), stop)
    if rejection_retention is not None:
        while not _stopped(stop):
            started = time.monotonic()
            deleted = await store.prune_rejections(now - rejection_retention, batch)
            rejections, batches = rejections + deleted, batches + 1
            if deleted < batch:
                break
            await _pause(max(pause, duty * (time.monotonic() - started)), stop)
    return Pruned(events, rejections, scanned, batches)


async def run(store: Store, settings: Settings, stop: asyncio.Event, clock: Callable[[], float] = time.time) -> None:
    """The serving process's retention loop, until `stop` is set. A failed pass is logged and retried later:
    retention never stops the server."""
    server = settings.server
    if server.retention_seconds is None and server.rejection_retention_seconds is None:
        return
    while not stop.is_set():
        wait = INTERVAL
        try:
            done = await prune(
                store,
                clock(),
                retention=server.retention_seconds,
                rejection_retention=server.rejection_retention_seconds,
                stop=stop,
            )
            if done.events or done.rejections:
                log.info(
                    "retention: deleted %d events and %d rejection rows in %d batches",
                    done.events,
                    done.rejections,
                    done.batches,
                )
        except Exception as exc:  # the store refused (disk full, database gone): readiness reports that
            log.warning("retention pass failed, trying again in %.0fs: %s: %s", RETRY_AFTER, type(exc).__name__, exc)
            wait = RETRY_AFTER
        await _pause(wait, stop)


def _stopped(stop: asyncio.Event | None) -> bool:
    return stop is not None and stop.is_set()


async def _pause(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    await pause(stop, seconds)
