"""Config reload on SIGHUP: the whole file is read again, validated, and applied in one step to ingest, the
worker, the tracker, the guards and metrics; an invalid file keeps the running config; restart-only keys keep
their running value. Against a real `headrace serve` process, and in-process with a real signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.config import load
from headrace.server import serve
from headrace.windmill.emulator import EmulatorThread, running_emulator
from tests.helpers import (
    OTHER_SECRET,
    SECRET,
    config_text,
    deployed_windmill,
    dodo_body,
    free_port,
    post,
    signed_headers,
    wait_for,
)

TOKEN_A = "reload-admin-token-AAAA-1234"
TOKEN_B = "reload-admin-token-BBBB-5678"


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with running_emulator(deployed_windmill("f/dodo/on_payment", "f/dodo/audit")) as emu:
        yield emu


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s, contextlib.suppress(OSError):
            s.connect(("127.0.0.1", port))
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def send(port: int, secret: str, webhook_id: str) -> int:
    import urllib.error
    import urllib.request

    body = dodo_body()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/dodo", data=body, headers=signed_headers(body, webhook_id, secret)
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_sighup_via_the_pid_file_adds_a_dodo_secret_and_an_invalid_file_keeps_it(tmp_path: Path):
    """The documented command, `kill -HUP $(cat PID_FILE)`, against a real `headrace serve`: a second
    signing secret added to the file is refused (401) before and accepted (202) after; then a broken file
    is refused with one log line without secrets, and the running config (both secrets) stays."""
    port = free_port()
    config, pid_file = tmp_path / "h.toml", tmp_path / "run" / "headrace.pid"
    pid_file.parent.mkdir()
    text = config_text(tmp_path / "h.db", port)
    config.write_text(text)
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config), "--pid-file", str(pid_file)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_port(port)
        deadline = time.time() + 10
        while not pid_file.exists() and time.time() < deadline:  # written once SIGHUP is handled
            time.sleep(0.02)
        assert pid_file.read_text() == f"{process.pid}\n"
        assert send(port, SECRET, "msg_old_1") == 202
        assert send(port, OTHER_SECRET, "msg_new_1") == 401

        config.write_text(text.replace(f'secrets = ["{SECRET}"]', f'secrets = ["{SECRET}", "{OTHER_SECRET}"]'))
        subprocess.run(["sh", "-c", f"kill -HUP $(cat {pid_file})"], check=True)
        deadline = time.time() + 10
        status = 401
        while status != 202 and time.time() < deadline:
            time.sleep(0.1)
            status = send(port, OTHER_SECRET, f"msg_new_{time.time_ns()}")
        assert status == 202
        assert send(port, SECRET, "msg_old_2") == 202  # the old secret still works: Dodo's 24 h overlap

        broken_secret = "whsec_" + "!" * 30
        config.write_text(text.replace(f'secrets = ["{SECRET}"]', f'secrets = ["{broken_secret}"]'))
        os.kill(process.pid, signal.SIGHUP)
        deadline = time.time() + 10
        while "config not reloaded" not in log_path.read_text() and time.time() < deadline:
            time.sleep(0.05)
        assert send(port, OTHER_SECRET, "msg_new_after_broken") == 202
        assert send(port, SECRET, "msg_old_after_broken") == 202
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
    logged = log_path.read_text()
    [refused] = [line for line in logged.splitlines() if "config not reloaded" in line]
    assert "[sources.dodo] secrets" in refused and "running config is kept" in refused
    for secret in (SECRET, OTHER_SECRET, broken_secret):
        assert secret not in logged and secret.removeprefix("whsec_") not in logged
    assert "config reloaded: sources changed: dodo" in logged
    assert not pid_file.exists()  # removed at exit
    assert process.returncode == 0


@contextlib.asynccontextmanager
async def serving(config: Path) -> AsyncIterator[str]:
    """`headrace serve -c config` in this event loop, reloading from `config` on a real SIGHUP."""
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(load(config, environ={}), stop=stop, ready=ready.set_result, config_path=config))
    done, _ = await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    try:
        yield f"http://127.0.0.1:{await ready}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def hup() -> None:
    os.kill(os.getpid(), signal.SIGHUP)


async def event_detail(http: aiohttp.ClientSession, base: str, event_id: int) -> dict[str, Any]:
    async with http.get(f"{base}/api/v1/events/{event_id}") as response:
        assert response.status == 200
        return dict(await response.json())


def deliveries(detail: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["destination"]: d for d in detail["deliveries"]}


def test_a_changed_destination_token_is_used_for_the_next_attempt(tmp_path: Path, emulator: EmulatorThread):
    """Windmill revoked the old token before the new one was loaded: attempts get 401 and are retried on the
    schedule; after the reload the next attempt carries the new token and the delivery succeeds."""
    emulator.state.tokens = {"new-windmill-token"}
    config = tmp_path / "h.toml"
    text = config_text(tmp_path / "h.db", free_port(), emulator.url(), schedule=str(["300ms"] * 40).replace("'", '"'))
    config.write_text(text)

    async def main() -> dict[str, Any]:
        async with serving(config) as base, aiohttp.ClientSession() as http:
            body = dodo_body()
            status, answer = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_token"))
            assert status == 202

            async def refused_twice() -> bool:
                attempts = deliveries(await event_detail(http, base, answer["event_id"]))["payments"]["attempt_log"]
                return len(attempts) >= 2 and all(a["http_status"] == 401 for a in attempts)

            await wait_for(refused_twice)
            assert emulator.state.jobs == {}
            config.write_text(text.replace('token = "test-token"', 'token = "new-windmill-token"'))
            hup()
            await until(lambda: len(emulator.state.jobs) == 1)

            async def delivered() -> bool:
                delivery = deliveries(await event_detail(http, base, answer["event_id"]))["payments"]
                return bool(delivery["status"] == "delivered")

            await wait_for(delivered)
            return await event_detail(http, base, answer["event_id"])

    detail = asyncio.run(main())
    attempts = deliveries(detail)["payments"]["attempt_log"]
    assert [a["http_status"] for a in attempts[:-1]] == [401] * (len(attempts) - 1)
    assert attempts[-1]["http_status"] == 201


def two_destinations(tmp_path: Path, port: int, emulator: EmulatorThread, audit_token: str | None) -> str:
    """payments (working) and, unless `audit_token` is None, audit (whose token Windmill may refuse)."""
    text = config_text(tmp_path / "h.db", port, emulator.url())
    if audit_token is None:
        return text
    return (
        text
        + f"""
