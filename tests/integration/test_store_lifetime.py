"""The SQLite database over its lifetime: deleted while running, missing at a restart, and a full disk.

The disk-full test fills a real filesystem: a 4 MiB tmpfs mounted for the test (needs root; skipped
otherwise), with the database on it and a filler file taking the rest of the space.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.app import App
from headrace.store.base import StoreError
from headrace.store.sqlite import SQLiteStore
from headrace.store.sqlite_file import marker_path
from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, signed_headers, wait_for


async def send(session: aiohttp.ClientSession, base: str, webhook_id: str) -> tuple[int, Any, dict[str, str]]:
    body = dodo_body()
    async with session.post(f"{base}/webhooks/dodo", data=body, headers=signed_headers(body, webhook_id)) as r:
        return r.status, await r.json(content_type=None), dict(r.headers)


async def ready_status(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/readyz") as response:
        return response.status


def event_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def test_first_start_creates_the_database_and_its_marker(tmp_path: Path):
    db = tmp_path / "data" / "h.db"

    async def main() -> None:
        app = await App.open(settings_for(config_text(db, free_port()), tmp_path))
        await app.close()

    asyncio.run(main())
    assert db.exists() and marker_path(db).exists()
    assert asyncio.run(SQLiteStore(db).inspect()).deployment_id in marker_path(db).read_text()


def test_a_database_deleted_while_running_is_noticed_and_not_silently_recreated(tmp_path: Path):
    db = tmp_path / "h.db"
    settings = settings_for(config_text(db, free_port()), tmp_path)

    async def running() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:
            assert (await send(session, base, "msg_before"))[0] == 202
            assert await ready_status(session, base) == 200
            for leftover in (db, db.with_name("h.db-wal"), db.with_name("h.db-shm")):
                leftover.unlink(missing_ok=True)
            status, body, headers = await send(session, base, "msg_after")
            assert status == 503 and body["error"] == "store_unavailable" and headers["Retry-After"] == "30"
            assert set(body) == {"error", "message"}
            assert await ready_status(session, base) == 503
            assert (await send(session, base, "msg_after"))[0] == 503  # still refused, nothing half-stored

    asyncio.run(running())
    assert not db.exists()
    with pytest.raises(StoreError, match=r"is missing, but .*h\.db\.created says headrace created it") as caught:
        asyncio.run(App.open(settings))
    assert "--replace-missing" in str(caught.value) and "Restore it from a backup" in str(caught.value)
    assert not db.exists()  # refusing created nothing

    from headrace.cli import main

    config = tmp_path / "headrace.toml"
    config.write_text(config_text(db, free_port()))
    assert main(["db", "migrate", "-c", str(config), "--replace-missing"]) == 0

    async def after() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:
            assert (await send(session, base, "msg_new"))[0] == 202
            assert await ready_status(session, base) == 200

    asyncio.run(after())
    assert event_count(db) == 1


def test_a_leftover_wal_without_its_database_is_not_adopted(tmp_path: Path):
    db = tmp_path / "h.db"
    db.with_name("h.db-wal").write_bytes(b"\0" * 4096)
    with pytest.raises(StoreError, match=r"h\.db-wal of it remain"):
        asyncio.run(SQLiteStore(db).open())


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "4m") -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=False)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write zeros until the filesystem is full (down to its last 512 bytes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_full_disk_answers_503_json_fails_readiness_and_recovers(tmp_path: Path):
    with small_filesystem(tmp_path / "fs") as fs:
        db = fs / "h.db"
        settings = settings_for(config_text(db, free_port()), tmp_path)

        async def main() -> None:
            async with running_server(settings) as base, aiohttp.ClientSession() as session:
                assert (await send(session, base, "msg_0"))[0] == 202
                fill(fs / "filler")
                refused = [await send(session, base, f"msg_full_{n}") for n in range(5)]
                for status, body, headers in refused:
                    assert status == 503 and body["error"] == "store_unavailable", (status, body)
                    assert headers["Content-Type"].startswith("application/json") and headers["Retry-After"] == "30"
                assert await ready_status(session, base) == 503
                (fs / "filler").unlink()
                assert (await send(session, base, "msg_1"))[0] == 202  # recovered by itself
                for n in range(5):  # Dodo's retries of the refused ones now succeed
                    assert (await send(session, base, f"msg_full_{n}"))[0] == 202

                async def ready() -> bool:
                    return await ready_status(session, base) == 200

                await wait_for(ready, timeout=20)

        asyncio.run(main())
        assert event_count(db) == 7
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()


@pytest.mark.postgres
def test_postgresql_tables_dropped_while_running_answer_503_and_fail_readiness(tmp_path: Path, pg_dsn: str):
    import psycopg

    text = config_text(tmp_path / "x.db", free_port()).replace(f'"sqlite:///{tmp_path / "x.db"}"', f'"{pg_dsn}"')
    settings = settings_for(text, tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:
            assert (await send(session, base, "msg_before"))[0] == 202
            assert await ready_status(session, base) == 200
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("DROP TABLE attempts, deliveries, events CASCADE")
            status, body, headers = await send(session, base, "msg_after")
            assert (status, body["error"], headers["Retry-After"]) == (503, "store_unavailable", "30")
            assert await ready_status(session, base) == 503

    asyncio.run(main())
