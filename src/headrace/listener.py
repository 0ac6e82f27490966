"""The listening socket and what holds connections to account.

- `bind` opens the port before anything else starts (store, worker), so "address already in use" is one
  clear line at start-up, not a traceback after the worker began.
- `ConnectionCap` keeps at most `[server] max_connections` open: a new connection over the cap closes the
  oldest one, so thousands of slow or half-open clients cannot lock legitimate senders out (they are short-
  lived; the hoarders are the oldest). Header and body timeouts (`header_timeout`, `body_timeout`) end the
  slow ones anyway.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
from typing import Any

from aiohttp import web

from headrace.config import ConfigError, ServerSettings

log = logging.getLogger("headrace.server")
FD_HEADROOM = 256  # descriptors kept for the store, the worker's connections to Windmill, logs


def bind(server: ServerSettings) -> socket.socket:
    host, port = server.host_port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"[server] listen = {server.listen!r}: cannot resolve {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"[server] listen = {server.listen!r}: the address is already in use (another headrace or "
                f"another program holds port {port}); stop it or choose another port"
            ) from None
        raise ConfigError(f"[server] listen = {server.listen!r}: cannot listen there ({exc.strerror})") from None
    sock.setblocking(False)
    return sock


def ensure_descriptors(wanted: int) -> None:
    """Raise the soft open-files limit to fit `wanted` connections, or say plainly that it does not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
        if soft < need:
            log.warning(
                "the open-files limit (%d) is below max_connections + %d = %d: lower [server] max_connections "
                "or raise the limit (LimitNOFILE= in the systemd unit, ulimit -n)",
                soft,
                FD_HEADROOM,
                need,
            )


class ConnectionCap:
    """A protocol factory for `loop.create_server` that keeps at most `limit` of the runner's connections."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self.server = server
        self.limit = limit
        self.evicted = 0

    def __call__(self) -> Any:
        live = [h for h in self.server.connections if h.transport is not None]  # oldest first
        for handler in live[: max(0, len(live) + 1 - self.limit)]:
            transport = handler.transport
            handler.force_close()  # drops its transport reference; abort closes the socket now
            if transport is not None:
                transport.abort()
            self.evicted += 1
            if self.evicted in (1, 10, 100) or self.evicted % 1000 == 0:
                log.warning(
                    "connection cap reached ([server] max_connections = %d): closed the oldest connection (%d so far)",
                    self.limit,
                    self.evicted,
                )
        return self.server()
