"""Run requests over headrace's own keep-alive connections (windmill/connections.py) read every answer the way the
aiohttp session does: each scenario runs through both (`via`), against a loopback server that writes the bytes
the test gives it, and the two must agree. Then what only the connections do: reuse, idle expiry, close."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.windmill.api import RESPONSE_LIMIT, RunResponse
from headrace.windmill.client import WindmillClient
from headrace.windmill.connections import DNS_TTL, KEEPALIVE_TIMEOUT, RunConnections, RunError, default_tls
from headrace.windmill.urls import parse_run_url

PATH = "/api/w/demo/jobs/run/p/f/dodo/on_payment"
JOB = "0b0c2d5e-7f57-4a0e-9d44-7d2f7f3c6a10"
CREATED = f"HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\ncontent-length: 36\r\n\r\n{JOB}".encode()
HANG = b""  # an answer that never comes
CLOSE = b"close"  # close the connection instead of answering


@dataclass
class Server:
    """A loopback HTTP/1.1 server that answers each request with the next of `answers` (bytes as given); after
    an answer, `close_after` closes the connection. It keeps every request and counts the connections."""

    answers: list[bytes]
    close_after: bool = False
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0
    ended: int = 0  # connections the client closed
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.ended += 1
                    return
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                self.requests.append(head + body)
                answer = self.answers.pop(0) if self.answers else CREATED
                if answer == HANG:
                    await asyncio.sleep(3600)
                if answer == CLOSE:
                    return
                writer.write(answer)
                await writer.drain()
                head = answer.partition(b"\r\n\r\n")[0].lower()
                if self.close_after or b"connection: close" in head or not re.search(b"length|chunked", head):
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def serving(server: Server, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.port}{PATH}"
    finally:
        listening.close()
        if hasattr(listening, "close_clients"):
            listening.close_clients()


@contextlib.asynccontextmanager
async def client(via: str, tls: ssl.SSLContext | None = None) -> AsyncIterator[WindmillClient]:
    connector = aiohttp.TCPConnector(limit=0, ssl=tls if tls is not None else True)
    async with aiohttp.ClientSession(connector=connector, headers={"User-Agent": "headrace"}) as session:
        runs = RunConnections(tls) if via == "connections" else None
        try:
            yield WindmillClient(session, runs)
        finally:
            if runs is not None:
                await runs.close()


async def run(windmill: WindmillClient, url: str, timeout: float = 10.0, **headers: str) -> RunResponse:
    sent = {"Content-Type": "application/json", "Authorization": "Bearer t0ken", **headers}
    return await windmill.run(parse_run_url(url)[0], f"{url}?job_id={JOB}", b'{"a":1}', sent, timeout=timeout)


def scenario(
    answers: list[bytes], rounds: int = 1, via: str = "connections", **options: object
) -> tuple[list[RunResponse], Server]:
    server = Server(list(answers), **options)  # type: ignore[arg-type]

    async def go() -> list[RunResponse]:
        async with serving(server) as url, client(via) as windmill:
            return [await run(windmill, url) for _ in range(rounds)]

    return asyncio.run(go()), server


def same(responses: list[RunResponse]) -> list[tuple[object, ...]]:
    """What a delivery reads from an answer (the duration aside)."""
    return [(r.status, r.body, dict(r.headers), r.error) for r in responses]


VIA = pytest.mark.parametrize("via", ["session", "connections"])


@VIA
def test_a_content_length_answer_is_read_and_the_connection_kept(via: str) -> None:
    responses, server = scenario([CREATED, CREATED], rounds=2, via=via)
    assert same(responses) == [(201, JOB, {}, None)] * 2
    assert server.connections == 1


@VIA
def test_the_request_carries_the_same_head_and_body(via: str) -> None:
    _, server = scenario([CREATED], via=via)
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == f"POST {PATH}?job_id={JOB} HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["User-Agent"] == "headrace" and headers["Accept"] == "*/*"
    assert headers["Content-Type"] == "application/json" and headers["Authorization"] == "Bearer t0ken"
    assert headers["Content-Length"] == "7" and body == b'{"a":1}'


@VIA
def test_a_chunked_answer_is_read_whole(via: str) -> None:
    chunked = (
        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"".join(f"{len(part):x}\r\n".encode() + part.encode() + b"\r\n" for part in (JOB[:10], JOB[10:20], JOB[20:]))
        + b"0\r\n\r\n"
    )
    responses, server = scenario([chunked, CREATED], rounds=2, via=via)
    assert same(responses) == [(201, JOB, {}, None)] * 2
    assert server.connections == 1


@VIA
def test_an_answer_over_the_limit_is_cut_at_it_and_its_connection_not_reused(via: str) -> None:
    big = b"x" * (3 * RESPONSE_LIMIT)
    over = b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n%s" % (len(big), big)
    responses, server = scenario([over, CREATED], rounds=2, via=via)
    assert responses[0].status == 500 and responses[0].body == "x" * RESPONSE_LIMIT
    assert same(responses[1:]) == [(201, JOB, {}, None)]
    assert server.connections == 2


@VIA
def test_a_chunked_answer_over_the_limit_is_cut_too(via: str) -> None:
    part = b"y" * 20000
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for _ in range(RESPONSE_LIMIT // len(part) + 2))
    responses, _ = scenario(
        [b"HTTP/1.1 502 Bad\r\ntransfer-encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"], via=via
    )
    assert responses[0].status == 502 and responses[0].body == "y" * RESPONSE_LIMIT


@VIA
def test_an_answer_exactly_at_the_limit_is_whole(via: str) -> None:
    body = b"z" * RESPONSE_LIMIT
    responses, _ = scenario([b"HTTP/1.1 400 Bad\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)], via=via)
    assert responses[0].status == 400 and responses[0].body == body.decode()


@VIA
def test_retry_after_is_passed_on(via: str) -> None:
    answer = b"HTTP/1.1 429 Too Many\r\nRetry-After: 7\r\ncontent-length: 4\r\n\r\nslow"
    responses, _ = scenario([answer], via=via)
    assert same(responses) == [(429, "slow", {"Retry-After": "7"}, None)]


@VIA
def test_connection_close_is_honoured(via: str) -> None:
    closing = CREATED.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n", 1)
    responses, server = scenario([closing, CREATED], rounds=2, via=via)
    assert same(responses) == [(201, JOB, {}, None)] * 2
    assert server.connections == 2


@VIA
def test_an_answer_without_a_length_ends_with_its_connection(via: str) -> None:
    responses, server = scenario([f"HTTP/1.1 201 Created\r\n\r\n{JOB}".encode(), CREATED], rounds=2, via=via)
    assert same(responses) == [(201, JOB, {}, None)] * 2
    assert server.connections == 2


@VIA
def test_a_server_that_closes_the_kept_connection_between_requests_costs_nothing(via: str) -> None:
    server = Server([], close_after=True)  # as a server does after its idle timeout

    async def go() -> list[RunResponse]:
        async with serving(server) as url, client(via) as windmill:
            responses = []
            for ended in range(3):
                await until(lambda ended=ended: server.connections == ended)
                responses.append(await run(windmill, url))
                await asyncio.sleep(0.05)
            return responses

    assert same(asyncio.run(go())) == [(201, JOB, {}, None)] * 3
    assert server.connections == 3 and len(server.requests) == 3


@VIA
def test_a_connection_closed_before_the_answer_is_an_error_and_the_request_is_not_sent_again(via: str) -> None:
    responses, server = scenario([CLOSE], via=via)
    assert same(responses) == [(None, "", {}, "Windmill closed the connection before answering")]
    assert len(server.requests) == 1


@VIA
def test_an_answer_cut_by_the_connection_is_an_error(via: str) -> None:
    responses, server = scenario(
        [b"HTTP/1.1 201 Created\r\ncontent-length: 100\r\n\r\nshort"], via=via, close_after=True
    )
    assert responses[0].status is None and responses[0].error
    assert len(server.requests) == 1


@VIA
def test_informational_answers_are_skipped(via: str) -> None:
    responses, _ = scenario([b"HTTP/1.1 100 Continue\r\n\r\n" + CREATED], via=via)
    assert same(responses) == [(201, JOB, {}, None)]


@VIA
def test_a_gzip_answer_is_decoded(via: str) -> None:
    packed = gzip.compress(JOB.encode())
    answer = b"HTTP/1.1 201 Created\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(packed), packed)
    responses, _ = scenario([answer], via=via)
    assert same(responses) == [(201, JOB, {}, None)]


@VIA
def test_a_body_that_is_not_utf8_is_replaced_not_refused(via: str) -> None:
    responses, _ = scenario([b"HTTP/1.1 400 Bad\r\ncontent-length: 4\r\n\r\nab\xffc"], via=via)
    assert same(responses) == [(400, "ab\ufffdc", {}, None)]


@VIA
def test_no_answer_within_the_timeout(via: str) -> None:
    server = Server([HANG, CREATED])

    async def go() -> list[RunResponse]:
        async with serving(server) as url, client(via) as windmill:
            return [await run(windmill, url, timeout=0.3), await run(windmill, url)]

    slow, after = asyncio.run(go())
    assert slow.status is None and slow.error == "no answer within 0.3s"
    assert same([after]) == [(201, JOB, {}, None)]
    assert server.connections == 2  # the timed-out connection is never reused


@VIA
def test_a_refused_connection_is_named(via: str) -> None:
    server = Server([])

    async def go() -> RunResponse:
        async with serving(server) as url:
            pass
        async with client(via) as windmill:
            return await run(windmill, url)

    refused = asyncio.run(go())
    assert refused.status is None
    assert refused.error is not None and refused.error.startswith(f"cannot connect to 127.0.0.1:{server.port}: ")


@VIA
def test_a_header_with_a_line_break_is_never_sent(via: str) -> None:
    server = Server([])

    async def go() -> None:
        async with serving(server) as url, client(via) as windmill:
            with pytest.raises(ValueError, match=r"line break|control character"):
                await run(windmill, url, **{"X-Bad": "a\r\nInjected: yes"})

    asyncio.run(go())
    assert server.requests == []


def test_a_request_line_with_a_space_or_a_line_break_is_never_sent() -> None:
    """The request line is written by hand: a target or method that would split it is refused before a byte goes."""
    server = Server([])

    async def go() -> None:
        async with serving(server) as url:
            runs = RunConnections()
            try:
                for target, method in ((f"{url}?job_id=a\r\nX: y", "POST"), (f"{url}?a b", "POST"), (url, "POST /x")):
                    with pytest.raises(ValueError, match="request target"):
                        await runs.send(target, method, {}, b"{}", 1024, 5.0)
            finally:
                await runs.close()

    asyncio.run(go())
    assert server.requests == []


# TLS: a certificate made for 127.0.0.1, trusted by the client's context, or not.


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(the server's context, a client context that trusts the server's self-signed certificate)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs openssl: apt-get install openssl (Debian)")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    trusting = default_tls()
    trusting.load_verify_locations(tmp_path / "cert.pem")
    return server, trusting


@VIA
def test_https_with_a_trusted_certificate(via: str, certificate: tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server = Server([CREATED, CREATED])

    async def go() -> list[RunResponse]:
        async with serving(server, certificate[0]) as url, client(via, certificate[1]) as windmill:
            return [await run(windmill, url), await run(windmill, url)]

    assert same(asyncio.run(go())) == [(201, JOB, {}, None)] * 2
    assert server.connections == 1


@VIA
def test_https_with_an_unknown_certificate_is_refused(
    via: str, certificate: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    server = Server([CREATED])

    async def go() -> RunResponse:
        async with serving(server, certificate[0]) as url, client(via) as windmill:
            return await run(windmill, url)

    refused = asyncio.run(go())
    assert refused.status is None and refused.error is not None
    assert refused.error.startswith(f"cannot connect to 127.0.0.1:{server.port}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert server.requests == []


# What only headrace's connections do.


def test_an_idle_connection_is_not_reused_after_the_keepalive_timeout() -> None:
    server = Server([])
    now = [0.0]

    async def go() -> None:
        async with serving(server) as url, aiohttp.ClientSession() as session:
            runs = RunConnections(clock=lambda: now[0])
            windmill = WindmillClient(session, runs)
            await run(windmill, url)
            now[0] += KEEPALIVE_TIMEOUT - 1
            await run(windmill, url)
            assert server.connections == 1
            now[0] += KEEPALIVE_TIMEOUT + 1
            await run(windmill, url)
            assert server.connections == 2
            await runs.close()

    asyncio.run(go())


def test_the_sweep_closes_connections_left_idle_and_keeps_the_fresh_ones() -> None:
    server = Server([])
    now = [0.0]

    async def go() -> None:
        async with serving(server) as url, aiohttp.ClientSession() as session:
            runs = RunConnections(clock=lambda: now[0])
            windmill = WindmillClient(session, runs)
            await asyncio.gather(run(windmill, url), run(windmill, url))  # two connections, kept
            now[0] += KEEPALIVE_TIMEOUT - 5
            await run(windmill, url)  # one of them used again
            now[0] += 6
            runs._expire()  # what the sweep's timer calls
            await until(lambda: server.ended == 1)
            await run(windmill, url)
            assert server.connections == 2  # the fresh one was kept
            await runs.close()

    asyncio.run(go())


def test_close_ends_every_connection_and_refuses_new_requests() -> None:
    server = Server([CREATED, CREATED, HANG])

    async def go() -> RunResponse:
        async with serving(server) as url, aiohttp.ClientSession() as session:
            runs = RunConnections()
            windmill = WindmillClient(session, runs)
            await asyncio.gather(run(windmill, url), run(windmill, url))  # two connections, both kept
            hanging = asyncio.create_task(run(windmill, url))  # on one of them, in flight
            await until(lambda: len(server.requests) == 3)
            await runs.close()
            await until(lambda: server.ended == 1)  # the idle one saw the end; the hanging one's handler sleeps
            with pytest.raises(RuntimeError, match="closed"):
                await run(windmill, url)
            return await hanging

    in_flight = asyncio.run(go())
    assert in_flight.status is None and in_flight.error == "Windmill closed the connection before answering"


def test_the_handler_s_own_user_agent_replaces_the_default() -> None:
    server = Server([])

    async def go() -> None:
        async with serving(server) as url, client("connections") as windmill:
            await run(windmill, url, **{"user-agent": "mine"})

    asyncio.run(go())
    head = server.requests[0].decode().lower()
    assert head.count("user-agent:") == 1 and "user-agent: mine" in head


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the server's state, set by its tasks in this loop
            await asyncio.sleep(0.01)


def test_a_host_s_addresses_are_kept_until_the_ttl_or_a_failed_connect_then_looked_up_again() -> None:
    """Windmill moved (a redeploy behind the same name): the connect to the address looked up before fails, that
    request is an error (sent nowhere), and the next one looks the name up again and reaches the new address.
    Within DNS_TTL and while connects succeed, the name is not looked up again; past it, it is."""
    closing = CREATED.replace(b"content-length", b"connection: close\r\ncontent-length")  # a connection each
    first, second = Server([closing] * 2), Server([closing] * 3)
    now = [0.0]
    lookups: list[tuple[str, int]] = []
    where = {"server": first}

    async def go() -> tuple[list[int | None], str]:
        loop = asyncio.get_running_loop()

        async def getaddrinfo(host: str, port: int, **_: object) -> list[Any]:
            lookups.append((host, port))
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", where["server"].port))]

        loop.getaddrinfo = getaddrinfo  # type: ignore[method-assign]
        runs = RunConnections(clock=lambda: now[0])
        url = f"http://windmill.test:8000{PATH}?job_id={JOB}"
        statuses: list[int | None] = []

        async def send() -> int:
            return (await runs.send(url, "POST", {"Content-Length": "2"}, b"{}", RESPONSE_LIMIT, 10.0)).status

        try:
            async with serving(first):
                statuses += [await send(), await send()]
            async with serving(second):
                where["server"] = second
                with pytest.raises(RunError, match=r"cannot connect to windmill\.test:8000") as failed:
                    await send()  # the old address, kept: refused
                statuses.append(await send())  # looked up again: the new one
                now[0] += DNS_TTL - 1
                statuses.append(await send())
                now[0] += 2
                statuses.append(await send())  # past the TTL: looked up again
        finally:
            await runs.close()
        return statuses, str(failed.value)

    statuses, error = asyncio.run(go())
    assert "Connect call failed" in error or "refused" in error.lower()
    assert statuses == [201, 201, 201, 201, 201]
    assert (first.connections, second.connections) == (2, 3)
    assert lookups == [("windmill.test", 8000)] * 3  # the first, after the failed connect, past the TTL
