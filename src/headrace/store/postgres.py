"""The shared store: PostgreSQL, for several headrace instances working one queue.

Every operation runs in a transaction of its own on a connection from a small pool, so a caller's
future resolves only after its COMMIT. There is no group commit: with several connections in flight
PostgreSQL already overlaps concurrent commits (and `commit_delay` can batch their WAL flushes).
Claims pick rows with `FOR UPDATE SKIP LOCKED`, so instances that claim at the same moment pass over
each other's rows instead of waiting for them or taking them twice. The operations are `core.SQLStore`'s;
this module only runs their steps on a psycopg connection.

Migrations are tracked in `schema_migrations` and applied at open, in one transaction that holds an
advisory lock: instances that start together take turns, and the second one finds nothing to do.
"""

from __future__ import annotations

from typing import Any, TypeVar

import psycopg

from headrace.store.base import StoreError
from headrace.store.core import MakeProgram, SQLStore
from headrace.store.postgres_io import CREDENTIALS, Pool, migrate, redact
from headrace.store.programs import Step, drive_async
from headrace.store.queries import load

T = TypeVar("T")


class PostgresStore(SQLStore):
    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self.dsn = dsn
        self._q = load("postgresql")
        self._pool_size = pool_size
        self._pool: Pool | None = None
        self.transactions = 0

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

    async def _write(self, make: MakeProgram[T], *args: Any) -> T:
        """Run the program in one transaction; returns after COMMIT (or raises, and nothing was stored)."""
        if self._pool is None:
            raise StoreError("the store is not open")
        q = self._q

        async with self._pool.connection() as conn:

            async def execute(step: Step) -> Any:
                if step.kind == "many":
                    async with conn.cursor() as cur:
                        await cur.executemany(q[step.query], step.params)
                    return None
                cursor = await conn.execute(q[step.query], step.params)
                if step.kind == "run":
                    return cursor.rowcount
                return await (cursor.fetchone() if step.kind == "one" else cursor.fetchall())

            async with conn.transaction():
                result = await drive_async(make(*args), execute)
            self.transactions += 1
            return result

    _read = _write  # every PostgreSQL connection both reads and writes
