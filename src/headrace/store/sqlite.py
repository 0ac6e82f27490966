"""The embedded store: one SQLite file in WAL mode with synchronous=FULL and group commit.

All writes go through one thread that takes every operation queued while the previous commit was being
made, runs each in its own SAVEPOINT, and commits them together: one fsync for a whole batch of
concurrent ingests. A caller's future resolves only after the COMMIT that made its write durable.
Reads use a second connection on their own thread (WAL lets them run beside the writer).
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from headrace.models import (
    Claimed,
    EventFilter,
    EventRow,
    IngestResult,
    NewEvent,
    Rejection,
    job_id_for,
)
from headrace.store import rows
from headrace.store.base import Finished, StoreError, StoreStats
from headrace.store.queries import load, migrations

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_STOP = object()


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class _DbThread(threading.Thread):
    """Runs operations on one connection. In write mode, each batch is one transaction."""

    def __init__(self, path: Path, *, write: bool, max_batch: int = 512) -> None:
        super().__init__(name=f"headrace-sqlite-{'writer' if write else 'reader'}", daemon=True)
        self._path = path
        self._write = write
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.batches = 0
        self.ops = 0

    def start_and_wait(self) -> None:
        self.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreError(f"cannot open SQLite database {self._path}: {self._error}") from self._error

    def submit(self, op: Op) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((op, future, loop))
        return future

    def stop(self) -> None:
        self._queue.put(_STOP)

    def run(self) -> None:
        try:
            conn = connect(self._path, readonly=not self._write)
        except sqlite3.Error as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                stopping = False
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stopping = True
                        break
                    batch.append(nxt)
                if self._write:
                    self._run_transaction(conn, batch)
                else:
                    settled: list[Settled] = []
                    for op, future, loop in batch:
                        try:
                            settled.append((loop, future, op(conn), None))
                        except Exception as exc:
                            settled.append((loop, future, None, exc))
                    _settle_all(settled)
                self.batches += 1
                self.ops += len(batch)
                if stopping:
                    return
        finally:
            conn.close()

    def _run_transaction(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        """Run a batch in one transaction. If one operation fails, roll back and run each on its own, so
        one bad operation cannot take the others down (rare; the fast path needs no savepoints)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            results: list[Settled] = [(loop, future, op(conn), None) for op, future, loop in batch]
            conn.execute("COMMIT")
        except Exception:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(batch) == 1:
                results = [self._run_alone(conn, *batch[0])]
            else:
                results = [self._run_alone(conn, op, future, loop) for op, future, loop in batch]
        _settle_all(results)

    @staticmethod
    def _run_alone(conn: sqlite3.Connection, op: Op, future: Any, loop: asyncio.AbstractEventLoop) -> Settled:
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = op(conn)
            conn.execute("COMMIT")
            return (loop, future, result, None)
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and not isinstance(exc, sqlite3.IntegrityError):
                exc = StoreError(f"the write was not stored: {exc}")
            return (loop, future, None, exc)


Settled = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Any, BaseException | None]


