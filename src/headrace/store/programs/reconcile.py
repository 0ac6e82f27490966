"""What `headrace reconcile` and the outage report need from the store: event keys (the backlog of events
stored before keys existed, and which keys a source has), the alive record of `serve`, and the times of
401 refusals (schema 10 on SQLite, 11 on PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from headrace.dodo.keys import body_key
from headrace.store.programs.steps import Program, all_rows, many, one, run


def key_backlog(limit: int) -> Program[int]:
    """Key up to `limit` of the events queued by the migration (by the one rule, headrace.dodo.keys), in one
    transaction; returns how many ids were taken from the queue (0: done). A pruned event is only dequeued."""
    found = yield all_rows("keys_pending", {"limit": limit})
    if not found:
        return 0
    keyed = []
    for row in found:
        key = None if row["body"] is None else body_key(bytes(row["body"]))
        if key is not None:
            keyed.append({"event_id": int(row["event_id"]), "event_key": key})
    if keyed:
        yield many("set_event_key", keyed)
    yield run("dequeue_event_keys", {"ids": json.dumps([int(r["event_id"]) for r in found])})
    return len(found)


def stored_keys(source: str, keys: Sequence[str]) -> Program[set[str]]:
    if not keys:
        return set()
    found = yield all_rows("stored_keys", {"source": source, "keys": json.dumps(list(keys))})
    return {str(r["event_key"]) for r in found}


def start_alive(instance: str, now: float, forget_before: float) -> Program[int]:
    """A new alive span for this run of `serve` (spans that ended before `forget_before` are deleted)."""
    yield run("alive_forget", {"before": forget_before})
    row = yield one("alive_start", {"instance": instance, "now": now})
    return int(row["id"])


def beat_alive(span_id: int, now: float) -> Program[None]:
    yield run("alive_beat", {"span_id": span_id, "now": now})


def alive_spans(since: float) -> Program[list[tuple[float, float]]]:
    found = yield all_rows("alive_spans", {"since": since})
    return [(float(r["started_at"]), float(r["last_at"])) for r in found]


def refusal_hours(since: float) -> Program[list[tuple[str, float, float]]]:
    """(source, first, last) 401 refusal of each hour that had one, per source in time order."""
    found = yield all_rows("refusal_hours", {"since": since})
    return [(str(r["source"]), float(r["first_at"]), float(r["last_at"])) for r in found]


def record_reconciled(source: str, since: float, until: float, at: float) -> Program[None]:
    yield run("insert_reconciled", {"source": source, "since": since, "until": until, "at": at})


def reconciled_windows(since: float) -> Program[list[tuple[str, float, float]]]:
    found = yield all_rows("reconciled_windows", {"since": since})
    return [(str(r["source"]), float(r["since"]), float(r["until"])) for r in found]


def accepted_between(source: str, after: float, before: float) -> Program[bool]:
    return (yield one("accepted_between", {"source": source, "after": after, "before": before})) is not None
