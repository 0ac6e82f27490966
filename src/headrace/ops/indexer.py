"""Payload search indexing, after the commit.

Ingest commits an event and, by a trigger in the same transaction, its id in the `search_pending` queue
(schema 8 on SQLite, 9 on PostgreSQL): nothing accepted is left out of the index, and the request that
brought the event does none of the indexing. `headrace serve` runs `run` in the background. A round is
one transaction (`Store.index_pending`): it takes the queue's newest ids off it, computes their events'
terms (search.document) and writes their index rows; should it fail, the ids are back in the queue.

Ingest keeps its turn. While events are arriving (`busy`: one stored within the last second), a round is small
(`BUSY_BATCH`) and is followed by a pause of at least `DUTY_FACTOR` times its duration, so indexing takes at
most a tenth of the event loop and of the write lock, as retention does (several hundred events a second of
indexing); when ingest is quiet, rounds of `BATCH` follow one another until the queue is empty (thousands of
events a second on a 2-core machine), and an empty queue is looked at every `IDLE` seconds. An event is
therefore searchable about `IDLE` seconds after its 202 when traffic is light, and a burst is caught up with
once it has passed (`headrace_search_pending` counts what waits). Several instances (PostgreSQL) index at once
without meeting: each round takes ids the others have not locked (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from headrace.ops.periodic import pause
from headrace.store.core import Store

log = logging.getLogger("headrace.indexer")

BATCH = 500  # events per round while ingest is quiet: their terms take ~25 ms of Python
BUSY_BATCH = 100  # events per round while ingest is busy: ~5 ms of the event loop and of the writer
DUTY_FACTOR = 9.0  # while busy, the pause after a round is at least this many times the round's duration
PAUSE = 0.02  # least seconds between two rounds while busy
IDLE = 0.5  # seconds between two looks at an empty queue
RETRY_AFTER = 5.0  # seconds before a round that failed is tried again


async def run(store: Store, stop: asyncio.Event, busy: Callable[[], bool] = lambda: False) -> None:
    """Index the queue until `stop` is set; a failed round is logged and tried again after RETRY_AFTER."""
    while not stop.is_set():
        pressed = busy()
        limit = BUSY_BATCH if pressed else BATCH
        started = time.monotonic()
        try:
            taken = await store.index_pending(limit)
        except Exception as exc:  # the database is away, a disk is full: the queue waits, nothing is lost
            log.error("search indexing failed, trying again in %.0f s: %s", RETRY_AFTER, exc)
            wait = RETRY_AFTER
        else:
            if taken < limit:
                wait = IDLE
            elif pressed:
                wait = max(PAUSE, (time.monotonic() - started) * DUTY_FACTOR)
            else:
                wait = 0.0
        if wait:
            await pause(stop, wait)
        else:
            await asyncio.sleep(0)  # the next round at once, after the loop's other work
