"""headrace behind a real nginx (Debian's package) on loopback: under a path prefix over https, with
trusted-proxy headers giving the client's address to rejection records and a Secure session cookie."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from headrace.config import Settings
from headrace.http.proxy import client_address
from tests.helpers import OTHER_SECRET, config_text, dodo_body, free_port, running_server, settings_for, signed_headers

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
OPENSSL = shutil.which("openssl")
TOKEN = "proxy-admin-token-1"

NGINX_CONF = """
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
{locations}
    }}
}}
"""


# The docs/operations.md example, verbatim between the markers.
def documented_location(upstream: int) -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    block = text.split("<!-- nginx-location -->")[1].split("```nginx")[1].split("```")[0]
    return block.replace("127.0.0.1:8787", f"127.0.0.1:{upstream}")


@pytest.fixture
def nginx(tmp_path: Path):
    if NGINX is None or OPENSSL is None:
        pytest.skip("needs nginx and openssl: apt-get install nginx-light openssl (Debian)")
    folder = tmp_path / "nginx"
    folder.mkdir()
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    processes: list[subprocess.Popen[bytes]] = []  # nginx masters this test started, stopped by their pid

    def start(upstream: int) -> int:
        port = free_port()
        conf = folder / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                user="user root;" if os.geteuid() == 0 else "",
                tmp=folder,
                port=port,
                locations=documented_location(upstream),
            )
        )
        process = subprocess.Popen(
            [NGINX or "nginx", "-c", str(conf), "-p", str(folder)], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        processes.append(process)
        deadline = time.time() + 10
        while time.time() < deadline:
            assert process.poll() is None, (folder / "error.log").read_text() if (folder / "error.log").exists() else ""
            try:
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start")

    yield start
    for process in processes:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def self_signed_ok() -> ssl.SSLContext:
    """The client side of the test's https: the proxy's certificate is self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def prefixed_settings(tmp_path: Path, upstream: int) -> Settings:
    extra = 'base_path = "/hr"\ntrusted_proxies = ["127.0.0.1"]'
    return settings_for(config_text(tmp_path / "h.db", upstream, admin_token=TOKEN, extra_server=extra), tmp_path)


