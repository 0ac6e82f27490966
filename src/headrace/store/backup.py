"""`headrace backup`: a consistent copy of a live SQLite database, taken with SQLite's online backup API.

Copying the files of a WAL database (`cp headrace.db`) while headrace writes gives a file that may be
malformed or miss committed events (they may still be in `headrace.db-wal`). The backup API reads one
consistent snapshot through SQLite's own locking, so it is safe while `serve` runs: writers are not blocked
(WAL), and the copy holds every event committed before it started. The copy is written to a temporary file
beside the target, checked with `PRAGMA integrity_check`, switched to a single self-contained file
(journal_mode DELETE) and only then renamed into place.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from headrace.store.base import StoreError
from headrace.store.queries import load
from headrace.store.schema import known_version
from headrace.store.sqlite_io import connect, schema_version


@dataclass(frozen=True)
class BackupReport:
    source: Path
    target: Path
    schema_version: int
    deployment_id: str | None
    counts: dict[str, int]
    bytes: int


def backup_sqlite(source: Path, target: Path) -> BackupReport:
    if not source.exists():
        raise StoreError(f"no database at {source} to back up")
    if target.exists():
        raise StoreError(f"{target} already exists: choose a new file name (a backup never overwrites)")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    # Created with the database's permissions (the umask may only narrow them): a backup holds the same events.
    os.close(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, source.stat().st_mode & 0o666))
    try:
        src = connect(source, readonly=True)
        try:
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                src.backup(dst)  # one step: a single consistent snapshot, whatever is written meanwhile
                dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file, no -wal beside it
                report = _check(dst, source, target)
            finally:
                dst.close()
        finally:
            src.close()
        with partial.open("rb+") as f:
            os.fsync(f.fileno())
        partial.rename(target)
        _fsync_dir(target.parent)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"backup of {source} to {target} failed: {exc}") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport(**{**report.__dict__, "bytes": target.stat().st_size})


def _check(conn: sqlite3.Connection, source: Path, target: Path) -> BackupReport:
    conn.row_factory = sqlite3.Row
    verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
    if verdict != "ok":
        raise StoreError(f"the backup of {source} failed its integrity check ({verdict}); nothing was written")
    q = load("sqlite")
    version = schema_version(conn)
    deployment = conn.execute(q["deployment_id"]).fetchone() if version >= 3 else None
    # An older schema (a backup before an upgrade) lacks tables this release counts: its rows are not counted.
    counts = dict(conn.execute(q["table_counts"]).fetchone()) if version >= known_version("sqlite") else {}
    return BackupReport(source, target, version, None if deployment is None else str(deployment[0]), counts, 0)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
