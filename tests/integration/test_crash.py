"""kill -9 the server while events stream in and out, restart it: every event that got a 2xx is delivered,
and no Windmill job is created twice. A real process, a real SQLite file, real HTTP on loopback."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from headrace.windmill.emulator import running_emulator
from tests.helpers import config_text, deployed_windmill, free_port, signed_headers

pytestmark = pytest.mark.slow


def start_server(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise AssertionError(f"server did not start; log:\n{log.read_text()}")


async def stream(port: int, accepted: set[str], stop: asyncio.Event, counter: collections.Counter[str]) -> None:
    """Send signed events, 8 at a time, until told to stop; remember which ones got a 2xx."""
    sequence = 0
    lock = asyncio.Lock()

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal sequence
        while not stop.is_set():
            async with lock:
                sequence += 1
                webhook_id = f"msg_crash_{sequence}"
            body = json.dumps(
                {
                    "business_id": "bus_1",
                    "type": "payment.succeeded",
                    "timestamp": "2026-11-26T10:00:00Z",
                    "data": {"payload_type": "Payment", "payment_id": webhook_id, "total_amount": 100},
                }
            ).encode()
            try:
                async with http.post(
                    f"http://127.0.0.1:{port}/webhooks/dodo", data=body, headers=signed_headers(body, webhook_id)
                ) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        accepted.add(webhook_id)
                    counter[str(response.status)] += 1
            except (TimeoutError, aiohttp.ClientError):
                counter["refused"] += 1
                await asyncio.sleep(0.01)

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(sender(http) for _ in range(8)))


def test_kill_9_mid_stream_loses_nothing_and_duplicates_nothing(tmp_path: Path):
    with running_emulator(deployed_windmill()) as emulator:
        port = free_port()
        config = tmp_path / "h.toml"
        text = config_text(
            tmp_path / "h.db", port, emulator.url(), schedule='["50ms", "100ms", "200ms", "500ms", "1s"]'
        )
        config.write_text(text.replace('timeout = "2s"', 'timeout = "1s"\nconcurrency = 4'))
        log = tmp_path / "server.log"
        accepted: set[str] = set()
        counter: collections.Counter[str] = collections.Counter()

        async def main() -> None:
            server = start_server(config, port, log)
            stop = asyncio.Event()
            sending = asyncio.create_task(stream(port, accepted, stop, counter))
            try:
                for _ in range(2):  # two crashes, each in the middle of accepting and delivering
                    await asyncio.sleep(1.5)
                    assert counter["202"] > 0, counter
                    os.kill(server.pid, signal.SIGKILL)
                    server.wait()
                    await asyncio.sleep(0.3)
                    server = start_server(config, port, log)
                await asyncio.sleep(1.0)
                stop.set()
                await sending
                # Everything accepted must reach Windmill: the lease of work cut off by the kill expires
                # (2 x 1 s timeout + 5 s) and the restarted worker finishes it.
                # Wait until the store has nothing left pending or in flight: that includes re-sending the
                # deliveries whose job was created just before a kill (Windmill answers 400, job exists).
                deadline = time.time() + 60
                async with aiohttp.ClientSession() as http:
                    while time.time() < deadline:
                        url = f"http://127.0.0.1:{port}/api/v1/events?status=pending&limit=1"
                        async with http.get(url) as response:
                            if not (await response.json())["events"]:
                                break
                        await asyncio.sleep(0.2)
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(15)
                except subprocess.TimeoutExpired:
                    server.kill()

        asyncio.run(main())
        jobs = list(emulator.state.jobs.values())
        per_event = collections.Counter(job.args["data"]["payment_id"] for job in jobs)
        assert len(accepted) > 100, counter
        missing = accepted - set(per_event)
        assert not missing, f"{len(missing)} accepted events never reached Windmill: {sorted(missing)[:5]}"
        assert max(per_event.values()) == 1, f"a job ran twice: {per_event.most_common(3)}"
        assert counter["refused"] > 0  # the kills really happened while events were being sent
        # Work in flight at each kill was sent again after its lease ran out, and Windmill refused the
        # second job (same job_id) instead of creating it.
        assert emulator.state.duplicate_rejections > 0
