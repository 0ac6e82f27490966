"""PROTOTYPE, not used by headrace: `WindmillClient.run` over a minimal keep-alive HTTP/1.1 writer, to measure what
aiohttp's client costs per run request end to end. Python loads this file at start-up when its folder is on
PYTHONPATH, in every process of the bench (only `serve` sends run requests):

    PYTHONPATH=bench/lean_client .venv/bin/python bench/ingest.py --events 10000

Plain http only, answers with Content-Length only, no read cap, pooled connections never closed: what a real
one would need (TLS, chunked answers, the response cap, closing at shutdown) is not here.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from headrace.windmill import client
from headrace.windmill.api import RunResponse


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, str | None]] | None = None
        self.transport: Any = None
        self.closed = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        length, retry_after, close = 0, None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "retry-after":
                retry_after = value
            elif name == "connection" and value.lower() == "close":
                close = True
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if close:
            self.closed = True
            self.transport.close()
        if waiter is not None and not waiter.done():
            waiter.set_result((int(lines[0][9:12]), body, retry_after))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("Windmill closed the connection before answering"))


_POOLS: dict[tuple[str, int], list[_Connection]] = collections.defaultdict(list)


async def run(
    self: client.WindmillClient,
    target: Any,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    method: str = "POST",
    timeout: float = 30.0,
) -> RunResponse:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    pool = _POOLS[(host, port)]
    conn = None
    while pool and conn is None:
        candidate = pool.pop()
        conn = None if candidate.closed else candidate
    try:
        async with asyncio.timeout(timeout):
            if conn is None:
                _, conn = await loop.create_connection(_Connection, host, port)
            lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            path = parts.path + ("?" + parts.query if parts.query else "")
            head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: headrace\r\n{lines}"
            conn.waiter = loop.create_future()
            conn.transport.writelines((f"{head}Content-Length: {len(body)}\r\n\r\n".encode(), body))
            status, data, retry_after = await conn.waiter
    except (TimeoutError, OSError) as exc:
        if conn is not None:
            conn.transport.close()
        return RunResponse(status=None, error=str(exc), duration_ms=(time.perf_counter() - started) * 1000)
    if not conn.closed:
        pool.append(conn)
    return RunResponse(
        status=status,
        body=data.decode("utf-8", "replace"),
        headers={"Retry-After": retry_after} if retry_after else {},
        duration_ms=(time.perf_counter() - started) * 1000,
    )


client.WindmillClient.run = run  # type: ignore[method-assign]
