"""The schema-version guard: a newer schema is refused everywhere, read-only commands never migrate, `db
status` and `db migrate` say and do what they claim, and readiness fails on tables that do not match."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.app import App
from headrace.cli import main
from headrace.store.base import StoreError
from headrace.store.queries import migrations
from headrace.store.schema import known_version
from headrace.store.sqlite import SQLiteStore
from headrace.store.sqlite_io import _statements
from tests.helpers import config_text, free_port, running_server, settings_for

KNOWN = known_version("sqlite")


def headrace(*args: str) -> subprocess.CompletedProcess[str]:
    """The `headrace` command, run in this process (its main(), as the console script runs it)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def sqlite_at(path: Path, version: int) -> None:
    """A SQLite database as headrace `version` left it: migrations up to it, and that user_version."""
    conn = sqlite3.connect(path)
    for number, _, sql in migrations("sqlite"):
        if number <= version:
            for statement in _statements(sql):
                conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


def version_of(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def write_config(tmp_path: Path, database: str) -> Path:
    config = tmp_path / "headrace.toml"
    text = config_text(tmp_path / "unused.db", free_port())
    config.write_text(text.replace(f'"sqlite:///{tmp_path / "unused.db"}"', f'"{database}"'))
    return config


def test_a_newer_sqlite_schema_is_refused_by_every_command_in_one_line(tmp_path: Path):
    db = tmp_path / "h.db"
    sqlite_at(db, KNOWN)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    config = write_config(tmp_path, f"sqlite:///{db}")
    for command in (
        ["events"],
        ["rejections"],
        ["event", "1"],
        ["replay", "1"],
        ["db", "migrate"],
        ["serve"],
        ["worker"],
    ):
        result = headrace(*command, "-c", str(config))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert "schema version 99, newer than this headrace" in line and f"knows ({KNOWN})" in line, line
        assert "restore the backup" in line
    with pytest.raises(StoreError, match="schema version 99, newer"):
        asyncio.run(SQLiteStore(db).open(migrate=True))  # what serve and worker do at start
    status = headrace("db", "status", "-c", str(config))
    assert status.returncode == 2 and "schema      99 (this headrace knows" in status.stdout
    assert version_of(db) == 99


def test_read_only_commands_never_migrate_and_db_migrate_does(tmp_path: Path):
    db = tmp_path / "h.db"
    sqlite_at(db, 1)
    config = write_config(tmp_path, f"sqlite:///{db}")
    for command in (["events"], ["event", "msg_x"], ["rejections"], ["check"]):
        result = headrace(*command, "-c", str(config))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert f"schema version 1 and this headrace needs {KNOWN}: run `headrace db migrate" in result.stderr
        assert version_of(db) == 1, command
    status = headrace("db", "status", "-c", str(config))
    assert status.returncode == 1, status.stderr
    assert "schema      1 (this headrace knows" in status.stdout and "0002_job_outcomes.sql" in status.stdout
    migrated = headrace("db", "migrate", "-c", str(config))
    assert migrated.returncode == 0, migrated.stderr
    assert f"schema migrated from version 1 to {KNOWN}" in migrated.stdout
    assert version_of(db) == KNOWN
    assert headrace("db", "status", "-c", str(config)).returncode == 0
    status_json = json.loads(headrace("db", "status", "-c", str(config), "--json").stdout)
    assert (status_json["current"], status_json["known"], status_json["pending"]) == (KNOWN, KNOWN, [])
    assert status_json["backend"] == "sqlite" and len(status_json["deployment_id"]) == 36
    assert headrace("events", "-c", str(config)).stdout.strip() == "no events match"
    again = headrace("db", "migrate", "-c", str(config))
    assert f"already at version {KNOWN}" in again.stdout


def test_read_only_commands_do_not_create_a_missing_database(tmp_path: Path):
    db = tmp_path / "never.db"
    config = write_config(tmp_path, f"sqlite:///{db}")
    result = headrace("events", "-c", str(config))
    assert result.returncode == 2 and f"no database at {db}" in result.stderr
    status = headrace("db", "status", "-c", str(config))
    assert "no database yet" in status.stdout
    assert not db.exists()


async def readyz(base: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/readyz") as response:
        return response.status, await response.text()


def test_a_renamed_column_fails_readiness(tmp_path: Path):
    db = tmp_path / "h.db"
    settings = settings_for(config_text(db, free_port()), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base:
            assert (await readyz(base))[0] == 200
            conn = sqlite3.connect(db)
            conn.execute("ALTER TABLE deliveries RENAME COLUMN job_excerpt TO job_excerpt_old")
            conn.commit()
            conn.close()
            status, text = await readyz(base)
            assert status == 503 and "job_excerpt" in text, text

    asyncio.run(main())


def test_ready_checks_the_schema_version_of_the_open_store(tmp_path: Path):
    db = tmp_path / "h.db"
    settings = settings_for(config_text(db, free_port()), tmp_path)

    async def main() -> None:
        app = await App.open(settings)
        try:
            assert await app.ready() == (True, "ok")
            conn = sqlite3.connect(db)
            conn.execute(f"PRAGMA user_version = {KNOWN + 1}")
            conn.commit()
            conn.close()
            ok, detail = await app.ready()
            assert not ok and f"schema version {KNOWN + 1}, this headrace runs {KNOWN}" in detail
        finally:
            await app.close()

    asyncio.run(main())


# -- PostgreSQL ----------------------------------------------------------------------------------------------


def pg_at(dsn: str, version: int) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for number, name, sql in migrations("postgresql"):
            if number <= version:
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name))


@pytest.mark.postgres
def test_postgresql_newer_schema_is_refused_and_older_is_not_migrated_by_readers(tmp_path: Path, pg_dsn: str):
    import psycopg

    from headrace.store.postgres import PostgresStore

    pg_at(pg_dsn, 1)
    config = write_config(tmp_path, pg_dsn)
    result = headrace("events", "-c", str(config))
    assert result.returncode == 2 and "schema version 1 and this headrace needs" in result.stderr
    status = headrace("db", "status", "-c", str(config))
    assert status.returncode == 1 and "0002_job_outcomes.sql" in status.stdout and "postgresql" in status.stdout
    assert headrace("db", "migrate", "-c", str(config)).returncode == 0
    assert headrace("events", "-c", str(config)).returncode == 0
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future.sql')")
    result = headrace("events", "-c", str(config))
    assert result.returncode == 2 and "schema version 99, newer than this headrace" in result.stderr
    with pytest.raises(StoreError, match="schema version 99, newer"):
        asyncio.run(PostgresStore(pg_dsn).open(migrate=True))


@pytest.mark.postgres
def test_postgresql_renamed_column_fails_readiness(tmp_path: Path, pg_dsn: str):
    import psycopg

    settings = settings_for(write_config(tmp_path, pg_dsn).read_text(), tmp_path)

    async def main() -> None:
        app = await App.open(settings)
        try:
            assert await app.ready() == (True, "ok")
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("ALTER TABLE attempts RENAME COLUMN notes TO notes_old")
            ok, detail = await app.ready()
            assert not ok and "notes" in detail, detail
        finally:
            await app.close()

    asyncio.run(main())


def _probe_columns(dialect: str) -> dict[str, set[str]]:
    from headrace.store.queries import load

    probe = load(dialect)["schema_probe"]
    tables = probe.split("FROM", 1)[1].split("WHERE", 1)[0]
    alias = {a: table for table, a in re.findall(r"([a-z_]+) ([a-z])\b", tables)}  # "events e, deliveries d, ..."
    found: dict[str, set[str]] = {}
    for a, column in re.findall(r"\b([a-z])\.([a-z_]+)", probe):
        found.setdefault(alias[a], set()).add(column)
    return found


def test_the_schema_probe_reads_every_column_of_every_sqlite_table(tmp_path: Path):
    db = tmp_path / "h.db"
    sqlite_at(db, KNOWN)
    conn = sqlite3.connect(db)
    tables = {
        t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")}
        for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not t.startswith("event_search_")  # FTS5's own shadow tables, kept by SQLite with the index
    }
    conn.close()
    assert _probe_columns("sqlite") == tables


@pytest.mark.postgres
def test_the_schema_probe_reads_every_column_of_every_postgresql_table(pg_dsn: str):
    import psycopg

    pg_at(pg_dsn, known_version("postgresql"))
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name <> 'schema_migrations'"
        ).fetchall()
    tables: dict[str, set[str]] = {}
    for table, column in rows:
        tables.setdefault(table, set()).add(column)
    assert _probe_columns("postgresql") == tables
