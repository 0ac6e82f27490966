"""The listening socket and what holds connections to account.

- `bind` opens the port before anything else starts (store, worker), so "address already in use" is one
  clear line at start-up, not a traceback after the worker began.
- `ConnectionCap` keeps at most `[server] max_connections` open, and `max_connections_per_peer` per client
  address: a new connection over a cap closes one of the address holding the most — first one that has not
  finished its headers, then an idle one, never a request in progress while the reserve lasts — so thousands
  of idle, slow or half-open connections from one client (reconnecting as fast as they are closed) cost that
  client, not legitimate senders. Header and body timeouts (`header_timeout`, `body_timeout`) end the slow
  ones anyway.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import resource
import socket
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from headrace.config import ConfigError, ServerSettings
from headrace.http.throttle import client_key

log = logging.getLogger("headrace.server")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
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


class _Peer:
    """One client address's connections, oldest first: `fresh` have not finished a request's headers yet,
    `proven` have (they are idle between requests or have one in progress)."""

    __slots__ = ("fresh", "limited", "proven")

    def __init__(self, limited: bool) -> None:
        self.fresh: dict[Any, None] = {}
        self.proven: dict[Any, None] = {}
        self.limited = limited

    def __len__(self) -> int:
        return len(self.fresh) + len(self.proven)

    def victim(self, *, busy_too: bool, spare: Any = None) -> Any:
        """The connection to close first: the oldest that has not finished its headers, else the oldest idle
        one, else (only when `busy_too`) the oldest with a request in progress; never `spare` (the connection
        just made); None when none may go."""
        finished, found = [], None
        for handler in self.fresh:
            if getattr(handler, "_request_count", 0):
                finished.append(handler)  # it sent a whole request since: it has proved itself
            elif handler is not spare:
                found = handler
                break
        for handler in finished:
            del self.fresh[handler]
            self.proven[handler] = None
        if found is not None:
            return found
        for handler in self.proven:
            if not getattr(handler, "_request_in_progress", False):
                return handler
        return next(iter(self.proven)) if busy_too and self.proven else None


def peer_key(transport: Any) -> str:
    """The client address a connection counts against: the one the login throttle counts by (an IPv4
    address, or an IPv6 /64: one host's share)."""
    peer = transport.get_extra_info("peername") if transport is not None else None
    return client_key(str(peer[0])) if peer else ""


class ConnectionCap:
    """A protocol factory for `loop.create_server` that keeps at most `limit` of the runner's connections.

    Connections are counted per client address as they are made and lost (never by listing them all). One
    address holds at most `per_peer` (trusted proxies excepted); over that its own first victim closes. Over
    `limit - reserve` in all, the address holding the most loses its first victim (see `_Peer.victim`): a
    connection that has not finished its headers, else an idle one. Requests in progress are closed only when
    even the reserve is used up, so a flood of idle or half-sent connections costs its owner, not the others.
    """

    def __init__(
        self, server: web.Server, limit: int, per_peer: int | None = None, proxies: Sequence[Network] = ()
    ) -> None:
        self.server = server
        self.limit = limit
        self.per_peer = per_peer or limit
        self.reserve = max(1, limit // 10)
        self._proxies = tuple(proxies)
        self._owner: dict[Any, str] = {}  # connection -> its peer key
        self._peers: dict[str, _Peer] = {}
        self._by_size: dict[int, dict[str, None]] = {}  # how many connections -> the peers holding that many
        self._top = 0
        self.evicted = 0
        self._made, self._lost = server.connection_made, server.connection_lost
        server.connection_made = self._connection_made  # type: ignore[method-assign]
        server.connection_lost = self._connection_lost  # type: ignore[method-assign,assignment]

    def __call__(self) -> Any:
        return self.server()

    def _connection_made(self, handler: Any, transport: Any) -> None:
        self._made(handler, transport)
        key = peer_key(transport)
        peer = self._peers.get(key)
        if peer is None:
            peer = self._peers[key] = _Peer(limited=not self._is_proxy(transport))
        self._resize(key, len(peer), len(peer) + 1)
        peer.fresh[handler] = None
        self._owner[handler] = key
        if peer.limited and len(peer) > self.per_peer:
            victim = peer.victim(busy_too=True, spare=handler)
            if victim is not None:
                self._evict(key, victim, f"max_connections_per_peer = {self.per_peer}")
        while len(self._owner) > self.limit - self.reserve:
            top = self._top_peer()
            victim = self._peers[top].victim(busy_too=len(self._owner) > self.limit, spare=handler)
            if victim is None:
                return  # what remains over the reserve line are requests in progress: the reserve is for them
            self._evict(top, victim, f"max_connections = {self.limit}")

    def _connection_lost(self, handler: Any, exc: BaseException | None) -> None:
        self._forget(handler)
        self._lost(handler, exc)

    def _is_proxy(self, transport: Any) -> bool:
        peer = transport.get_extra_info("peername") if self._proxies and transport is not None else None
        try:
            address = ipaddress.ip_address(peer[0]) if peer else None
        except ValueError:
            return False
        return address is not None and any(address in network for network in self._proxies)

    def _resize(self, key: str, old: int, new: int) -> None:
        if old:
            holding = self._by_size[old]
            del holding[key]
            if not holding:
                del self._by_size[old]
        if new:
            self._by_size.setdefault(new, {})[key] = None
            self._top = max(self._top, new)

    def _top_peer(self) -> str:
        while self._top > 0 and self._top not in self._by_size:
            self._top -= 1  # sizes change by one at a time: the next size down is held
        return next(iter(self._by_size[self._top]))

    def _forget(self, handler: Any) -> None:
        key = self._owner.pop(handler, None)
        if key is None:
            return
        peer = self._peers[key]
        before = len(peer)
        peer.fresh.pop(handler, None)
        peer.proven.pop(handler, None)
        self._resize(key, before, len(peer))
        if not peer:
            del self._peers[key]

    def _evict(self, key: str, handler: Any, rule: str) -> None:
        transport = handler.transport
        self._forget(handler)
        handler.force_close()  # drops its transport reference; abort closes the socket now
        if transport is not None:
            transport.abort()
        self.evicted += 1
        if self.evicted in (1, 10, 100) or self.evicted % 1000 == 0:
            log.warning(
                "connection cap reached ([server] %s): closed a connection of %s, the client holding the most "
                "(%d closed so far)",
                rule,
                key or "a local socket",
                self.evicted,
            )
