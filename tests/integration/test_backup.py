"""`headrace backup` while `serve` ingests: the copy is consistent, complete up to its start, and opens."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from headrace.cli import main
from headrace.store.backup import backup_sqlite
from headrace.store.base import StoreError
from headrace.store.sqlite import SQLiteStore
from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, signed_headers


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def test_backup_while_ingesting_is_consistent_and_restorable(tmp_path: Path):
    db = tmp_path / "live.db"
    backup = tmp_path / "backups" / "h-1.db"
    backup.parent.mkdir()
    # A destination nobody answers: deliveries retry, so attempts are written during the backup too.
    text = config_text(db, free_port(), "http://127.0.0.1:9/api/w/acme/jobs/run/f/f/dodo/on_payment")
    config = tmp_path / "headrace.toml"
    config.write_text(text)
    settings = settings_for(text, tmp_path)
    accepted: list[str] = []
    total = 5000  # an upper bound: the senders stop once the backup has returned
    enough = asyncio.Event()
    backed_up = asyncio.Event()

    async def ingest(base: str, session: aiohttp.ClientSession, ids: list[str]) -> None:
        for webhook_id in ids:
            if backed_up.is_set():
                return
            body = dodo_body()
            async with session.post(f"{base}/webhooks/dodo", data=body, headers=signed_headers(body, webhook_id)) as r:
                assert r.status == 202, await r.text()
                accepted.append(webhook_id)
                if len(accepted) >= 1000:  # a database big enough that the backup takes a while
                    enough.set()

    async def scenario() -> tuple[int, tuple[int, str, str]]:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:
            ids = [f"msg_{n}" for n in range(total)]
            senders = [asyncio.create_task(ingest(base, session, ids[k::8])) for k in range(8)]
            await enough.wait()
            before = len(accepted)
            result = await asyncio.to_thread(run_cli, "backup", str(backup), "-c", str(config))
            during = len(accepted) - before
            backed_up.set()  # the senders kept sending for the whole backup, however long it took
            await asyncio.gather(*senders)
            assert during > 0, "the backup finished before any concurrent ingest: the test proved nothing"
            return before, result

    before, (code, out, err) = asyncio.run(scenario())
    assert code == 0, err
    assert "integrity ok" in out and str(backup) in out
    assert not backup.with_name("h-1.db-wal").exists() and not backup.with_name("h-1.db.partial").exists()
    assert rows(backup, "PRAGMA integrity_check") == [("ok",)]
    [(in_backup,)] = rows(backup, "SELECT COUNT(*) FROM events")
    assert before <= in_backup <= total
    # Each event in the copy came with its delivery (an ingest is one transaction), with the live job id.
    deliveries = rows(backup, "SELECT e.webhook_id, d.job_id FROM events e JOIN deliveries d ON d.event_id = e.id")
    assert len(deliveries) == in_backup
    live = dict(rows(db, "SELECT e.webhook_id, d.job_id FROM events e JOIN deliveries d ON d.event_id = e.id"))
    assert all(live[webhook_id] == job_id for webhook_id, job_id in deliveries)
    assert rows(backup, "SELECT value FROM meta") == rows(db, "SELECT value FROM meta")  # the deployment id

    async def reopen() -> dict[tuple[str, str], int]:
        store = SQLiteStore(backup)
        await store.open()
        try:
            return (await store.stats()).deliveries
        finally:
            await store.close()

    by_status = asyncio.run(reopen())  # the copy opens as a database headrace can serve from
    assert sum(by_status.values()) == in_backup and ("payments", "delivered") not in by_status


def test_backup_refuses_to_overwrite_and_postgresql(tmp_path: Path):
    db = tmp_path / "live.db"
    asyncio.run(_create(db))
    taken = tmp_path / "b.db"
    taken.write_bytes(b"precious")
    config = tmp_path / "headrace.toml"
    config.write_text(config_text(db, free_port()))
    code, _, err = run_cli("backup", str(taken), "-c", str(config))
    assert code == 2 and "already exists" in err and taken.read_bytes() == b"precious"
    with pytest.raises(StoreError, match="already exists"):
        backup_sqlite(db, tmp_path / "." / "live.db")  # the database itself
    pg = tmp_path / "pg.toml"
    pg.write_text(config_text(db, free_port()).replace(f"sqlite:///{db}", "postgresql://postgres@127.0.0.1/x"))
    code, _, err = run_cli("backup", str(tmp_path / "c.db"), "-c", str(pg))
    assert code == 2 and "pg_dump" in err


async def _create(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.close()


@pytest.mark.postgres
def test_the_documented_pg_dump_and_pg_restore_keep_ids_and_the_deployment(pg_dsn: str, tmp_path: Path):
    """docs/operations.md's PostgreSQL backup and restore, run as written (schema-scoped for the test)."""
    import shutil
    import subprocess
    import uuid
    from urllib.parse import parse_qs, urlsplit

    import psycopg

    from headrace.models import NewEvent, Route
    from headrace.store.postgres import PostgresStore

    if not (shutil.which("pg_dump") and shutil.which("pg_restore")):
        pytest.skip("pg_dump/pg_restore are not installed")
    url = urlsplit(pg_dsn)
    database = url.path.lstrip("/")
    schema = parse_qs(url.query)["options"][0].removeprefix("-csearch_path=")
    routes = [Route("a", "http://127.0.0.1:8000/api/w/acme")]

    def new(n: int) -> NewEvent:
        return NewEvent("dodo", f"msg_{n}", "payment.succeeded", 1000, 1000.0, b"{}", {})

    async def before() -> str | None:
        store = PostgresStore(pg_dsn)
        await store.open()
        try:
            for n in range(3):
                await store.ingest(new(n), routes)
            return store.deployment_id
        finally:
            await store.close()

    deployment_id = asyncio.run(before())
    dump = tmp_path / "headrace.dump"
    admin = "host=127.0.0.1 user=postgres"
    subprocess.run(
        ["pg_dump", "--format=custom", f"--schema={schema}", f"--file={dump}", f"{admin} dbname={database}"],
        check=True,
    )
    restored = f"headrace_restored_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{admin} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{restored}"')
    try:
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={admin} dbname={restored}", str(dump)], check=True)

        async def after() -> None:
            store = PostgresStore(pg_dsn.replace(f"/{database}?", f"/{restored}?"))
            await store.open()
            try:
                assert store.deployment_id == deployment_id
                assert (await store.ingest(new(3), routes)).event_id == 4  # the sequence came with the dump
            finally:
                await store.close()

        asyncio.run(after())
    finally:
        with psycopg.connect(f"{admin} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')


def test_a_backup_is_no_more_readable_than_the_database(tmp_path: Path):
    import os
    import stat

    db = tmp_path / "h.db"
    asyncio.run(SQLiteStore(db).migrate())
    db.chmod(0o600)  # as under the systemd unit's UMask=0077
    old = os.umask(0o022)  # an operator's shell: new files 0644
    try:
        backup_sqlite(db, tmp_path / "copy.db")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "copy.db").stat().st_mode) == 0o600
