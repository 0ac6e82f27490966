"""Keep-alive HTTP/1.1 connections for Windmill run requests: one request per delivery, so the one request whose
cost is paid per event. aiohttp's client spent about a quarter of `serve`'s event loop on it (issue 22); this
sends the same request for 0.38x its CPU (`bench/run_requests.py`), and keeps what that session did for it:

- http and https (certificates verified as `ssl.create_default_context()` does, ALPN http/1.1), the address
  chosen by happy eyeballs (250 ms) after a lookup kept DNS_TTL seconds (until a connect fails); no proxy (the
  session's trust_env is off), no connection cap (its TCPConnector had limit=0: each destination's `concurrency`
  bounds the sends);
- answers framed by Content-Length, chunked, or the end of the connection, 1xx answers skipped, gzip and
  deflate bodies decoded (Accept-Encoding asks for none), read at most `cap` bytes (then cut, and the
  connection closed), `Connection: close` and HTTP/1.0 honoured;
- idle connections closed after KEEPALIVE_TIMEOUT, every connection closed by `close()`.

A request is never sent twice: when the connection goes away before the answer, the caller gets `RunError`
and the delivery is retried on its schedule, where its deterministic job id makes a repeat safe (a job that
was created answers "already exists" and is confirmed). Each request, connecting included, has its timeout.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
import zlib
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohappyeyeballs
import httptools

KEEPALIVE_TIMEOUT = 15.0  # seconds an idle connection is kept (aiohttp's default)
DNS_TTL = 300.0  # seconds a host's addresses are kept (the session's ttl_dns_cache)
HAPPY_EYEBALLS_DELAY = 0.25  # seconds before the next address is tried alongside (aiohttp's default)
# Sent unless the request sets its own (the session sent User-Agent, Accept and Accept-Encoding the same way).
DEFAULT_HEADERS = {
    "user-agent": "User-Agent: headrace\r\n",
    "accept": "Accept: */*\r\n",
    "accept-encoding": "Accept-Encoding: identity\r\n",
}


class RunError(Exception):
    """No answer could be read: the text says why, for a person (the attempt's excerpt)."""


class Answer(NamedTuple):
    status: int
    body: bytes  # at most the cap
    cut: bool  # the body was longer than the cap
    retry_after: str | None


class _Origin(NamedTuple):
    key: str  # scheme://netloc: connections are kept per origin
    host: str
    port: int
    tls: bool
    host_line: str


@functools.lru_cache(maxsize=64)
def _origin(key: str) -> _Origin:
    parts = urlsplit(key)
    tls = parts.scheme.lower() == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    netloc = parts.netloc.rpartition("@")[2]
    if parts.port in (443 if tls else 80, None):
        netloc = f"[{host}]" if ":" in host else host
    return _Origin(key, host, port, tls, f"Host: {netloc}\r\n")


def _split(url: str) -> tuple[_Origin, str]:
    """The origin of an absolute URL and the request target (path and query, as given: already encoded)."""
    at = url.find("/", url.find("//") + 2)
    if at < 0:
        return _origin(url), "/"
    return _origin(url[:at]), url[at:]


def default_tls() -> ssl.SSLContext:
    """The verified context aiohttp's connector uses: the system's CAs (SSL_CERT_FILE/SSL_CERT_DIR honoured)."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(("http/1.1",))
    return context


def _informational(status: int) -> bool:
    """100 Continue, 103 Early Hints: the answer comes after it (101 switches protocols: it is the answer)."""
    return 100 <= status < 200 and status != 101


class _Connection(asyncio.Protocol):
    """One connection and the answer being read on it (httptools' llhttp parser calls the on_* methods)."""

    def __init__(self, origin: _Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.closed = False
        self.idle_since = 0.0
        self._start(0)

    def _start(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0
        self.cut = False
        self.status = 0
        self.retry_after: str | None = None
        self.framed = False  # Content-Length or Transfer-Encoding: the end is not the connection's
        self.decoder: Any = None
        self.headers_done = False
        self.received = False
        self.keep_alive = False  # read when the answer is complete: the parser forgets it right after

    def exchange(self, data: list[bytes], cap: int) -> asyncio.Future[Answer]:
        assert self.transport is not None  # a pooled connection is connected
        self._start(cap)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.writelines(data)
        return self.waiter

    @property
    def complete(self) -> bool:
        return self.waiter is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked: a server that talks out of turn is not reused
            self.close()
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(RunError("Windmill switched protocols instead of answering"))
        except httptools.HttpParserError as exc:
            self._fail(RunError(f"Windmill's answer is not HTTP/1.1 headrace can read: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is None:
            return
        if self.headers_done and not self.framed:
            self._finish()  # an answer that ends with the connection
        elif not self.received:
            self._fail(RunError("Windmill closed the connection before answering"))
        else:
            self._fail(RunError("Windmill closed the connection in the middle of its answer"))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self.framed = True
        elif name == b"retry-after":
            self.retry_after = value.decode("latin-1").strip()
        elif name == b"content-encoding":
            coding = value.strip().lower()
            if coding in (b"gzip", b"x-gzip"):
                self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif coding == b"deflate":
                self.decoder = zlib.decompressobj()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.headers_done = not _informational(self.status)

    def on_body(self, body: bytes) -> None:
        if self.cut or self.waiter is None:
            return
        if self.decoder is not None:
            try:
                body = self.decoder.decompress(body, self.cap + 1 - self.size)
            except zlib.error as exc:
                self._fail(RunError(f"Windmill's answer cannot be decoded: {exc}"))
                return
        self.chunks.append(body)
        self.size += len(body)
        if self.size > self.cap:
            self.cut = True
            self._finish()

    def on_message_complete(self) -> None:
        if _informational(self.status):
            self._start(self.cap)  # 100 Continue, 103 Early Hints: the real answer comes next
            self.received = True
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._finish()

    def _finish(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            if self.decoder is not None and not self.cut:
                self.chunks.append(self.decoder.flush())
            body = b"".join(self.chunks)
            waiter.set_result(Answer(self.status, body[: self.cap], self.cut, self.retry_after))

    def expire(self) -> None:
        self._fail(TimeoutError())

    def _fail(self, error: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and not self.cut


class RunConnections:
    """The keep-alive connections to every Windmill headrace sends runs to, per origin; `close()` at the end."""

    def __init__(self, tls: ssl.SSLContext | None = None, clock: Any = time.monotonic) -> None:
        self._tls = tls or default_tls()  # loads the CAs from disk: once, at start
        self._clock = clock
        self._idle: dict[str, list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._addresses: dict[tuple[str, int], tuple[float, list[Any]]] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False

    async def send(
        self, url: str, method: str, headers: Mapping[str, str], body: bytes, cap: int, timeout: float
    ) -> Answer:
        """Send one request to an absolute http(s) URL (already encoded) and read its answer, at most `cap`
        bytes of the body, all within `timeout` seconds (else TimeoutError). Raises RunError (no answer; also a
        connection that could not be made) or ValueError (a header with a line break: never sent). An exchange
        that times out or is cancelled closes its connection."""
        if self._closed:
            raise RuntimeError("the connections to Windmill are closed")
        origin, target = _split(url)
        if not (target.isascii() and target.isprintable()) or " " in target or not method.isalpha():
            # parse_run_url admits no such URL; checked here too, as the one place a request line is written
            raise ValueError("the request target holds a space or a control character, or the method is not a word")
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        if lines.count("\n") != len(headers) or lines.count("\r") != len(headers) or "\0" in lines:
            raise ValueError("a header name or value holds a line break or a NUL; it cannot be sent")
        own = {name.lower() for name in headers}
        defaults = "".join(line for name, line in DEFAULT_HEADERS.items() if name not in own)
        head = f"{method} {target} HTTP/1.1\r\n{origin.host_line}{defaults}{lines}Content-Length: {len(body)}\r\n\r\n"
        data = [head.encode()]
        if body:
            data.append(body)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        connection = self._take(origin)
        if connection is None:
            async with asyncio.timeout_at(deadline):
                connection = await self._connect(origin)
        # One timer handle per exchange: asyncio.timeout cost a tenth of a delivery's own work (issue 22).
        timer = loop.call_at(deadline, connection.expire)
        try:
            return await connection.exchange(data, cap)
        finally:
            timer.cancel()
            self._give_back(connection)

    def _take(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin.key)
        now = self._clock()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE_TIMEOUT:
                return connection
            self._drop(connection)
        return None

    async def _connect(self, origin: _Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            sock = await aiohappyeyeballs.start_connection(
                await self._resolve(origin), happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
            )
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(origin),
                    sock=sock,
                    ssl=self._tls if origin.tls else None,
                    server_hostname=origin.host if origin.tls else None,
                )
            except BaseException:
                sock.close()
                raise
        except OSError as exc:
            self._addresses.pop((origin.host, origin.port), None)  # looked up again next time: Windmill may have moved
            netloc = origin.key.partition("//")[2]
            raise RunError(f"cannot connect to {netloc}: {exc.strerror or exc}") from exc
        if self._closed:
            connection.close()
            raise RuntimeError("the connections to Windmill are closed")
        self._open.add(connection)
        return connection

    async def _resolve(self, origin: _Origin) -> list[Any]:
        where = (origin.host, origin.port)
        known = self._addresses.get(where)
        if known is not None and self._clock() < known[0]:
            return known[1]
        infos = await asyncio.get_running_loop().getaddrinfo(
            origin.host, origin.port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
        )
        self._addresses[where] = (self._clock() + DNS_TTL, infos)
        return infos

    def _give_back(self, connection: _Connection) -> None:
        if self._closed or not connection.reusable():
            self._drop(connection)
            return
        connection.idle_since = self._clock()
        self._idle.setdefault(connection.origin.key, []).append(connection)
        if self._sweep is None:
            self._sweep = asyncio.get_running_loop().call_later(KEEPALIVE_TIMEOUT, self._expire)

    def _drop(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)

    def _expire(self) -> None:
        """Close the connections idle for KEEPALIVE_TIMEOUT; look again later while any are left."""
        self._sweep = None
        now = self._clock()
        for idle in self._idle.values():
            kept = [c for c in idle if not c.closed and now - c.idle_since < KEEPALIVE_TIMEOUT]
            for connection in idle:
                if connection not in kept:
                    self._drop(connection)
            idle[:] = kept
        if any(self._idle.values()):
            self._sweep = asyncio.get_running_loop().call_later(KEEPALIVE_TIMEOUT, self._expire)

    async def close(self) -> None:
        """Close every connection, idle or in use (an exchange in flight then fails with RunError)."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connection in list(self._open):
            self._drop(connection)
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing
