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
    dodo_body,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)

TOKEN = "console-admin-token-1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def emulator():
    with running_emulator() as emu:
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
    emulator.state.inject(Fault("status", count=1, status=404))  # the second event fails at once
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url()), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await deliver_some(base, http)
            async with http.get(f"{base}/console/") as response:
                assert response.status == 200
                page = await response.text()
            assert "payment.succeeded" in page and "payment.failed" in page
            assert "msg_&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
            async with http.get(f"{base}/console/?status=failed") as response:
                failed_only = await response.text()
            assert "payment.failed" in failed_only and "payment.succeeded" not in failed_only
            async with http.get(f"{base}/console/events/msg_fail") as response:
                timeline = await response.text()
            assert "HTTP 404" in timeline or ">404<" in timeline
            async with http.get(f"{base}/console/events/2") as response:
                first = await response.text()
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in first and "<script>alert" not in first
            async with http.post(f"{base}/console/events/msg_fail/replay", allow_redirects=False) as response:
                assert response.status == 303 and "replayed=1" in response.headers["Location"]
            for path in ("/console/rejections", "/console/destinations"):
                async with http.get(base + path) as response:
                    assert response.status == 200, path
            async with http.get(f"{base}/console/events/nope") as response:
                assert "No event nope" in await response.text()

    asyncio.run(main())


def test_console_needs_the_admin_token_and_keeps_it_out_of_the_cookie(tmp_path: Path):
    text = config_text(tmp_path / "h.db", free_port(), admin_token=TOKEN)
    settings = settings_for(text, tmp_path)

    async def main() -> None:
        async with running_server(settings) as base:
            async with aiohttp.ClientSession() as http, http.get(f"{base}/", allow_redirects=False) as response:
                assert response.status == 302 and response.headers["Location"] == "/console/"
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{base}/console/", allow_redirects=False) as response,
            ):
                assert response.status == 303 and response.headers["Location"] == "/console/login"
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(f"{base}/console/login", data={"token": "wrong"}) as response:
                    assert response.status == 401
                async with http.post(f"{base}/console/login", data={"token": TOKEN}) as response:
                    assert response.status == 200 and "Events" in await response.text()
                cookies = {c.key: c.value for c in jar}
                assert cookies and TOKEN not in str(cookies)
                async with http.get(f"{base}/console/rejections") as response:
                    assert response.status == 200
                async with http.post(f"{base}/console/logout") as response:
                    assert response.url.path == "/console/login"
                async with http.get(f"{base}/console/", allow_redirects=False) as response:
                    assert response.status == 303

    asyncio.run(main())


async def login(base: str, token: str = "console-admin-token-1") -> str:
    """Log in through the form; the session cookie's value."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        http.post(f"{base}/console/login", data={"token": token}, allow_redirects=False) as response,
    ):
        assert response.status == 303, await response.text()
        return response.cookies["headrace_session"].value


async def page_status(base: str, cookie: str, path: str = "/console/rejections") -> int:
    async with (
        aiohttp.ClientSession(cookies={"headrace_session": cookie}) as http,
        http.get(base + path, allow_redirects=False) as response,
    ):
        return response.status


def test_logout_ends_the_session_even_for_a_kept_copy_of_the_cookie(tmp_path: Path):
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), admin_token=TOKEN), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base:
            first, second = await login(base), await login(base)
            assert first != second  # a random session id per login, not a function of the token
            assert await page_status(base, first) == 200 and await page_status(base, second) == 200
            async with (
                aiohttp.ClientSession(cookies={"headrace_session": first}) as http,
                http.post(f"{base}/console/logout", allow_redirects=False) as response,
            ):
                assert response.status == 303
            assert await page_status(base, first) == 303  # the copy an attacker kept is dead
            assert await page_status(base, second) == 200  # another browser's session lives on
            assert await page_status(base, "forged-" + "0" * 40) == 303

    asyncio.run(main())


def test_sessions_expire_and_end_when_the_token_changes(tmp_path: Path):
    lifetime = 'session_lifetime = "1s"'
    settings = settings_for(
        config_text(tmp_path / "h.db", free_port(), admin_token=TOKEN, extra_server=lifetime), tmp_path
    )
    port = free_port()
    changed = settings_for(config_text(tmp_path / "h.db", port, admin_token="console-admin-token-2"), tmp_path)
    same = settings_for(config_text(tmp_path / "h.db", port, admin_token=TOKEN), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base:
            cookie = await login(base)
            assert await page_status(base, cookie) == 200
            await asyncio.sleep(1.2)
            assert await page_status(base, cookie) == 303  # expired
        async with running_server(same) as base:
            cookie = await login(base)
            assert await page_status(base, cookie) == 200
        async with running_server(changed) as base:
            assert await page_status(base, cookie) == 303  # a new token: every old session is gone

    asyncio.run(main())


def test_session_table_ends_sessions_of_an_old_token_and_stays_bounded():
    from headrace.config import Secret
    from headrace.console.sessions import Sessions

    now = [1000.0]
    table = Sessions(60, lambda: now[0], limit=3)
    old, new = Secret("a" * 20), Secret("b" * 20)
    sid, _ = table.open(old)
    assert table.get(sid, old) is not None
    assert table.get(sid, new) is None  # the token changed (SIGHUP reload): the session is gone for good
    assert table.get(sid, old) is None
    ids = [table.open(new)[0] for _ in range(5)]
    assert len(table) == 3 and table.get(ids[0], new) is None and table.get(ids[-1], new) is not None
    now[0] += 61
    assert table.get(ids[-1], new) is None


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is installed by .ci/run (Debian package chromium)")
def test_chromium_renders_the_event_list_and_a_timeline(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("status", count=1, status=404))
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url()), tmp_path)

    async def main() -> tuple[str, str]:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await deliver_some(base, http)
            listing = await asyncio.to_thread(chromium, f"{base}/console/", tmp_path / "events.png")
            timeline = await asyncio.to_thread(chromium, f"{base}/console/events/2", tmp_path / "event.png")
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
