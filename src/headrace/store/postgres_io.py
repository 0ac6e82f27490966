"""PostgreSQL connection machinery for `postgres.PostgresStore`: a small connection pool, helpers to
fetch rows, migrations under an advisory lock, and redaction of passwords from connection strings."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any, TypeAlias, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row

from headrace.store import schema
from headrace.store.base import StoreError
from headrace.store.queries import parse_queries

T = TypeVar("T")
CREDENTIALS = re.compile(r"://[^/@\s]*@")
Conn: TypeAlias = psycopg.AsyncConnection[DictRow]


def redact(dsn: str) -> str:
    """The DSN as `user@host:port/dbname`, for logs and errors: never the password."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable PostgreSQL URL)"
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    return f"{user}{params.get('host', 'localhost')}{port}/{params.get('dbname', '')}"


class Pool:
    """At most `size` connections, opened on demand and kept; a broken one is dropped, not reused."""

    def __init__(self, dsn: str, size: int) -> None:
        params: dict[str, Any] = conninfo_to_dict(dsn)
        params.setdefault("connect_timeout", 10)
        params.setdefault("application_name", "headrace")
        self._conninfo = make_conninfo("", **params)
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Conn] = []
        self._busy: set[Conn] = set()
        self.size = size
        self.opened = 0

    async def _connect(self) -> Conn:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, row_factory=dict_row)
        self.opened += 1
        return conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            self._busy.add(conn)
            try:
                yield conn
            finally:
                self._busy.discard(conn)
                if conn.broken:  # the server went away: the idle connections are likely gone with it
                    await self._discard(conn, *self._idle)
                    self._idle.clear()
                elif conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
                    await self._discard(conn)  # interrupted mid-transaction: start afresh next time
                else:
                    self._idle.append(conn)

    @staticmethod
    async def _discard(*conns: Conn) -> None:
        for conn in conns:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    @property
    def connections(self) -> int:
        return len(self._idle) + len(self._busy)

    async def close(self, grace: float = 10.0) -> None:
        """Close every connection, after the operations still running finish (at most `grace` seconds)."""
        taken = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while taken < self.size:
                    await self._slots.acquire()
                    taken += 1
        conns = [*self._idle, *self._busy]
        self._idle.clear()
        await self._discard(*conns)
        for _ in range(taken):
            self._slots.release()


async def fetch_one(conn: Conn, sql: str, params: Any = None) -> DictRow | None:
    cur = await conn.execute(sql, params)
    return await cur.fetchone()


async def fetch_all(conn: Conn, sql: str, params: Any = None) -> list[DictRow]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()


def _migrate_queries() -> dict[str, str]:
    return parse_queries(resources.files("headrace.store").joinpath("sql", "postgresql", "migrate.sql").read_text())


async def applied_versions(conn: Conn) -> set[int]:
    """The migrations recorded in this database (none when headrace never initialised it)."""
    q = _migrate_queries()
    present = await fetch_one(conn, q["has_table"])
    if present is None or not present["present"]:
        return set()
    return {int(row["version"]) for row in await fetch_all(conn, q["applied"])}


async def migrate(conn: Conn, where: str, *, allow: bool = True) -> int:
    """Check the schema version (see `schema.guard`) and, when `allow`, bring it to the newest under an
    advisory lock, in one transaction; returns the version."""
    q = _migrate_queries()
    known = schema.known_version("postgresql")
    if not allow:
        version = max(await applied_versions(conn), default=0)
        schema.guard(where, version, known, migrate=False)
        return version
    async with conn.transaction():
        await conn.execute(q["lock"])
        await conn.execute(q["create_table"])
        applied = {int(row["version"]) for row in await fetch_all(conn, q["applied"])}
        version = max(applied, default=0)
        schema.guard(where, version, known, migrate=True)
        for number, name, sql in schema.pending("postgresql", applied):
            try:
                async with conn.transaction():  # a savepoint: name the failing file, then undo everything
                    await conn.execute(sql)
                    await conn.execute(q["record"], {"version": number, "name": name})
            except psycopg.Error as exc:
                raise StoreError(f"migration {name} failed on {where}: {exc}") from exc
            version = max(version, number)
    return version
