"""The SQLite database file's lifetime: a marker beside it that says headrace created a database there, and
a check that the file being written is still the one headrace opened.

Without them, a database deleted while headrace runs goes unnoticed (the open connections write on into
the deleted file and every event is answered 202), and the next start quietly creates an empty database.
The same for the write-ahead log (`headrace.db-wal`): deleted or replaced, it would take the events
committed since its last checkpoint with it. The marker is named `.headrace.db.created`, so `rm headrace.db*`
leaves it (the old name, `headrace.db.created`, is still read and moved to the new one).
With them, writes fail with `StoreUnavailable` (ingest answers 503, Dodo retries, readiness fails) and a
start on a missing database that had existed is refused until an operator says otherwise.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from headrace.store.base import StoreError, StoreUnavailable

LEGACY_MARKER_SUFFIX = ".created"  # the marker's name before 2026-12: `rm headrace.db*` matched it
REPLACE_HINT = "run `headrace db migrate -c CONFIG --replace-missing` (the lost database's events stay lost)"


def marker_path(path: Path) -> Path:
    """`.headrace.db.created` beside `headrace.db`: a name no `rm headrace.db*` (nor `rm *`) matches."""
    return path.with_name(f".{path.name}{LEGACY_MARKER_SUFFIX}")


def _adopt_legacy_marker(path: Path) -> None:
    """An install from before the rename has `headrace.db.created`: move it to the new name (kept if that
    cannot be done, and still read)."""
    legacy, marker = path.with_name(path.name + LEGACY_MARKER_SUFFIX), marker_path(path)
    if not legacy.is_file():
        return
    try:
        if marker.exists():
            legacy.unlink()
        else:
            os.replace(legacy, marker)
    except OSError:
        pass


def _marker(path: Path) -> Path:
    """The marker that exists: the new name, else the old one (when it could not be moved)."""
    marker = marker_path(path)
    legacy = path.with_name(path.name + LEGACY_MARKER_SUFFIX)
    return legacy if not marker.exists() and legacy.is_file() else marker


def _leftovers(path: Path) -> list[Path]:
    """What a deleted database leaves behind; a new database must not inherit its WAL."""
    candidates = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))
    return [p for p in candidates if p.exists()]


def check_missing(path: Path, *, replace_missing: bool) -> None:
    """Before a database is created at `path`: refuse when headrace had created one there (its marker or
    its WAL is still there), unless `replace_missing`; then clear what the lost database left behind."""
    _adopt_legacy_marker(path)
    if path.exists():
        return
    marker = _marker(path)
    traces = _leftovers(path)
    if not marker.exists() and not traces:
        return  # a first start: create the database
    if not replace_missing:
        seen = f"{marker} says headrace created it"
        try:
            facts = json.loads(marker.read_text("utf-8"))
            seen += f" on {facts.get('created_at', '?')} (deployment {facts.get('deployment_id', '?')})"
        except (OSError, ValueError):
            seen = f"{', '.join(p.name for p in traces)} of it remain"
        raise StoreError(
            f"the database {path} is missing, but {seen}: it was deleted or moved, and starting afresh would "
            'drop every event it held. Restore it from a backup (docs/operations.md, "Backups and restores") '
            f"or fix [server] database; to start over with an empty database, {REPLACE_HINT}"
        )
    for leftover in traces:
        leftover.unlink()
    marker.unlink(missing_ok=True)


def write_marker(path: Path, deployment_id: str | None) -> None:
    _adopt_legacy_marker(path)
    marker = marker_path(path)
    if marker.exists():
        return
    facts = {
        "database": str(path),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "deployment_id": deployment_id,
        "note": "headrace refuses to start on a missing database while this file says one existed here",
    }
    marker.write_text(json.dumps(facts, indent=2) + "\n", "utf-8")


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


class FileIdentity:
    """The (device, inode) of the database file as opened, and of its write-ahead log; `check` raises when
    the path no longer names that file, or the WAL was deleted or replaced.

    The WAL matters as much as the main file: the open connections write on into a deleted WAL, so events
    committed since its last checkpoint would be answered 202 and lost at the next crash. The WAL is
    created by the first connection in WAL mode and kept while any stays open (headrace's stay open all
    along), so its identity is taken the first time a check finds it and must not change afterwards.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.wal = path.with_name(path.name + "-wal")
        self._key = _inode(path)
        self._wal_key: tuple[int, int] | None = None

    def check(self) -> None:
        if _inode(self.path) != self._key:
            raise StoreUnavailable(
                f"the database file {self.path} was deleted or replaced while headrace was running: nothing "
                "more is accepted. Restore the file from a backup and restart headrace (or, to start over, "
                f"{REPLACE_HINT})"
            )
        wal = _inode(self.wal)
        if self._wal_key is None:
            self._wal_key = wal
        elif wal != self._wal_key:
            raise StoreUnavailable(
                f"the database's write-ahead log {self.wal} was deleted or replaced while headrace was running: "
                "events committed since its last checkpoint are at risk, so nothing more is accepted. Stop "
                "headrace gracefully (SIGTERM, not kill -9: its open connections still hold the log and "
                "write it into the database as they close), then start it again"
            )
