"""The shared store: PostgreSQL, for several headrace instances working one queue.

Ingests (and rejection records) are group-committed (`postgres_group`): the ingests that arrive together
share one transaction and one COMMIT, their statements pipelined, and each caller's future resolves only
after that COMMIT. Every other operation runs in a transaction of its own on a connection from the same
small pool.
Claims pick rows with `FOR UPDATE SKIP LOCKED`, so instances that claim at the same moment pass over
each other's rows instead of waiting for them or taking them twice. The operations are `core.Store`'s;
this module only runs their steps on a psycopg connection.

Migrations are tracked in `schema_migrations` and applied at open, in one transaction that holds an
advisory lock: instances that start together take turns, and the second one finds nothing to do.
"""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg

from headrace.store import programs
from headrace.store.base import StoreError
from headrace.store.core import MakeProgram, Store
from headrace.store.postgres_group import GroupWriter, bulk_params, load_bulk
from headrace.store.postgres_io import CREDENTIALS, Conn, Pool, applied_versions, redact
from headrace.store.postgres_io import migrate as migrate_schema
from headrace.store.programs import Step, drive_async
from headrace.store.queries import load
from headrace.store.schema import SchemaStatus, known_version, pending

T = TypeVar("T")
GROUPED = {programs.ingest, programs.reject}  # the writes of `POST /webhooks/…`: one COMMIT for many
# Queries whose rows carry event bodies (the indexer's, the worker's claim, one event, `db copy`): their rows come
# in binary, so a body is not sent as hex text twice its size, encoded by the server and decoded here (a read
# of 500 bodies: 4 µs a row here instead of 9, 5.5 µs in the server instead of 10.7).
BINARY_ROWS = frozenset(
    {"events_for_index", "events_to_index", "claimed_by", "get_event", "export_events", "keys_pending"}
)


class PostgresStore(Store):
    dialect = "postgresql"

    def __init__(self, dsn: str, pool_size: int = 10, *, group_lanes: int = 2) -> None:
        self.dsn = dsn
        self._q = load("postgresql")
        self._bulk = load_bulk()
        self._pool_size = pool_size
        self._group_lanes = group_lanes  # batches of ingests committing at once, each on its own connection
        self._pool: Pool | None = None
        self._group: GroupWriter | None = None
        self.transactions = 0
        self.deployment_id: str | None = None

    @property
    def where(self) -> str:
        return redact(self.dsn)

    async def open(self, *, migrate: bool = True) -> None:
        pool = self._new_pool(self._pool_size)
        try:
            async with pool.connection() as conn:
                await migrate_schema(conn, self.where, allow=migrate)
                self.deployment_id = await self._deployment_id(conn)
        except psycopg.OperationalError as exc:
            await pool.close()
            raise StoreError(f"cannot open PostgreSQL database {self.where}: {self._scrub(exc)}") from None
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._group = GroupWriter(pool, self._q, lanes=self._group_lanes)

    def _new_pool(self, size: int) -> Pool:
        try:
            return Pool(self.dsn, size)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"[server] database: not a PostgreSQL URL headrace can use: {self._scrub(exc)}") from None

    async def inspect(self) -> SchemaStatus:
        pool = self._new_pool(1)
        try:
            async with pool.connection() as conn:
                applied = await applied_versions(conn)
                deployment_id = await self._deployment_id(conn) if 3 in applied else None
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot open PostgreSQL database {self.where}: {self._scrub(exc)}") from None
        finally:
            await pool.close()
        return SchemaStatus(
            self.dialect,
            self.where,
            exists=bool(applied),
            current=max(applied, default=0),
            known=known_version(self.dialect),
            pending=[m[1] for m in pending(self.dialect, applied)],
            deployment_id=deployment_id,
        )

    async def _deployment_id(self, conn: Conn) -> str | None:
        row = await (await conn.execute(self._q["deployment_id"])).fetchone()
        return None if row is None else str(row["deployment_id"])

    async def migrate(self, *, replace_missing: bool = False) -> SchemaStatus:
        """`replace_missing` is for SQLite files; a PostgreSQL database is created by its administrator."""
        await self.open(migrate=True)
        await self.close()
        return await self.inspect()

    def _scrub(self, exc: Exception) -> str:
        """libpq's message without the URL it may quote, and so without a password written in it."""
        return CREDENTIALS.sub("://", str(exc).replace(self.dsn, "(the URL)")).strip()

    async def close(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            await group.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def describe(self) -> dict[str, Any]:
        pool, group = self._pool, self._group
        return {
            "backend": "postgresql",
            "database": redact(self.dsn),
            "pool_size": self._pool_size,
            "connections": pool.connections if pool else 0,
            "transactions": self.transactions,
            "group_commits": group.batches if group else 0,
            "group_writes": group.ops if group else 0,
        }

    async def _write(self, make: MakeProgram[T], *args: Any) -> T:
        """Run the program in one transaction; returns after COMMIT (or raises, and nothing was stored)."""
        if self._pool is None or self._group is None:
            raise StoreError("the store is not open")
        if make in GROUPED:
            result: T = await self._group.submit(make, args)
            return result
        q, bulk = self._q, self._bulk

        async with self._pool.connection() as conn:

            async def execute(step: Step) -> Any:
                if step.kind == "many":
                    async with conn.cursor() as cur:
                        if step.query in bulk and len(step.params) > 1:  # one statement, not one per set
                            await cur.execute(bulk[step.query], bulk_params(bulk[step.query], step.params))
                        else:
                            await cur.executemany(q[step.query], step.params)
                    return None
                cursor = await conn.execute(q[step.query], step.params, binary=step.query in BINARY_ROWS)
                if step.kind == "run":
                    return cursor.rowcount
                return await (cursor.fetchone() if step.kind == "one" else cursor.fetchall())

            async with conn.transaction():
                result = await drive_async(make(*args), execute)
            self.transactions += 1
            return result

    _read = _write  # every PostgreSQL connection both reads and writes
