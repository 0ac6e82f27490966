"""Prometheus metrics: counters kept in this process's memory, and store gauges cached for a second.

Counting is a dict update on the path that already runs (ingest answer, attempt recorded, job outcome):
no lock (one event loop), no allocation beyond the label tuple. A scrape renders the counters and, at
most once per `GAUGE_TTL`, asks the store for the queue gauges with queries that read only the rows
still open (partial indexes), so scraping every second costs the same at 10 or 10 million events.

Counters are per process and start at zero, as Prometheus expects (`rate()` handles restarts). Every
series a configured source or destination can have is exported from the start with 0 (`declare`), so
`increase(...[1h]) > 0` fires on the first failure instead of waiting for a series to exist. With
`headrace worker` processes apart from `headrace serve`, delivery and job counters live in the workers;
the queue gauges come from the shared store and are the same everywhere.
"""

from __future__ import annotations

import asyncio
import bisect
import platform
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from headrace import __version__
from headrace.models import SEARCH_PENDING_CAP, QueueStats
from headrace.observe import procstats

if TYPE_CHECKING:
    from headrace.config import Settings

GAUGE_TTL = 1.0
# Readiness (`App.ready`: schema, a real write, the worker) is asked at most this often, and a check that takes
# longer than READY_TIMEOUT counts as not ready, so a hung store cannot hold a scrape past Prometheus's timeout.
READY_TTL = 5.0
READY_TIMEOUT = 3.0
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]
V = TypeVar("V")

_HELP: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (type, help, label names)
    "headrace_events_received_total": (
        "counter",
        "Webhooks accepted by ingest (outcome: accepted or duplicate).",
        ("source", "outcome"),
    ),
    "headrace_events_rejected_total": (
        "counter",
        "Webhooks refused by ingest, by reason (bad_signature, timestamp_out_of_tolerance, body_too_large...).",
        ("source", "reason"),
    ),
    "headrace_deliveries_total": (
        "counter",
        "Deliveries that reached a final outcome (delivered, failed, cancelled).",
        ("destination", "outcome"),
    ),
    "headrace_delivery_retries_total": (
        "counter",
        "Attempts that ended in a scheduled retry, by reason (http_404, http_401, http_503, no_answer...).",
        ("destination", "reason"),
    ),
    "headrace_schema_problems_total": (
        "counter",
        "Payloads that did not match the target's input schema (mode: enforce = not sent, warn = sent).",
        ("destination", "mode"),
    ),
    "headrace_jobs_total": (
        "counter",
        "Windmill job outcomes seen by the tracker (success, failure, unknown).",
        ("destination", "outcome"),
    ),
    "headrace_job_reruns_total": (
        "counter",
        "Failed jobs re-run under a new job id (retry_on_job_failure).",
        ("destination",),
    ),
}


