"""Shared test helpers: signed requests, configs, and a headrace server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from headrace.config import Settings, parse
from headrace.config.secret import decode_secret
from headrace.dodo.signature import sign
from headrace.models import job_id_for
from headrace.server import serve
from headrace.windmill.emulator import EmulatorState

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"  # base64 of 24 letters


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deployed_windmill(*scripts: str, flows: tuple[str, ...] = (), **options: Any) -> EmulatorState:
    """An emulator state with these scripts (default: f/dodo/on_payment, what `EmulatorThread.url()`
    names) and flows deployed in every workspace. Like Windmill, the emulator answers 404 for any other path."""
    state = EmulatorState(**options)
    for path in scripts or ("f/dodo/on_payment",):
        state.add_target("script", path)
    for path in flows:
        state.add_target("flow", path)
    return state


def dodo_body(event_type: str = "payment.succeeded", **data: Any) -> bytes:
    return json.dumps(
        {
            "business_id": "bus_test",
            "type": event_type,
            "timestamp": "2026-11-26T10:00:00Z",
            "data": {"payload_type": "Payment", "payment_id": "pay_1", "total_amount": 4999, **data},
        }
    ).encode()


def signed_headers(
    body: bytes, webhook_id: str = "msg_1", secret: str = SECRET, ts: int | None = None
) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    return {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(decode_secret(secret), webhook_id, ts, body),
    }


def config_text(
    db: Path,
    port: int,
    windmill_url: str | None = None,
    *,
    events: str = '["payment.*"]',
    schedule: str = '["10ms", "10ms", "10ms"]',
    extra_dest: str = "",
    extra_server: str = "",
    admin_token: str | None = None,
) -> str:
    """A test config. Management is open (loopback only) unless an admin token is given, here or in extra_server."""
    if admin_token is not None:
        access = f'admin_token = "{admin_token}"'
    elif "admin_token" in extra_server or "open_management" in extra_server:
        access = ""
    else:
        access = "open_management = true"
    text = f"""
[server]
listen = "127.0.0.1:{port}"
database = "sqlite:///{db}"
shutdown_grace = "2s"
{access}
{extra_server}

[sources.dodo]
secrets = ["{SECRET}"]
"""
    if windmill_url:
        text += f"""
[destinations.payments]
source = "dodo"
events = {events}
url = "{windmill_url}"
token = "test-token"
retry_schedule = {schedule}
timeout = "2s"
{extra_dest}
"""
    return text


def expected_job_id(settings: Settings, webhook_id: str, destination: str, generation: int) -> str:
    """The job id headrace derives for a new delivery, from the deployment id in settings' SQLite database."""
    assert settings.sqlite_path is not None
    conn = sqlite3.connect(settings.sqlite_path)
    try:
        [deployment_id] = conn.execute("SELECT value FROM meta WHERE key = 'deployment_id'").fetchone()
    finally:
        conn.close()
    dest = settings.destinations[destination]
    return job_id_for(deployment_id, dest.job_target, dest.source, webhook_id, destination, generation)


def settings_for(text: str, base: Path) -> Settings:
    return parse(text, environ={}, base_dir=base)


@contextlib.asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[str]:
    """`headrace serve` in this event loop; yields its base URL and stops it gracefully afterwards."""
    stop = asyncio.Event()
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, stop=stop, ready=ready.set_result))
    done, _ = await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    port = await ready
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        await asyncio.sleep(interval)


def sqlite_before(path: Path, migration: str) -> sqlite3.Connection:
    """A SQLite file with every migration before `migration` (a file-name prefix, e.g. "0011") applied, as an
    older headrace left it; the caller adds rows, commits and closes."""
    from headrace.store.queries import migrations

    conn = sqlite3.connect(path)
    before = [m for m in migrations("sqlite") if m[1] < migration]
    for _, _, sql in before:
        conn.executescript(sql)
    conn.execute(f"PRAGMA user_version = {before[-1][0]}")
    return conn
