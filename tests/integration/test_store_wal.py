"""The SQLite write-ahead log deleted while headrace runs, and a marker that `rm headrace.db*` cannot take.

Deleting `headrace.db-wal` under a running headrace used to go unnoticed: the open connections wrote on into the
deleted file, ingest answered 202 and /readyz 200, and whatever had not been checkpointed was lost at the next
kill -9. Now the WAL's identity is checked with the main file's, so writes are refused (503) and readiness fails.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
from pathlib import Path

import aiohttp
import pytest

from headrace.app import App
from headrace.store.base import StoreError
from headrace.store.sqlite import SQLiteStore
from headrace.store.sqlite_file import marker_path
from tests.helpers import config_text, free_port, running_server, settings_for
from tests.integration.test_store_lifetime import event_count, ready_status, send


def test_a_wal_deleted_while_running_stops_ingest_and_fails_readiness(tmp_path: Path):
    db = tmp_path / "h.db"
    settings = settings_for(config_text(db, free_port()), tmp_path)

    async def running() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:
            for i in range(3):
                assert (await send(session, base, f"msg_before_{i}"))[0] == 202
            assert await ready_status(session, base) == 200
            wal = db.with_name("h.db-wal")
            assert wal.exists()
            wal.unlink()
            status, body, _ = await send(session, base, "msg_after")
            assert status == 503 and body["error"] == "store_unavailable", (status, body)
            assert await ready_status(session, base) == 503
            assert (await send(session, base, "msg_after_2"))[0] == 503

    asyncio.run(running())
    # A graceful stop: the connections that still held the deleted log wrote it into the database.
    assert event_count(db) == 3


def test_a_wal_replaced_by_another_file_is_noticed_too(tmp_path: Path):
    db = tmp_path / "h.db"

    async def main() -> None:
        app = await App.open(settings_for(config_text(db, free_port()), tmp_path))
        try:
            await app.store.delivery_mark()
            assert (await app.ready())[0]
            wal = db.with_name("h.db-wal")
            replacement = tmp_path / "other-wal"
            replacement.write_bytes(b"")
            os.replace(replacement, wal)
            ok, detail = await app.ready()
            assert not ok and "write-ahead log" in detail
        finally:
            await app.close()

    asyncio.run(main())


def test_rm_of_the_database_glob_leaves_the_marker_and_the_next_start_refuses(tmp_path: Path):
    db = tmp_path / "headrace.db"
    settings = settings_for(config_text(db, free_port()), tmp_path)

    async def first() -> None:
        app = await App.open(settings)
        await app.close()

    asyncio.run(first())
    assert marker_path(db).exists()
    for name in glob.glob(str(tmp_path / "headrace.db*")):  # what `rm headrace.db*` removes
        os.unlink(name)
    assert marker_path(db).exists() and not db.exists()
    with pytest.raises(StoreError, match=r"is missing, but .*says headrace created it"):
        asyncio.run(App.open(settings))
    assert not db.exists()


def test_the_old_marker_name_is_still_read_and_moved_to_the_new_one(tmp_path: Path):
    db = tmp_path / "h.db"
    old = tmp_path / "h.db.created"

    async def first() -> None:
        store = SQLiteStore(db)
        await store.open()
        await store.close()

    asyncio.run(first())
    # An install from before the rename: its marker has the old name.
    marker_path(db).rename(old)
    asyncio.run(first())
    assert marker_path(db).exists() and not old.exists()
    assert json.loads(marker_path(db).read_text())["database"] == str(db)

    # An old marker beside a deleted database still refuses the start.
    marker_path(db).rename(old)
    for name in glob.glob(str(tmp_path / "h.db-*")):
        os.unlink(name)
    db.unlink()
    with pytest.raises(StoreError, match=r"is missing, but .*says headrace created it"):
        asyncio.run(first())
    assert not db.exists()
