"""Config values an attacker or a slip could use against headrace are refused at load with a clear message:
a password in a destination URL, timeouts that switch slow-client protection off or break it, a session
lifetime that breaks login, a `file:` secret that is a FIFO; and a SIGHUP reload that would block never holds
the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from pathlib import Path

import aiohttp
import pytest

from headrace.app import App
from headrace.config import ConfigError
from headrace.http.throttle import GLOBAL_FACTOR, FailureThrottle
from tests.helpers import config_text, free_port, running_server, settings_for
from tests.unit.test_config_limits import load, refused

URL = "https://windmill.example/api/w/acme/jobs/run/p/f/dodo/other"


def another(url: str, token: str = "t") -> str:
    """A second destination, [destinations.other], with this url and token."""
    return f'\n[destinations.other]\nsource = "dodo"\nevents = ["*"]\nurl = "{url}"\ntoken = "{token}"'


def test_a_password_in_a_destination_url_is_refused_and_never_echoed() -> None:
    url = "https://admin:hunter2-very-secret@windmill.example/api/w/acme/jobs/run/p/f/dodo/ledger"
    with pytest.raises(ConfigError) as caught:
        load(dest=another(url))
    message = str(caught.value)
    assert "[destinations.other] url" in message and "user name or password" in message
    assert "hunter2" not in message and "admin:" not in message
    with pytest.raises(ConfigError, match="user name or password"):
        load(dest=another(url.replace(":hunter2-very-secret", "")))


@pytest.mark.parametrize(
    ("key", "low", "high", "past_low", "past_high"),
    [
        ("header_timeout", "1s", "5m", "999ms", "301s"),
        ("body_timeout", "1s", "10m", "0.001ms", "99999d"),
        ("session_lifetime", "1s", "30d", "999ms", "31d"),
    ],
)
def test_slow_client_timeouts_and_the_session_lifetime_at_and_past_their_limits(
    key: str, low: str, high: str, past_low: str, past_high: str
) -> None:
    load(server=f'{key} = "{low}"')
    load(server=f'{key} = "{high}"')
    for value in (past_low, past_high):
        message = refused(server=f'{key} = "{value}"')
        assert message.startswith(f"[server] {key}: '{value}' is out of range: write from {low} to {high}"), message


def test_a_fifo_secret_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "secret.fifo"
    os.mkfifo(fifo)
    result: list[BaseException | None] = []

    def read() -> None:
        try:
            load(dest=another(URL, f"file:{fifo}"))
            result.append(None)
        except BaseException as exc:
            result.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # the old code waits for a writer: give it one so the thread ends
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(5)
        pytest.fail("reading a file: secret that is a FIFO blocked")
    assert isinstance(result[0], ConfigError), result
    assert "is not a regular file" in str(result[0]) and "plain file" in str(result[0])


def test_a_reload_that_blocks_times_out_without_holding_the_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "headrace.toml"
    text = config_text(tmp_path / "h.db", free_port())
    config.write_text(text)
    settings = settings_for(text, tmp_path)

    async def main() -> None:
        app = await App.open(settings)
        try:
            # Reading the config hangs, like a hung network mount (a FIFO no longer does: it is refused at once).
            import headrace.config

            hung = threading.Event()
            real_load = headrace.config.load

            def hanging_load(*args: object, **kwargs: object) -> object:
                hung.wait(10)
                return real_load(*args, **kwargs)  # type: ignore[arg-type]

            monkeypatch.setattr(headrace.config, "load", hanging_load)
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            with caplog.at_level(logging.ERROR, logger="headrace"):
                assert await app.reload_off_loop(config, timeout=0.5) is False
            ticker.cancel()
            assert ticks >= 5, "the event loop was held while the config was read"
            assert "took longer than 0.5s" in caplog.text
            assert app.settings is settings
        finally:
            hung.set()  # release the reading thread
            await app.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    "token", ["password12345678", "Password1234567890", "abcdefgh12345678", "letmein-letmein-2024", "0123456789abcdef"]
)
def test_a_guessable_admin_token_is_refused_without_being_shown(token: str) -> None:
    message = refused(server=f'admin_token = "{token}"')
    assert "[server] admin_token: too easy to guess" in message and "secrets.token_urlsafe" in message
    assert token not in message


@pytest.mark.parametrize("token", ["k7Qx2mP9vR4tZ8wB", "07648c24ed6d12fb", "console-admin-token-1"])
def test_random_looking_admin_tokens_at_the_minimum_length_pass(token: str) -> None:
    assert load(server=f'admin_token = "{token}"').server.management == "token"


def test_guesses_spread_over_many_addresses_share_one_budget() -> None:
    now = [0.0]
    throttle = FailureThrottle(10, clock=lambda: now[0])
    compared = 0
    for n in range(600):
        address = f"10.1.{n // 250}.{n % 250}"
        if throttle.retry_after(address) == 0:
            compared += 1
            throttle.failed(address)
    assert compared == 10 * GLOBAL_FACTOR  # 100, not 600
    assert throttle.retry_after("10.9.9.9") >= 1  # a new address waits too, while the budget is spent
    now[0] += 60 / (10 * GLOBAL_FACTOR) * 1.01  # one refill later
    assert throttle.retry_after("10.9.9.9") == 0


def test_guesses_through_a_trusted_proxy_from_600_forwarded_addresses_are_bounded(tmp_path: Path) -> None:
    token = "k7Qx2mP9vR4tZ8wB-proxy"
    extra = 'trusted_proxies = ["127.0.0.1"]\nauth_failures_per_minute = 10'
    settings = settings_for(
        config_text(tmp_path / "h.db", free_port(), admin_token=token, extra_server=extra), tmp_path
    )

    async def main() -> list[int]:
        statuses = []
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            for n in range(600):
                headers = {"X-Forwarded-For": f"198.51.{n // 250}.{n % 250}", "Authorization": f"Bearer guess-{n}"}
                async with http.get(f"{base}/api/v1/events", headers=headers) as response:
                    statuses.append(response.status)
        return statuses

    started = time.monotonic()
    statuses = asyncio.run(main())
    elapsed = time.monotonic() - started
    compared = statuses.count(401)
    assert compared + statuses.count(429) == 600
    assert compared <= 10 * GLOBAL_FACTOR + elapsed * 10 * GLOBAL_FACTOR / 60 + 1, (compared, elapsed)