def test_console_api_and_ingest_through_nginx_under_a_prefix_over_https(tmp_path: Path, nginx):
    upstream = free_port()
    settings = prefixed_settings(tmp_path, upstream)
    insecure = self_signed_ok()

    async def main() -> None:
        async with running_server(settings):
            port = nginx(upstream)
            front = f"https://127.0.0.1:{port}"
            # The client is 127.0.0.2; nginx reaches headrace from 127.0.0.1 (the trusted proxy).
            connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), ssl=insecure)
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as http:
                async with http.get(f"{front}/hr/", allow_redirects=False) as response:
                    assert response.status == 302 and response.headers["Location"] == "/hr/console/"
                async with http.get(f"{front}/hr/console/", allow_redirects=False) as response:
                    assert response.status == 303 and response.headers["Location"] == "/hr/console/login"
                async with http.get(f"{front}/hr/console/login") as response:
                    page = await response.text()
                assert 'action="/hr/console/login"' in page and 'href="/hr/console/static/console.css"' in page
                async with http.post(
                    f"{front}/hr/console/login", data={"token": TOKEN}, headers={"Origin": front}, allow_redirects=False
                ) as response:
                    assert response.status == 303 and response.headers["Location"] == "/hr/console/"
                    cookie = response.headers["Set-Cookie"]
                assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/hr/console/" in cookie
                # A forged X-Forwarded-For from the client does not change who it is.
                body = dodo_body()
                bad = signed_headers(body, "msg_bad", secret=OTHER_SECRET) | {"X-Forwarded-For": "203.0.113.9"}
                async with http.post(f"{front}/hr/webhooks/dodo", data=body, headers=bad) as response:
                    assert response.status == 401
                good = signed_headers(body, "msg_good")
                async with http.post(f"{front}/hr/webhooks/dodo", data=body, headers=good) as response:
                    assert response.status == 202
                # The console's own form, through the proxy: Origin https://127.0.0.1:PORT is its own.
                async with http.get(f"{front}/hr/console/events/msg_good") as response:
                    assert response.status == 200
                    csrf = re.search(r'name="csrf" value="([^"]+)"', await response.text())
                assert csrf is not None
                async with http.post(
                    f"{front}/hr/console/events/msg_good/replay",
                    data={"csrf": csrf.group(1)},
                    headers={"Origin": front},
                    allow_redirects=False,
                ) as response:
                    assert response.status == 303 and response.headers["Location"].startswith("/hr/console/events/")
                auth = {"Authorization": f"Bearer {TOKEN}"}
                async with http.get(f"{front}/hr/api/v1/rejections", headers=auth) as response:
                    rejections = (await response.json())["rejections"]
                assert [r["remote"] for r in rejections] == ["127.0.0.2"]
                async with http.get(f"{front}/hr/metrics") as response:
                    assert response.status == 401
            # Straight to headrace from an untrusted address, X-Forwarded-For is ignored.
            direct = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            async with aiohttp.ClientSession(connector=direct) as http:
                async with http.post(
                    f"http://127.0.0.1:{upstream}/hr/webhooks/dodo", data=body, headers=bad
                ) as response:
                    assert response.status == 401
                async with http.get(f"http://127.0.0.1:{upstream}/healthz") as response:
                    assert response.status == 200
            async with (
                aiohttp.ClientSession(headers=auth) as http,
                http.get(f"http://127.0.0.1:{upstream}/hr/api/v1/rejections") as response,
            ):
                remotes = sorted(r["remote"] for r in (await response.json())["rejections"])
            assert remotes == ["127.0.0.2", "127.0.0.2"]

    asyncio.run(main())


def test_forwarded_for_is_read_from_the_right_and_only_from_trusted_peers():
    import ipaddress

    nets = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))
    assert client_address("192.0.2.1", "198.51.100.7", nets) == "192.0.2.1"  # untrusted peer: header ignored
    assert client_address("127.0.0.1", "198.51.100.7", nets) == "198.51.100.7"
    assert client_address("127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3", nets) == "198.51.100.7"
    assert client_address("127.0.0.1", "", nets) == "127.0.0.1"
    assert client_address("127.0.0.1", "not-an-ip", nets) == "127.0.0.1"
    assert client_address("127.0.0.1", "[2001:db8::1]:443", nets) == "2001:db8::1"


CADDY = shutil.which("caddy")


def documented_caddy_site(front: int, upstream: int) -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    block = text.split("<!-- caddy-site -->")[1].split("```caddy")[1].split("```")[0]
    return block.replace("example.com", f"http://127.0.0.1:{front}").replace("127.0.0.1:8787", f"127.0.0.1:{upstream}")


