"""The payload search index: the queue ingest fills (schema 8 on SQLite, 9 on PostgreSQL) and the indexer
empties after the commit, and the backlog of events stored before search existed (schema 6)."""

from __future__ import annotations

import json

from headrace import search
from headrace.store.programs.steps import Program, all_rows, many, one, run

Pending = tuple[int, str | None, bytes]  # event id, webhook id (None: the event is gone), body


def pending_search(limit: int) -> Program[list[Pending]]:
    """The oldest `limit` queued events, with what their terms are made of."""
    found = yield all_rows("pending_search", {"limit": limit})
    return [
        (int(r["event_id"]), None if r["webhook_id"] is None else str(r["webhook_id"]), bytes(r["body"] or b""))
        for r in found
    ]


def index_pending(indexed: list[tuple[int, str | None]]) -> Program[int]:
    """Dequeue these events and write the index rows (`terms` in search.indexed's form; None: the event is
    gone) of those this transaction dequeued; returns how many rows it wrote. An id another indexer took
    first is left to it, an event deleted meanwhile gets no row (index_event checks that it exists)."""
    taken = yield all_rows("take_pending_search", {"ids": json.dumps([event_id for event_id, _ in indexed])})
    mine = {int(r["event_id"]) for r in taken}
    rows = [{"event_id": i, "terms": terms} for i, terms in indexed if i in mine and terms is not None]
    if rows:
        yield many("index_event", rows)
    return len(rows)


def count_pending_search() -> Program[int]:
    row = yield one("count_pending_search")
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
        batch = [
            {"event_id": i, "terms": search.indexed(search.document(str(r["webhook_id"]), bytes(r["body"])), dialect)}
            for i, r in zip(ids, found, strict=True)
        ]
        yield many("index_event", batch)
    left = min(ids) - 1 if len(ids) == limit else 0
    yield run("set_search_backlog", {"upto": left})
    return left
