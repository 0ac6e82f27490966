"""The payload search index: the queue ingest fills (schema 8 on SQLite, 9 on PostgreSQL) and the indexer
empties after the commit, and the backlog of events stored before search existed (schema 6)."""

from __future__ import annotations

import json
import logging

from headrace import search
from headrace.models import SEARCH_PENDING_CAP
from headrace.store.programs.steps import Program, all_rows, many, one, run
from headrace.store.rows import Row

log = logging.getLogger("headrace.store")


def index_pending(limit: int, dialect: str) -> Program[int]:
    """Take the newest `limit` ids off the search queue and write their events' index rows, in one
    transaction (should it fail, the ids are back in the queue); returns how many ids were taken. An event
    gone since it was queued is only dequeued. The terms are computed inside the transaction: ~45 µs an
    event, so a round of 100 holds it ~5 ms (headrace/ops/indexer.py keeps rounds small while ingest is busy)."""
    taken = yield all_rows("claim_pending_search", {"limit": limit})
    ids = [int(r["event_id"]) for r in taken]
    if not ids:
        return 0
    found = yield all_rows("events_for_index", {"ids": json.dumps(ids)})
    rows = index_rows(found, dialect)
    if rows:
        yield many("index_event", rows)
    return len(ids)


def index_rows(found: list[Row], dialect: str) -> list[dict[str, object]]:
    """index_event's parameters for these events (id, webhook_id, body), in rising id order: SQLite's FTS5 writes
    its pending terms out as a new segment whenever a rowid is lower than the one before, so the newest-first
    order the queue and the backlog are taken in made a segment per event (tests/integration/test_index_work.py:
    2.5x the work, and as many segments to merge later)."""
    return [
        {"event_id": int(r["id"]), "terms": terms_of(int(r["id"]), str(r["webhook_id"]), bytes(r["body"]), dialect)}
        for r in sorted(found, key=lambda r: int(r["id"]))
    ]


def terms_of(event_id: int, webhook_id: str, body: bytes, dialect: str) -> str:
    """The event's terms in the dialect's form; should a body ever make that fail, its webhook id alone
    (logged), so that one event cannot hold up the queue behind it."""
    try:
        return search.indexed(search.document(webhook_id, body), dialect)
    except Exception:
        log.exception("event %s: its body could not be indexed for search; only its webhook id is", event_id)
        return search.indexed(webhook_id, dialect)


def count_pending_search() -> Program[int]:
    row = yield one("count_pending_search", {"cap": SEARCH_PENDING_CAP})
    return int(row["n"])


def index_backlog(limit: int, dialect: str) -> Program[int]:
    """Index up to `limit` of the events stored before search existed (newest first); returns how many are
    left to index (0: done). One batch per transaction, so an interrupted backfill resumes where it stopped."""
    row = yield one("search_backlog")
    upto = 0 if row is None else int(row["upto"])
    if upto <= 0:
        return 0
    found = yield all_rows("events_to_index", {"upto": upto, "limit": limit})
    ids = [int(r["id"]) for r in found]
    if found:
        yield many("index_event", index_rows(found, dialect))
    left = min(ids) - 1 if len(ids) == limit else 0
    yield run("set_search_backlog", {"upto": left})
    return left
