"""The Store interface: everything the pipeline needs from durable storage.

Implementations: `sqlite.SQLiteStore` (embedded default) and `postgres.PostgresStore` (several instances on
one queue). Both pass the same contract suite in tests/integration/test_store_contract.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from headrace.models import (
    Activity,
    Attempt,
    Claimed,
    DeliveryError,
    EventFilter,
    EventRow,
    IngestResult,
    JobFailures,
    JobUpdate,
    NewEvent,
    NewTestDelivery,
    OpenJob,
    Outcome,
    QueueStats,
    Rejection,
    Route,
    TestDelivery,
)

if TYPE_CHECKING:
    from headrace.store.schema import SchemaStatus


@dataclass(frozen=True)
class Finished:
    """The record of one attempt: which delivery, under which lease, what happened."""

    claimed: Claimed
    token: str
    attempt: Attempt
    outcome: Outcome


@dataclass(frozen=True)
class StoreStats:
    # (destination, pending|in_flight|failed) -> count: the open and the failed ones, each over a partial index
    deliveries: dict[tuple[str, str], int]
    oldest_pending_at: float | None
    rejections: dict[tuple[str, str], int]  # (source, reason) -> count


@dataclass(frozen=True)
class WorkerInfo:
    """A worker process as it registers: its id (also the start of every lease token it claims under)."""

    id: str
    host: str
    pid: int


@dataclass(frozen=True)
class Reaped:
    """A worker removed from the workers table, and what of its work was released for others."""

    worker_id: str
    deliveries: int
    jobs: int
    heartbeat_at: float | None = None  # its last heartbeat (None: it deregistered itself)


@dataclass(frozen=True)
class Beat:
    """One heartbeat: whether this worker's row was still there, and the dead workers it reaped."""

    alive: bool
    reaped: list[Reaped]


def lease_prefix(worker_id: str) -> str:
    """Every delivery lease token a worker claims under starts with this (see Worker)."""
    return f"{worker_id}#"


@dataclass(frozen=True)
class PruneBatch:
    """One retention batch: events looked at, events deleted (with their deliveries and attempts), and where
    the next batch starts (the last event looked at, by receive time and id); `after` is None when done."""

    scanned: int
    deleted: int
    after: tuple[float, int] | None


class StoreError(Exception):
    pass


class StoreUnavailable(StoreError):
    """The database could not take a write (disk full, file deleted, server gone): nothing was stored.
    Ingest answers 503 so the sender retries; readiness fails until writes succeed again."""


