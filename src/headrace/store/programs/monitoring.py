"""The numbers that watch deliveries: queue and store stats (/metrics, the dashboard), job failures, the charts'
activity per time bucket, and a destination's newest errors."""

from __future__ import annotations

import math
from collections.abc import Sequence

from headrace.models import Activity, DeliveryError, JobFailures, QueueStats
from headrace.store import rows
from headrace.store.base import StoreStats
from headrace.store.programs.search import count_pending_search
from headrace.store.programs.steps import Program, all_rows, one


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
    pending = yield from count_pending_search()
    return QueueStats(depth, oldest, 0 if row is None else int(row["n"]), pending)


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
