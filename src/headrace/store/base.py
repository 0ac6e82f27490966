"""What the stages see of the store: the records they pass (`Finished`, `WorkerInfo`, …), its errors, and one
small interface per role (`EventLog` for ingest; `DeliveryQueue`, `JobBoard`, `WorkerRegistry` and
`TestDeliveryLog` for deliver).

The store itself is `core.Store`, with two backends: `sqlite.SQLiteStore` (embedded default) and
`postgres.PostgresStore` (several instances on one queue). Both pass the same contract suite in
tests/integration/test_store_contract.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from headrace.models import (
    Attempt,
    Claimed,
    IngestResult,
    JobUpdate,
    NewEvent,
    NewTestDelivery,
    OpenJob,
    Outcome,
    Rejection,
    Route,
    TestDelivery,
)


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


# The roles the two stages see (STYLE.md: ingest and deliver see interfaces, never an implementation). The one
# implementation is `store.core.Store` (its SQLite and PostgreSQL backends); mypy checks that it fills each role
# wherever app.py hands a store to a stage, so a role cannot drift from the store. A query only ops, check, the
# API or the CLI use is a method of `core.Store` and nothing here.


class EventLog(Protocol):
    """Where accepted events and counted refusals go (ingest; reconcile stores what Dodo gave up on)."""

    async def ingest(self, event: NewEvent, routes: Sequence[Route]) -> IngestResult: ...
    async def reject(self, rejection: Rejection) -> None: ...


class DeliveryQueue(Protocol):
    """Due deliveries, leased to one worker at a time (deliver/worker.py), and each attempt's record."""

    async def claim(
        self, destination: str, limit: int, token: str, now: float, lease_until: float, *, worker: str | None = None
    ) -> list[Claimed]:
        """Lease up to `limit` due deliveries under `token`. With `worker`, only while that worker is registered
        (a worker presumed dead claims nothing); its token must then start with `lease_prefix(worker)`."""
        ...

    async def finish(self, finished: Finished, now: float) -> bool:
        """Record an attempt; False when the lease was lost (another worker owns the delivery now)."""
        ...

    async def release(self, claimed: Claimed, token: str, now: float) -> None: ...
    async def next_due(self) -> float | None: ...


class JobBoard(Protocol):
    """Jobs sent to Windmill whose outcome is still open (deliver/tracker.py)."""

    async def next_job_check(self) -> float | None: ...
    async def lease_due_jobs(
        self, limit: int, now: float, lease_until: float, owner: str | None = None
    ) -> list[OpenJob]: ...
    async def record_job(self, update: JobUpdate, now: float) -> str | None:
        """Store one look at a job; for a failure with `rerun`, queue a new generation and return its job id."""
        ...


class WorkerRegistry(Protocol):
    """Worker processes and their heartbeats (deliver/heartbeat.py)."""

    async def register_worker(self, worker: WorkerInfo, now: float) -> None: ...
    async def heartbeat(self, worker_id: str, now: float, dead_before: float, lease_until: float | None = None) -> Beat:
        """Beat for `worker_id` (a live one's deliveries in flight stay leased until at least `lease_until`),
        then reap every worker whose last beat is before `dead_before`."""
        ...

    async def retire_worker(self, worker_id: str, now: float) -> Reaped:
        """Release everything `worker_id` holds and delete its row (a clean stop)."""
        ...


class WorkerStore(DeliveryQueue, WorkerRegistry, Protocol):
    """What a worker needs: its queue, and the registry its heartbeat writes."""


class TestDeliveryLog(Protocol):
    """The console's test deliveries (deliver/testsend.py): a table of their own, never an event's delivery."""

    deployment_id: str | None  # this database's id, part of every new job id; known once open

    async def insert_test_delivery(self, test: NewTestDelivery) -> int: ...
    async def get_test_delivery(self, test_id: int) -> TestDelivery | None: ...
    async def record_test_job(self, test_id: int, update: JobUpdate, now: float) -> bool: ...
