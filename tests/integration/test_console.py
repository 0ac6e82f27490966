"""The operator console over real HTTP, and rendered by a real headless Chromium."""

from __future__ import annotations

import asyncio
import re
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

TOKEN = "console-admin-token-1"
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
            assert "HTTP 403" in timeline or ">403<" in timeline
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
                async with http.get(f"{base}/console/") as response:
                    csrf = csrf_of(await response.text())
                async with http.post(f"{base}/console/logout", data={"csrf": csrf}) as response:
                    assert response.url.path == "/console/login"
                async with http.get(f"{base}/console/", allow_redirects=False) as response:
                    assert response.status == 303

    asyncio.run(main())


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


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
            async with aiohttp.ClientSession(cookies={"headrace_session": first}) as http:
                async with http.get(f"{base}/console/") as response:
                    csrf = csrf_of(await response.text())
                async with http.post(f"{base}/console/logout", data={"csrf": csrf}, allow_redirects=False) as response:
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
    assert table.get(sid, (old,)) is not None
    assert table.get(sid, (new,)) is None  # the token changed (SIGHUP reload): the session is gone for good
    assert table.get(sid, (old,)) is None
    ids = [table.open(new)[0] for _ in range(5)]
    assert len(table) == 3 and table.get(ids[0], (new,)) is None and table.get(ids[-1], (new,)) is not None
    now[0] += 61
    assert table.get(ids[-1], (new,)) is None


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
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:  # its helpers may still write
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


