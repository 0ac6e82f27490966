"""After retention deletes many events, the SQLite file keeps its size until VACUUM: `db prune` says so, `db status`
shows the file, its free pages and the WAL, and `db vacuum` gives the space back (real SQLite file, the CLI)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from headrace.cli import main
from headrace.models import NewEvent
from headrace.store.sqlite import SQLiteStore
from tests.helpers import config_text, free_port

EVENTS = 400
BODY = b'{"type": "payment.succeeded", "data": {"note": "' + b"x" * 200_000 + b'"}}'  # ~80 MB in all


def test_prune_then_vacuum_gives_the_space_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    db = tmp_path / "h.db"
    config = tmp_path / "headrace.toml"
    config.write_text(config_text(db, free_port()))
    old = time.time() - 10 * 86400

    async def fill() -> None:
        store = SQLiteStore(db)
        await store.open()
        try:
            for n in range(EVENTS):  # no destination: unrouted, so finished and prunable
                await store.ingest(NewEvent("dodo", f"msg_{n}", "payment.succeeded", 1, old, BODY, {}), [])
        finally:
            await store.close()

    asyncio.run(fill())
    assert main(["db", "prune", "-c", str(config), "--older-than", "3d"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {EVENTS} events" in out
    assert "of it free): new events reuse the freed pages; `headrace db vacuum`" in out

    assert main(["db", "status", "-c", str(config), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)
    assert before["free_pages"] * before["page_size"] > 70_000_000 and before["file_bytes"] > 70_000_000
    assert main(["db", "status", "-c", str(config)]) == 0
    text = capsys.readouterr().out
    assert "free pages" in text and "`headrace db vacuum` gives" in text and "wal " in text

    assert main(["db", "vacuum", "-c", str(config)]) == 0
    assert "vacuumed" in capsys.readouterr().out
    assert main(["db", "status", "-c", str(config), "--json"]) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["free_pages"] == 0 and after["file_bytes"] < 2_000_000 and after["wal_bytes"] == 0
