"""Hostile webhook headers and bodies over real loopback HTTP: every one is a JSON 400 counted as a refusal,
never a plain-text 500, and whatever ingest accepts, every reader (API, console) can show as strict JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp

from headrace.config.secret import decode_secret
from headrace.dodo.signature import MAX_ID_LENGTH, sign
from headrace.ingest.body import MAX_JSON_DEPTH
from headrace.models import NewEvent
from headrace.store.sqlite import SQLiteStore
from tests.helpers import SECRET, config_text, free_port, running_server, settings_for

KEY = decode_secret(SECRET)


def _strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


async def raw_post(port: int, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes, bytes]:
    """One request written byte for byte (so headers may carry bytes no client library would send)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    writer.write(head + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), header_block, payload


def signed(body: bytes, webhook_id: bytes = b"msg_1", ts: bytes | None = None) -> list[tuple[bytes, bytes]]:
    ts = ts if ts is not None else str(int(time.time())).encode()
    try:
        signature = sign(KEY, webhook_id.decode(), int(ts), body).encode()
    except (UnicodeDecodeError, ValueError):
        signature = b"v1,AAAA"
    return [
        (b"Content-Type", b"application/json"),
        (b"webhook-id", webhook_id),
        (b"webhook-timestamp", ts),
        (b"webhook-signature", signature),
    ]


def nested(depth: int) -> bytes:
    """An object nested `depth` containers deep (the top-level object counts as 1)."""
    return b'{"type": "payment.succeeded", "data": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_malformed_headers_and_bodies_are_json_400s_counted_as_refusals(tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(config_text(tmp_path / "h.db", port), tmp_path)
    ok = b'{"type": "payment.succeeded", "data": {"amount": 1e308, "note": "\\ud83d\\ude00"}}'
    now = str(int(time.time())).encode()
    refused = {
        "400-digit timestamp": signed(ok, b"msg_a", b"1" * 400),
        "5000-digit timestamp": signed(ok, b"msg_b", b"1" * 5000),
        "13-digit timestamp": signed(ok, b"msg_c", b"1" * 13),
        "superscript two": signed(ok, b"msg_d", "²".encode()),
        "arabic-indic digits": signed(ok, b"msg_e", "\u0661\u0667\u0660\u0660".encode()),
        "non-UTF-8 webhook-id": signed(ok, b"msg_\xff\xfe"),
        "UTF-8 webhook-id": signed(ok, "msg_é".encode()),
        "space in webhook-id": signed(ok, b"msg 1"),
        "webhook-id one over": signed(ok, b"m" * (MAX_ID_LENGTH + 1)),
        "5000-char webhook-id": signed(ok, b"m" * 5000),
        "non-UTF-8 signature": [*signed(ok, b"msg_f")[:3], (b"webhook-signature", b"v1,\xff\xfe")],
    }
    bodies = {
        "nested one over the limit": (nested(MAX_JSON_DEPTH + 1), "too_deep"),
        "nested 5000 deep": (nested(5000), "too_deep"),
        "nested 100000 deep": (b"[" * 100_000 + b"]" * 100_000, "too_deep"),
        "NaN": (b'{"type": "x.y", "v": NaN}', "invalid_json"),
        "Infinity": (b'{"type": "x.y", "v": Infinity}', "invalid_json"),
        "-Infinity": (b'{"type": "x.y", "v": -Infinity}', "invalid_json"),
        "1e999999": (b'{"type": "x.y", "v": 1e999999}', "invalid_json"),
        "lone surrogate": (b'{"type": "x.y", "v": "\\ud800"}', "invalid_json"),
        "lone surrogate key": (b'{"type": "x.y", "\\udfff": 1}', "invalid_json"),
        "Latin-1 body": ('{"type": "x.y", "v": "é"}'.encode("latin-1"), "invalid_json"),
        "UTF-16 body": ('{"type": "x.y"}'.encode("utf-16"), "invalid_json"),
    }

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            for name, headers in refused.items():
                status, head, payload = await raw_post(port, "/webhooks/dodo", headers, ok)
                assert status == 400, (name, payload[:300])
                assert b"application/json" in head.lower(), name
                answer = json.loads(payload)
                assert answer["error"] == "malformed_headers" and answer["message"], name
            for name, (body, reason) in bodies.items():
                headers = signed(body, b"msg_" + name[:3].encode())
                status, _, payload = await raw_post(port, "/webhooks/dodo", headers, body)
                assert (status, json.loads(payload)["error"]) == (400, reason), (name, payload[:300])
            # At the limits: accepted.
            at_limit = {
                b"m" * MAX_ID_LENGTH: ok,
                b"msg_depth": nested(MAX_JSON_DEPTH),
                b"msg_emoji": ok,
            }
            for webhook_id, body in at_limit.items():
                status, _, payload = await raw_post(port, "/webhooks/dodo", signed(body, webhook_id, now), body)
                assert status == 202, (webhook_id[:20], payload)
            status, _, payload = await raw_post(
                port, "/webhooks/%ff%fe", [(b"User-Agent", b"\xff\xfe"), *signed(ok, b"msg_x")], ok
            )
            assert status == 404 and json.loads(payload)["error"] == "unknown_source"

            async with http.get(f"{base}/api/v1/rejections") as response:
                rejections = _strict(await response.text())
            total = sum(c["count"] for c in rejections["counted"])
            assert total == len(refused) + len(bodies) + 1
            async with http.get(f"{base}/console/rejections") as response:
                assert response.status == 200
            # Every accepted event reads back as strict JSON through the API and renders in the console.
            async with http.get(f"{base}/api/v1/events") as response:
                events = _strict(await response.text())["events"]
            assert len(events) == 3
            for event in events:
                async with http.get(f"{base}/api/v1/events/{event['id']}") as response:
                    assert response.status == 200
                    _strict(await response.text())
                async with http.get(f"{base}/console/events/{event['id']}") as response:
                    assert response.status == 200

    asyncio.run(main())


