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
from pathlib import Path

import pytest

from headrace.app import App
from headrace.config import ConfigError
from tests.helpers import config_text, free_port, settings_for
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
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "headrace.toml"
    text = config_text(tmp_path / "h.db", free_port())
    config.write_text(text)
    settings = settings_for(text, tmp_path)

    async def main() -> None:
        app = await App.open(settings)
        try:
            config.unlink()
            os.mkfifo(config)  # reading the config now waits for a writer, like a hung mount
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
            with contextlib.suppress(OSError):  # release the reading thread (a writer that closes at once)
                os.close(os.open(config, os.O_WRONLY | os.O_NONBLOCK))
            await app.close()

    asyncio.run(main())
