"""The connection caps' choice of whom to close, on stand-ins for aiohttp's handlers and transports: per client
address, from the address holding the most, unfinished headers first, then idle, requests in progress last."""

from __future__ import annotations

from typing import Any

from headrace.http.listener import ConnectionCap


class Transport:
    def __init__(self, host: str) -> None:
        self.host = host
        self.aborted = False

    def get_extra_info(self, name: str) -> Any:
        return (self.host, 40000) if name == "peername" else None

    def abort(self) -> None:
        self.aborted = True


class Handler:
    def __init__(self, transport: Transport) -> None:
        self.transport: Transport | None = transport
        self._request_count = 0
        self._request_in_progress = False
        self.closed = False

    def force_close(self) -> None:
        self.closed = True
        self.transport = None


class Server:
    """What ConnectionCap uses of aiohttp's web.Server: its factory and the made/lost notifications."""

    def __init__(self) -> None:
        self.connections: dict[Any, Any] = {}

    def __call__(self) -> Any:
        raise AssertionError("not used here")

    def connection_made(self, handler: Any, transport: Any) -> None:
        self.connections[handler] = transport

    def connection_lost(self, handler: Any, exc: BaseException | None) -> None:
        self.connections.pop(handler, None)


def connect(cap: ConnectionCap, host: str, *, requests: int = 0, busy: bool = False) -> Handler:
    handler = Handler(Transport(host))
    cap.server.connection_made(handler, handler.transport)
    handler._request_count, handler._request_in_progress = requests, busy
    return handler


def test_one_address_over_its_cap_loses_its_own_oldest_unfinished_connection() -> None:
    cap = ConnectionCap(Server(), limit=1000, per_peer=4)  # type: ignore[arg-type]
    legit = connect(cap, "127.0.0.2", requests=1)
    flood = [connect(cap, "127.0.0.1") for _ in range(4)]
    newer = connect(cap, "127.0.0.1")
    assert flood[0].closed and not any(h.closed for h in flood[1:]) and not newer.closed
    assert not legit.closed
    for _ in range(100):  # reconnecting as fast as it is closed: only its own connections go
        connect(cap, "127.0.0.1")
    assert not legit.closed and cap.evicted == 101


def test_over_the_total_the_address_holding_most_loses_unfinished_then_idle_and_busy_ones_keep_the_reserve() -> None:
    cap = ConnectionCap(Server(), limit=20, per_peer=100)  # type: ignore[arg-type]  # reserve: 2
    busy = [connect(cap, "10.0.0.1", requests=1, busy=True) for _ in range(6)]
    idle = [connect(cap, "10.0.0.1", requests=1) for _ in range(4)]
    unfinished = [connect(cap, "10.0.0.1") for _ in range(8)]  # 18 = limit - reserve
    other = connect(cap, "10.0.0.9", requests=1)
    assert unfinished[0].closed and not other.closed  # the holder of the most, and its unfinished first
    for _ in range(7):
        connect(cap, "10.0.0.9", requests=1)
    assert all(h.closed for h in unfinished) and not any(h.closed for h in idle + busy)
    connect(cap, "10.0.0.9", requests=1)
    assert idle[0].closed and not any(h.closed for h in busy)  # then its idle ones
    assert len(cap._owner) == 18


def test_requests_in_progress_use_the_reserve_and_are_closed_only_past_the_limit() -> None:
    cap = ConnectionCap(Server(), limit=20, per_peer=100)  # type: ignore[arg-type]
    busy = [connect(cap, "10.0.0.1", requests=1, busy=True) for _ in range(18)]
    one = connect(cap, "10.0.0.2", requests=1, busy=True)
    two = connect(cap, "10.0.0.2", requests=1, busy=True)
    assert not any(h.closed for h in [*busy, one, two])  # 20: the reserve holds them
    connect(cap, "10.0.0.3", requests=1, busy=True)
    assert busy[0].closed and sum(h.closed for h in busy) == 1  # past the limit: the holder of most, oldest


def test_a_trusted_proxy_is_not_limited_per_address() -> None:
    import ipaddress

    cap = ConnectionCap(Server(), limit=1000, per_peer=4, proxies=[ipaddress.ip_network("10.1.0.0/16")])  # type: ignore[arg-type]
    through_proxy = [connect(cap, "10.1.2.3", requests=1) for _ in range(50)]
    assert not any(h.closed for h in through_proxy)
