"""`db copy` from a database that headrace is still serving: refused before anything is written, saying to stop
headrace first (rows written during a copy would be missing, or break it with a foreign-key error)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import sqlite3
from pathlib import Path

from headrace.cli import main
from tests.helpers import config_text, free_port, running_server, settings_for, wait_for


def test_db_copy_refuses_a_source_that_headrace_is_serving(tmp_path: Path):
    db = tmp_path / "h.db"
    text = config_text(db, free_port())
    config = tmp_path / "headrace.toml"
    config.write_text(text)
    target = tmp_path / "copy.db"

    def copy() -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["db", "copy", "-c", str(config), "--to", f"sqlite:///{target}"])
        return code, err.getvalue()

    async def registered() -> bool:
        conn = sqlite3.connect(db)
        try:
            return conn.execute("SELECT COUNT(*) FROM workers").fetchone()[0] == 1
        finally:
            conn.close()

    async def during() -> tuple[int, str]:
        async with running_server(settings_for(text, tmp_path)):
            await wait_for(registered)  # serve's delivery worker has registered its heartbeat
            return await asyncio.to_thread(copy)

    code, err = asyncio.run(during())
    assert code == 2 and "stop every serve and worker" in err, err
    assert not target.exists()
    assert copy()[0] == 0  # stopped: the copy goes through
