"""`Store`: the store's one interface, written once over the programs in `programs`.

A backend subclasses it and supplies its lifecycle (`open`, `close`, `describe`) and two ways to run a
program in one transaction: `_read` and `_write`. A program is passed as a function and its arguments, so a
backend may run it again from the start (SQLite re-runs a write alone when its group-commit batch failed).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from headrace.models import (
    Activity,
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
    QueueStats,
    Rejection,
    Route,
    TestDelivery,
)
from headrace.store import programs, test_deliveries
from headrace.store.base import (
    Beat,
    Finished,
    PruneBatch,
    Reaped,
    StoreError,
    StoreStats,
    StoreUnavailable,
    WorkerInfo,
)
from headrace.store.programs import Program
from headrace.store.schema import SchemaStatus, known_version

T = TypeVar("T")
MakeProgram = Callable[..., Program[T]]
WRITE_FAILURE_WINDOW = 10.0  # seconds a failed write keeps readiness failing (the probe alone may pass)


class Store(ABC):
    dialect: str  # the folder of its SQL under store/sql/
    deployment_id: str | None = None  # read from the database at open (migration 0003 created it)
    last_write_failure: tuple[float, str] | None = None  # (time.monotonic(), what failed)

    @abstractmethod
    async def open(self, *, migrate: bool = True) -> None:
        """Open the database; bring its schema up to date when `migrate`, else refuse an older one."""

    @property
    @abstractmethod
    def where(self) -> str:
        """The database, for messages: a path, or a URL without its password."""

    @abstractmethod
    async def inspect(self) -> SchemaStatus:
        """The schema status of the database, without opening, creating or changing it."""

    @abstractmethod
    async def migrate(self, *, replace_missing: bool = False) -> SchemaStatus:
        """Bring the schema to this binary's version (refusing a newer one); the store need not be open.
        `replace_missing`: create a new SQLite database where one headrace had created has gone missing."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def describe(self) -> dict[str, Any]: ...

    @abstractmethod
    async def _read(self, make: MakeProgram[T], *args: Any) -> T:
        """Run `make(*args)` in a read-only transaction."""

    @abstractmethod
    async def _write(self, make: MakeProgram[T], *args: Any) -> T:
        """Run `make(*args)` in a write transaction; returns after its COMMIT."""

    async def _recorded(self, make: MakeProgram[T], *args: Any) -> T:
        """`_write`, remembering when the database last refused one (for readiness)."""
        try:
            return await self._write(make, *args)
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable):
                self.last_write_failure = (time.monotonic(), str(exc))
            raise
        except Exception as exc:  # the driver's own error (sqlite3.Error, psycopg.Error, OSError)
            self.last_write_failure = (time.monotonic(), f"{type(exc).__name__}: {exc}")
            raise

    def _deployment(self) -> str:
        if self.deployment_id is None:
            raise StoreError("the store is not open (no deployment id read yet)")
        return self.deployment_id

    # ingest
    async def ingest(self, event: NewEvent, routes: Sequence[Route]) -> IngestResult:
        """Store the event and its deliveries; its search terms are indexed after the commit (index_pending)."""
        return await self._recorded(programs.ingest, event, routes, self._deployment())

    async def reject(self, rejection: Rejection) -> None:
        await self._recorded(programs.reject, rejection)

    # delivery
    async def claim(
        self, destination: str, limit: int, token: str, now: float, lease_until: float, *, worker: str | None = None
    ) -> list[Claimed]:
        return await self._recorded(programs.claim, destination, limit, token, now, lease_until, worker)

    async def finish(self, finished: Finished, now: float) -> bool:
        return await self._recorded(programs.finish, finished, now)

    async def release(self, claimed: Claimed, token: str, now: float) -> None:
        await self._recorded(programs.release, claimed, token, now)

    async def next_due(self) -> float | None:
        return await self._read(programs.earliest, "next_due")

    # job outcomes
    async def next_job_check(self) -> float | None:
        return await self._read(programs.earliest, "next_job_check")

    async def lease_due_jobs(
        self, limit: int, now: float, lease_until: float, owner: str | None = None
    ) -> list[OpenJob]:
        return await self._recorded(programs.lease_due_jobs, limit, now, lease_until, owner)

    async def record_job(self, update: JobUpdate, now: float) -> str | None:
        return await self._recorded(programs.record_job, update, now, self._deployment())

    # worker processes
    async def register_worker(self, worker: WorkerInfo, now: float) -> None:
        await self._recorded(programs.register_worker, worker, now)

    async def heartbeat(self, worker_id: str, now: float, dead_before: float, lease_until: float | None = None) -> Beat:
        return await self._recorded(programs.heartbeat, worker_id, now, dead_before, lease_until)

    async def retire_worker(self, worker_id: str, now: float) -> Reaped:
        return await self._recorded(programs.retire_worker, worker_id, now)

    async def live_workers(self, since: float) -> int:
        return await self._read(programs.live_workers, since)

    # reading and operating
    async def list_events(self, flt: EventFilter) -> list[EventRow]:
        return await self._read(programs.list_events, flt, self.dialect)

    async def index_backlog(self, batch: int = 2000, progress: Callable[[int], None] = lambda left: None) -> None:
        """Index the events stored before payload search existed (migration 0006), in batches of
        `batch` events, one transaction each; returns when none is left. A no-op once done."""
        while left := await self._recorded(programs.index_backlog, batch, self.dialect):
            progress(left)

    async def index_pending(self, limit: int) -> int:
        """Index up to `limit` of the events queued at ingest, newest first, in one transaction; returns how
        many ids were taken from the queue (0: it is empty)."""
        return await self._recorded(programs.index_pending, limit, self.dialect)

    async def get_event(self, key: str) -> EventRow | None:
        return await self._read(programs.get_event, key)

    async def replay(self, event_id: int, routes: Sequence[Route], now: float) -> list[str]:
        return await self._recorded(programs.replay, event_id, routes, now, self._deployment())

    async def replay_counted(
        self,
        items: Sequence[tuple[int, Sequence[Route]]],
        now: float,
        counted: tuple[int, int],
        claim: str | None,
        planned: Sequence[int],
    ) -> list[list[str]] | None:
        return await self._recorded(programs.replay_counted, items, now, self._deployment(), counted, claim, planned)

    async def delivery_mark(self) -> int:
        return await self._read(programs.delivery_mark)

    async def replayed_since(self, mark: int, max_event_id: int) -> list[int]:
        return await self._read(programs.replayed_since, mark, max_event_id)

    async def failed_since(self, since: float) -> list[tuple[int, str]]:
        return await self._read(programs.failed_since, since)

    async def list_rejections(self, since: float | None, limit: int) -> list[Rejection]:
        return await self._read(programs.list_rejections, since, limit)

    async def stats(self, *, rejections: bool = True) -> StoreStats:
        return await self._read(programs.stats, rejections)

    async def queue_stats(self) -> QueueStats:
        return await self._read(programs.queue_stats)

    async def job_failures(self, since: float) -> list[JobFailures]:
        return await self._read(programs.job_failures, since)

    async def activity(
        self, since: float, step: float, buckets: int, destinations: Sequence[str], destination: str | None = None
    ) -> Activity:
        return await self._read(programs.activity, since, step, buckets, destinations, destination)

    async def destination_errors(self, destination: str, since: float, limit: int) -> list[DeliveryError]:
        return await self._read(programs.destination_errors, destination, since, limit)

    async def check_writable(self) -> None:
        """Raise unless a real write commits now and no write failed in the last WRITE_FAILURE_WINDOW s."""
        await self._recorded(programs.check_writable)
        failure = self.last_write_failure
        if failure is not None and time.monotonic() - failure[0] < WRITE_FAILURE_WINDOW:
            raise StoreUnavailable(f"a write failed {time.monotonic() - failure[0]:.0f}s ago: {failure[1]}")

    # test deliveries (the console's preview page): a table of their own (store/test_deliveries.py)
    async def insert_test_delivery(self, test: NewTestDelivery) -> int:
        return await self._recorded(test_deliveries.insert, test)

    async def get_test_delivery(self, test_id: int) -> TestDelivery | None:
        return await self._read(test_deliveries.get, test_id)

    async def list_test_deliveries(self, event_id: int | None, limit: int) -> list[TestDelivery]:
        return await self._read(test_deliveries.listed, event_id, limit)

    async def record_test_job(self, test_id: int, update: JobUpdate, now: float) -> bool:
        return await self._recorded(test_deliveries.record_job, test_id, update, now)

    # retention (ops/retention.py runs these in small batches)
    async def prune_events(
        self, cutoff: float, after: tuple[float, int] | None, limit: int, *, include_failed: bool = False
    ) -> PruneBatch:
        return await self._recorded(programs.prune_events, cutoff, after, limit, include_failed)

    async def prune_rejections(self, cutoff: float, limit: int) -> int:
        return await self._recorded(programs.prune_rejections, cutoff, limit)

    # event keys, the alive record and refusal times (headrace reconcile; store/programs/reconcile.py)
    async def key_backlog(self, batch: int = 2000) -> None:
        """Key the events stored before event keys existed (the migration queued them), in batches of
        `batch`, one transaction each; returns when none is left. A no-op once done."""
        while await self._recorded(programs.key_backlog, batch):
            pass

    async def stored_keys(self, source: str, keys: Sequence[str]) -> set[str]:
        return await self._read(programs.stored_keys, source, keys)

    async def start_alive(self, instance: str, now: float, forget_before: float) -> int:
        return await self._recorded(programs.start_alive, instance, now, forget_before)

    async def beat_alive(self, span_id: int, now: float) -> None:
        await self._recorded(programs.beat_alive, span_id, now)

    async def alive_spans(self, since: float) -> list[tuple[float, float]]:
        return await self._read(programs.alive_spans, since)

    async def refusal_hours(self, since: float) -> list[tuple[str, float, float]]:
        return await self._read(programs.refusal_hours, since)

    async def record_reconciled(self, source: str, since: float, until: float, at: float) -> None:
        await self._recorded(programs.record_reconciled, source, since, until, at)

    async def reconciled_windows(self, since: float) -> list[tuple[str, float, float]]:
        return await self._read(programs.reconciled_windows, since)

    async def accepted_between(self, source: str, after: float, before: float) -> bool:
        return await self._read(programs.accepted_between, source, after, before)

    # copying a whole database (store.copy)
    async def export_rows(self, table: str, after_id: int, limit: int) -> list[dict[str, Any]]:
        return await self._read(programs.export_rows, table, after_id, limit)

    async def import_rows(self, table: str, batch: list[dict[str, Any]]) -> None:
        await self._recorded(programs.import_rows, table, batch)

    async def finish_import(self, deployment_id: str) -> dict[str, int]:
        counts = await self._recorded(programs.finish_import, deployment_id)
        self.deployment_id = deployment_id
        return counts

    async def table_counts(self) -> dict[str, int]:
        return await self._read(programs.table_counts)

    async def check_schema(self) -> None:
        """Raise unless the open database has this binary's schema version and every column it uses."""
        await self._read(programs.check_schema, self.where, known_version(self.dialect))
