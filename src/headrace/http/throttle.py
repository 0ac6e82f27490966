"""Bounded guessing of the admin token: a token bucket of failed attempts per client address.

Each address (an IPv6 address counts by its /64) may fail `[server] auth_failures_per_minute` times in a
burst, then once every 60/N seconds. While its bucket is empty, a request from it that carries a credential
is answered 429 with `Retry-After` before the credential is even compared: nothing waits, nothing blocks the
event loop, and the real admin at that address is kept out for at most 60/N seconds after the guessing
stops (an admin elsewhere is not affected). At most MAX_ADDRESSES are tracked; the least recently seen goes.
All addresses together share a budget of GLOBAL_FACTOR addresses' (100 failures a minute by default): guesses
spread over many addresses (600 addresses through a trusted proxy) are bounded as well; while that budget is
spent every address gets 429, the real admin too, until the guessing stops.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_ADDRESSES = 10_000
GLOBAL_FACTOR = 10  # all addresses together may fail as often as this many addresses


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
        # Every address together: GLOBAL_FACTOR addresses' worth, so guesses spread over many addresses (a
        # botnet, or X-Forwarded-For values a trusted proxy passes on) are bounded too.
        self.global_capacity = self.capacity * GLOBAL_FACTOR
        self._global = (self.global_capacity, clock())

    def _tokens(self, key: str) -> float:
        tokens, at = self._buckets.get(key, (self.capacity, self.clock()))
        return min(self.capacity, tokens + (self.clock() - at) * self.rate)

    def _global_tokens(self) -> float:
        tokens, at = self._global
        return min(self.global_capacity, tokens + (self.clock() - at) * self.rate * GLOBAL_FACTOR)

    def retry_after(self, address: str) -> int:
        """0 when this address may try a credential now; else whole seconds until it may (its own budget, or
        the budget of all addresses together)."""
        own = self._tokens(client_key(address))
        every = self._global_tokens()
        wait = 0.0
        if own < 1:
            wait = (1 - own) / self.rate
        if every < 1:
            wait = max(wait, (1 - every) / (self.rate * GLOBAL_FACTOR))
        return max(1, math.ceil(wait)) if wait else 0

    def failed(self, address: str) -> None:
        key = client_key(address)
        tokens = self._tokens(key)
        self._buckets[key] = (tokens - 1, self.clock())
        self._buckets.move_to_end(key)
        self._global = (self._global_tokens() - 1, self.clock())
        while len(self._buckets) > self.limit:
            self._buckets.popitem(last=False)
