"""Two `headrace serve` processes on one SQLite file, both ingesting and both delivering: every event sent to
both at once is stored once and becomes one Windmill job, and both processes keep answering while they take
turns at the write lock (store/sqlite_io.py, WriteTurn)."""

from __future__ import annotations

import asyncio
import collections
import json
import re
import sqlite3
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from headrace.windmill.emulator import running_emulator
from tests.helpers import config_text, deployed_windmill, free_port, signed_headers
from tests.integration.test_crash import start_server, stop_process

pytestmark = pytest.mark.slow

EVENTS = 300


async def _send_to_both(ports: list[int], statuses: collections.Counter[int]) -> None:
    """Every event to both instances at the same moment, 16 events in flight."""
    gate = asyncio.Semaphore(16)

    async def one(http: aiohttp.ClientSession, i: int) -> None:
        webhook_id = f"msg_twice_{i}"
        body = json.dumps(
            {
                "business_id": "bus_1",
                "type": "payment.succeeded",
                "timestamp": "2026-12-06T10:00:00Z",
                "data": {"payload_type": "Payment", "payment_id": f"pay_{i}", "total_amount": 100},
            }
        ).encode()
        async with gate:
            for status in await asyncio.gather(
                *(post(http, port, body, signed_headers(body, webhook_id)) for port in ports)
            ):
                statuses[status] += 1

    async def post(http: aiohttp.ClientSession, port: int, body: bytes, headers: dict[str, str]) -> int:
        async with http.post(f"http://127.0.0.1:{port}/webhooks/dodo", data=body, headers=headers) as response:
            await response.read()
            return response.status

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(one(http, i) for i in range(EVENTS)))


def test_two_serve_processes_on_one_sqlite_file_store_and_deliver_each_event_once(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    with running_emulator(deployed_windmill()) as emulator:
        ports = [free_port(), free_port()]
        servers = []
        try:
            for n, port in enumerate(ports):
                config = tmp_path / f"h{n}.toml"
                config.write_text(config_text(db, port, emulator.url()))
                servers.append(start_server(config, port, tmp_path / f"h{n}.log"))
            statuses: collections.Counter[int] = collections.Counter()
            asyncio.run(_send_to_both(ports, statuses))
            assert sum(statuses.values()) == 2 * EVENTS
            assert all(200 <= status < 300 for status in statuses), statuses  # the copy is acknowledged, not refused

            async def delivered() -> None:  # and indexed for search, by either instance's indexer
                for _ in range(600):
                    if len(emulator.state.jobs) >= EVENTS and _open(db) == 0 and _unindexed(db) == 0:
                        return
                    await asyncio.sleep(0.05)

            asyncio.run(delivered())
            waited = [_turn_waited(port) for port in ports]
            assert all(seconds >= 0 for seconds in waited) and any(seconds > 0 for seconds in waited), waited
        finally:
            for server in servers:
                stop_process(server)
        logs = "\n".join((tmp_path / f"h{n}.log").read_text() for n in range(2))
        assert len(emulator.state.jobs) == EVENTS, logs[-3000:]
        assert emulator.state.requests == EVENTS
        assert emulator.state.duplicate_rejections == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (EVENTS,)
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM deliveries").fetchone() == (EVENTS, EVENTS)
        assert conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'delivered'").fetchone() == (EVENTS,)
        # Two indexers took turns at one queue: each event indexed once.
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT rowid) FROM event_search").fetchone() == (EVENTS, EVENTS)
    assert "Traceback" not in logs


def _open(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM deliveries WHERE status IN ('pending', 'in_flight')").fetchone()
    return int(count)


def _unindexed(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        (count,) = conn.execute("SELECT COUNT(*) FROM search_pending").fetchone()
    return int(count)


def _turn_waited(port: int) -> float:
    """`headrace_store_write_turn_wait_seconds_total` from one instance's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(r"^headrace_store_write_turn_wait_seconds_total (\S+)$", text, re.M)
    assert found is not None, "no write-turn metric in /metrics"
    return float(found.group(1))
