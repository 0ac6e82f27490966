"""Every store operation's decisions, written once for every SQL dialect.

An operation is a *program*: a generator that yields `Step`s (run this named query with these parameters)
and receives each step's result, then returns the operation's answer. A backend only drives programs: it
runs each step's named query on its connection, inside one transaction per program, and sends the result
back (`sqlite.SQLiteStore` synchronously, `postgres.PostgresStore` with awaits). Guards, sorting, row-count
checks and the mapping of rows to models live here and in `rows`, so the two backends cannot disagree.

Step kinds: `one` -> the first row or None; `all` -> a list of rows; `run` -> the affected row count;
`many` -> the statement once per parameter set (no result). Rows are read by column name only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from headrace import search
from headrace.models import (
    ATTENTION_STATUSES,
    Activity,
    Claimed,
    DeliveryError,
    EventFilter,
    EventRow,
    IngestResult,
    JobFailures,
    JobUpdate,
    NewEvent,
    OpenJob,
    QueueStats,
    Rejection,
    Route,
    prunable,
)
from headrace.store import rows, schema
from headrace.store.base import Beat, Finished, PruneBatch, Reaped, StoreError, StoreStats, WorkerInfo, lease_prefix

T = TypeVar("T")
StepKind = Literal["one", "all", "run", "many"]


@dataclass(frozen=True)
class Step:
    kind: StepKind
    query: str
    params: Any = None


Program = Generator[Step, Any, T]


def one(query: str, params: Any = None) -> Step:
    return Step("one", query, params)


def all_rows(query: str, params: Any = None) -> Step:
    return Step("all", query, params)


def run(query: str, params: Any = None) -> Step:
    return Step("run", query, params)


def many(query: str, params: list[dict[str, Any]]) -> Step:
    return Step("many", query, params)


# -- ingest ------------------------------------------------------------------------------------------------


def ingest(event: NewEvent, routes: Sequence[Route], deployment_id: str, terms: str) -> Program[IngestResult]:
    """`terms`: the event's search terms (search.document, in the form search.indexed gives for the
    dialect), indexed in the same transaction as the event."""
    params = rows.event_params(event)
    row = yield one("insert_event", params)
    if row is None:  # a duplicate (PostgreSQL's ON CONFLICT waited for the first one's transaction to end)
        existing = yield one("find_event_id", params)
        if existing is None:
            raise StoreError(f"event {event.source}/{event.webhook_id} conflicted but cannot be found")
        return IngestResult(event_id=int(existing["id"]), duplicate=True, deliveries=0)
    event_id = int(row["id"])
    yield many("insert_event_search", [{"event_id": event_id, "terms": terms}])
    if routes:
        yield many(
            "insert_delivery",
            [
                rows.delivery_params(deployment_id, event_id, event.source, event.webhook_id, r, 0, event.received_at)
                for r in routes
            ],
        )
    return IngestResult(event_id=event_id, duplicate=False, deliveries=len(routes))


def reject(rejection: Rejection) -> Program[None]:
    yield run("insert_rejection", rows.rejection_params(rejection))


# -- delivery ----------------------------------------------------------------------------------------------


def claim(
    destination: str, limit: int, token: str, now: float, lease_until: float, worker: str | None = None
) -> Program[list[Claimed]]:
    if worker is not None:
        if not token.startswith(lease_prefix(worker)):
            raise StoreError(f"lease token {token!r} does not start with its worker's id {worker!r} and '#'")
        if (yield one("worker_alive", {"worker_id": worker})) is None:
            return []  # presumed dead and reaped: its leases went to others, it takes no more
    params = {"destination": destination, "limit": limit, "token": token, "now": now, "lease_until": lease_until}
    if (yield run("claim_due", params)) == 0:
        return []
    return [rows.claimed(row) for row in (yield all_rows("claimed_by", {"token": token}))]


def finish(finished: Finished, now: float) -> Program[bool]:
    update, attempt = rows.finish_params(finished, now)
    row = yield one("finish_delivery", update)
    if row is None:
        return False  # the lease was lost (expired and taken by another worker)
    yield run("insert_attempt", {**attempt, "number": int(row["attempts"])})
    return True


def release(claimed: Claimed, token: str, now: float) -> Program[None]:
    yield run("release_delivery", {"delivery_id": claimed.delivery_id, "token": token, "now": now})


def earliest(query: str) -> Program[float | None]:
    """next_due and next_job_check: the earliest time in column `due`, or None when nothing waits."""
    row = yield one(query)
    return None if row is None or row["due"] is None else float(row["due"])


# -- job outcomes ------------------------------------------------------------------------------------------


def lease_due_jobs(limit: int, now: float, lease_until: float, owner: str | None = None) -> Program[list[OpenJob]]:
    """Take up to `limit` jobs due for a look, in id order; their next check moves to `lease_until`, so
    another tracker leaves them alone while this one asks Windmill (`owner`: the worker, so its leases are
    released if it dies)."""
    params = {"limit": limit, "now": now, "lease_until": lease_until, "owner": owner}
    leased = yield all_rows("lease_due_jobs", params)
    found = []
    for delivery_id in sorted(int(row["id"]) for row in leased):
        row = yield one("open_job", {"delivery_id": delivery_id})
        if row is not None:
            found.append(rows.open_job(row))
    return found


def record_job(update: JobUpdate, now: float, deployment_id: str) -> Program[str | None]:
    """Store one look at a job; for a failure with `rerun`, queue a new generation and return its job id."""
    if update.state == "open":
        yield run("job_still_open", {"delivery_id": update.delivery_id, "next_check_at": update.next_check_at})
        return None
    row = yield one("open_job", {"delivery_id": update.delivery_id})
    if row is None:
        return None  # recorded already (another tracker got there first)
    if (yield run("job_done", rows.job_done_params(update, now))) == 0:
        return None  # another instance recorded it between our read and our update
    if not (update.rerun and update.state == "failure"):
        return None
    job = rows.open_job(row)
    latest = yield from latest_generation(job.event_id, job.destination)
    if latest is not None and latest != job.generation:
        return None  # replayed meanwhile: that newer generation is the re-run
    if not update.target:
        raise StoreError(f"a re-run of delivery {job.delivery_id} needs its destination's target (JobUpdate.target)")
    route = Route(job.destination, update.target)
    params = rows.delivery_params(
        deployment_id, job.event_id, job.source, job.webhook_id, route, job.generation + 1, now
    )
    yield run("insert_rerun", {**params, "job_reruns": job.reruns + 1})
    return str(params["job_id"])


def latest_generation(event_id: int, destination: str) -> Program[int | None]:
    row = yield one("latest_generation", {"event_id": event_id, "destination": destination})
    return None if row is None or row["generation"] is None else int(row["generation"])


# -- worker processes -------------------------------------------------------------------------------------


def register_worker(worker: WorkerInfo, now: float) -> Program[None]:
    yield run("register_worker", {"worker_id": worker.id, "host": worker.host, "pid": worker.pid, "now": now})


def heartbeat(worker_id: str, now: float, dead_before: float) -> Program[Beat]:
    """Beat, then reap: release the leases of every worker whose last beat is before `dead_before`."""
    alive = (yield run("beat_worker", {"worker_id": worker_id, "now": now})) > 0
    reaped = []
    for row in (yield all_rows("dead_workers", {"dead_before": dead_before, "worker_id": worker_id})):
        reaped.append((yield from retire_worker(str(row["id"]), now, float(row["heartbeat_at"]))))
    return Beat(alive, reaped)


def retire_worker(worker_id: str, now: float, heartbeat_at: float | None = None) -> Program[Reaped]:
    """Hand back every delivery and job lease `worker_id` holds, due now, and delete its row."""
    deliveries = yield run("release_worker_deliveries", {"prefix": lease_prefix(worker_id), "now": now})
    jobs = yield run("release_worker_jobs", {"worker_id": worker_id, "now": now})
    yield run("delete_worker", {"worker_id": worker_id})
    return Reaped(worker_id, int(deliveries), int(jobs), heartbeat_at)


def live_workers(since: float) -> Program[int]:
    row = yield one("live_workers", {"since": since})
    return 0 if row is None else int(row["n"])


# -- reading and operating ---------------------------------------------------------------------------------


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


def list_events(flt: EventFilter, dialect: str) -> Program[list[EventRow]]:
    """Newest first; with `flt.q`, only the events the search index finds (the query in `dialect`'s syntax)."""
    params = {
        "source": flt.source,
        **type_filter(flt.event_type),
        "since": flt.since,
        "until": flt.until,
        "before_id": flt.before_id,
        "status": flt.status,
        "limit": flt.limit,
    }
    if flt.q is None:
        # A status only events with an open or failed delivery can have is looked for among those alone.
        query = "list_events_attention" if flt.status in ATTENTION_STATUSES else "list_events"
        return [rows.event(row) for row in (yield all_rows(query, params))]
    match = search.render(flt.q, dialect)
    if match is None:
        return []  # nothing an index can look up (only punctuation): nothing matches
    found = yield all_rows("search_events", {**params, "match": match})
    return [rows.event(row) for row in found]


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
        yield many("insert_event_search", batch)
    left = min(ids) - 1 if len(ids) == limit else 0
    yield run("set_search_backlog", {"upto": left})
    return left


def get_event(key: str) -> Program[EventRow | None]:
    # A number an id column can hold is an event id; anything else ("²", 20 digits) can only be a webhook-id.
    is_id = key.isascii() and key.isdigit() and int(key) < 2**63
    event_id: int | None = int(key) if is_id else None
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
    return job_ids


def replay_many(
    items: Sequence[tuple[int, Sequence[Route]]], now: float, deployment_id: str
) -> Program[list[list[str]]]:
    """`replay` for several events in one transaction (a bulk replay sends them in chunks of these)."""
    found = []
    for event_id, routes in items:
        found.append((yield from replay(event_id, routes, now, deployment_id)))
    return found


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


def stats(with_rejections: bool) -> Program[StoreStats]:
    """Deliveries pending, in flight and failed, per destination (each from a partial index: delivered and
    cancelled ones are history, not counted), the oldest open one, and rejection rows when asked."""
    queue = yield from queue_stats()
    deliveries = dict(queue.depth)
    for r in (yield all_rows("failed_delivery_counts")):
        deliveries[(str(r["destination"]), "failed")] = int(r["n"])
    rejections: dict[tuple[str, str], int] = {}
    if with_rejections:
        for r in (yield all_rows("count_rejections")):
            rejections[(str(r["source"]), str(r["reason"]))] = int(r["n"])
    return StoreStats(deliveries, queue.oldest_open_at, rejections)


def queue_stats() -> Program[QueueStats]:
    depth: dict[tuple[str, str], int] = {}
    oldest: float | None = None
    for r in (yield all_rows("open_delivery_counts")):
        depth[(str(r["destination"]), str(r["status"]))] = int(r["n"])
        if r["oldest"] is not None and (oldest is None or float(r["oldest"]) < oldest):
            oldest = float(r["oldest"])
    row = yield one("open_job_count")
    return QueueStats(depth, oldest, 0 if row is None else int(row["n"]))


def job_failures(since: float) -> Program[list[JobFailures]]:
    found = []
    for r in (yield all_rows("job_failures_since", {"since": since})):
        last = yield one("delivery_job", {"delivery_id": r["last_id"]})
        if last is None:
            continue  # the latest failure went away between the two queries
        found.append(rows.job_failures(r, last))
    return found


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest rank: the smallest value with at least p% of `values` at or below it (`values` sorted)."""
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def activity(
    since: float, step: float, buckets: int, destinations: Sequence[str], destination: str | None
) -> Program[Activity]:
    """The charts' numbers for `buckets` buckets of `step` seconds from `since`: every destination's when
    `destination` is None (job failures of the configured `destinations`), else that one's."""
    window = {"since": since, "step": step, "until": since + step * buckets, "destination": destination}
    outcomes: dict[int, dict[str, int]] = {}
    for r in (yield all_rows("chart_outcomes", window)):
        if 0 <= int(r["bucket"]) < buckets:
            outcomes.setdefault(int(r["bucket"]), {})[str(r["status"])] = int(r["n"])
    latencies: dict[int, list[float]] = {}
    for r in (yield all_rows("chart_latencies", window)):
        if 0 <= int(r["bucket"]) < buckets:
            latencies.setdefault(int(r["bucket"]), []).append(max(0.0, float(r["latency"])))
    latency = {}
    for bucket, values in latencies.items():
        values.sort()
        latency[bucket] = (percentile(values, 50), percentile(values, 99), len(values))
    failures: dict[int, int] = {}
    for name in [destination] if destination is not None else destinations:
        for r in (yield all_rows("chart_job_failures", {**window, "destination": name})):
            if 0 <= int(r["bucket"]) < buckets:
                failures[int(r["bucket"])] = failures.get(int(r["bucket"]), 0) + int(r["n"])
    return Activity(since, step, buckets, outcomes, latency, failures)


def destination_errors(destination: str, since: float, limit: int) -> Program[list[DeliveryError]]:
    """A destination's newest errors since `since`: failed deliveries, retries' reasons, failed jobs."""
    params = {"destination": destination, "since": since, "limit": limit}
    found = []
    for status in ("failed", "pending"):
        found += yield all_rows("destination_delivery_errors", {**params, "status": status})
    found += yield all_rows("destination_job_errors", params)
    errors = [
        DeliveryError(
            at=float(r["at"]),
            event_id=int(r["event_id"]),
            webhook_id=str(r["webhook_id"]),
            event_type=str(r["event_type"]),
            generation=int(r["generation"]),
            status=str(r["status"]),
            error=str(r["error"]),
        )
        for r in found
        if r["at"] is not None
    ]
    return sorted(errors, key=lambda e: (-e.at, -e.event_id))[:limit]


# -- retention ---------------------------------------------------------------------------------------------


def prune_events(
    cutoff: float, after: tuple[float, int] | None, limit: int, include_failed: bool
) -> Program[PruneBatch]:
    """Delete the events received before `cutoff` that `models.prunable` allows, from the next `limit` such
    events after `after` (oldest first), with their deliveries and attempts. An event some delivery of which
    changed at or after `cutoff` (a recent replay, a late job outcome) is kept until that is old too."""
    start_at, start_id = after if after is not None else (float("-inf"), 0)
    found = yield all_rows(
        "prune_candidates", {"cutoff": cutoff, "after_at": start_at, "after_id": start_id, "limit": limit}
    )
    if not found:
        return PruneBatch(0, 0, None)
    ids = [int(r["id"]) for r in found]
    by_event: dict[int, list[Any]] = {event_id: [] for event_id in ids}
    for d in (yield all_rows("prune_candidate_deliveries", {"ids": json.dumps(ids)})):
        by_event[int(d["event_id"])].append(d)
    doomed = [event_id for event_id, ds in by_event.items() if _prunable(ds, cutoff, include_failed)]
    if doomed:
        doomed_ids = {"ids": json.dumps(doomed)}
        yield run("prune_attempts", doomed_ids)
        yield run("prune_deliveries", doomed_ids)
        yield run("prune_events", doomed_ids)
    last = found[-1]
    done = len(found) < limit
    return PruneBatch(len(found), len(doomed), None if done else (float(last["received_at"]), int(last["id"])))


def _prunable(deliveries: list[Any], cutoff: float, include_failed: bool) -> bool:
    if any(float(d["updated_at"]) >= cutoff for d in deliveries):
        return False
    newest: dict[str, Any] = {}
    for d in deliveries:
        if d["destination"] not in newest or int(d["generation"]) > int(newest[d["destination"]]["generation"]):
            newest[d["destination"]] = d
    return prunable(
        [(d["status"], d["job_state"]) for d in newest.values()],
        [(d["status"], d["job_state"]) for d in deliveries],
        include_failed=include_failed,
    )


def prune_rejections(cutoff: float, limit: int) -> Program[int]:
    """Delete up to `limit` of the oldest rejection rows recorded before `cutoff`; returns how many."""
    return int((yield run("prune_rejections", {"cutoff": cutoff, "limit": limit})))


def check_writable() -> Program[None]:
    yield run("health_write")


# -- copying a whole database (`headrace db copy`) ------------------------------------------------------------

COPIED_TABLES = ("events", "deliveries", "attempts", "rejections")  # in foreign-key order


def export_rows(table: str, after_id: int, limit: int) -> Program[list[dict[str, Any]]]:
    found = yield all_rows(f"export_{table}", {"after_id": after_id, "limit": limit})
    return [{key: _plain(value) for key, value in dict(row).items()} for row in found]


def import_rows(table: str, batch: list[dict[str, Any]]) -> Program[None]:
    if batch:
        yield many(f"import_{table}", batch)


def finish_import(deployment_id: str) -> Program[dict[str, int]]:
    """After the rows: take over the source's deployment id, move id sequences past the copied ids."""
    yield run("set_deployment_id", {"deployment_id": deployment_id})
    yield run("search_backlog_all")  # the copied events are indexed next (SQLStore.index_backlog)
    yield one("reset_ids")
    return (yield from table_counts())


def table_counts() -> Program[dict[str, int]]:
    row = yield one("table_counts")
    return {key: int(value) for key, value in dict(row).items()}


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def check_schema(where: str, known: int) -> Program[None]:
    row = yield one("schema_version")
    schema.check_live(where, 0 if row is None else int(row["version"]), known)
    yield all_rows("schema_probe")


# -- driving a program -------------------------------------------------------------------------------------


def drive(program: Program[T], execute: Callable[[Step], Any]) -> T:
    """Run a program to its answer, with `execute` running each step (a backend's synchronous connection)."""
    result: Any = None
    while True:
        try:
            step = program.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = execute(step)


async def drive_async(program: Program[T], execute: Callable[[Step], Awaitable[Any]]) -> T:
    """`drive` for a backend whose connection is asynchronous."""
    result: Any = None
    while True:
        try:
            step = program.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = await execute(step)
