"""No log line can be forged: control characters (CR, LF, other C0 and C1, U+2028/2029) in a message, an extra
field or an exception are escaped in the text format, and the JSON format keeps every record on one line.

An attacker without credentials sends `POST /webhooks/zz%0A<forged line>`; a sender with the secret signs an
event whose `type` holds a newline. Neither may start a line of its own."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import aiohttp
import pytest

from headrace.observe import logs
from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, signed_headers

FORGED = "2026-12-06 12:00:00,000 CRITICAL headrace.server: admin logged in from 10.0.0.1"
NASTY = ["\n", "\r", "\r\n", "\x1b[2J", "\x00", "\x85", "\u2028", "\u2029", "\x9b", "\x7f", "\t"]


def _is_clean(line: str) -> bool:
    return not any(ch in line for ch in "\r\x00\x1b\x85\u2028\u2029\x9b\x7f\x0b\x0c")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_control_characters_in_messages_extras_and_exceptions_stay_on_their_line(fmt: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter() if fmt == "text" else logs.JsonFormatter())
    logger = logging.getLogger("headrace.test.forgery")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for bad in NASTY:
            logger.warning("refused webhook: %s", f"no source zz{bad}{FORGED}", extra={"source": f"zz{bad}{FORGED}"})
        try:
            raise ValueError(f"bad type{NASTY[0]}{FORGED}")
        except ValueError:
            logger.exception("failed %s", "x\u2028" + FORGED)
    finally:
        logger.handlers[:] = []
    text = stream.getvalue()
    lines = text.split("\n")[:-1]  # the only line breaks are the handler's own (and a traceback's, indented)
    assert not any(line.startswith("2026-12-06 12:00:00") for line in lines), text
    assert all(_is_clean(line) for line in lines), text
    if fmt == "json":
        assert len(lines) == len(NASTY) + 1
        records = [json.loads(line) for line in lines]
        assert records[0]["source"] == "zz\n" + FORGED  # escaped on the wire, exact once parsed
        assert "\u2028" in records[6]["message"] and "\u2028" not in lines[6]
    else:
        starts = [line for line in lines if not line.startswith(" ")]
        assert len(starts) == len(NASTY) + 1, text  # one line per record; traceback lines are indented
        assert "zz\\n2026-12-06" in text and "zz\\r\\n2026" in text and "\\u2028" in text and "\\x1b[2J" in text


def test_a_forged_source_in_the_url_and_a_signed_type_with_a_newline_cannot_forge_a_line(tmp_path: Path) -> None:
    settings = settings_for(config_text(tmp_path / "h.db", free_port()), tmp_path)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    statuses: list[int] = []

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            forged = FORGED.replace(" ", "%20")
            async with http.post(f"{base}/webhooks/zz%0A{forged}", data=b"{}") as response:
                statuses.append(response.status)
            async with http.post(f"{base}/webhooks/zz%0D%0A{forged}%E2%80%A8x", data=b"{}") as response:
                statuses.append(response.status)
            body = dodo_body()
            payload = json.loads(body)
            payload["type"] = f"payment.succeeded\n{FORGED}"
            body = json.dumps(payload).encode()
            async with http.post(f"{base}/webhooks/dodo", data=body, headers=signed_headers(body, "msg_nl")) as r:
                statuses.append(r.status)

    try:
        asyncio.run(main())
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    text = stream.getvalue()
    assert statuses[:2] == [404, 404], statuses
    assert FORGED in text  # it was logged, escaped, inside another line
    assert not any(line.startswith("2026-12-06 12:00:00") for line in text.splitlines()), text
    assert all(_is_clean(line) for line in text.split("\n")), text