# The label values a configured source or destination starts with at 0 (the outcomes code can record).
RECEIVED_OUTCOMES = ("accepted", "duplicate")
REJECTION_REASONS = ("bad_signature", "timestamp_out_of_tolerance", "store_unavailable")
DELIVERY_OUTCOMES = ("delivered", "failed", "cancelled")
JOB_OUTCOMES = ("success", "failure", "unknown")
# The retry reasons a destination starts at 0 with (others appear at their first retry): no answer, and the
# statuses the worker retries (deliver/classify.py).
RETRY_REASONS = ("no_answer", "http_401", "http_404", "http_408", "http_429", "http_500", "http_502", "http_503")
QUEUE_STATES = ("pending", "in_flight")


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.time, settings: Settings | None = None) -> None:
        self.clock = clock
        self.counters: dict[str, dict[Labels, int]] = {name: {} for name in _HELP}
        # destination -> [bucket counts..., +Inf count], sum
        self._latency: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = {}
        self._gauges: Cached[QueueStats | None] = Cached(GAUGE_TTL)
        self._ready: Cached[bool] = Cached(READY_TTL)
        self._destinations: tuple[str, ...] = ()
        if settings is not None:
            self.declare(settings)

    def declare(self, settings: Settings) -> None:
        """Start every series the configured sources and destinations can have at 0. Additive, so calling
        it again after a config reload keeps the counts and adds what is new."""
        for source in settings.sources:
            for outcome in RECEIVED_OUTCOMES:
                self.counters["headrace_events_received_total"].setdefault((source, outcome), 0)
            for reason in REJECTION_REASONS:
                self.counters["headrace_events_rejected_total"].setdefault((source, reason), 0)
        for name, dest in settings.destinations.items():
            for outcome in DELIVERY_OUTCOMES:
                self.counters["headrace_deliveries_total"].setdefault((name, outcome), 0)
            for outcome in JOB_OUTCOMES:
                self.counters["headrace_jobs_total"].setdefault((name, outcome), 0)
            for reason in RETRY_REASONS:
                self.counters["headrace_delivery_retries_total"].setdefault((name, reason), 0)
            self.counters["headrace_job_reruns_total"].setdefault((name,), 0)
            if dest.schema_mode != "off":
                self.counters["headrace_schema_problems_total"].setdefault((name, dest.schema_mode), 0)
            if name not in self._latency:
                self._latency[name] = [0] * (len(LATENCY_BUCKETS) + 1)
                self._latency_sum[name] = 0.0
        self._destinations = tuple(sorted({*self._destinations, *settings.destinations}))

    def inc(self, name: str, *labels: str) -> None:
        series = self.counters[name]
        series[labels] = series.get(labels, 0) + 1

    def observe_attempt(self, destination: str, seconds: float) -> None:
        counts = self._latency.get(destination)
        if counts is None:
            counts = self._latency[destination] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._latency_sum[destination] = 0.0
        counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum[destination] += seconds

    async def queue(self, fetch: Callable[[], Awaitable[QueueStats]]) -> QueueStats | None:
        """The store gauges, fetched at most once per GAUGE_TTL however often /metrics is scraped; None (the
        gauges are left out, the scrape still succeeds) when the store cannot answer."""

        async def stats() -> QueueStats | None:
            try:
                return await fetch()
            except Exception:
                return None

        return await self._gauges.get(stats)

    async def ready(self, check: Callable[[], Awaitable[tuple[bool, str]]]) -> bool:
        """`headrace_ready`: what /readyz says, asked at most once per READY_TTL; a check that fails or takes
        over READY_TIMEOUT is not ready."""

        async def ask() -> bool:
            try:
                ok, _ = await asyncio.wait_for(check(), READY_TIMEOUT)
            except Exception:
                return False
            return ok

        return await self._ready.get(ask)

    def render(
        self,
        queue: QueueStats | None,
        ready: bool | None = None,
        wal_bytes: int | None = None,
        *,
        turn_wait_seconds: float | None = None,
        commits_by_place: dict[str, int] | None = None,
    ) -> str:
        out: list[str] = []
        if wal_bytes is not None:
            out.append(
                "# HELP headrace_store_wal_bytes Size of the SQLite write-ahead log file (grows past 16 MiB only while "
                "another process holds a read open; new webhooks are refused past [server] wal_limit).\n"
            )
            out.append(f"# TYPE headrace_store_wal_bytes gauge\nheadrace_store_wal_bytes {wal_bytes}\n")
        if turn_wait_seconds is not None:
            name = "headrace_store_write_turn_wait_seconds_total"
            out.append(
                f"# HELP {name} Seconds this process's writes waited while another headrace process had its turn "
                "at the SQLite database (a `headrace worker`, another `serve`, a CLI command).\n"
            )
            out.append(f"# TYPE {name} counter\n{name} {turn_wait_seconds:.6f}\n")
        if commits_by_place is not None:
            name = "headrace_store_commits_total"
            out.append(
                f"# HELP {name} SQLite COMMITs this process made, by where they ran: on the event loop (the disk "
                "answers fast) or on a thread (it was slow: a median over 5 ms, or one over 200 ms).\n"
            )
            out.append(f"# TYPE {name} counter\n")
            out.extend(f'{name}{{place="{place}"}} {count}\n' for place, count in sorted(commits_by_place.items()))
        if ready is not None:
            out.append(
                "# HELP headrace_ready 1 when /readyz answers 200: the store has this schema and takes writes, the "
                "worker runs (0: a full disk, a deleted database, a stalled worker; /readyz from the host says why).\n"
            )
            out.append(f"# TYPE headrace_ready gauge\nheadrace_ready {int(ready)}\n")
        for name, (kind, text, label_names) in _HELP.items():
            out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
            for labels, value in sorted(self.counters[name].items()):
                out.append(f"{name}{{{_labels(label_names, labels)}}} {value}\n")
        name = "headrace_delivery_attempt_duration_seconds"
        out.append(f"# HELP {name} Time from sending a delivery to Windmill's answer (or giving up on it).\n")
        out.append(f"# TYPE {name} histogram\n")
        for destination in sorted(self._latency):
            counts, cumulative = self._latency[destination], 0
            dest = _escape(destination)
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f'{name}_bucket{{destination="{dest}",le="{le}"}} {cumulative}\n')
            out.append(f'{name}_sum{{destination="{dest}"}} {self._latency_sum[destination]:.6f}\n')
            out.append(f'{name}_count{{destination="{dest}"}} {cumulative}\n')
        if queue is not None:
            out.append("# HELP headrace_queue_depth Deliveries not finished yet (pending or in flight).\n")
            out.append("# TYPE headrace_queue_depth gauge\n")
            depth = {(d, state): 0 for d in self._destinations for state in QUEUE_STATES} | queue.depth
            for (destination, state), count in sorted(depth.items()):
                out.append(f'headrace_queue_depth{{destination="{_escape(destination)}",state="{state}"}} {count}\n')
            age = 0.0 if queue.oldest_open_at is None else max(0.0, self.clock() - queue.oldest_open_at)
            out.append("# HELP headrace_queue_oldest_age_seconds Age of the oldest unfinished delivery (0: none).\n")
            out.append(f"# TYPE headrace_queue_oldest_age_seconds gauge\nheadrace_queue_oldest_age_seconds {age:.3f}\n")
            out.append("# HELP headrace_jobs_open Windmill jobs created whose outcome is not known yet.\n")
            out.append(f"# TYPE headrace_jobs_open gauge\nheadrace_jobs_open {queue.open_jobs}\n")
            out.append(
                "# HELP headrace_search_pending Stored events not in the payload search index yet "
                f"(counted up to {SEARCH_PENDING_CAP}).\n"
            )
            out.append(f"# TYPE headrace_search_pending gauge\nheadrace_search_pending {queue.search_pending}\n")
        out.append("# HELP headrace_build_info The running headrace: version and Python (always 1).\n")
        out.append("# TYPE headrace_build_info gauge\n")
        out.append(f'headrace_build_info{{version="{_escape(__version__)}",python="{platform.python_version()}"}} 1\n')
        out.append(procstats.render())
        return "".join(out)


class Cached(Generic[V]):
    """One value computed at most once per `ttl` seconds of `clock`; concurrent callers share one computation.
    A clock that went back (a wall clock set back) computes again."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._value: V | None = None
        self._at: float | None = None
        self._lock = asyncio.Lock()

    def _stale(self) -> bool:
        return self._at is None or not 0 <= self.clock() - self._at < self.ttl

    async def get(self, compute: Callable[[], Awaitable[V]]) -> V:
        if self._stale():
            async with self._lock:
                if self._stale():
                    self._value = await compute()
                    self._at = self.clock()
        return cast(V, self._value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: tuple[str, ...], values: Labels) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))
