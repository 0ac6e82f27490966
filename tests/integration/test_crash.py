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
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from headrace.app import store_at
from headrace.config import Settings
from headrace.models import EventFilter, NewEvent
from headrace.store.core import Store
from headrace.windmill.emulator import running_emulator
from headrace.windmill.emulator_model import Fault
from tests.helpers import config_text, deployed_windmill, free_port, settings_for, signed_headers

pytestmark = pytest.mark.slow


def start_server(config: Path, port: int, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`headrace serve` in a process of its own, its log in `log`; `env` is added to this process's environment."""
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=None if env is None else {**os.environ, **env},
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
                for _ in range(4):  # four crashes, each in the middle of accepting and delivering
                    await asyncio.sleep(1.5)
                    assert counter["202"] > 0, counter
                    os.kill(server.pid, signal.SIGKILL)
                    server.wait()
                    await asyncio.sleep(0.3)
                    server = start_server(config, port, log)
                await asyncio.sleep(1.0)
                stop.set()
                await sending
                # Everything accepted must reach Windmill: the restarted worker finds the killed one's
                # heartbeat stale (5 s; the lease, 2 x 1 s timeout + 5 s, is the backstop) and finishes its work.
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


# -- takeover: a killed worker's claimed deliveries go to a live worker within seconds ---------------------

CONCURRENCY = 2
HELD = 2 * CONCURRENCY  # a worker claims one `concurrency` ahead of what it sends
TAKEOVER_LIMIT = 15.0  # seconds from kill -9 to every held delivery delivered; the lease alone took 65 s


def start_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "headrace.cli", "worker", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _database(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> str:
    if backend == "postgres":
        return str(request.getfixturevalue("pg_dsn"))
    return f"sqlite:///{tmp_path / 'h.db'}"


def _takeover_config(tmp_path: Path, database: str, port: int, url: str, extra_dest: str = "") -> Path:
    # The default delivery timeout (30 s) gives the 65 s lease (2 x 30 s + 5 s) a crash used to wait for.
    text = config_text(tmp_path / "h.db", port, url, schedule='["100ms", "200ms", "500ms", "1s"]')
    text = text.replace(f'database = "sqlite:///{tmp_path / "h.db"}"', f'database = "{database}"')
    text = text.replace('timeout = "2s"', f'timeout = "30s"\nconcurrency = {CONCURRENCY}\n{extra_dest}')
    config = tmp_path / "h.toml"
    config.write_text(text)
    return config


async def _open_store(settings: Settings) -> Store:
    store = store_at(settings.server.database, settings.sqlite_path)
    await store.open()
    return store


async def _ingest(settings: Settings, store: Store, count: int, prefix: str) -> None:
    for i in range(count):
        webhook_id = f"{prefix}_{i}"
        body = json.dumps(
            {"type": "payment.succeeded", "data": {"payload_type": "Payment", "payment_id": webhook_id}}
        ).encode()
        event = NewEvent("dodo", webhook_id, "payment.succeeded", int(time.time()), time.time(), body, {})
        await store.ingest(event, [settings.route("payments")])


async def _count(store: Store, status: str) -> int:
    if status == "delivered":  # history: store.stats() counts only open and failed deliveries
        return len(await store.list_events(EventFilter(status="delivered", limit=1000)))
    stats = await store.stats()
    return stats.deliveries.get(("payments", status), 0)


async def _until(what: Callable[[], Awaitable[bool]], limit: float, message: Callable[[], str]) -> None:
    deadline = time.monotonic() + limit
    while not await what():
        if time.monotonic() > deadline:
            raise AssertionError(message())
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("backend", "first", "second"),
    [
        ("sqlite", "serve", "restarted"),
        ("sqlite", "worker", "surviving"),
        pytest.param("postgres", "worker", "surviving", marks=pytest.mark.postgres),
        pytest.param("postgres", "serve", "restarted", marks=pytest.mark.postgres),
    ],
)
def test_a_killed_workers_claimed_deliveries_are_taken_over_within_seconds(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str, first: str, second: str
) -> None:
    """kill -9 a process holding claimed deliveries (its attempts hang in Windmill); a worker started before
    the kill (surviving) or after it (restarted) delivers every one within seconds, each as one job."""
    events = HELD + 2
    with running_emulator(deployed_windmill()) as emulator:
        emulator.state.inject(Fault("hang", count=CONCURRENCY, seconds=120))  # the first process's sends
        port = free_port()
        config = _takeover_config(tmp_path, _database(request, tmp_path, backend), port, emulator.url())
        settings = settings_for(config.read_text(), tmp_path)
        log_first, log_second = tmp_path / "first.log", tmp_path / "second.log"
        processes: list[subprocess.Popen[bytes]] = []

        def logs() -> str:
            return "\n".join(p.read_text() for p in (log_first, log_second) if p.exists())

        async def main() -> float:
            store = await _open_store(settings)
            try:
                await _ingest(settings, store, events, "msg_takeover")
                if first == "serve":
                    processes.append(start_server(config, port, log_first))
                else:
                    processes.append(start_worker(config, log_first))
                # the first process holds HELD deliveries: CONCURRENCY sends hanging in Windmill, the rest queued
                await _until(
                    lambda: _true(emulator.state.requests >= CONCURRENCY and not emulator.state.faults),
                    20,
                    lambda: f"the first process did not send; logs:\n{logs()}",
                )
                await _until(lambda: _equals(_count(store, "in_flight"), HELD), 10, logs)
                if second == "surviving":
                    processes.append(start_worker(config, log_second))
                    await _until(lambda: _equals(_count(store, "delivered"), events - HELD), 20, logs)
                    assert await store.live_workers(time.time() - 5) == 2
                os.kill(processes[0].pid, signal.SIGKILL)
                processes[0].wait()
                killed = time.monotonic()
                if second == "restarted":
                    processes.append(start_worker(config, log_second))
                await _until(
                    lambda: _equals(_count(store, "delivered"), events),
                    60,
                    lambda: f"held deliveries not taken over in 60 s; logs:\n{logs()}",
                )
                return time.monotonic() - killed
            finally:
                for process in processes:
                    stop_process(process)
                await store.close()

        took = asyncio.run(main())
        print(
            f"\n{backend}, {first} killed, {second} worker: {HELD} held deliveries delivered {took:.1f}s after kill -9"
        )
        per_event = collections.Counter(job.args["data"]["payment_id"] for job in emulator.state.jobs.values())
        assert sorted(per_event) == sorted(f"msg_takeover_{i}" for i in range(events))
        assert max(per_event.values()) == 1, f"a job ran twice: {per_event.most_common(3)}"
        assert took < TAKEOVER_LIMIT, f"takeover took {took:.1f}s (limit {TAKEOVER_LIMIT:g}s)"
        assert "presumed dead" in logs()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_two_live_workers_never_process_the_same_delivery(
    request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """Two `headrace worker` processes share one queue for longer than the dead-after limit: each delivery is
    sent once (one request, one attempt, no duplicate refused), both take part, and neither reaps the other."""
    events = 120
    with running_emulator(deployed_windmill()) as emulator:
        # every send takes 0.2 s, so the run lasts ~6 s with both workers busy
        emulator.state.inject(Fault("hang", count=events, seconds=0.2))
        config = _takeover_config(tmp_path, _database(request, tmp_path, backend), free_port(), emulator.url())
        text = config.read_text().replace("[server]", '[server]\nlog_format = "json"')
        config.write_text(text)
        settings = settings_for(text, tmp_path)
        logs = [tmp_path / "one.log", tmp_path / "two.log"]

        async def main() -> None:
            store = await _open_store(settings)
            workers = [start_worker(config, log) for log in logs]
            try:
                await _until(lambda: _equals(store.live_workers(time.time() - 5), 2), 20, lambda: "")
                await _ingest(settings, store, events, "msg_shared")
                await _until(
                    lambda: _equals(_count(store, "delivered"), events),
                    60,
                    lambda: "\n".join(log.read_text() for log in logs),
                )
                assert await store.live_workers(time.time() - 5) == 2
            finally:
                for worker in workers:
                    stop_process(worker)
                assert await store.live_workers(0) == 0  # both deregistered on SIGTERM
                await store.close()

        asyncio.run(main())
        assert emulator.state.requests == events
        assert emulator.state.duplicate_rejections == 0
        assert len(emulator.state.jobs) == events
        texts = [log.read_text() for log in logs]
        for text in texts:
            assert "presumed dead" not in text
        delivered = [
            {json.loads(line).get("delivery_id") for line in text.splitlines() if '"delivery delivered"' in line}
            for text in texts
        ]
        assert delivered[0] and delivered[1], "both workers should have delivered some"
        assert not delivered[0] & delivered[1]


async def _true(value: bool) -> bool:
    return value


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
