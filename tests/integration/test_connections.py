"""Thousands of slow or half-open connections on real loopback sockets: legitimate senders keep being served,
slow headers and bodies are cut off by their timeouts, and aborted uploads log one quiet line each."""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import config_text, dodo_body, free_port, post, running_server, settings_for, signed_headers

SERVER_FDS = 1024  # the headrace process's open-files limit in the flood test, as on many default systems
HALF_OPEN = 2000


def wait_healthy(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        assert process.poll() is None, "headrace serve exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("headrace did not become healthy")


def limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SERVER_FDS, SERVER_FDS))


def half_open_upload(port: int) -> socket.socket:
    """Headers announcing 1,000 bytes of body, then 10 bytes, then nothing: an upload that never finishes."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST /webhooks/dodo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"webhook-id: msg_slow\r\nwebhook-timestamp: 1\r\nwebhook-signature: v1,AAAA\r\n"
        b"Content-Length: 1000\r\n\r\n" + b'{"type": "'
    )
    return sock


def legit_post(port: int, webhook_id: str) -> tuple[int, float]:
    body = dodo_body()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/dodo", data=body, headers=signed_headers(body, webhook_id), method="POST"
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, time.monotonic() - started


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[0] < HALF_OPEN + 500,
    reason=f"the test process needs {HALF_OPEN + 500} open files (ulimit -n)",
)
def test_legitimate_posts_are_served_while_thousands_of_uploads_hang(tmp_path: Path):
    port = free_port()
    config = tmp_path / "h.toml"
    config.write_text(
        config_text(
            tmp_path / "h.db",
            port,
            extra_server='max_connections = 500\nheader_timeout = "60s"\nbody_timeout = "60s"',
        )
    )
    log_path = tmp_path / "serve.log"  # a file, not a pipe nobody reads while the flood runs
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        text=True,
        preexec_fn=limit_fds,
    )
    held: list[socket.socket] = []
    try:
        wait_healthy(port, process)
        baseline = min(legit_post(port, f"msg_base_{i}")[1] for i in range(3))
        for _ in range(HALF_OPEN):
            held.append(half_open_upload(port))
        # The first waits in the kernel's accept queue behind the flood's last connections; then the steady
        # state: max_connections uploads held open, and a sender still served at once.
        first = legit_post(port, "msg_first")
        assert first[0] == 202 and first[1] < 5.0, first
        answers = [legit_post(port, f"msg_during_{i}") for i in range(5)]
        assert [status for status, _ in answers] == [202] * 5
        worst = max(seconds for _, seconds in answers)
        assert worst < 0.5, f"a legitimate POST took {worst:.3f}s with {HALF_OPEN} uploads hanging"
        print(
            f"legit POST: {baseline * 1000:.1f} ms alone; under {HALF_OPEN} hanging uploads the first took "
            f"{first[1] * 1000:.0f} ms, then worst {worst * 1000:.1f} ms"
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        for sock in held:
            sock.close()
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log_file.close()
    stderr = log_path.read_text()
    assert process.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[:3000]
    aborted = [line for line in stderr.splitlines() if "upload aborted" in line]
    assert aborted, "closing the hanging uploads should be noticed"
    assert len(aborted) <= HALF_OPEN
    assert "connection cap reached" in stderr


def test_slow_headers_and_slow_bodies_are_cut_off(tmp_path: Path):
    extra = 'header_timeout = "1s"\nbody_timeout = "1s"'
    port = free_port()
    settings = settings_for(config_text(tmp_path / "h.db", port, extra_server=extra), tmp_path)

    async def until_closed(reader: asyncio.StreamReader) -> tuple[bytes, float]:
        started = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 10)
        return data, time.monotonic() - started

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            # Headers that never finish: the connection is closed after header_timeout, without an answer.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /webhooks/dodo HTTP/1.1\r\nHost: 127.0.0.1\r\nwebhook-id: msg")
            data, seconds = await until_closed(reader)
            assert data == b"" and 0.5 < seconds < 4, (data, seconds)
            writer.close()
            # A body that never finishes: 408 with the JSON contract after body_timeout, then closed.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = dodo_body()
            headers = signed_headers(body, "msg_slow_body")
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(
                f"POST /webhooks/dodo HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:20]
            )
            data, seconds = await until_closed(reader)
            writer.close()
            assert data.startswith(b"HTTP/1.1 408") and 0.5 < seconds < 4, (data[:200], seconds)
            assert json.loads(data.partition(b"\r\n\r\n")[2])["error"] == "body_timeout"
            # The same for the management API's bodies.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /api/v1/replay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
            data, seconds = await until_closed(reader)
            writer.close()
            assert data.startswith(b"HTTP/1.1 408") and 0.5 < seconds < 4, (data[:200], seconds)
            # Meanwhile and afterwards, a normal sender is served.
            assert (await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_ok")))[0] == 202
            async with http.get(f"{base}/api/v1/rejections") as response:
                counts = {c["reason"]: c["count"] for c in (await response.json())["counts"]}
            assert counts == {"body_timeout": 1}

    asyncio.run(main())


def test_serve_says_in_one_line_when_the_port_is_taken(tmp_path: Path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    config = tmp_path / "h.toml"
    config.write_text(config_text(tmp_path / "h.db", port, "http://127.0.0.1:9/api/w/x/jobs/run/f/f/dodo/x"))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        holder.close()
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "already in use" in lines[0] and f"127.0.0.1:{port}" in lines[0] and "[server] listen" in lines[0]
    assert not (tmp_path / "h.db").exists()  # the port is bound before the store opens or the worker starts
