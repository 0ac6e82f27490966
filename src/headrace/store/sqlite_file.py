"""The SQLite database file's lifetime: a marker beside it that says headrace created a database there, and
a check that the file being written is still the one headrace opened.

Without them, a database deleted while headrace runs goes unnoticed (the open connections write on into
the deleted file and every event is answered 202), and the next start quietly creates an empty database.
With them, writes fail with `StoreUnavailable` (ingest answers 503, Dodo retries, readiness fails) and a
start on a missing database that had existed is refused until an operator says otherwise.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from headrace.store.base import StoreError, StoreUnavailable

MARKER_SUFFIX = ".created"
REPLACE_HINT = "run `headrace db migrate -c CONFIG --replace-missing` (the lost database's events stay lost)"


def marker_path(path: Path) -> Path:
    return path.with_name(path.name + MARKER_SUFFIX)


def _leftovers(path: Path) -> list[Path]:
    """What a deleted database leaves behind; a new database must not inherit its WAL."""
    candidates = (path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))
    return [p for p in candidates if p.exists()]


def check_missing(path: Path, *, replace_missing: bool) -> None:
    """Before a database is created at `path`: refuse when headrace had created one there (its marker or
    its WAL is still there), unless `replace_missing`; then clear what the lost database left behind."""
    if path.exists():
        return
    marker = marker_path(path)
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


class FileIdentity:
    """The (device, inode) of the database file as opened; `check` raises when the path no longer names it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_dev, st.st_ino)

    def check(self) -> None:
        if self._stat() != self._key:
            raise StoreUnavailable(
                f"the database file {self.path} was deleted or replaced while headrace was running: nothing "
                "more is accepted. Restore the file from a backup and restart headrace (or, to start over, "
                f"{REPLACE_HINT})"
            )
