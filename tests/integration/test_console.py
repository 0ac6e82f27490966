"""The operator console over real HTTP, and rendered by a real headless Chromium."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

import aiohttp
import pytest

from headrace.windmill.emulator import EmulatorThread, Fault, running_emulator
from tests.helpers import (
    config_text,
    deployed_windmill,
    dodo_body,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def emulator():
    with running_emulator(deployed_windmill()) as emu:
        yield emu


async def deliver_some(base: str, http: aiohttp.ClientSession) -> None:
    """Event 1 (payment.failed) meets the emulator's 404 fault; event 2 carries markup and is delivered."""

    async def settled() -> bool:
        async with http.get(f"{base}/api/v1/events?status=pending") as response:
            return not (await response.json())["events"]

    failing = dodo_body("payment.failed")
    await post(http, f"{base}/webhooks/dodo", failing, signed_headers(failing, "msg_fail"))
    await wait_for(settled)
    hostile = dodo_body("payment.succeeded", note="<script>alert(1)</script>")
    await post(http, f"{base}/webhooks/dodo", hostile, signed_headers(hostile, "msg_<b>x</b>"))
    await wait_for(settled)


def test_pages_render_escape_and_replay(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("status", count=1, status=403))  # the second event fails at once (403 is not retried)
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url()), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await deliver_some(base, http)
            async with http.get(f"{base}/") as response:
                assert response.status == 200
                page = await response.text()
            assert "payment.succeeded" in page and "payment.failed" in page
            assert "msg_&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
            async with http.get(f"{base}/?status=failed") as response:
                failed_only = await response.text()
            assert "payment.failed" in failed_only and "payment.succeeded" not in failed_only
            async with http.get(f"{base}/events/msg_fail") as response:
                timeline = await response.text()
            assert "HTTP 403" in timeline or ">403<" in timeline
            async with http.get(f"{base}/events/2") as response:
                first = await response.text()
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in first and "<script>alert" not in first
            async with http.post(f"{base}/events/msg_fail/replay", allow_redirects=False) as response:
                assert response.status == 303 and "replayed=1" in response.headers["Location"]
            for path in ("/rejections", "/destinations"):
                async with http.get(base + path) as response:
                    assert response.status == 200, path
            async with http.get(f"{base}/events/nope") as response:
                assert "No event nope" in await response.text()

    asyncio.run(main())


def test_console_needs_the_admin_token_and_keeps_it_out_of_the_cookie(tmp_path: Path):
    text = config_text(tmp_path / "h.db", free_port()).replace("[server]", '[server]\nadmin_token = "console-admin-1"')
    settings = settings_for(text, tmp_path)

    async def main() -> None:
        async with running_server(settings) as base:
            async with aiohttp.ClientSession() as http, http.get(f"{base}/", allow_redirects=False) as response:
                assert response.status in (302, 303) and response.headers["Location"] == "/login"
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(f"{base}/login", data={"token": "wrong"}) as response:
                    assert response.status == 401
                async with http.post(f"{base}/login", data={"token": "console-admin-1"}) as response:
                    assert response.status == 200 and "Events" in await response.text()
                cookies = {c.key: c.value for c in jar}
                assert cookies and "console-admin-1" not in str(cookies)
                async with http.get(f"{base}/rejections") as response:
                    assert response.status == 200
                async with http.post(f"{base}/logout") as response:
                    assert response.url.path == "/login"
                async with http.get(f"{base}/", allow_redirects=False) as response:
                    assert response.status in (302, 303)

    asyncio.run(main())


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is installed by .ci/run (Debian package chromium)")
def test_chromium_renders_the_event_list_and_a_timeline(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("status", count=1, status=404))
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url()), tmp_path)

    async def main() -> tuple[str, str]:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await deliver_some(base, http)
            listing = await asyncio.to_thread(chromium, f"{base}/", tmp_path / "events.png")
            timeline = await asyncio.to_thread(chromium, f"{base}/events/2", tmp_path / "event.png")
            return listing, timeline

    listing, timeline = asyncio.run(main())
    assert "payment.failed" in listing and "delivered" in listing
    assert "open in Windmill" in timeline and "generation 0" in timeline
    assert "Windmill job:" in timeline  # the job's outcome, once the tracker has polled it (or still open)
    assert (tmp_path / "events.png").stat().st_size > 5000


def chromium(url: str, screenshot: Path) -> str:
    with tempfile.TemporaryDirectory() as profile:
        flags = [
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
        ]
        subprocess.run([*flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=60, check=True)
        dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=60, check=True)
    return dom.stdout