def _settle_all(results: list[Settled]) -> None:
    """Resolve a batch's futures with one wake-up per event loop, not one per operation."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Settled]] = {}
    for item in results:
        by_loop.setdefault(item[0], []).append(item)
    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(_apply, items)


def _apply(items: list[Settled]) -> None:
    for _, future, result, error in items:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns the version."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    for number, name, sql in migrations("sqlite"):
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(number)}")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"migration {name} failed: {exc}") from exc
        version = number
    return version


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._q = load("sqlite")
        self._writer: _DbThread | None = None
        self._reader: _DbThread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = connect(self.path)
            try:
                migrate(conn)
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._writer = _DbThread(self.path, write=True)
        self._reader = _DbThread(self.path, write=False)
        self._writer.start_and_wait()
        self._reader.start_and_wait()

    async def close(self) -> None:
        for thread in (self._writer, self._reader):
            if thread is not None:
                thread.stop()
        for thread in (self._writer, self._reader):
            if thread is not None:
                await asyncio.to_thread(thread.join, 10)
        self._writer = self._reader = None

    def describe(self) -> dict[str, Any]:
        writer = self._writer
        return {
            "backend": "sqlite",
            "path": str(self.path),
            "commits": writer.batches if writer else 0,
            "writes": writer.ops if writer else 0,
        }

    async def _write(self, op: Op) -> Any:
        if self._writer is None:
            raise StoreError("the store is not open")
        return await self._writer.submit(op)

    async def _read(self, op: Op) -> Any:
        if self._reader is None:
            raise StoreError("the store is not open")
        return await self._reader.submit(op)

    # -- ingest --------------------------------------------------------------------------------------
    async def ingest(self, event: NewEvent, destinations: Sequence[str]) -> IngestResult:
        q = self._q
        params = {
            "source": event.source,
            "webhook_id": event.webhook_id,
            "event_type": event.event_type,
            "webhook_timestamp": event.webhook_timestamp,
            "received_at": event.received_at,
            "body": event.body,
            "headers": json.dumps(event.headers),
        }

        def op(conn: sqlite3.Connection) -> IngestResult:
            row = conn.execute(q["insert_event"], params).fetchone()
            if row is None:
                existing = conn.execute(q["find_event_id"], params).fetchone()
                return IngestResult(event_id=int(existing["id"]), duplicate=True, deliveries=0)
            event_id = int(row[0])
            conn.executemany(
                q["insert_delivery"],
                [
                    {
                        "event_id": event_id,
                        "destination": name,
                        "generation": 0,
                        "job_id": job_id_for(event.source, event.webhook_id, name, 0),
                        "now": event.received_at,
                    }
                    for name in destinations
                ],
            )
            return IngestResult(event_id=event_id, duplicate=False, deliveries=len(destinations))

        result: IngestResult = await self._write(op)
        return result

    async def reject(self, rejection: Rejection) -> None:
        sql = self._q["insert_rejection"]
        params = {
            "source": rejection.source,
            "reason": rejection.reason,
            "status": rejection.status,
            "detail": rejection.detail,
            "remote": rejection.remote,
            "at": rejection.at,
        }
        await self._write(lambda conn: conn.execute(sql, params))

    # -- delivery ------------------------------------------------------------------------------------
    async def claim(self, destination: str, limit: int, token: str, now: float, lease_until: float) -> list[Claimed]:
        q = self._q
        params = {
            "destination": destination,
            "limit": limit,
            "token": token,
            "now": now,
            "lease_until": lease_until,
        }

        def op(conn: sqlite3.Connection) -> list[Claimed]:
            if conn.execute(q["claim_due"], params).rowcount == 0:
                return []
            return [rows.claimed(row) for row in conn.execute(q["claimed_by"], {"token": token})]

        claimed: list[Claimed] = await self._write(op)
        return claimed

    async def finish(self, finished: Finished, now: float) -> bool:
        q = self._q
        update, attempt = rows.finish_params(finished, now)

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(q["finish_delivery"], update).fetchone()
            if row is None:
                return False  # the lease was lost (expired and taken by another worker)
            conn.execute(q["insert_attempt"], {**attempt, "number": int(row[0])})
            return True

        done: bool = await self._write(op)
        return done

    async def release(self, claimed: Claimed, token: str, now: float) -> None:
        sql = self._q["release_delivery"]
        params = {"delivery_id": claimed.delivery_id, "token": token, "now": now}
        await self._write(lambda conn: conn.execute(sql, params))

    async def next_due(self) -> float | None:
        sql = self._q["next_due"]
        row = await self._read(lambda conn: conn.execute(sql).fetchone())
        return None if row is None or row["due"] is None else float(row["due"])

    # -- reading and operating -----------------------------------------------------------------------
    async def list_events(self, flt: EventFilter) -> list[EventRow]:
        sql = self._q["list_events"]
        # GLOB: "payment.*" is a prefix match and a plain name matches only itself.
        type_glob = flt.event_type or None
        params = {
            "source": flt.source,
            "type_glob": type_glob,
            "since": flt.since,
            "until": flt.until,
            "before_id": flt.before_id,
            "status": flt.status,
            "limit": flt.limit,
        }
        found: list[EventRow] = await self._read(lambda conn: [rows.event(row) for row in conn.execute(sql, params)])
        return found

    async def get_event(self, key: str) -> EventRow | None:
        q = self._q

        def op(conn: sqlite3.Connection) -> EventRow | None:
            event_id: int | None = int(key) if key.isdigit() else None
            if event_id is None:
                found = conn.execute(q["get_event_by_webhook_id"], {"webhook_id": key}).fetchone()
                if found is None:
                    return None
                event_id = int(found["id"])
            row = conn.execute(q["get_event"], {"event_id": event_id}).fetchone()
            if row is None:
                return None
            deliveries = conn.execute(q["event_deliveries"], {"event_id": event_id}).fetchall()
            attempts = conn.execute(q["event_attempts"], {"event_id": event_id}).fetchall()
            return rows.event_detail(row, deliveries, attempts)

        event: EventRow | None = await self._read(op)
        return event

    async def replay(self, event_id: int, destinations: Sequence[str], now: float) -> list[str]:
        q = self._q

        def op(conn: sqlite3.Connection) -> list[str]:
            key = conn.execute(q["event_key"], {"event_id": event_id}).fetchone()
            if key is None:
                raise StoreError(f"no event with id {event_id}")
            job_ids = []
            for name in destinations:
                latest = conn.execute(q["latest_generation"], {"event_id": event_id, "destination": name}).fetchone()
                generation = 0 if latest["generation"] is None else int(latest["generation"]) + 1
                job_id = job_id_for(key["source"], key["webhook_id"], name, generation)
                conn.execute(
                    q["insert_delivery"],
                    {
                        "event_id": event_id,
                        "destination": name,
                        "generation": generation,
                        "job_id": job_id,
                        "now": now,
                    },
                )
                job_ids.append(job_id)
            return job_ids

        job_ids: list[str] = await self._write(op)
        return job_ids

    async def failed_since(self, since: float) -> list[tuple[int, str]]:
        sql = self._q["failed_since"]
        found: list[tuple[int, str]] = await self._read(
            lambda conn: [(int(r["event_id"]), str(r["destination"])) for r in conn.execute(sql, {"since": since})]
        )
        return found

    async def list_rejections(self, since: float | None, limit: int) -> list[Rejection]:
        sql = self._q["list_rejections"]
        found: list[Rejection] = await self._read(
            lambda conn: [rows.rejection(r) for r in conn.execute(sql, {"since": since, "limit": limit})]
        )
        return found

    async def stats(self) -> StoreStats:
        q = self._q

        def op(conn: sqlite3.Connection) -> StoreStats:
            deliveries = {(r["destination"], r["status"]): int(r["n"]) for r in conn.execute(q["delivery_counts"])}
            oldest = conn.execute(q["oldest_pending"]).fetchone()["oldest"]
            rejections = {(r["source"], r["reason"]): int(r["n"]) for r in conn.execute(q["count_rejections"])}
            return StoreStats(deliveries, None if oldest is None else float(oldest), rejections)

        result: StoreStats = await self._read(op)
        return result

    async def check_writable(self) -> None:
        sql = self._q["health_write"]
        await self._write(lambda conn: conn.execute(sql))