async def replay_generations(base: str, key: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/events/{key}") as response:
        return len((await response.json())["deliveries"])


def test_cross_origin_posts_are_refused_and_change_nothing(tmp_path: Path, emulator: EmulatorThread):
    """Within a session: another origin, or no CSRF token, is refused; the console's own form goes through."""
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url(), admin_token=TOKEN), tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        async with running_server(settings) as base:
            body = dodo_body()
            async with aiohttp.ClientSession() as http:
                assert (await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_x")))[0] == 202
            cookie = await login(base)
            async with (
                aiohttp.ClientSession(cookies={"headrace_session": cookie}) as http,
                aiohttp.ClientSession(headers=auth) as api,
            ):
                async with http.get(f"{base}/console/events/msg_x") as response:
                    csrf = csrf_of(await response.text())
                url = f"{base}/console/events/msg_x/replay"
                other = base.rsplit(":", 1)[0] + ":1"  # same host, another port: same site, another origin
                attempts = [
                    ({"Origin": other}, {"csrf": csrf}),
                    ({"Origin": "null"}, {"csrf": csrf}),
                    ({"Origin": base}, {}),
                    ({"Origin": base}, {"csrf": "x" * len(csrf)}),
                    ({"Sec-Fetch-Site": "same-site"}, {"csrf": csrf}),
                ]
                for headers, form in attempts:
                    async with http.post(url, headers=headers, data=form, allow_redirects=False) as response:
                        assert response.status == 403, (headers, form)
                        assert (await response.json())["error"] == "cross_site_request"
                async with api.get(f"{base}/api/v1/events/msg_x") as response:
                    assert len((await response.json())["deliveries"]) == 1  # generation 0 only: no replay
                async with http.post(url, headers={"Origin": base}, data={"csrf": csrf}, allow_redirects=False) as r:
                    assert r.status == 303 and "replayed=" in r.headers["Location"]
                # A bearer header is not ambient authority: no Origin or CSRF token needed.
                async with api.post(url, headers={"Origin": other}, allow_redirects=False) as response:
                    assert response.status == 303
                # A login form posted from another origin is refused too.
                async with (
                    aiohttp.ClientSession() as fresh,
                    fresh.post(f"{base}/console/login", data={"token": TOKEN}, headers={"Origin": other}) as response,
                ):
                    assert response.status == 403

    asyncio.run(main())


ATTACK = """<!doctype html><html><body>
<form id="f" method="post" action="{target}"><input name="csrf" value="guess"></form>
<script>document.getElementById("f").submit();</script>
</body></html>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is installed by .ci/run (Debian package chromium)")
def test_chromium_page_on_another_port_cannot_replay(tmp_path: Path, emulator: EmulatorThread, caplog):
    """The reported attack, in a real browser: a page on another port of 127.0.0.1 auto-submits the replay form
    of an open (loopback) console. Chromium sends it (the server sees and refuses it); nothing is replayed."""
    from aiohttp import web

    settings = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url()), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await deliver_some(base, http)
            before = await replay_generations(base, "msg_fail")
            page = ATTACK.format(target=f"{base}/console/events/msg_fail/replay")

            async def attack(request: web.Request) -> web.Response:
                return web.Response(text=page, content_type="text/html")

            evil = web.Application()
            evil.router.add_get("/", attack)
            runner = web.AppRunner(evil)
            await runner.setup()
            evil_port = free_port()
            await web.TCPSite(runner, "127.0.0.1", evil_port).start()
            try:
                dom = await asyncio.to_thread(chromium_dom, f"http://127.0.0.1:{evil_port}/")
            finally:
                await runner.cleanup()
            assert "cross_site_request" in dom  # Chromium followed the form to headrace's refusal
            assert await replay_generations(base, "msg_fail") == before

    with caplog.at_level("WARNING", logger="headrace.console"):
        asyncio.run(main())
    assert any("another origin (http://127.0.0.1:" in r.getMessage() for r in caplog.records)


def chromium_dom(url: str) -> str:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:  # its helpers may still write
        flags = [
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ]
        return subprocess.run(flags, capture_output=True, text=True, timeout=60, check=True).stdout


def test_every_console_route_is_guarded_and_carries_security_headers(tmp_path: Path):
    """Enumerates the console sub-application's routes, so a page added later is checked without editing this."""
    from headrace.console import SECURITY_HEADERS
    from headrace.console.auth import PUBLIC

    settings = settings_for(config_text(tmp_path / "h.db", free_port(), admin_token=TOKEN), tmp_path)
    templates = Path(__file__).resolve().parents[2] / "src" / "headrace" / "console" / "templates"
    own_script = re.compile(r'<script src="\{\{ root \}\}/static/[a-z]+\.js" defer></script>')
    for template in templates.glob("*.html"):
        text = own_script.sub("", template.read_text())  # only our own static files, never inline code
        assert "<script" not in text and "<style" not in text and "style=" not in text, template.name
        assert not re.search(r"\son[a-z]+=", text), template.name  # no inline event handlers either
    assert "unsafe-inline" not in SECURITY_HEADERS["Content-Security-Policy"]

    async def main() -> None:
        async with running_server(settings) as base:
            from headrace.console import ROUTES

            routes = [
                (method, "/console" + path.replace("{key}", "1").replace("{name}", "console.css"), handler)
                for method, path, handler in ROUTES
            ]
            guarded = [(method, path) for method, path, handler in routes if handler not in PUBLIC]
            assert len(guarded) >= 6
            cookie = await login(base)
            async with aiohttp.ClientSession() as http:
                for method, path, _ in routes:
                    async with http.request(method, base + path, allow_redirects=False) as response:
                        for name, value in SECURITY_HEADERS.items():
                            assert response.headers.get(name) == value, (method, path, name)
                        if (method, path) in guarded:
                            assert response.status in (303, 403), (method, path, response.status)
                            if response.status == 303:
                                assert response.headers["Location"] == "/console/login"
            async with aiohttp.ClientSession(cookies={"headrace_session": cookie}) as http:
                for path in ("/console/", "/console/rejections", "/console/destinations", "/console/events/1"):
                    async with http.get(base + path) as response:
                        assert response.status == 200
                        assert response.headers["X-Frame-Options"] == "DENY"
                async with http.get(f"{base}/console/static/console.css") as response:
                    assert response.status == 200 and response.content_type == "text/css"
                async with http.get(f"{base}/console/static/../__init__.py") as response:
                    assert response.status == 404

    asyncio.run(main())
