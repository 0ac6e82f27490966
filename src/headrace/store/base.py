"""The Store interface: everything the pipeline needs from durable storage.

Implementations: `sqlite.SQLiteStore` (embedded default) and `postgres.PostgresStore` (several instances on
one queue). Both pass the same contract suite in tests/integration/test_store_contract.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from headrace.models import (
    Attempt,
    Claimed,
    EventFilter,
    EventRow,
    IngestResult,
    JobFailures,
    JobUpdate,
    NewEvent,
    OpenJob,
    Outcome,
    QueueStats,
    Rejection,
    Route,
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
    deliveries: dict[tuple[str, str], int]  # (destination, status) -> count
    oldest_pending_at: float | None
    rejections: dict[tuple[str, str], int]  # (source, reason) -> count


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
        self, destination: str, limit: int, token: str, now: float, lease_until: float
    ) -> list[Claimed]: ...
    async def finish(self, finished: Finished, now: float) -> bool: ...
    async def release(self, claimed: Claimed, token: str, now: float) -> None: ...
    async def next_due(self) -> float | None: ...

    # job outcomes (the tracker)
    async def next_job_check(self) -> float | None: ...
    async def lease_due_jobs(self, limit: int, now: float, lease_until: float) -> list[OpenJob]: ...
    async def record_job(self, update: JobUpdate, now: float) -> str | None:
        """Store one look at a job; for a failure with `rerun`, queue a new generation and return its job id."""
        ...

    # reading and operating
    async def list_events(self, flt: EventFilter) -> list[EventRow]: ...
    async def index_backlog(self) -> None:
        """Index for payload search the events stored before it existed (after migration 0006, `db copy`)."""
        ...

    async def get_event(self, key: str) -> EventRow | None: ...
    async def replay(self, event_id: int, routes: Sequence[Route], now: float) -> list[str]: ...
    async def failed_since(self, since: float) -> list[tuple[int, str]]: ...
    async def list_rejections(self, since: float | None, limit: int) -> list[Rejection]: ...
    async def stats(self) -> StoreStats: ...
    async def queue_stats(self) -> QueueStats: ...
    async def job_failures(self, since: float) -> list[JobFailures]: ...
    async def check_writable(self) -> None: ...
    async def check_schema(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...
