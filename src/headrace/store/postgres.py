"""The shared store: PostgreSQL, for several headrace instances working one queue.

Every operation runs in a transaction of its own on a connection from a small pool, so a caller's
future resolves only after its COMMIT. There is no group commit: with several connections in flight
PostgreSQL already overlaps concurrent commits (and `commit_delay` can batch their WAL flushes).
Claims pick rows with `FOR UPDATE SKIP LOCKED`, so instances that claim at the same moment pass over
each other's rows instead of waiting for them or taking them twice. Leases, generations and outcomes
follow the same rules as `sqlite.SQLiteStore`; the contract suite checks both.

Migrations are tracked in `schema_migrations` and applied at open, in one transaction that holds an
advisory lock: instances that start together take turns, and the second one finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg

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
from headrace.store.postgres_io import CREDENTIALS, Conn, Pool, fetch_all, fetch_one, glob_to_like, migrate, redact
from headrace.store.queries import load

T = TypeVar("T")


class PostgresStore:
    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self._q = load("postgresql")
        self._pool_size = pool_size
        self._pool: Pool | None = None
        self.transactions = 0

    # -- lifecycle -----------------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            pool = Pool(self.dsn, self._pool_size)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"[server] database: not a PostgreSQL URL headrace can use: {self._scrub(exc)}") from None
        try:
            async with pool.connection() as conn:
                await migrate(conn)
        except psycopg.OperationalError as exc:
            await pool.close()
            raise StoreError(f"cannot open PostgreSQL database {redact(self.dsn)}: {self._scrub(exc)}") from None
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    def _scrub(self, exc: Exception) -> str:
        """libpq's message without the URL it may quote, and so without a password written in it."""
        return CREDENTIALS.sub("://", str(exc).replace(self.dsn, "(the URL)")).strip()

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def describe(self) -> dict[str, Any]:
        pool = self._pool
        return {
            "backend": "postgresql",
            "database": redact(self.dsn),
            "pool_size": self._pool_size,
            "connections": pool.connections if pool else 0,
            "transactions": self.transactions,
        }

    async def _tx(self, op: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `op` in one transaction; returns after COMMIT (or raises, and nothing was stored)."""
        if self._pool is None:
            raise StoreError("the store is not open")
        async with self._pool.connection() as conn:
            async with conn.transaction():
                result = await op(conn)
            self.transactions += 1
            return result

    # -- ingest --------------------------------------------------------------------------------------
    async def ingest(self, event: NewEvent, destinations: Sequence[str]) -> IngestResult:
        q = self._q
        params = rows.event_params(event)

        async def op(conn: Conn) -> IngestResult:
            row = await fetch_one(conn, q["insert_event"], params)
            if row is None:  # a duplicate; ON CONFLICT waited for the first one's transaction to end
                existing = await fetch_one(conn, q["find_event_id"], params)
                if existing is None:
                    raise StoreError(f"event {event.source}/{event.webhook_id} conflicted but cannot be found")
                return IngestResult(event_id=int(existing["id"]), duplicate=True, deliveries=0)
            event_id = int(row["id"])
            if destinations:
                async with conn.cursor() as cur:
                    await cur.executemany(
                        q["insert_delivery"],
                        [
                            rows.delivery_params(event_id, event.source, event.webhook_id, name, 0, event.received_at)
                            for name in destinations
                        ],
                    )
            return IngestResult(event_id=event_id, duplicate=False, deliveries=len(destinations))

        return await self._tx(op)

    async def reject(self, rejection: Rejection) -> None:
        params = rows.rejection_params(rejection)
        await self._execute(self._q["insert_rejection"], params)

    async def _execute(self, sql: str, params: Any = None) -> int:
        async def op(conn: Conn) -> int:
            cur = await conn.execute(sql, params)
            return cur.rowcount

        return await self._tx(op)

    # -- delivery ------------------------------------------------------------------------------------
    async def claim(self, destination: str, limit: int, token: str, now: float, lease_until: float) -> list[Claimed]:
        q = self._q
        params = {"destination": destination, "limit": limit, "token": token, "now": now, "lease_until": lease_until}

        async def op(conn: Conn) -> list[Claimed]:
            if (await conn.execute(q["claim_due"], params)).rowcount == 0:
                return []
            return [rows.claimed(row) for row in await fetch_all(conn, q["claimed_by"], {"token": token})]

        return await self._tx(op)

    async def finish(self, finished: Finished, now: float) -> bool:
        q = self._q
        update, attempt = rows.finish_params(finished, now)

        async def op(conn: Conn) -> bool:
            row = await fetch_one(conn, q["finish_delivery"], update)
            if row is None:
                return False  # the lease was lost (expired and taken by another worker)
            await conn.execute(q["insert_attempt"], {**attempt, "number": int(row["attempts"])})
            return True

        return await self._tx(op)

    async def release(self, claimed: Claimed, token: str, now: float) -> None:
        params = {"delivery_id": claimed.delivery_id, "token": token, "now": now}
        await self._execute(self._q["release_delivery"], params)

    async def next_due(self) -> float | None:
        return await self._min(self._q["next_due"])

    async def _min(self, sql: str) -> float | None:
        row = await self._tx(lambda conn: fetch_one(conn, sql))
        return None if row is None or row["due"] is None else float(row["due"])

    # -- job outcomes --------------------------------------------------------------------------------
    async def next_job_check(self) -> float | None:
        return await self._min(self._q["next_job_check"])

    async def lease_due_jobs(self, limit: int, now: float, lease_until: float) -> list[OpenJob]:
        """Take up to `limit` jobs due for a look; their next check moves to `lease_until`, so another
        instance's tracker leaves them alone while this one asks Windmill."""
        q = self._q
        params = {"limit": limit, "now": now, "lease_until": lease_until}

        async def op(conn: Conn) -> list[OpenJob]:
            ids = sorted(int(row["id"]) for row in await fetch_all(conn, q["lease_due_jobs"], params))
            found = []
            for delivery_id in ids:
                row = await fetch_one(conn, q["open_job"], {"delivery_id": delivery_id})
                if row is not None:
                    found.append(rows.open_job(row))
            return found

        return await self._tx(op)

    async def record_job(self, update: JobUpdate, now: float) -> str | None:
        q = self._q

        async def op(conn: Conn) -> str | None:
            if update.state == "open":
                params = {"delivery_id": update.delivery_id, "next_check_at": update.next_check_at}
                await conn.execute(q["job_still_open"], params)
                return None
            row = await fetch_one(conn, q["open_job"], {"delivery_id": update.delivery_id})
            if row is None:
                return None  # recorded already (another tracker got there first)
            if (await conn.execute(q["job_done"], rows.job_done_params(update, now))).rowcount == 0:
                return None  # another instance recorded it between our read and our update
            if not (update.rerun and update.state == "failure"):
                return None
            job = rows.open_job(row)
            chain = {"event_id": job.event_id, "destination": job.destination}
            latest = await fetch_one(conn, q["latest_generation"], chain)
            if latest is not None and latest["generation"] is not None and int(latest["generation"]) != job.generation:
                return None  # replayed meanwhile: that newer generation is the re-run
            generation = job.generation + 1
            params = rows.delivery_params(job.event_id, job.source, job.webhook_id, job.destination, generation, now)
            await conn.execute(q["insert_rerun"], {**params, "job_reruns": job.reruns + 1})
            return str(params["job_id"])

        return await self._tx(op)

    # -- reading and operating -----------------------------------------------------------------------
    async def list_events(self, flt: EventFilter) -> list[EventRow]:
        sql = self._q["list_events"]
        params = {
            "source": flt.source,
            "type_like": glob_to_like(flt.event_type) if flt.event_type else None,
            "since": flt.since,
            "until": flt.until,
            "before_id": flt.before_id,
            "status": flt.status,
            "limit": flt.limit,
        }
        found = await self._tx(lambda conn: fetch_all(conn, sql, params))
        return [rows.event(row) for row in found]

    async def get_event(self, key: str) -> EventRow | None:
        q = self._q

        async def op(conn: Conn) -> EventRow | None:
            event_id: int | None = int(key) if key.isdigit() else None
            if event_id is None:
                found = await fetch_one(conn, q["get_event_by_webhook_id"], {"webhook_id": key})
                if found is None:
                    return None
                event_id = int(found["id"])
            row = await fetch_one(conn, q["get_event"], {"event_id": event_id})
            if row is None:
                return None
            deliveries = await fetch_all(conn, q["event_deliveries"], {"event_id": event_id})
            attempts = await fetch_all(conn, q["event_attempts"], {"event_id": event_id})
            return rows.event_detail(row, deliveries, attempts)

        return await self._tx(op)

    async def replay(self, event_id: int, destinations: Sequence[str], now: float) -> list[str]:
        q = self._q

        async def op(conn: Conn) -> list[str]:
            key = await fetch_one(conn, q["event_key"], {"event_id": event_id})
            if key is None:
                raise StoreError(f"no event with id {event_id}")
            job_ids = []
            for name in destinations:
                latest = await fetch_one(conn, q["latest_generation"], {"event_id": event_id, "destination": name})
                generation = 0 if latest is None or latest["generation"] is None else int(latest["generation"]) + 1
                params = rows.delivery_params(event_id, key["source"], key["webhook_id"], name, generation, now)
                await conn.execute(q["insert_delivery"], params)
                job_ids.append(params["job_id"])
            return job_ids

        return await self._tx(op)

    async def failed_since(self, since: float) -> list[tuple[int, str]]:
        sql = self._q["failed_since"]
        found = await self._tx(lambda conn: fetch_all(conn, sql, {"since": since}))
        return [(int(r["event_id"]), str(r["destination"])) for r in found]

    async def list_rejections(self, since: float | None, limit: int) -> list[Rejection]:
        sql = self._q["list_rejections"]
        found = await self._tx(lambda conn: fetch_all(conn, sql, {"since": since, "limit": limit}))
        return [rows.rejection(r) for r in found]

    async def stats(self) -> StoreStats:
        q = self._q

        async def op(conn: Conn) -> StoreStats:
            counts = await fetch_all(conn, q["delivery_counts"])
            deliveries = {(str(r["destination"]), str(r["status"])): int(r["n"]) for r in counts}
            oldest_row = await fetch_one(conn, q["oldest_pending"])
            oldest = None if oldest_row is None or oldest_row["oldest"] is None else float(oldest_row["oldest"])
            rejected = await fetch_all(conn, q["count_rejections"])
            rejections = {(str(r["source"]), str(r["reason"])): int(r["n"]) for r in rejected}
            return StoreStats(deliveries, oldest, rejections)

        return await self._tx(op)

    async def queue_stats(self) -> QueueStats:
        q = self._q

        async def op(conn: Conn) -> QueueStats:
            depth: dict[tuple[str, str], int] = {}
            oldest: float | None = None
            for r in await fetch_all(conn, q["open_delivery_counts"]):
                depth[(str(r["destination"]), str(r["status"]))] = int(r["n"])
                if r["oldest"] is not None and (oldest is None or float(r["oldest"]) < oldest):
                    oldest = float(r["oldest"])
            row = await fetch_one(conn, q["open_job_count"])
            return QueueStats(depth, oldest, 0 if row is None else int(row["n"]))

        return await self._tx(op)

    async def job_failures(self, since: float) -> list[JobFailures]:
        q = self._q

        async def op(conn: Conn) -> list[JobFailures]:
            found = []
            for r in await fetch_all(conn, q["job_failures_since"], {"since": since}):
                last = await fetch_one(conn, q["delivery_job"], {"delivery_id": r["last_id"]})
                if last is None:
                    continue
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

        return await self._tx(op)

    async def check_writable(self) -> None:
        await self._execute(self._q["health_write"])
