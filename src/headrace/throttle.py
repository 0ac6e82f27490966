"""Bounded guessing of the admin token: a token bucket of failed attempts per client address.

Each address (an IPv6 address counts by its /64) may fail `[server] auth_failures_per_minute` times in a
burst, then once every 60/N seconds. While its bucket is empty, a request from it that carries a credential
is answered 429 with `Retry-After` before the credential is even compared: nothing waits, nothing blocks the
event loop, and the real admin at that address is kept out for at most 60/N seconds after the guessing
stops (an admin elsewhere is not affected). At most MAX_ADDRESSES are tracked; the least recently seen goes.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_ADDRESSES = 10_000


def client_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailureThrottle:
    def __init__(
        self, per_minute: int, clock: Callable[[], float] = time.monotonic, limit: int = MAX_ADDRESSES
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.limit = limit
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def _tokens(self, key: str) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, self.clock()))
        return min(self.capacity, tokens + (self.clock() - at) * self.rate)

    def retry_after(self, address: str) -> int:
        """0 when this address may try a credential now; else whole seconds until it may."""
        tokens = self._tokens(client_key(address))
        return 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.rate))

    def failed(self, address: str) -> None:
        key = client_key(address)
        tokens = self._tokens(key)
        self._buckets[key] = (tokens - 1, self.clock())
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.limit:
            self._buckets.popitem(last=False)
