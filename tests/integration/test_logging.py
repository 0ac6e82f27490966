"""Per-event log lines: a request id per ingest request (also in the response), one line per accepted
webhook, and sampling above PER_SECOND lines a second so a burst costs a bounded number of lines."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from headrace.http.request_id import HEADER, MAX_LENGTH, choose
from headrace.observe import logs
from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, signed_headers


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def capture(logger_name: str) -> tuple[logging.Logger, list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(logger_name)
    logger.handlers[:] = [Keep()]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, records


def test_lines_above_the_rate_are_counted_in_one_summary_a_second() -> None:
    logger, records = capture("headrace.test.sampled")
    clock = FakeClock()
    sampled = logs.SampledLog(logger, "webhooks received", "source", per_second=20, clock=clock)
    for i in range(1000):
        clock.now = 100.0 + i * 0.0009  # 1000 lines in 0.9 s
        sampled.log(logging.INFO, "webhook %s", "accepted", extra={"source": "dodo" if i % 4 else "shop"})
    assert len(records) == 20  # the first 20 one by one; the rest held until the second is over
    clock.now = 101.5
    sampled.log(logging.INFO, "webhook %s", "accepted", extra={"source": "dodo"})
    summary = records[20]
    assert summary.getMessage().startswith("980 more webhooks received in the last 1.0 s")
    assert summary.by_source == {"dodo": 735, "shop": 245}  # type: ignore[attr-defined]
    assert len(records) == 22 and records[21].getMessage() == "webhook accepted"  # a new second logs again

    # At the limit nothing is held; one past it is.
    logger, records = capture("headrace.test.edge")
    sampled = logs.SampledLog(logger, "x", "source", per_second=3, clock=clock)
    for _ in range(3):
        sampled.log(logging.INFO, "line", extra={})
    sampled.flush()
    assert len(records) == 3
    clock.now += 1.0
    for _ in range(4):
        sampled.log(logging.INFO, "line", extra={})
    sampled.flush()
    assert len(records) == 7 and records[-1].getMessage().startswith("1 more x")


def test_the_summary_is_written_on_time_when_traffic_stops() -> None:
    logger, records = capture("headrace.test.timer")

    async def main() -> None:
        sampled = logs.SampledLog(logger, "delivery outcomes", "destination", per_second=2)
        for _ in range(5):
            sampled.log(logging.WARNING, "delivery failed", extra={"destination": "payments"})
        assert len(records) == 2
        await asyncio.sleep(1.2)  # no further line: the timer writes the summary

    asyncio.run(main())
    assert len(records) == 3 and records[2].levelno == logging.WARNING
    assert records[2].getMessage().startswith("3 more delivery outcomes")


def test_a_proxy_request_id_is_kept_only_when_well_formed() -> None:
    assert choose("a" * MAX_LENGTH) == "a" * MAX_LENGTH
    assert choose("a" * (MAX_LENGTH + 1)) != "a" * (MAX_LENGTH + 1)
    assert choose("abc def") != "abc def" and choose("x\r\nSet-Cookie: y") != "x\r\nSet-Cookie: y"
    assert len(choose(None)) == 16 and choose(None) != choose(None)


def test_each_ingest_request_has_an_id_in_its_answer_and_its_log_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh sampler: lines other tests logged in this second must not count against this one's.
    monkeypatch.setattr(logs, "RECEIVED", logs.SampledLog(logging.getLogger("headrace.ingest"), "webhooks", "source"))
    settings = settings_for(config_text(tmp_path / "h.db", free_port()), tmp_path)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    answers: list[tuple[int, str]] = []

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            url = f"{base}/webhooks/dodo"
            for i in range(5):
                body = dodo_body()
                async with http.post(url, data=body, headers=signed_headers(body, f"msg_{i}")) as response:
                    answers.append((response.status, response.headers[HEADER]))
            body = dodo_body()
            headers = {**signed_headers(body, "msg_0"), HEADER: "proxy-given.id:7"}
            async with http.post(url, data=body, headers=headers) as response:
                answers.append((response.status, response.headers[HEADER]))
            async with http.post(url, data=body, headers={"webhook-id": "x"}) as response:
                answers.append((response.status, response.headers[HEADER]))

    try:
        asyncio.run(main())
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    received = [line for line in lines if line["logger"] == "headrace.ingest" and line["message"].startswith("webhook")]
    assert [a[0] for a in answers] == [202] * 5 + [200, 400]
    assert len({rid for _, rid in answers}) == 7 and answers[5][1] == "proxy-given.id:7"
    assert [(line["message"], line["webhook_id"], line["request_id"]) for line in received] == [
        *[("webhook accepted", f"msg_{i}", answers[i][1]) for i in range(5)],
        ("webhook duplicate", "msg_0", "proxy-given.id:7"),
    ]
    assert received[0]["source"] == "dodo" and received[0]["event_type"] == "payment.succeeded"
    refused = [line for line in lines if line["message"].startswith("refused webhook")]
    assert [line["request_id"] for line in refused] == [answers[6][1]]


@pytest.fixture(autouse=True)
def _restore_loggers():
    yield
    for name in ("headrace.test.sampled", "headrace.test.edge", "headrace.test.timer"):
        logging.getLogger(name).handlers[:] = []
