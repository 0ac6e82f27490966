"""The embedded store: one SQLite file in WAL mode with synchronous=FULL and group commit.

The connection machinery (group-commit writer, reader thread, WAL keeper, migrations) is in `sqlite_io`; the
operations are `core.Store`'s. This module only runs their steps on a sqlite3 connection, and refuses the
writes that outside traffic or housekeeping bring while the WAL is over `wal_limit` (see `GROWING`).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from headrace.policy import WAL_LIMIT
from headrace.store import programs
from headrace.store.base import StoreError, StoreUnavailable
from headrace.store.core import MakeProgram, Store
from headrace.store.programs import Step, drive
from headrace.store.queries import load
from headrace.store.schema import SchemaStatus, known_version, pending
from headrace.store.sqlite_file import FileIdentity, check_missing, marker_path, write_marker
from headrace.store.sqlite_io import LoopWriter, Reader, WalKeeper, connect, schema_version, wal_bytes
from headrace.store.sqlite_io import migrate as migrate_schema

T = TypeVar("T")

# Writes whose amount has no bound of its own: new webhooks, and housekeeping that can rewrite much of the
# file (retention, search indexing). While a reader pins the WAL past `wal_limit` these are refused with
# StoreUnavailable (ingest answers 503 + Retry-After, nothing of the event stored; retention and the indexer
# try again later), so the WAL cannot fill the disk. The worker's and the tracker's writes go on: they are
# bounded by the events already accepted, and an accepted event must reach its destination.
WAL_RECHECK = 0.01  # seconds for which `_write` takes the WAL's size it last saw
GROWING = frozenset({programs.ingest, programs.prune_events, programs.prune_rejections, programs.index_pending})


class SQLiteStore(Store):
    dialect = "sqlite"

    def __init__(self, path: Path, *, replace_missing: bool = False, wal_limit: int = WAL_LIMIT) -> None:
        self.path = path
        self.wal_limit = wal_limit
        self.replace_missing = replace_missing  # see sqlite_file.check_missing
        self.deployment_id: str | None = None
        self._q = load("sqlite")
        self._writer: LoopWriter | None = None
        self._reader: Reader | None = None
        self._keeper: WalKeeper | None = None
        self._wal_seen = (-math.inf, 0)  # (time.monotonic(), the WAL's size then)

    @property
    def where(self) -> str:
        return str(self.path)

    async def open(self, *, migrate: bool = True) -> None:
        if not migrate and not self.path.exists():
            raise StoreError(
                f"no database at {self.path}: `headrace serve` creates it at first start "
                "(or run `headrace db migrate -c CONFIG`)"
            )
        self._migrate(allow=migrate)
        self._writer = LoopWriter(self.path, FileIdentity(self.path).check)
        self._reader = Reader(self.path)
        self._reader.start_and_wait()
        try:
            self._keeper = WalKeeper(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._keeper.start()

    def _migrate(self, *, allow: bool) -> None:
        if allow:
            check_missing(self.path, replace_missing=self.replace_missing)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = connect(self.path)
            try:
                migrate_schema(conn, self.where, allow=allow)
                self.deployment_id = _deployment_id(conn, self._q["deployment_id"])
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        if allow:
            write_marker(self.path, self.deployment_id)

    async def inspect(self) -> SchemaStatus:
        known = known_version(self.dialect)
        status = SchemaStatus(self.dialect, self.where, False, 0, known, [m[1] for m in pending(self.dialect, set())])
        if not self.path.exists():
            return status
        try:
            conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
            try:
                version = schema_version(conn)
                deployment_id = _deployment_id(conn, self._q["deployment_id"]) if version >= 3 else None
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read SQLite database {self.path}: {exc}") from exc
        left = [m[1] for m in pending(self.dialect, set(range(version + 1)))]
        return replace(status, exists=True, current=version, pending=left, deployment_id=deployment_id)

    async def migrate(self, *, replace_missing: bool = False) -> SchemaStatus:
        self.replace_missing = replace_missing or self.replace_missing
        self._migrate(allow=True)
        return await self.inspect()

    async def finish_import(self, deployment_id: str) -> dict[str, int]:
        counts = await super().finish_import(deployment_id)
        marker_path(self.path).unlink(missing_ok=True)  # it named the id this file was created with
        write_marker(self.path, deployment_id)
        return counts

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        if self._reader is not None:
            self._reader.stop()
            await asyncio.to_thread(self._reader.join, 10)
        if self._keeper is not None:
            self._keeper.stop()
            await asyncio.to_thread(self._keeper.join, 10)
        self._writer = self._reader = self._keeper = None

    def describe(self) -> dict[str, Any]:
        writer = self._writer
        return {
            "backend": "sqlite",
            "path": str(self.path),
            "commits": writer.batches if writer else 0,
            "writes": writer.ops if writer else 0,
            "wal_bytes": wal_bytes(self.path),
            "write_turn_wait_seconds": writer.turn_wait_seconds if writer else 0.0,
            "commits_by_place": {
                "loop": writer.commits_on_loop if writer else 0,
                "thread": writer.commits_in_thread if writer else 0,
            },
        }

    def _op(self, make: MakeProgram[T], args: tuple[Any, ...]) -> Any:
        q = self._q

        def execute(conn: sqlite3.Connection, step: Step) -> Any:
            if step.kind == "many":
                conn.executemany(q[step.query], step.params)
                return None
            cursor = conn.execute(q[step.query], {} if step.params is None else step.params)
            if step.kind == "run":
                return cursor.rowcount
            return cursor.fetchone() if step.kind == "one" else cursor.fetchall()

        # A fresh program on every call: the writer runs an operation again alone when its batch failed.
        return lambda conn: drive(make(*args), lambda step: execute(conn, step))

    def _wal_size(self) -> int:
        """The WAL's size as `_write` checks it: looked at again once WAL_RECHECK seconds have passed (a stat
        per webhook was ~2 us of its CPU); the WAL can grow past the limit by that long's writes at most."""
        now = time.monotonic()
        if now - self._wal_seen[0] >= WAL_RECHECK:
            self._wal_seen = (now, wal_bytes(self.path))
        return self._wal_seen[1]

    async def _read(self, make: MakeProgram[T], *args: Any) -> T:
        if self._reader is None:
            raise StoreError("the store is not open")
        result: T = await self._reader.submit(self._op(make, args))
        return result

    async def _write(self, make: MakeProgram[T], *args: Any) -> T:
        if self._writer is None:
            raise StoreError("the store is not open")
        if make in GROWING and (size := self._wal_size()) > self.wal_limit:
            raise StoreUnavailable(
                f"the write-ahead log {self.path}-wal is {size / 1048576:.0f} MiB, over [server] wal_limit "
                f"({self.wal_limit / 1048576:.0f} MiB): a long read transaction of another process (sqlite3, "
                "a .backup, a slow query) keeps it from being checkpointed; new webhooks (503), retention and "
                "search indexing wait until it ends"
            )
        result: T = await self._writer.submit(self._op(make, args))
        return result


def _deployment_id(conn: sqlite3.Connection, sql: str) -> str | None:
    row = conn.execute(sql).fetchone()
    return None if row is None else str(row[0])
