"""Reading and operating on events: the list (with its type filter and payload search), one event in full,
replays and what they touched, and the list of refused webhooks."""

from __future__ import annotations

from collections.abc import Sequence

from headrace import search
from headrace.models import ATTENTION_STATUSES, EventFilter, EventRow, EventStatus, Rejection, Route, parse_id
from headrace.store import rows
from headrace.store.base import StoreError
from headrace.store.programs.jobs import latest_generation
from headrace.store.programs.steps import Program, all_rows, one, run


def type_filter(pattern: str | None) -> dict[str, str | None]:
    """The event-type filter as two parameters: an exact name, or (for a trailing `*`) a prefix.

    `payment.*` matches every type starting with `payment.`, `*` matches every type, and anything else is
    an exact name. No other character is special: `?`, `[`, `%` and `_` match only themselves.
    """
    if not pattern:
        return {"type_exact": None, "type_prefix": None}
    if pattern.endswith("*"):
        return {"type_exact": None, "type_prefix": pattern[:-1]}
    return {"type_exact": pattern, "type_prefix": None}


# The query for each status only a few events can have, over the index of the events that can have it. Only
# `delivered` (most of history) is looked for in the whole list.
CANDIDATES: dict[EventStatus, str] = {
    **dict.fromkeys(ATTENTION_STATUSES, "list_events_attention"),
    "cancelled": "list_events_cancelled",
    "unrouted": "list_events_unrouted",
}


def list_events(flt: EventFilter, dialect: str) -> Program[list[EventRow]]:
    """Newest first; with `flt.q`, only the events the search index finds (the query in `dialect`'s syntax)."""
    params = {
        "source": flt.source,
        "origin": flt.origin,
        **type_filter(flt.event_type),
        "since": flt.since,
        "until": flt.until,
        "before_id": flt.before_id,
        "status": flt.status,
        "limit": flt.limit,
    }
    if flt.q is None:
        # A status few events can have is looked for among those alone (a partial index each), not in history.
        query = CANDIDATES.get(flt.status, "list_events") if flt.status is not None else "list_events"
        return [rows.event(row) for row in (yield all_rows(query, params))]
    match = search.render(flt.q, dialect)
    if match is None:
        return []  # nothing an index can look up (only punctuation): nothing matches
    found = yield all_rows("search_events", {**params, "match": match})
    return [rows.event(row) for row in found]


def get_event(key: str) -> Program[EventRow | None]:
    # A number an id column can hold is an event id; anything else ("²", 20 digits) can only be a webhook-id.
    event_id = parse_id(key)
    if event_id is None:
        found = yield one("get_event_by_webhook_id", {"webhook_id": key})
        if found is None:
            return None
        event_id = int(found["id"])
    row = yield one("get_event", {"event_id": event_id})
    if row is None:
        return None
    deliveries = yield all_rows("event_deliveries", {"event_id": event_id})
    attempts = yield all_rows("event_attempts", {"event_id": event_id})
    return rows.event_detail(row, deliveries, attempts)


def replay(event_id: int, routes: Sequence[Route], now: float, deployment_id: str) -> Program[list[str]]:
    key = yield one("event_key", {"event_id": event_id})
    if key is None:
        raise StoreError(f"no event with id {event_id}")
    job_ids = []
    source, webhook_id = str(key["source"]), str(key["webhook_id"])
    for route in routes:
        latest = yield from latest_generation(event_id, route.destination)
        generation = 0 if latest is None else latest + 1
        params = rows.delivery_params(deployment_id, event_id, source, webhook_id, route, generation, now)
        yield run("insert_delivery", params)
        job_ids.append(str(params["job_id"]))
    if job_ids:
        yield run("mark_routed", {"event_id": event_id})
    return job_ids


def replay_counted(
    items: Sequence[tuple[int, Sequence[Route]]],
    now: float,
    deployment_id: str,
    counted: tuple[int, int],
    claim: str | None,
    planned: Sequence[int],
) -> Program[list[list[str]] | None]:
    """One chunk of a bulk replay, serialised with every other bulk replay chunk (on PostgreSQL across
    instances too). `counted` is the token's (mark, max_event_id). The first chunk gives the token's `claim`
    key: it is written once (None, nothing written, if the token was used), and if any `planned` event got a
    delivery after the mark (another replay won the race) nothing is written either (None). A later chunk
    skips an event replayed since the mark by someone else (an empty list for it): no event is replayed twice."""
    yield run("bulk_serialise", {"at": str(now)})
    if claim is not None and not (yield run("bulk_claim", {"key": claim, "at": str(now)})):
        return None
    mark, max_event_id = counted
    found = yield all_rows("replayed_since", {"mark": mark, "max_event_id": max_event_id})
    touched = {int(r["event_id"]) for r in found}
    if claim is not None and not touched.isdisjoint(planned):
        return None
    written: list[list[str]] = []
    for event_id, routes in items:
        written.append([] if event_id in touched else (yield from replay(event_id, routes, now, deployment_id)))
    return written


def delivery_mark() -> Program[int]:
    row = yield one("delivery_mark")
    return 0 if row is None or row["id"] is None else int(row["id"])


def replayed_since(mark: int, max_event_id: int) -> Program[list[int]]:
    """Events up to `max_event_id` that got a delivery after delivery id `mark` (replayed or re-run since)."""
    found = yield all_rows("replayed_since", {"mark": mark, "max_event_id": max_event_id})
    return [int(r["event_id"]) for r in found]


def failed_since(since: float) -> Program[list[tuple[int, str]]]:
    found = yield all_rows("failed_since", {"since": since})
    return [(int(r["event_id"]), str(r["destination"])) for r in found]


def list_rejections(since: float | None, limit: int) -> Program[list[Rejection]]:
    return [rows.rejection(r) for r in (yield all_rows("list_rejections", {"since": since, "limit": limit}))]