def test_readers_show_bodies_that_are_not_strict_json_as_text(tmp_path: Path) -> None:
    """A body stored by an older version (NaN, 1e999999, a lone surrogate, deep nesting) still reads back."""
    port = free_port()
    settings = settings_for(config_text(tmp_path / "h.db", port), tmp_path)
    legacy = [
        b'{"type": "x.y", "v": NaN}',
        b'{"type": "x.y", "v": 1e999999}',
        b'{"type": "x.y", "v": "\\ud800"}',
        b'{"type": "x.y", "v": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    ]

    async def seed() -> None:
        store = SQLiteStore(tmp_path / "h.db")
        await store.open()
        try:
            for index, body in enumerate(legacy):
                event = NewEvent("dodo", f"msg_legacy_{index}", "x.y", int(time.time()), time.time(), body, {})
                await store.ingest(event, [])
        finally:
            await store.close()

    async def main() -> None:
        await seed()
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            for index in range(len(legacy)):
                async with http.get(f"{base}/api/v1/events/msg_legacy_{index}") as response:
                    assert response.status == 200
                    detail = _strict(await response.text())
                assert isinstance(detail["body"], str) and '"x.y"' in detail["body"]
                async with http.get(f"{base}/console/events/msg_legacy_{index}") as response:
                    assert response.status == 200, await response.text()

    asyncio.run(main())


def test_malformed_http_is_one_quiet_line_without_the_bytes(tmp_path: Path, caplog) -> None:
    """aiohttp refuses a broken header line itself; headrace makes its log one INFO line, no traceback, and
    none of the request's bytes (here a bearer token)."""
    port = free_port()
    settings = settings_for(config_text(tmp_path / "h.db", port), tmp_path)

    async def main() -> bytes:
        async with running_server(settings):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token-value\nX: y\r\n\r\n"
            )
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer

    with caplog.at_level(logging.DEBUG):
        answer = asyncio.run(main())
    assert answer.split(b" ")[1] == b"400"
    server_lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server_lines) == 1 and server_lines[0].levelno == logging.INFO
    assert server_lines[0].exc_info is None and "malformed HTTP request refused (400)" in server_lines[0].getMessage()
    assert not any("s3cret-token-value" in r.getMessage() or r.exc_info for r in caplog.records)