class Store(Protocol):
    deployment_id: str | None  # this database's id, part of every new job id; known once open

    async def open(self, *, migrate: bool = True) -> None: ...
    async def close(self) -> None: ...
    @property
    def where(self) -> str: ...
    async def inspect(self) -> SchemaStatus: ...
    async def migrate(self, *, replace_missing: bool = False) -> SchemaStatus: ...

    # ingest
    async def ingest(self, event: NewEvent, routes: Sequence[Route]) -> IngestResult: ...
    async def reject(self, rejection: Rejection) -> None: ...

    # delivery
    async def claim(
        self, destination: str, limit: int, token: str, now: float, lease_until: float, *, worker: str | None = None
    ) -> list[Claimed]:
        """Lease up to `limit` due deliveries under `token`. With `worker`, only while that worker is registered
        (a worker presumed dead claims nothing); its token must then start with `lease_prefix(worker)`."""
        ...

    async def finish(self, finished: Finished, now: float) -> bool: ...
    async def release(self, claimed: Claimed, token: str, now: float) -> None: ...
    async def next_due(self) -> float | None: ...

    # job outcomes (the tracker)
    async def next_job_check(self) -> float | None: ...
    async def lease_due_jobs(
        self, limit: int, now: float, lease_until: float, owner: str | None = None
    ) -> list[OpenJob]: ...
    async def record_job(self, update: JobUpdate, now: float) -> str | None:
        """Store one look at a job; for a failure with `rerun`, queue a new generation and return its job id."""
        ...

    # worker processes (deliver/heartbeat.py)
    async def register_worker(self, worker: WorkerInfo, now: float) -> None: ...
    async def heartbeat(self, worker_id: str, now: float, dead_before: float, lease_until: float | None = None) -> Beat:
        """Beat for `worker_id` (a live one's deliveries in flight stay leased until at least `lease_until`),
        then reap every worker whose last beat is before `dead_before`."""
        ...

    async def retire_worker(self, worker_id: str, now: float) -> Reaped:
        """Release everything `worker_id` holds and delete its row (a clean stop)."""
        ...

    async def live_workers(self, since: float) -> int: ...

    # reading and operating
    async def list_events(self, flt: EventFilter) -> list[EventRow]: ...
    async def index_backlog(self) -> None:
        """Index for payload search the events stored before it existed (after migration 0006)."""
        ...

    async def index_pending(self, limit: int) -> int:
        """Index up to `limit` of the events queued at ingest (headrace/ops/indexer.py); returns how many ids it
        took from the queue (0: the queue is empty)."""
        ...

    async def get_event(self, key: str) -> EventRow | None: ...
    async def replay(self, event_id: int, routes: Sequence[Route], now: float) -> list[str]: ...
    async def replay_many(self, items: Sequence[tuple[int, Sequence[Route]]], now: float) -> list[list[str]]: ...
    async def replay_counted(
        self,
        items: Sequence[tuple[int, Sequence[Route]]],
        now: float,
        counted: tuple[int, int],
        claim: str | None,
        planned: Sequence[int],
    ) -> list[list[str]] | None:
        """A chunk of a bulk replay (programs.replay_counted): the first (with `claim`) writes nothing and
        answers None when the token was used or a counted event was replayed since (mark, max_event_id)."""
        ...

    async def delivery_mark(self) -> int:
        """The newest delivery id (0 when none): bulk replay's watermark."""
        ...

    async def replayed_since(self, mark: int, max_event_id: int) -> list[int]: ...
    async def failed_since(self, since: float) -> list[tuple[int, str]]: ...
    async def list_rejections(self, since: float | None, limit: int) -> list[Rejection]: ...
    async def stats(self, *, rejections: bool = True) -> StoreStats:
        """Open and failed deliveries per destination (never a count over all history); rejection rows
        per source and reason unless `rejections` is False."""
        ...

    async def queue_stats(self) -> QueueStats: ...
    async def job_failures(self, since: float) -> list[JobFailures]: ...
    async def activity(
        self, since: float, step: float, buckets: int, destinations: Sequence[str], destination: str | None = None
    ) -> Activity:
        """The console's charts: see models.Activity (bounded by the window: never all history)."""
        ...

    async def destination_errors(self, destination: str, since: float, limit: int) -> list[DeliveryError]: ...
    async def check_writable(self) -> None: ...

    # test deliveries (the console's preview page): never an event's delivery
    async def insert_test_delivery(self, test: NewTestDelivery) -> int: ...
    async def get_test_delivery(self, test_id: int) -> TestDelivery | None: ...
    async def list_test_deliveries(self, event_id: int | None, limit: int) -> list[TestDelivery]: ...
    async def record_test_job(self, test_id: int, update: JobUpdate, now: float) -> bool: ...
    async def check_schema(self) -> None: ...

    # retention
    async def prune_events(
        self, cutoff: float, after: tuple[float, int] | None, limit: int, *, include_failed: bool = False
    ) -> PruneBatch: ...
    async def prune_rejections(self, cutoff: float, limit: int) -> int: ...

    # event keys, the alive record and refusal times (headrace reconcile)
    async def key_backlog(self) -> None:
        """Key the events stored before event keys existed (migration 0010 SQLite / 0011 PostgreSQL)."""
        ...

    async def stored_keys(self, source: str, keys: Sequence[str]) -> set[str]: ...
    async def start_alive(self, instance: str, now: float, forget_before: float) -> int: ...
    async def beat_alive(self, span_id: int, now: float) -> None: ...
    async def alive_spans(self, since: float) -> list[tuple[float, float]]: ...
    async def refusal_hours(self, since: float) -> list[tuple[str, float, float]]: ...
    async def accepted_between(self, source: str, after: float, before: float) -> bool: ...
    async def record_reconciled(self, source: str, since: float, until: float, at: float) -> None: ...
    async def reconciled_windows(self, since: float) -> list[tuple[str, float, float]]: ...

    def describe(self) -> dict[str, Any]: ...
