"""The embedded store: one SQLite file in WAL mode with synchronous=FULL and group commit.

Writes are group-committed. The statements of a write run on the event loop's thread (they take
microseconds), inside the transaction that is open for the current batch; the COMMIT, which waits for
the disk, runs on a helper thread. Writes that arrive while a COMMIT is under way wait for it and then
form the next batch: one fsync for a whole batch of concurrent ingests, and no thread hop per
statement. A caller's future resolves only after the COMMIT that made its write durable.
Reads use a second connection on their own thread (WAL lets them run beside the writer).
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from headrace.models import (
    Claimed,
    EventFilter,
    EventRow,
    IngestResult,
    JobFailures,
    JobUpdate,
    NewEvent,
    OpenJob,
    QueueStats,
    Rejection,
    job_id_for,
)
from headrace.store import rows
from headrace.store.base import Finished, StoreError, StoreStats
from headrace.store.queries import load, migrations

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]
_STOP = object()


def connect(path: Path, *, readonly: bool = False, busy_timeout_ms: int = 30000) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class _LoopWriter:
    """Group commit for one connection owned by the event loop (see the module docstring)."""

    BUSY_WAIT = 30.0  # another process (a CLI replay, a `headrace worker`) may hold the write lock briefly

    def __init__(self, path: Path) -> None:
        self._conn = connect(path, busy_timeout_ms=0)  # never block the loop on a lock: retry asynchronously
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="headrace-sqlite-commit")
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self.batches = 0
        self.ops = 0

    def submit(self, op: Op) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, future))
        if not self._flushing:
            self._flushing = True
            # Let every request ready in this loop iteration join the batch before it starts.
            loop.call_soon(self._start_flush, loop)
        return future

    def _start_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_task = loop.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self.batches += 1
                self.ops += len(batch)
                try:
                    results = await self._transaction(batch)
                except Exception as exc:  # the whole batch failed (begin or commit): nothing was stored
                    results = [(future, None, exc) for _, future in batch]
                for future, result, error in results:
                    if future.cancelled():
                        continue
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(result)
        finally:
            self._flushing = False

    async def _transaction(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[tuple[Any, Any, Any]]:
        await self._begin()
        try:
            results = [(future, op(self._conn), None) for op, future in batch]
        except Exception:
            # One operation failed: undo the batch and run each on its own, so one bad write cannot
            # take the others down. Rare; the fast path needs no savepoints.
            self._conn.execute("ROLLBACK")
            return [await self._alone(op, future) for op, future in batch]
        await self._commit()
        return results

    async def _alone(self, op: Op, future: asyncio.Future[Any]) -> tuple[Any, Any, Any]:
        await self._begin()
        try:
            result = op(self._conn)
        except Exception as exc:
            self._conn.execute("ROLLBACK")
            return (future, None, exc)
        await self._commit()
        return (future, result, None)

    async def _begin(self) -> None:
        deadline = time.monotonic() + self.BUSY_WAIT
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreError(f"cannot begin a write: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreError(f"the database stayed locked for {self.BUSY_WAIT:g}s: {exc}") from exc
                await asyncio.sleep(0.005)

    async def _commit(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._committer, self._conn.execute, "COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StoreError(f"commit failed, nothing in this batch was stored: {exc}") from exc

    async def close(self) -> None:
        await asyncio.sleep(0)  # a flush scheduled with call_soon has started by now
        if self._flush_task is not None:
            await self._flush_task
        self._committer.shutdown(wait=True)
        self._conn.close()


class _Reader(threading.Thread):
    """Runs read-only operations on a connection of its own, so a slow list never holds up the loop."""

    def __init__(self, path: Path, max_batch: int = 64) -> None:
        super().__init__(name="headrace-sqlite-reader", daemon=True)
        self._path = path
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None

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
            conn = connect(self._path, readonly=True)
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
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        self._queue.put(_STOP)
                        break
                    batch.append(nxt)
                settled: list[Settled] = []
                for op, future, loop in batch:
                    try:
                        settled.append((loop, future, op(conn), None))
                    except Exception as exc:
                        settled.append((loop, future, None, exc))
                _settle_all(settled)
        finally:
            conn.close()


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
        self._writer: _LoopWriter | None = None
        self._reader: _Reader | None = None

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
        self._writer = _LoopWriter(self.path)
        self._reader = _Reader(self.path)
        self._reader.start_and_wait()

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        if self._reader is not None:
            self._reader.stop()
            await asyncio.to_thread(self._reader.join, 10)
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

    # -- job outcomes --------------------------------------------------------------------------------
    async def next_job_check(self) -> float | None:
        sql = self._q["next_job_check"]
        row = await self._read(lambda conn: conn.execute(sql).fetchone())
        return None if row is None or row["due"] is None else float(row["due"])

    async def lease_due_jobs(self, limit: int, now: float, lease_until: float) -> list[OpenJob]:
        """Take up to `limit` jobs due for a look; their next check moves to `lease_until`, so another
        process's tracker leaves them alone while this one asks Windmill."""
        q = self._q
        params = {"limit": limit, "now": now, "lease_until": lease_until}

        def op(conn: sqlite3.Connection) -> list[OpenJob]:
            ids = [int(row[0]) for row in conn.execute(q["lease_due_jobs"], params).fetchall()]
            found = []
            for delivery_id in ids:
                row = conn.execute(q["open_job"], {"delivery_id": delivery_id}).fetchone()
                if row is not None:
                    found.append(rows.open_job(row))
            return found

        jobs: list[OpenJob] = await self._write(op)
        return jobs

    async def record_job(self, update: JobUpdate, now: float) -> str | None:
        q = self._q

        def op(conn: sqlite3.Connection) -> str | None:
            if update.state == "open":
                params = {"delivery_id": update.delivery_id, "next_check_at": update.next_check_at}
                conn.execute(q["job_still_open"], params)
                return None
            row = conn.execute(q["open_job"], {"delivery_id": update.delivery_id}).fetchone()
            if row is None:
                return None  # recorded already (another tracker got there first)
            conn.execute(q["job_done"], rows.job_done_params(update, now))
            if not (update.rerun and update.state == "failure"):
                return None
            job = rows.open_job(row)
            latest = conn.execute(
                q["latest_generation"], {"event_id": job.event_id, "destination": job.destination}
            ).fetchone()
            if latest["generation"] is not None and int(latest["generation"]) != job.generation:
                return None  # replayed meanwhile: that newer generation is the re-run
            generation = job.generation + 1
            job_id = job_id_for(job.source, job.webhook_id, job.destination, generation)
            conn.execute(
                q["insert_rerun"],
                {
                    "event_id": job.event_id,
                    "destination": job.destination,
                    "generation": generation,
                    "job_id": job_id,
                    "now": now,
                    "job_reruns": job.reruns + 1,
                },
            )
            return job_id

        job_id: str | None = await self._write(op)
        return job_id

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

    async def queue_stats(self) -> QueueStats:
        q = self._q

        def op(conn: sqlite3.Connection) -> QueueStats:
            depth: dict[tuple[str, str], int] = {}
            oldest: float | None = None
            for r in conn.execute(q["open_delivery_counts"]):
                depth[(str(r["destination"]), str(r["status"]))] = int(r["n"])
                if r["oldest"] is not None and (oldest is None or float(r["oldest"]) < oldest):
                    oldest = float(r["oldest"])
            open_jobs = int(conn.execute(q["open_job_count"]).fetchone()["n"])
            return QueueStats(depth, oldest, open_jobs)

        result: QueueStats = await self._read(op)
        return result

    async def job_failures(self, since: float) -> list[JobFailures]:
        q = self._q

        def op(conn: sqlite3.Connection) -> list[JobFailures]:
            found = []
            for r in conn.execute(q["job_failures_since"], {"since": since}).fetchall():
                last = conn.execute(q["delivery_job"], {"delivery_id": r["last_id"]}).fetchone()
                found.append(
                    JobFailures(
                        destination=str(r["destination"]),
                        count=int(r["n"]),
                        last_at=float(r["last_at"]),
                        last_job_id=last["windmill_job_id"],
                        last_excerpt=str(last["job_excerpt"]),
                        last_event_id=int(last["event_id"]),
                        last_webhook_id=str(last["webhook_id"]),
                        last_event_type=str(last["event_type"]),
                    )
                )
            return found

        result: list[JobFailures] = await self._read(op)
        return result

    async def check_writable(self) -> None:
        sql = self._q["health_write"]
        await self._write(lambda conn: conn.execute(sql))
