"""What a handler may not do: set headrace's own headers (framing, hop-by-hop, Content-Type) or return a payload
over the destination's payload_limit. Tested at and past the limit, and on the wire."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.deliver.request import Refused, Request, build_request
from headrace.models import Delivered
from headrace.transform import Script
from headrace.windmill.urls import parse_run_url
from tests.fakes import FakeWindmill, PySandbox, attempter, claimed, destination
from tests.helpers import (
    config_text,
    dodo_body,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)
from tests.integration.test_what_is_sent import capture

SCRIPT = Script("t.js", "function handler(w) { return w; }")
TARGET = parse_run_url("http://127.0.0.1:9/api/w/acme/jobs/run/p/f/dodo/on_payment")[0]
FORBIDDEN = {
    "Content-Length": "0",
    "Transfer-Encoding": "chunked",
    "Host": "evil.example",
    "Connection": "close",
    "Keep-Alive": "timeout=5",
    "TE": "trailers",
    "Trailer": "X-Sum",
    "Upgrade": "websocket",
    "Proxy-Authorization": "Basic eA==",
    "Expect": "100-continue",
    "Content-Type": "text/plain",
}


def with_headers(headers: dict[str, str]) -> PySandbox:
    return PySandbox(lambda w: dataclasses.replace(w, payload={"a": 1}, headers=headers))


def test_headraces_headers_are_dropped_with_a_note(tmp_path: Path) -> None:
    client = FakeWindmill()
    sandbox = with_headers({**FORBIDDEN, "X-Kept": "yes"})
    attempt, outcome = asyncio.run(attempter(client).attempt(claimed(), destination(tmp_path), SCRIPT, sandbox))
    assert isinstance(outcome, Delivered)
    [call] = client.runs
    assert call.headers == {"X-Kept": "yes", "Content-Type": "application/json", "Authorization": "Bearer test-token"}
    for name in FORBIDDEN:
        assert name in attempt.notes
    assert "not sent, these headers are headrace's" in attempt.notes


def test_a_handlers_content_length_0_does_not_empty_the_body_on_the_wire(tmp_path: Path) -> None:
    (tmp_path / "t.js").write_text(
        "function handler(w) { w.payload = {id: w.webhookId};"
        " w.headers['Content-Length'] = '0'; w.headers['Transfer-Encoding'] = 'chunked';"
        " w.headers['Host'] = 'evil.example'; return w; }"
    )
    body = dodo_body()

    async def main() -> dict[str, Any]:
        async with capture() as (base, seen):
            url = f"{base}/api/w/acme/jobs/run/p/f/dodo/on_payment"
            text = config_text(tmp_path / "h.db", free_port(), url, extra_dest='transform = "t.js"\nschema = "off"')
            async with running_server(settings_for(text, tmp_path)) as server, aiohttp.ClientSession() as http:
                status, _ = await post(http, f"{server}/webhooks/dodo", body, signed_headers(body, "msg_cl"))
                assert status == 202
                await wait_for(lambda: _true(bool(seen)), 10)
        return seen[0]

    sent = asyncio.run(main())
    assert json.loads(sent["body"]) == {"id": "msg_cl"}
    assert sent["headers"]["Content-Length"] == str(len(sent["body"]))
    assert "Transfer-Encoding" not in sent["headers"]
    assert sent["headers"]["Host"].startswith("127.0.0.1:")


def build_with(size: int, limit: int) -> Any:
    """A payload {"s": "xxx…"} of exactly `size` bytes as JSON, against `limit`."""
    payload = {"s": "x" * (size - len('{"s":""}'))}
    sandbox = PySandbox(lambda w: dataclasses.replace(w, payload=payload))
    body = dodo_body()
    return asyncio.run(build_request(TARGET, "payment.succeeded", body, "msg_1", SCRIPT, sandbox, limit))


@pytest.mark.parametrize("limit", [1024, 1_048_576])
def test_payload_at_the_limit_is_sent_and_one_byte_more_is_refused(limit: int) -> None:
    at = build_with(limit, limit)
    assert isinstance(at, Request) and len(at.body) == limit
    past = build_with(limit + 1, limit)
    assert isinstance(past, Refused) and past.payload is None  # the oversized payload is not kept
    assert f"payload of {limit + 1:,} bytes; the limit is {limit:,} (payload_limit" in past.reason


def test_payload_limit_is_a_destination_setting_with_a_sane_range(tmp_path: Path) -> None:
    assert destination(tmp_path).payload_limit == 1_048_576
    assert destination(tmp_path, extra="payload_limit = 2048").payload_limit == 2048
    from headrace.config import ConfigError

    for bad in ("payload_limit = 0", "payload_limit = 100000000"):
        with pytest.raises((ConfigError, ValueError)):
            destination(tmp_path, extra=bad)


def test_an_oversized_payload_fails_the_delivery_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "big.js").write_text("function handler(w) { w.payload = {s: 'x'.repeat(5000)}; return w; }")

    async def main() -> dict[str, Any]:
        async with capture() as (base, seen):
            url = f"{base}/api/w/acme/jobs/run/p/f/dodo/on_payment"
            extra = 'transform = "big.js"\nschema = "off"\npayload_limit = 4096'
            text = config_text(tmp_path / "h.db", free_port(), url, extra_dest=extra)
            body = dodo_body()
            async with running_server(settings_for(text, tmp_path)) as server, aiohttp.ClientSession() as http:
                await post(http, f"{server}/webhooks/dodo", body, signed_headers(body, "msg_big"))

                async def failed() -> dict[str, Any] | None:
                    async with http.get(f"{server}/api/v1/events/msg_big") as r:
                        data = await r.json()
                    return data if data["status"] == "failed" else None

                data = await wait_for(failed, 10)
            assert seen == []
        return data

    delivery = asyncio.run(main())["deliveries"][0]
    assert "payload of 5,008 bytes; the limit is 4,096" in delivery["last_error"]
    assert delivery["payload"] is None


async def _true(value: bool) -> bool:
    return value
