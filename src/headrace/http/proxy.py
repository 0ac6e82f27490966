"""Requests that came through a trusted reverse proxy: the client's address, scheme and host as the proxy saw
them. Only a peer listed in `[server] trusted_proxies` is believed; anyone else's X-Forwarded-* is ignored.

- X-Forwarded-For: read from the right, skipping trusted proxies; the first other address is the client
  (so a client cannot forge its address by sending its own header through the proxy).
- X-Forwarded-Proto (http|https): makes the console's cookie Secure and its Origin check use https.
- X-Forwarded-Host: the host the browser used, for the Origin check (or let the proxy pass Host as is).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from headrace.http.access import APP_KEY, Handler

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: Any, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(peer: str, forwarded_for: str, networks: tuple[Network, ...]) -> str:
    """The client's address: the peer itself unless it is a trusted proxy, else the X-Forwarded-For entry
    just before the trusted hops."""
    if not _trusted(address_of(peer), networks):
        return peer
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()][-32:]
    for hop in reversed(hops):
        address = address_of(hop)
        if address is None:
            return peer  # garbage in the chain: do not guess
        if not _trusted(address, networks):
            return str(address)
    return str(address_of(hops[0])) if hops else peer


@web.middleware
async def forwarded(request: web.Request, handler: Handler) -> web.StreamResponse:
    networks = request.app[APP_KEY].settings.server.proxy_networks
    peer = request.remote or ""
    if not networks or not _trusted(address_of(peer), networks):
        return await handler(request)
    changes: dict[str, Any] = {"remote": client_address(peer, request.headers.get("X-Forwarded-For", ""), networks)}
    proto = request.headers.get("X-Forwarded-Proto", "").rpartition(",")[2].strip().lower()
    if proto in ("http", "https"):
        changes["scheme"] = proto
    host = request.headers.get("X-Forwarded-Host", "").rpartition(",")[2].strip()
    if host and len(host) <= 255 and host.isprintable() and " " not in host and "/" not in host:
        changes["host"] = host
    return await handler(request.clone(**changes))
