"""The network rows of a destination: DNS, TCP and TLS to the Windmill host, each timed."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from urllib.parse import urlsplit

from headrace.check.report import Row
from headrace.windmill.urls import RunTarget


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def _network(subject: str, target: RunTarget, timeout: float) -> tuple[list[Row], bool]:
    """DNS, TCP and TLS to the Windmill host, timed. Returns the rows and whether the host is reachable."""
    parts = urlsplit(target.base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    rows: list[Row] = []
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (OSError, TimeoutError) as exc:
        rows.append(Row(subject, "dns", "fail", f"{host} does not resolve: {exc}", "check the host name in url"))
        return rows, False
    address = str(infos[0][4][0])
    rows.append(Row(subject, "dns", "ok", f"{host} -> {address}", ms=_ms(started)))
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (OSError, TimeoutError) as exc:
        detail = f"cannot connect to {address}:{port}: {exc or 'timed out'}"
        fix = "is Windmill running and listening on that port? a firewall or the wrong port in url?"
        rows.append(Row(subject, "tcp", "fail", detail, fix))
        return rows, False
    rows.append(Row(subject, "tcp", "ok", f"connected to {address}:{port}", ms=_ms(started)))
    try:
        if parts.scheme == "https":
            started = time.perf_counter()
            try:
                await asyncio.wait_for(writer.start_tls(ssl.create_default_context(), server_hostname=host), timeout)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                fix = "the certificate must be valid for the host name (and trusted by this machine)"
                rows.append(Row(subject, "tls", "fail", f"TLS handshake with {host} failed: {exc}", fix))
                return rows, False
            rows.append(Row(subject, "tls", "ok", f"certificate valid for {host}", ms=_ms(started)))
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        del reader
    return rows, True
