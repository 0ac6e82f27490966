"""The embedded store: one SQLite file in WAL mode with synchronous=FULL and group commit.

The connection machinery (group-commit writer, reader thread, migrations) is in `sqlite_io`; this module
maps the Store interface onto named queries from `sql/sqlite/queries.sql`.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
)
from headrace.store import rows
from headrace.store.base import Finished, StoreError, StoreStats
from headrace.store.queries import load
from headrace.store.sqlite_io import LoopWriter, Op, Reader, connect, migrate


class SQLiteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._q = load("sqlite")
        self._writer: LoopWriter | None = None
        self._reader: Reader | None = None

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
        self._writer = LoopWriter(self.path)
        self._reader = Reader(self.path)
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
        params = rows.event_params(event)

        def op(conn: sqlite3.Connection) -> IngestResult:
            row = conn.execute(q["insert_event"], params).fetchone()
            if row is None:
                existing = conn.execute(q["find_event_id"], params).fetchone()
                return IngestResult(event_id=int(existing["id"]), duplicate=True, deliveries=0)
            event_id = int(row[0])
            conn.executemany(
                q["insert_delivery"],
                [
                    rows.delivery_params(event_id, event.source, event.webhook_id, name, 0, event.received_at)
                    for name in destinations
                ],
            )
            return IngestResult(event_id=event_id, duplicate=False, deliveries=len(destinations))

        result: IngestResult = await self._write(op)
        return result

    async def reject(self, rejection: Rejection) -> None:
        sql = self._q["insert_rejection"]
        params = rows.rejection_params(rejection)
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
            params = rows.delivery_params(job.event_id, job.source, job.webhook_id, job.destination, generation, now)
            conn.execute(q["insert_rerun"], {**params, "job_reruns": job.reruns + 1})
            return str(params["job_id"])

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
                params = rows.delivery_params(event_id, key["source"], key["webhook_id"], name, generation, now)
                conn.execute(q["insert_delivery"], params)
                job_ids.append(params["job_id"])
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
