"""`headrace db …` and `headrace backup`: the commands that look after the database itself."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from pathlib import Path

from headrace.cli.shared import UsageError
from headrace.config import RETENTION_LIMITS, load
from headrace.config.limits import RETENTION_REASON
from headrace.observe import logs
from headrace.ops import retention
from headrace.store.core import Store
from headrace.store.schema import SchemaStatus, guard


def _status_lines(status: SchemaStatus) -> list[str]:
    state = "up to date"
    if not status.exists:
        state = "no database yet (serve or `headrace db migrate` creates it)"
    elif status.newer:
        state = "NEWER than this headrace: do not use this binary on it"
    elif status.pending:
        state = "migrations pending (serve and worker apply them at start, or run `headrace db migrate`)"
    return [
        f"backend     {status.backend}",
        f"database    {status.database}",
        f"schema      {status.current} (this headrace knows {status.known}): {state}",
        f"pending     {', '.join(status.pending) if status.exists and status.pending else 'none'}",
        f"deployment  {status.deployment_id or '-'}",
    ]


def _file_facts(path: Path | None) -> dict[str, int]:
    from headrace.store.sqlite_io import file_facts

    if path is None or not path.exists():
        return {}
    try:
        return file_facts(path)
    except sqlite3.Error as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _facts_lines(facts: dict[str, int]) -> list[str]:
    if not facts:
        return []
    free = facts["free_pages"] * facts["page_size"]
    hint = f" (`headrace db vacuum` gives {_size(free)} back to the disk)" if free >= VACUUM_HINT_BYTES else ""
    return [
        f"file        {_size(facts['file_bytes'])}, {facts['pages']} pages of {facts['page_size']} bytes",
        f"free pages  {facts['free_pages']} ({_size(free)}){hint}",
        f"wal         {_size(facts['wal_bytes'])}",
    ]


# Free space worth a VACUUM (smaller amounts are reused by the next events anyway).
VACUUM_HINT_BYTES = 64 * 1024 * 1024


def _size(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def cmd_db_vacuum(args: argparse.Namespace) -> int:
    """SQLite: rewrite the file without its free pages, so the space pruning freed goes back to the disk."""
    import shutil

    from headrace.store.sqlite_io import vacuum

    settings = load(args.config, need_secrets=False)
    path = settings.sqlite_path
    if path is None:
        raise UsageError("`headrace db vacuum` is for SQLite; PostgreSQL's autovacuum reuses the space (VACUUM FULL)")
    before = _file_facts(path)
    if not before:
        raise UsageError(f"no database at {path}")
    need = before["file_bytes"] - before["free_pages"] * before["page_size"]
    free = shutil.disk_usage(path.parent).free
    if free < 2 * need:  # a copy of the live pages, and the WAL it goes through
        raise UsageError(
            f"VACUUM needs about {_size(2 * need)} free beside {path} (a new copy and its WAL); {_size(free)} is free"
        )
    try:
        vacuum(path)
    except sqlite3.Error as exc:
        raise UsageError(f"VACUUM of {path} failed, the database is unchanged: {exc}") from None
    after = _file_facts(path)
    print(f"vacuumed {path}: {_size(before['file_bytes'])} -> {_size(after['file_bytes'])}")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    """Exit 0 when the schema is this binary's, 1 when migrations are pending, 2 when it is newer."""
    from headrace.app import open_store

    settings = load(args.config, need_secrets=False)
    logs.setup("text", "warning")
    status = asyncio.run(open_store(settings).inspect())
    facts = _file_facts(settings.sqlite_path)
    if args.json:
        print(json.dumps({**status.__dict__, "newer": status.newer, **facts}, indent=2))
    else:
        print("\n".join(_status_lines(status) + _facts_lines(facts)))
    if status.newer:
        guard(status.database, status.current, status.known, migrate=True)  # raises the one-line refusal
    return 1 if status.pending else 0


def cmd_db_migrate(args: argparse.Namespace) -> int:
    from headrace.app import open_store

    settings = load(args.config, need_secrets=False)
    logs.setup("text", "warning")
    store = open_store(settings)

    async def main() -> tuple[SchemaStatus, SchemaStatus]:
        before, after = await store.inspect(), await store.migrate(replace_missing=args.replace_missing)
        await store.open(migrate=False)
        try:
            await store.index_backlog()  # events stored before payload search (migration 0006)
            await store.key_backlog()  # events stored before event keys (migration 0010 SQLite, 0011 PostgreSQL)
        finally:
            await store.close()
        return before, after

    before, after = asyncio.run(main())
    what = f"{after.backend} database {after.database}"
    if before.current == after.current:
        print(f"{what}: schema already at version {after.current}")
    else:
        print(f"{what}: schema migrated from version {before.current} to {after.current}")
    return 0


def cmd_db_copy(args: argparse.Namespace) -> int:
    from headrace.app import open_store, store_at
    from headrace.store.copy import copy_database

    settings = load(args.config, need_secrets=False)
    logs.setup("text", "warning")
    source, target = open_store(settings), store_at(args.to)
    if source.where == target.where:
        raise UsageError(f"--to names the configured database itself ({source.where})")

    async def main() -> dict[str, int]:
        await source.open(migrate=False)  # as it is: a source at an older schema is migrated first, by its owner
        try:
            await _refuse_a_live_source(source)
            await target.open(migrate=True)  # an empty target gets this headrace's schema
            try:
                return await copy_database(source, target)
            finally:
                await target.close()
        finally:
            await source.close()

    counts = asyncio.run(main())
    print(
        f"copied {source.where} to {target.where}: "
        + ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items())
        + f"; deployment {source.deployment_id}. Point [server] database at the copy, then start headrace."
    )
    return 0


