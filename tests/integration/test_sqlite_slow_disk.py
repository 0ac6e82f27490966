"""`headrace serve` on a disk whose fsync is slow (tests/slow_disk.py: every fsync sleeps 10 ms first, as a
spinning disk or network storage takes): its COMMITs move from the event loop to the committer thread, it says so
once, and every event is still stored, answered 202 only after its COMMIT, and delivered (store/sqlite_io.py,
LoopWriter._commit)."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from headrace.windmill.emulator import running_emulator
from tests.helpers import config_text, deployed_windmill, free_port, signed_headers
from tests.integration.test_crash import start_server, stop_process
from tests.slow_disk import slow_disk_environment, slow_fsync_library

pytestmark = pytest.mark.slow

EVENTS = 24


async def _send_one_by_one(port: int) -> list[int]:
    """Each event alone, so each is a batch of its own with its own COMMIT."""
    statuses = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for i in range(EVENTS):
            body = json.dumps(
                {"business_id": "bus_1", "type": "payment.succeeded", "data": {"payment_id": f"pay_slow_{i}"}}
            ).encode()
            headers = signed_headers(body, f"msg_slow_{i}")
            async with http.post(f"http://127.0.0.1:{port}/webhooks/dodo", data=body, headers=headers) as response:
                await response.read()
                statuses.append(response.status)
    return statuses


def test_on_a_slow_disk_commits_move_to_the_thread_and_every_event_is_kept(tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("LD_PRELOAD of a library built here: Linux only")
    library = slow_fsync_library(tmp_path)
    db, port, log = tmp_path / "h.db", free_port(), tmp_path / "serve.log"
    with running_emulator(deployed_windmill()) as emulator:
        config = tmp_path / "h.toml"
        config.write_text(config_text(db, port, emulator.url()))
        server = start_server(config, port, log, env=slow_disk_environment(library, 10.0))
        try:
            statuses = asyncio.run(_send_one_by_one(port))
            assert statuses == [202] * EVENTS
            for _ in range(400):  # delivered too: the worker's writes commit on the same slow disk
                if len(emulator.state.jobs) >= EVENTS:
                    break
                time.sleep(0.05)
            assert len(emulator.state.jobs) == EVENTS
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
                metrics = response.read().decode()
            commits = dict(re.findall(r'^headrace_store_commits_total\{place="(\w+)"\} (\d+)$', metrics, re.M))
            assert int(commits["loop"]) >= 8 and int(commits["thread"]) > 0, commits  # a window on the loop, then
        finally:
            stop_process(server)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE webhook_id LIKE 'msg_slow_%'").fetchone() == (EVENTS,)
    said = [line for line in log.read_text().splitlines() if "disk is slow" in line]
    assert len(said) == 1, log.read_text()[-3000:]  # once at INFO; a later move would be at DEBUG
    assert "COMMITs run on a thread for 30 s" in said[0]
