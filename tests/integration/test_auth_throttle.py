"""Guessing the admin token over real HTTP: the rate of guesses is bounded per address, the event loop keeps
serving, the real admin elsewhere is not locked out, and each failure is logged once without the guess."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import aiohttp
import pytest

from headrace.http.throttle import FailureThrottle, client_key
from tests.helpers import config_text, free_port, running_server, settings_for

TOKEN = "throttle-admin-token-1"


async def guess(http: aiohttp.ClientSession, base: str, n: int, surface: str) -> int:
    if surface == "bearer":
        async with http.get(f"{base}/api/v1/events", headers={"Authorization": f"Bearer guess-{n}"}) as response:
            return response.status
    async with http.post(f"{base}/console/login", data={"token": f"guess-{n}"}) as response:
        return response.status


@pytest.mark.parametrize("surface", ["bearer", "login"])
def test_guesses_per_address_are_bounded(tmp_path: Path, surface: str, caplog: pytest.LogCaptureFixture):
    per_minute = 10
    extra = f"auth_failures_per_minute = {per_minute}"
    settings = settings_for(
        config_text(tmp_path / "h.db", free_port(), admin_token=TOKEN, extra_server=extra), tmp_path
    )

    async def main() -> tuple[list[int], float, int, float, float]:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            started = time.monotonic()
            statuses = []
            worst_health = 0.0
            for n in range(300):
                statuses.append(await guess(http, base, n, surface))
                if n % 50 == 0:
                    t = time.monotonic()
                    async with http.get(f"{base}/healthz") as response:
                        assert response.status == 200
                    worst_health = max(worst_health, time.monotonic() - t)
            elapsed = time.monotonic() - started
            # The real admin at another loopback address is not affected.
            other = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
            async with (
                aiohttp.ClientSession(connector=other) as elsewhere,
                elsewhere.get(f"{base}/api/v1/events", headers={"Authorization": f"Bearer {TOKEN}"}) as response,
            ):
                elsewhere_status = response.status
            async with http.get(f"{base}/api/v1/events", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
                assert response.status == 429  # the right token too, from the guessing address, for a while
                retry_after = float(response.headers["Retry-After"])
            return statuses, elapsed, elsewhere_status, retry_after, worst_health

    with caplog.at_level(logging.WARNING, logger="headrace.access"):
        statuses, elapsed, elsewhere_status, retry, worst_health = asyncio.run(main())
    checked = statuses.count(401)
    assert statuses.count(429) + checked == 300
    # At most the burst plus what refills during the run was compared at all.
    assert checked <= per_minute + elapsed * per_minute / 60 + 1, (checked, elapsed)
    assert elsewhere_status == 200
    assert retry <= 60 / per_minute + 1  # the lock-out lasts seconds, not minutes
    assert worst_health < 0.5  # nothing waits on the event loop
    failures = [r for r in caplog.records if "wrong admin token" in r.getMessage()]
    assert len(failures) == checked  # each compared failure logged once; the 429s are not
    assert not any("guess-" in r.getMessage() or "guess-" in str(r.__dict__) for r in caplog.records)


def test_throttle_refills_and_groups_ipv6_by_64():
    now = [0.0]
    throttle = FailureThrottle(6, clock=lambda: now[0], limit=3)
    for _ in range(6):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
    assert throttle.retry_after("10.0.0.1") == 10  # 6 a minute: one every 10 s
    now[0] += 10
    assert throttle.retry_after("10.0.0.1") == 0
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("::ffff:10.0.0.1") == "10.0.0.1"
    for address in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        throttle.failed(address)
    assert len(throttle._buckets) == 3  # bounded: the least recently seen address was dropped
