"""One client holding thousands of idle connections, reconnecting whenever one is closed, cannot lock another
client's signed webhooks out: the connection caps close the flooder's own connections (those that have not sent
their headers first), not the sender's. Real sockets on loopback; the sender uses a second address, 127.0.0.2."""

from __future__ import annotations

import asyncio
import http.client
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.helpers import config_text, dodo_body, free_port, signed_headers
from tests.integration.test_connections import wait_healthy

FLOOD = 3000  # idle connections the flooder keeps open (the cap is 1000)
SENDS = 9


class IdleFlood(threading.Thread):
    """`count` connections from 127.0.0.1 that send nothing; each one closed is opened again at once."""

    def __init__(self, port: int, count: int) -> None:
        super().__init__(daemon=True)
        self.port, self.count = port, count
        self.connected = 0  # connections made so far (reconnections included)
        self._loop = asyncio.new_event_loop()
        self._done: asyncio.Event | None = None

    def run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._done = asyncio.Event()
        tasks = [asyncio.create_task(self._hold()) for _ in range(self.count)]
        await self._done.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _hold(self) -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            self.connected += 1
            try:
                await reader.read()  # until the server closes it
            except OSError:
                pass
            finally:
                writer.close()

    def stop(self) -> None:
        if self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self.join(30)


def sender(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))


def signed_post(connection: http.client.HTTPConnection, webhook_id: str) -> int:
    """A signed webhook on `connection` (kept alive); its status, or 0 when the connection was lost."""
    body = dodo_body()
    try:
        connection.request("POST", "/webhooks/dodo", body, signed_headers(body, webhook_id))
        response = connection.getresponse()
        response.read()
        return response.status
    except (OSError, http.client.HTTPException):
        connection.close()
        return 0


@pytest.mark.skipif(
    resource.getrlimit(resource.RLIMIT_NOFILE)[0] < FLOOD + 2000,
    reason=f"the test needs {FLOOD + 2000} open files (ulimit -n)",
)
def test_signed_posts_go_through_while_one_client_churns_thousands_of_idle_connections(tmp_path: Path):
    port = free_port()
    config = tmp_path / "h.toml"
    config.write_text(config_text(tmp_path / "h.db", port, extra_server="max_connections = 1000"))
    log_path = tmp_path / "serve.log"
    log_file = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    flood = IdleFlood(port, FLOOD)
    try:
        wait_healthy(port, process)
        kept = sender(port)  # a sender that keeps its connection alive between webhooks, as HTTP clients do
        assert signed_post(kept, "msg_before") == 202
        flood.start()
        fresh, reused = [], []
        for i in range(SENDS):
            # Between two webhooks the flooder opens 1,500 more connections (the cap is 1,000).
            churned = flood.connected + 1500
            while flood.connected < churned:
                assert process.poll() is None and flood.is_alive()
                threading.Event().wait(0.02)
            reused.append(signed_post(kept, f"msg_kept_{i}"))
            new = sender(port)
            fresh.append(signed_post(new, f"msg_new_{i}"))
            new.close()
        assert fresh == [202] * SENDS, fresh
        assert reused == [202] * SENDS, reused
        kept.close()
    finally:
        flood.stop()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log_file.close()
    log = log_path.read_text()
    assert "Traceback" not in log, log[:3000]
    assert "connection cap reached" in log and "127.0.0.1" in log