async def _refuse_a_live_source(source: Store) -> None:
    """A copy reads table after table: rows written meanwhile would be missing, or break it (a delivery of an
    event that was not copied). Refuse while a headrace worker is registered on the source."""
    from headrace.policy import DEAD_AFTER

    live = await source.live_workers(time.time() - DEAD_AFTER)
    if live:
        raise UsageError(
            f"headrace is running on {source.where} ({live} live delivery worker(s)): stop every serve and worker "
            "first, then copy (nothing was written)"
        )


def cmd_db_prune(args: argparse.Namespace) -> int:

    from headrace.app import open_store
    from headrace.durations import parse_duration

    settings = load(args.config, need_secrets=False)
    logs.setup("text", "warning")
    server = settings.server
    keep = server.retention_seconds
    if args.older_than is not None:
        try:
            keep = parse_duration(args.older_than)
        except ValueError as exc:
            raise UsageError(f"--older-than: {exc}") from None
        if keep < RETENTION_LIMITS[0]:
            raise UsageError(
                f"--older-than {args.older_than}: at least 14d, so a replay of a pruned event is still "
                f"recognised as a duplicate ({RETENTION_REASON})"
            )
    if keep is None and server.rejection_retention_seconds is None:
        print("retention is off ([server] retention and rejection_retention): nothing to do; see --older-than")
        return 0
    store = open_store(settings)

    async def main() -> retention.Pruned:
        await store.open(migrate=False)
        try:
            return await retention.prune(
                store,
                time.time(),
                retention=keep,
                rejection_retention=server.rejection_retention_seconds,
                include_failed=args.include_failed,
                batch=args.batch,
                duty=1.0,  # from cron: half the time, since `serve` may be taking webhooks meanwhile
            )
        finally:
            await store.close()

    done = asyncio.run(main())
    print(
        f"deleted {done.events} events (of {done.scanned} old enough) with their deliveries and attempts, "
        f"and {done.rejections} rejection rows, in {done.batches} batches"
    )
    facts = _file_facts(settings.sqlite_path) if done.events or done.rejections else {}
    free = facts.get("free_pages", 0) * facts.get("page_size", 0)
    if free >= VACUUM_HINT_BYTES:
        print(
            f"the file keeps its size ({_size(facts['file_bytes'])}, {_size(free)} of it free): new events reuse "
            "the freed pages; `headrace db vacuum` gives them back to the disk"
        )
    return 0


def _batch(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"{text!r}: a number from 1 to 10000")
    return int(text)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], config_help: str) -> None:
    db = sub.add_parser("db", help="the database: schema status and migrations").add_subparsers(
        dest="db", metavar="ACTION", required=True
    )
    p = db.add_parser("status", help="schema version of the database and of this headrace, pending migrations")
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_db_status)
    p = sub.add_parser("backup", help="SQLite: a consistent copy of the database, safe while serving")
    p.add_argument("file", metavar="FILE", help="the backup file to write (must not exist)")
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    p.set_defaults(func=cmd_backup)
    p = db.add_parser("copy", help="copy everything into another, empty database (SQLite <-> PostgreSQL)")
    p.add_argument("--to", required=True, metavar="URL", help="sqlite:///PATH or postgresql://USER@HOST/DB")
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    p.set_defaults(func=cmd_db_copy)
    p = db.add_parser("migrate", help="bring the schema to this headrace's version (serve and worker do it at start)")
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    p.add_argument(
        "--replace-missing",
        action="store_true",
        help="SQLite: create an empty database where the one headrace had created has gone missing",
    )
    p.set_defaults(func=cmd_db_migrate)
    p = db.add_parser(
        "prune", help="delete finished events and rejection rows older than [server] retention (serve does it too)"
    )
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    p.add_argument("--older-than", metavar="DURATION", help="instead of [server] retention, e.g. 90d (14d or more)")
    p.add_argument(
        "--include-failed",
        action="store_true",
        help="also delete old events whose delivery or Windmill job failed and was not replayed",
    )
    p.add_argument(
        "--batch",
        type=_batch,
        default=retention.BATCH,
        metavar="N",
        help="events per transaction, 1 to 10000 (default 100): smaller holds the database for less time",
    )
    p.set_defaults(func=cmd_db_prune)
    p = db.add_parser("vacuum", help="SQLite: give the space of deleted events back to the disk (VACUUM)")
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    p.set_defaults(func=cmd_db_vacuum)


def cmd_backup(args: argparse.Namespace) -> int:
    from headrace.store.backup import backup_sqlite

    settings = load(args.config, need_secrets=False)
    logs.setup("text", "warning")
    if settings.sqlite_path is None:
        raise UsageError(
            "`headrace backup` is for SQLite; back up a PostgreSQL database with pg_dump "
            '(docs/operations.md, "Backups and restores")'
        )
    report = backup_sqlite(settings.sqlite_path, Path(args.file))
    counts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in report.counts.items()) or (
        "rows not counted (an older schema: `headrace db migrate` brings it to this release's)"
    )
    print(
        f"backed up {report.source} to {report.target} ({report.bytes} bytes, integrity ok): {counts}; "
        f"schema version {report.schema_version}, deployment {report.deployment_id or '-'}"
    )
    return 0
