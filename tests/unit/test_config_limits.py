"""Config values that make no sense are refused at start-up, naming the key, the range and the default;
each limit is tested at the edge (accepted) and just past it (refused)."""

from __future__ import annotations

import pytest

from headrace.config import ConfigError, Settings, parse

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def load(server: str = "", source: str = "", dest: str = "") -> Settings:
    text = f"""
[server]
listen = "127.0.0.1:8787"
{server}

[sources.dodo]
secrets = ["{SECRET}"]
{source}

[destinations.payments]
source = "dodo"
events = ["payment.*"]
url = "https://windmill.example/api/w/acme/jobs/run/p/f/dodo/ledger"
token = "t"
{dest}
"""
    return parse(text, environ={})


def refused(**tables: str) -> str:
    with pytest.raises(ConfigError) as err:
        load(**tables)
    message = str(err.value)
    assert message.count("\n") == 1, message  # exactly one problem, on one line
    return message.splitlines()[1].strip()


@pytest.mark.parametrize("value", ['"1s"', '"1000ms"', '"1h"', '"60m"'])
def test_timeout_at_its_limits_is_accepted(value: str) -> None:
    load(dest=f"timeout = {value}")


@pytest.mark.parametrize("value", ['"0s"', '"999ms"', '"0.5s"', '"61m"', '"1000d"'])
def test_timeout_past_its_limits_is_refused_with_the_range(value: str) -> None:
    assert refused(dest=f"timeout = {value}") == (
        f"[destinations.payments] timeout: {value.replace(chr(34), chr(39))} is out of range: "
        "write from 1s to 1h (how long one request to Windmill may take; default 30s)"
    )


def test_a_negative_or_malformed_duration_says_how_to_write_one() -> None:
    assert refused(dest='timeout = "-5s"') == (
        "[destinations.payments] timeout: '-5s' is not a duration; write a number and a unit: 250ms, 5s, 5m, 2h or 1d"
    )


def test_an_empty_retry_schedule_is_refused() -> None:
    message = refused(dest="retry_schedule = []")
    assert message.startswith("[destinations.payments] retry_schedule: is empty, so a delivery would fail")
    assert '["5s", "5m", "30m"]' in message


def test_retry_steps_at_and_past_their_limits() -> None:
    load(dest='retry_schedule = ["10ms", "7d"]')
    load(dest="retry_schedule = [" + ", ".join(['"1s"'] * 50) + "]")
    assert refused(dest='retry_schedule = ["5s", "0s"]') == (
        "[destinations.payments] retry_schedule: step 2: '0s' is out of range: "
        "write from 10ms to 7d (the delay before the next attempt)"
    )
    assert "step 1: '9ms' is out of range" in refused(dest='retry_schedule = ["9ms"]')
    assert "step 1: '8d' is out of range" in refused(dest='retry_schedule = ["8d"]')
    assert refused(dest="retry_schedule = [" + ", ".join(['"1s"'] * 51) + "]") == (
        "[destinations.payments] retry_schedule: has 51 steps; at most 50"
    )


def test_concurrency_at_and_past_its_limits() -> None:
    load(dest="concurrency = 1")
    load(dest="concurrency = 256")
    for value in (0, -3, 257, 100000):
        assert refused(dest=f"concurrency = {value}") == (
            f"[destinations.payments] concurrency: {value} is out of range: "
            "write from 1 to 256 requests at once (default 8)"
        )


def test_tolerance_shutdown_grace_and_body_limit_at_and_past_their_limits() -> None:
    load(source='tolerance = "1s"', server='shutdown_grace = "0s"\nbody_limit = 1024')
    load(source='tolerance = "1h"', server='shutdown_grace = "10m"\nbody_limit = 67108864')
    assert "[sources.dodo] tolerance: '0s' is out of range: write from 1s to 1h" in refused(source='tolerance = "0s"')
    assert "[sources.dodo] tolerance: '2h' is out of range" in refused(source='tolerance = "2h"')
    assert "[server] shutdown_grace: '11m' is out of range: write from 0s to 10m" in refused(
        server='shutdown_grace = "11m"'
    )
    assert refused(server="body_limit = 1023").startswith("[server] body_limit: 1023 is out of range: write from 1024")
    assert "67108865 is out of range" in refused(server="body_limit = 67108865")


def test_retention_and_rejection_retention_at_and_past_their_limits() -> None:
    assert load().server.retention_seconds == 30 * 86400.0  # the documented defaults
    assert load().server.rejection_retention_seconds == 7 * 86400.0
    edge = load(server='retention = "14d"\nrejection_retention = "1h"').server
    assert (edge.retention_seconds, edge.rejection_retention_seconds) == (14 * 86400.0, 3600.0)
    off = load(server='retention = "off"\nrejection_retention = "0"').server
    assert (off.retention_seconds, off.rejection_retention_seconds) == (None, None)
    short = refused(server='retention = "13d"')  # under Dodo's 14-day replay horizon, with the reason
    assert "[server] retention: '13d' is out of range: write from 14d to 3650d" in short
    assert "replay a message up to 14 days back" in short
    assert "[server] retention: '3651d' is out of range" in refused(server='retention = "3651d"')
    assert "[server] rejection_retention: '59m' is out of range: write from 1h" in refused(
        server='rejection_retention = "59m"'
    )
    assert "is not a duration" in refused(server='retention = "forever"')