@pytest.mark.skipif(CADDY is None, reason="needs caddy: apt-get install caddy (Debian)")
def test_the_documented_caddy_site_keeps_the_prefix_and_the_client_address(tmp_path: Path):
    upstream, front = free_port(), free_port()
    settings = prefixed_settings(tmp_path, upstream)
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text("{\n    admin off\n}\n" + documented_caddy_site(front, upstream))
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    caddy = subprocess.Popen(
        [CADDY or "caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )  # stopped below by its pid

    async def main() -> None:
        async with running_server(settings):
            base = f"http://127.0.0.1:{front}"
            connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                await caddy_answers(http, base, caddy)
                async with http.get(f"{base}/hr/console/", allow_redirects=False) as response:
                    assert response.status == 303 and response.headers["Location"] == "/hr/console/login"
                async with http.post(
                    f"{base}/hr/console/login", data={"token": TOKEN}, headers={"Origin": base}, allow_redirects=False
                ) as response:
                    assert response.status == 303 and "Path=/hr/console/" in response.headers["Set-Cookie"]
                body = dodo_body()
                bad = signed_headers(body, "msg_bad", secret=OTHER_SECRET) | {"X-Forwarded-For": "203.0.113.9"}
                async with http.post(f"{base}/hr/webhooks/dodo", data=body, headers=bad) as response:
                    assert response.status == 401
                async with http.get(
                    f"{base}/hr/api/v1/rejections", headers={"Authorization": f"Bearer {TOKEN}"}
                ) as response:
                    assert [r["remote"] for r in (await response.json())["rejections"]] == ["127.0.0.2"]

    try:
        asyncio.run(main())
    finally:
        caddy.terminate()
        try:
            caddy.wait(10)
        except subprocess.TimeoutExpired:
            caddy.kill()


async def caddy_answers(http: aiohttp.ClientSession, base: str, caddy: subprocess.Popen[bytes]) -> None:
    """Wait until Caddy forwards to headrace (it takes a moment to start)."""
    deadline = time.time() + 15
    while True:
        try:
            async with http.get(f"{base}/hr/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        assert time.time() < deadline and caddy.poll() is None, "caddy did not start"
        await asyncio.sleep(0.1)


def _start_caddy(tmp_path: Path, site: str) -> subprocess.Popen[bytes]:
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text("{\n    admin off\n}\n" + site)
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    return subprocess.Popen(
        [CADDY or "caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )  # stopped by the caller, by its pid


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


# A webhook URL pasted without the prefix (or any other path) must not be answered 2xx: Dodo counts any 2xx as
# delivered, and the event would be lost without a trace.
OUTSIDE_PATHS = ("/webhooks/dodo", "/", "/hr", "/other/webhooks/dodo", "/hrx/webhooks/dodo")


@pytest.mark.skipif(CADDY is None, reason="needs caddy: apt-get install caddy (Debian)")
def test_the_documented_caddy_site_answers_404_outside_the_prefix(tmp_path: Path):
    upstream, front = free_port(), free_port()
    settings = prefixed_settings(tmp_path, upstream)
    caddy = _start_caddy(tmp_path, documented_caddy_site(front, upstream))

    async def main() -> None:
        async with running_server(settings):
            base = f"http://127.0.0.1:{front}"
            async with aiohttp.ClientSession() as http:
                await caddy_answers(http, base, caddy)
                body = dodo_body()
                for path in OUTSIDE_PATHS:
                    headers = signed_headers(body, "msg_outside")
                    async with http.post(f"{base}{path}", data=body, headers=headers, allow_redirects=False) as r:
                        assert r.status == 404, (path, r.status)
                async with http.post(
                    f"{base}/hr/webhooks/dodo", data=body, headers=signed_headers(body, "msg_in")
                ) as r:
                    assert r.status == 202

    try:
        asyncio.run(main())
    finally:
        _stop(caddy)


def test_the_documented_nginx_block_answers_404_outside_the_prefix(tmp_path: Path, nginx):
    upstream = free_port()
    settings = prefixed_settings(tmp_path, upstream)
    insecure = self_signed_ok()

    async def main() -> None:
        async with running_server(settings):
            front = f"https://127.0.0.1:{nginx(upstream)}"
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=insecure)) as http:
                body = dodo_body()
                for path in OUTSIDE_PATHS:
                    headers = signed_headers(body, "msg_outside")
                    async with http.post(f"{front}{path}", data=body, headers=headers, allow_redirects=False) as r:
                        # nginx sends the bare prefix to the location with its slash (301): not a 2xx either
                        assert r.status == 404 or (path == "/hr" and r.status == 301), (path, r.status)
                async with http.post(
                    f"{front}/hr/webhooks/dodo", data=body, headers=signed_headers(body, "msg_in")
                ) as r:
                    assert r.status == 202

    asyncio.run(main())