[destinations.audit]
source = "dodo"
events = ["payment.*"]
url = "{emulator.url("f/dodo/audit")}"
token = "{audit_token}"
retry_schedule = {str(["250ms"] * 40).replace("'", '"')}
timeout = "2s"
"""
    )


def test_a_removed_destination_gets_no_new_deliveries_and_its_queued_ones_wait(
    tmp_path: Path, emulator: EmulatorThread
):
    """A destination removed by a reload: its pending delivery is not attempted any more and stays pending
    (nothing is failed or lost); new events are routed only to the others; put back (with a working token),
    the pending delivery is sent."""
    port = free_port()
    config = tmp_path / "h.toml"
    config.write_text(two_destinations(tmp_path, port, emulator, "revoked-token"))

    async def main() -> None:
        async with serving(config) as base, aiohttp.ClientSession() as http:
            body = dodo_body()
            status, first = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_first"))
            assert status == 202 and first["deliveries"] == 2

            async def audit(event_id: int) -> dict[str, Any]:
                return deliveries(await event_detail(http, base, event_id))["audit"]

            async def audit_refused() -> bool:
                return len((await audit(first["event_id"]))["attempt_log"]) >= 1

            await wait_for(audit_refused)
            await until(lambda: len(emulator.state.jobs) == 1)  # payments delivered
            config.write_text(two_destinations(tmp_path, port, emulator, None))
            hup()

            async def reloaded_and_settled() -> bool:  # the reload, and an attempt that was already in flight
                async with http.get(f"{base}/api/v1/destinations") as response:
                    names = [d["name"] for d in (await response.json())["destinations"]]
                return "audit" not in names and (await audit(first["event_id"]))["status"] == "pending"

            await wait_for(reloaded_and_settled)
            before = len((await audit(first["event_id"]))["attempt_log"])
            await asyncio.sleep(1.5)  # six retry steps of 250 ms
            waiting = await audit(first["event_id"])
            assert len(waiting["attempt_log"]) == before and waiting["status"] == "pending"

            body = dodo_body()
            status, second = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_second"))
            assert status == 202 and second["deliveries"] == 1  # routed to payments only
            await until(lambda: len(emulator.state.jobs) == 2)

            emulator.state.tokens.add("audit-token")
            config.write_text(two_destinations(tmp_path, port, emulator, "audit-token"))
            hup()
            await until(lambda: len(emulator.state.jobs) == 3)  # the waiting audit delivery, sent at last

            async def audit_delivered() -> bool:
                return bool((await audit(first["event_id"]))["status"] == "delivered")

            await wait_for(audit_delivered)

    asyncio.run(main())


def test_restart_only_keys_keep_their_running_value_and_the_rest_applies(
    tmp_path: Path, emulator: EmulatorThread, caplog: pytest.LogCaptureFixture
):
    """A reload that changes listen and database keeps both (the server still answers where it did) and
    says a restart is needed, naming the keys but no value; the admin token change in the same file applies."""
    port = free_port()
    config = tmp_path / "h.toml"
    text = config_text(tmp_path / "h.db", port, emulator.url(), admin_token=TOKEN_A)
    config.write_text(text)
    moved = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}").replace("h.db", "other.db")
    moved = moved.replace(TOKEN_A, TOKEN_B)

    async def main() -> None:
        async with serving(config) as base, aiohttp.ClientSession() as http:
            config.write_text(moved)
            with caplog.at_level(logging.INFO, logger="headrace.app"):
                hup()
                await until(lambda: "config reloaded" in caplog.text)
            async with http.get(f"{base}/api/v1/events", headers={"Authorization": f"Bearer {TOKEN_B}"}) as r:
                assert r.status == 200  # same address, the new token
            async with http.get(f"{base}/api/v1/events", headers={"Authorization": f"Bearer {TOKEN_A}"}) as r:
                assert r.status == 401
        assert not (tmp_path / "other.db").exists()

    asyncio.run(main())
    [warning] = [r.getMessage() for r in caplog.records if "only a restart applies" in r.getMessage()]
    assert "database, listen" in warning and "other.db" not in warning
    assert TOKEN_A not in caplog.text and TOKEN_B not in caplog.text


async def console_login(http: aiohttp.ClientSession, base: str, token: str) -> str:
    async with http.post(f"{base}/console/login", data={"token": token}, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
        return response.cookies["headrace_session"].value


async def console_status(base: str, cookie: str) -> int:
    async with (
        aiohttp.ClientSession(cookies={"headrace_session": cookie}) as http,
        http.get(f"{base}/console/rejections", allow_redirects=False) as response,
    ):
        return response.status


async def api_status(http: aiohttp.ClientSession, base: str, token: str, path: str = "/api/v1/events") -> int:
    async with http.get(base + path, headers={"Authorization": f"Bearer {token}"}) as response:
        return response.status


def test_admin_token_overlap_across_reloads_ends_only_the_removed_tokens_sessions(tmp_path: Path):
    """Rotation of the admin token: A alone, then A and B (both work; A's console session lives on), then B
    alone: A is refused on the API, /metrics and the console, and the session opened with A ends, while the
    session opened with B stays."""
    port = free_port()
    config = tmp_path / "h.toml"
    text = config_text(tmp_path / "h.db", port, admin_token=TOKEN_A)
    config.write_text(text)

    async def reload_to(
        value: str, http: aiohttp.ClientSession, base: str, works: str, ends: str | None = None
    ) -> None:
        """Reload to `value` and wait until it is applied: `works` is accepted (and `ends`, if given, refused).
        The reload reads the file off the event loop, so an old token that still works says nothing."""
        config.write_text(text.replace(f'admin_token = "{TOKEN_A}"', f"admin_token = {value}"))
        hup()
        deadline = time.monotonic() + 10
        while await api_status(http, base, works) != 200 or (
            ends is not None and await api_status(http, base, ends) != 401
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    async def main() -> None:
        async with serving(config) as base, aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            session_a = await console_login(http, base, TOKEN_A)
            assert await api_status(http, base, TOKEN_B) == 401

            await reload_to(f'["{TOKEN_A}", "{TOKEN_B}"]', http, base, works=TOKEN_B)
            assert await api_status(http, base, TOKEN_A) == 200
            assert await api_status(http, base, TOKEN_B, "/metrics") == 200
            assert await console_status(base, session_a) == 200  # the overlap keeps A's session
            session_b = await console_login(http, base, TOKEN_B)

            await reload_to(f'"{TOKEN_B}"', http, base, works=TOKEN_B, ends=TOKEN_A)
            assert await api_status(http, base, TOKEN_A) == 401
            assert await api_status(http, base, TOKEN_A, "/metrics") == 401
            assert await console_status(base, session_a) == 303  # A removed: its session ended
            assert await console_status(base, session_b) == 200
            async with http.post(f"{base}/console/login", data={"token": TOKEN_A}, allow_redirects=False) as r:
                assert r.status == 401

    asyncio.run(main())


async def _store_with_events(tmp_path: Path, count: int) -> Any:
    from headrace.models import NewEvent, Route
    from headrace.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "h.db")
    await store.open()
    for i in range(count):
        event = NewEvent("dodo", f"msg_{i}", "payment.succeeded", int(time.time()), time.time(), dodo_body(), {})
        await store.ingest(event, [Route("payments", "http://windmill.test/api/w/acme")])
    return store


def _worker_settings(tmp_path: Path, token: str | None) -> Any:
    from tests.fakes import URL
    from tests.helpers import settings_for

    text = config_text(tmp_path / "h.db", 1, URL if token else None, extra_dest="concurrency = 1")
    return settings_for(text.replace('token = "test-token"', f'token = "{token}"'), tmp_path)


def _slow_worker(tmp_path: Path, store: Any, seconds: float) -> Any:
    from headrace.deliver.recorder import OutcomeRecorder
    from headrace.deliver.tracker import JobTracker
    from headrace.deliver.worker import Worker
    from headrace.observe.metrics import Metrics
    from headrace.windmill.client import RunResponse
    from tests.fakes import FakeWindmill, attempter

    class Slow(FakeWindmill):
        async def run(self, *args: Any, **kwargs: Any) -> RunResponse:
            await asyncio.sleep(seconds)
            return await super().run(*args, **kwargs)

    client = Slow(RunResponse(201, ""))
    settings = _worker_settings(tmp_path, "old-windmill-token")
    unit = attempter(client)
    unit.clock = time.time
    tracker = JobTracker(store, settings, client, metrics=Metrics())  # type: ignore[arg-type]
    return Worker(store, settings, unit, OutcomeRecorder(store, Metrics()), tracker), client


def test_in_flight_attempts_finish_with_their_settings_and_queued_ones_take_the_new_token(tmp_path: Path):
    """concurrency 1: one attempt in flight, one claimed and queued, one in the store when the token changes.
    The attempt in flight keeps the old token; every later one (queued or not yet claimed) uses the new one."""
    from headrace.deliver.worker import Transformations

    async def main() -> list[str]:
        store = await _store_with_events(tmp_path, 3)
        worker, client = _slow_worker(tmp_path, store, 0.3)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await until(lambda: worker.in_flight == 1)
            worker.reload(Transformations(), _worker_settings(tmp_path, "new-windmill-token"))
            await until(lambda: len(client.runs) == 3)
            await asyncio.sleep(0.4)
        finally:
            stop.set()
            await running
            await worker.drain(2)
            await store.close()
        return [run.headers["Authorization"] for run in client.runs]

    assert asyncio.run(main()) == ["Bearer old-windmill-token"] + ["Bearer new-windmill-token"] * 2


def test_a_removed_destinations_claimed_deliveries_go_back_to_the_store_pending(tmp_path: Path):
    from headrace.deliver.worker import Transformations

    async def main() -> None:
        store = await _store_with_events(tmp_path, 3)
        worker, client = _slow_worker(tmp_path, store, 0.3)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await until(lambda: worker.in_flight == 1)
            worker.reload(Transformations(), _worker_settings(tmp_path, None))  # no destinations at all
            await until(lambda: worker.in_flight == 0)
            await asyncio.sleep(0.5)
            assert len(client.runs) == 1  # the attempt in flight finished; nothing after it
            statuses = []
            for i in range(3):
                event = await store.get_event(f"msg_{i}")
                statuses.append((event.deliveries[0].status, event.deliveries[0].attempts))
            assert statuses == [("delivered", 1), ("pending", 0), ("pending", 0)]
            # released at once, not held until the lease runs out: claimable now
            again = await store.claim("payments", 10, "other", time.time(), time.time() + 60)
            assert sorted(c.webhook_id for c in again) == ["msg_1", "msg_2"]
        finally:
            stop.set()
            await running
            await worker.drain(2)
            await store.close()

    asyncio.run(main())


def test_a_destination_added_by_a_reload_has_its_series_at_zero(tmp_path: Path, emulator: EmulatorThread):
    port = free_port()
    config = tmp_path / "h.toml"
    config.write_text(two_destinations(tmp_path, port, emulator, None))

    async def metrics(http: aiohttp.ClientSession, base: str) -> str:
        async with http.get(f"{base}/metrics") as response:
            return await response.text()

    async def main() -> None:
        async with serving(config) as base, aiohttp.ClientSession() as http:
            assert 'destination="audit"' not in await metrics(http, base)
            config.write_text(two_destinations(tmp_path, port, emulator, "audit-token"))
            hup()
            deadline = time.monotonic() + 10
            while 'destination="audit"' not in (text := await metrics(http, base)):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            assert 'headrace_deliveries_total{destination="audit",outcome="failed"} 0' in text
            assert 'headrace_queue_depth{destination="audit",state="pending"} 0' in text

    asyncio.run(main())


def test_an_unreadable_config_file_keeps_the_running_config(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Not UTF-8, or a folder where the file was: one error line, False, nothing changed, no traceback."""
    from headrace.app import App

    config = tmp_path / "h.toml"
    config.write_text(config_text(tmp_path / "h.db", free_port()))

    async def main() -> None:
        app = await App.open(load(config, environ={}))
        try:
            before = app.settings
            config.write_bytes(b'[server]\nlisten = "\xff\xfe"\n')
            with caplog.at_level(logging.ERROR, logger="headrace.app"):
                assert app.reload(config) is False
            config.unlink()
            config.mkdir()
            with caplog.at_level(logging.ERROR, logger="headrace.app"):
                assert app.reload(config) is False
            assert app.settings is before
        finally:
            await app.close()

    asyncio.run(main())
    lines = [r for r in caplog.records if r.name == "headrace.app"]
    assert len(lines) == 2 and all(r.exc_info is None for r in lines)
    assert all(r.getMessage().startswith("config not reloaded, the running config is kept: cannot read") for r in lines)
