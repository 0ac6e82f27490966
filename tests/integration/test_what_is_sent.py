"""One function decides what a delivery sends: `headrace transform --request`, `headrace check` and the worker
agree, down to the bytes on the wire (captured by a plain HTTP server on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from headrace.app import make_sandbox
from headrace.check import check
from headrace.cli import main as cli_main
from headrace.config import Settings
from headrace.windmill.emulator import EmulatorState, running_emulator
from tests.helpers import (
    config_text,
    dodo_body,
    expected_job_id,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)

SCRIPT = """
function handler(w) {
  w.payload = {id: w.webhookId, amount: w.payload.data.total_amount, name: "Zoë \\u2603"};
  w.headers["x-from"] = "headrace";
  w.url = w.url.replace("f/dodo/on_payment", "f/dodo/other");
  return w;
}
"""


@contextlib.asynccontextmanager
async def capture() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback HTTP server that records each run request raw and answers like Windmill (201, the job id)."""
    seen: list[dict[str, Any]] = []

    async def run(request: web.Request) -> web.Response:
        seen.append(
            {
                "line": f"{request.method} {request.path_qs}",
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        return web.Response(status=201, text=request.query.get("job_id", ""))

    async def other(request: web.Request) -> web.Response:
        return web.Response(status=404, text="not here")

    app = web.Application()
    app.router.add_post("/api/w/{ws}/jobs/run/{kind}/{path:.+}", run)
    app.router.add_route("*", "/{tail:.*}", other)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def transform_cli(*args: str) -> tuple[int, bytes, str]:
    out, err = io.StringIO(), io.StringIO()
    out.buffer = io.BytesIO()  # type: ignore[misc]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main(["transform", *args])
    return code, out.buffer.getvalue() + out.getvalue().encode(), err.getvalue()  # type: ignore[attr-defined]


def test_preview_and_delivery_send_the_same_request_byte_for_byte(tmp_path: Path) -> None:
    (tmp_path / "t.js").write_text(SCRIPT)
    body = dodo_body("payment.succeeded", customer={"name": "Ann"})
    event_file = tmp_path / "event.json"
    event_file.write_bytes(body)

    async def main() -> tuple[str, dict[str, Any], Settings]:
        async with capture() as (base, seen):
            url = f"{base}/api/w/acme/jobs/run/p/f/dodo/on_payment"
            text = config_text(tmp_path / "h.db", free_port(), url, extra_dest='transform = "t.js"\nschema = "off"')
            settings = settings_for(text, tmp_path)
            async with running_server(settings) as server, aiohttp.ClientSession() as http:
                status, _ = await post(http, f"{server}/webhooks/dodo", body, signed_headers(body, "msg_same"))
                assert status == 202
                await wait_for(lambda: _async(bool(seen)), 10)
        return url, seen[0], settings

    url, sent, settings = asyncio.run(main())
    job_id = expected_job_id(settings, "msg_same", "payments", 0)
    code, preview, err = transform_cli(
        "--script", str(tmp_path / "t.js"), "--event", str(event_file), "--url", url,
        "--webhook-id", "msg_same", "--request", "--job-id", job_id,
    )  # fmt: skip
    assert code == 0, err
    head, _, preview_body = preview.removesuffix(b"\n").partition(b"\r\n\r\n")
    line, *header_lines = head.decode().split("\r\n")
    preview_headers = dict(h.split(": ", 1) for h in header_lines)
    origin = url.split("/api/")[0]
    assert sent["line"] == f"POST /api/w/acme/jobs/run/p/f/dodo/other?job_id={job_id}"
    assert line == sent["line"].replace("POST ", f"POST {origin}", 1)
    assert preview_body == sent["body"]  # byte for byte
    assert json.loads(preview_body) == {"id": "msg_same", "amount": 4999, "name": "Zoë ☃"}
    assert preview_headers["Authorization"] == "Bearer ***" and sent["headers"]["Authorization"] == "Bearer test-token"
    for name, value in preview_headers.items():
        if name != "Authorization":
            assert sent["headers"][name] == value


def test_transform_refuses_what_delivery_refuses(tmp_path: Path) -> None:
    (tmp_path / "evil.js").write_text(
        "function handler(w) { w.url = 'https://evil.example/api/w/x/jobs/run/p/f/a/b'; return w; }"
    )
    code, out, err = transform_cli("--script", str(tmp_path / "evil.js"), "--event", "payment.succeeded")
    assert code == 1 and out == b""
    assert "set url to host evil.example; only windmill.example" in err


def test_check_applies_the_same_host_rule(tmp_path: Path) -> None:
    (tmp_path / "evil.js").write_text(
        "function handler(w) { w.url = 'https://evil.example/api/w/x/jobs/run/p/f/a/b'; return w; }"
    )

    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment")
    with running_emulator(state) as emulator:
        text = config_text(tmp_path / "h.db", free_port(), emulator.url(), extra_dest='transform = "evil.js"')
        report = asyncio.run(check(settings_for(text, tmp_path), sandbox=make_sandbox(), timeout=3))
    assert not report.ok
    events = [r for r in report.rows if r.check.startswith("payment.")]
    assert len(events) == 4, report.table()
    assert all(r.status == "fail" and "set url to host evil.example" in r.detail for r in events)


async def _async(value: bool) -> bool:
    return value


def test_transform_prints_a_cancel_and_notes_what_delivery_drops(tmp_path: Path) -> None:
    (tmp_path / "c.js").write_text("function handler(w) { w.cancel = true; return w; }")
    code, out, _ = transform_cli("--script", str(tmp_path / "c.js"), "--event", "payment.succeeded")
    printed = json.loads(out)
    assert code == 0 and printed["cancel"] is True
    assert set(printed) == {"eventType", "payload", "url", "method", "headers", "cancel"}
    (tmp_path / "h.js").write_text("function handler(w) { w.headers['Content-Length'] = '0'; return w; }")
    code, out, err = transform_cli("--script", str(tmp_path / "h.js"), "--event", "payment.succeeded")
    assert code == 0 and json.loads(out)["headers"] == {}
    assert "note: transformation" in err and "Content-Length: not sent" in err


def test_the_console_preview_and_a_delivery_send_the_same_request_byte_for_byte(tmp_path: Path) -> None:
    """`POST /api/v1/preview` of a stored event is what the worker sent for it (only the job id and the token
    differ: the token is shown as ***); and a test delivery of it sends the same bytes under its own job id."""
    (tmp_path / "t.js").write_text(SCRIPT)
    body = dodo_body("payment.succeeded", customer={"name": "Ann"}, note="$var:u/admin/secret")

    async def main() -> None:
        async with capture() as (base, seen):
            url = f"{base}/api/w/acme/jobs/run/p/f/dodo/on_payment"
            text = config_text(tmp_path / "h.db", free_port(), url, extra_dest='transform = "t.js"\nschema = "off"')
            settings = settings_for(text, tmp_path)
            async with running_server(settings) as server, aiohttp.ClientSession() as http:
                status, _ = await post(http, f"{server}/webhooks/dodo", body, signed_headers(body, "msg_same"))
                assert status == 202
                await wait_for(lambda: _async(bool(seen)), 10)
                spec = {"destination": "payments", "event_id": "msg_same"}
                async with http.post(f"{server}/api/v1/preview", json=spec) as response:
                    preview = await response.json()
                async with http.post(f"{server}/api/v1/test-deliveries", json=spec) as response:
                    test = await response.json()
                assert response.status == 201, test
        real, sent_test = seen
        job_id = expected_job_id(settings, "msg_same", "payments", 0)
        origin = url.split("/api/")[0]
        assert preview["body"].encode() == real["body"] == sent_test["body"]  # byte for byte
        assert real["line"] == f"POST /api/w/acme/jobs/run/p/f/dodo/other?job_id={job_id}"
        assert f"{preview['method']} {preview['url']}?job_id={job_id}" == real["line"].replace(
            "POST ", f"POST {origin}"
        )
        assert sent_test["line"] == f"POST /api/w/acme/jobs/run/p/f/dodo/other?job_id={test['job_id']}"
        assert test["job_id"] != job_id
        assert preview["headers"]["Authorization"] == "Bearer ***"
        for sent in (real, sent_test):
            assert sent["headers"]["Authorization"] == "Bearer test-token"
            for name, value in preview["headers"].items():
                if name != "Authorization":
                    assert sent["headers"][name] == value

    asyncio.run(main())
