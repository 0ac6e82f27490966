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
    total = 400
    hundred = asyncio.Event()

    async def ingest(base: str, session: aiohttp.ClientSession, ids: list[str]) -> None:
        for webhook_id in ids:
            body = dodo_body()
            async with session.post(f"{base}/webhooks/dodo", data=body, headers=signed_headers(body, webhook_id)) as r:
                assert r.status == 202, await r.text()
                accepted.append(webhook_id)
                if len(accepted) >= 100:
                    hundred.set()

    async def scenario() -> tuple[int, tuple[int, str, str]]:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:
            ids = [f"msg_{n}" for n in range(total)]
            senders = [asyncio.create_task(ingest(base, session, ids[k::8])) for k in range(8)]
            await hundred.wait()
            before = len(accepted)
            result = await asyncio.to_thread(run_cli, "backup", str(backup), "-c", str(config))
            during = len(accepted) - before
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
