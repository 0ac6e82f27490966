"""What headrace sends to Windmill when a transformation chooses the URL or the method (issue 17 item 2, CONTRACT
R1/R7): a `url` cannot leave the destination's workspace or run routes (no `..`, no percent-encoded segments,
no query of its own), through the preview API (an admin's edited script) and through the worker; a `PUT` is sent
as POST with a note. Every request that reaches the loopback Windmill stand-in is recorded, so "nothing was
sent" is seen, not assumed."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

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

RUN = "/api/w/acme/jobs/run/p/f/dodo/on_payment"
# Each is a url a transformation might set, and a word its refusal must contain. Behind `proxy_pass http://up/;`
# the first reached POST /api/users/tokens/create with the destination's token (issue 17 item 2).
ESCAPES = [
    ("{base}/api/w/acme/jobs/run/p/f/dodo/../../../../../users/tokens/create", "'..'"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/w/other/jobs/run/p/f/a/b", "%2e%2e"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/x%2f..%2f..%2fy/z", "percent-encoding"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/./on_payment", "'.'"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo//on_payment", "''"),
    ("{base}/x/../api/w/acme/jobs/run/p/f/dodo/on_payment", "'..'"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/on_payment?tag=gpu", "changed the url's query (tag)"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/on_payment?scheduled_in_secs=9999", "scheduled_in_secs"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/on_payment?invisible_to_owner=true", "invisible_to_owner"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/on_payment?parent_job=0190a000-0000-7000-8000-000000000000", "parent_job"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/on_payment?include_header=authorization", "bearer token"),
    ("{base}/api/w/acme/jobs/run/p/f/dodo/on_payment?token=other", "cannot choose the token"),
    ("{base}/api/w/other/jobs/run/p/f/dodo/on_payment", "only acme"),
    ("{base}/api/w/acme/jobs/run_and_stream/p/f/dodo/on_payment", "only run and run_wait_result"),
    ("{base}/api/w/acme/users/tokens/create", "not a Windmill run URL"),
]


def escaping(url: str) -> str:
    return f"function handler(w) {{ w.url = {json.dumps(url)}; return w; }}"


@contextlib.asynccontextmanager
async def windmill() -> AsyncIterator[tuple[str, list[str]]]:
    """A loopback server that records every request line whatever its path and answers a run like Windmill."""
    seen: list[str] = []

    async def any_request(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.raw_path}")
        return web.Response(status=201, text=request.query.get("job_id", ""))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_request)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def preview(http: aiohttp.ClientSession, base: str, script: str) -> dict[str, Any]:
    spec = {"destination": "payments", "event_type": "payment.succeeded", "script": script}
    async with http.post(f"{base}/api/v1/preview", json=spec) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def deliver(http: aiohttp.ClientSession, base: str, webhook_id: str, status: str) -> dict[str, Any]:
    """Post one signed payment.succeeded and wait until its event has `status`; the event as the API shows it."""
    body = dodo_body("payment.succeeded")
    answer, _ = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, webhook_id))
    assert answer == 202

    async def settled() -> dict[str, Any] | None:
        async with http.get(f"{base}/api/v1/events/{webhook_id}") as response:
            data: dict[str, Any] = await response.json()
        return data if data["status"] == status else None

    result: dict[str, Any] = await wait_for(settled, 10)
    return result


def test_preview_refuses_every_url_that_leaves_the_run_routes(tmp_path: Path) -> None:
    async def main() -> None:
        async with windmill() as (wm, seen):
            text = config_text(tmp_path / "h.db", free_port(), wm + RUN, extra_dest='schema = "off"')
            async with running_server(settings_for(text, tmp_path)) as base, aiohttp.ClientSession() as http:
                for url, word in ESCAPES:
                    answer = await preview(http, base, escaping(url.format(base=wm)))
                    assert answer["would_send"] is False, url
                    assert word in answer["error"]["message"], (url, answer["error"])
                    assert "test-token" not in json.dumps(answer)
                fine = await preview(http, base, escaping(f"{wm}/api/w/acme/jobs/run/f/f/dodo/other_flow"))
                assert fine["would_send"] is True and fine["url"] == f"{wm}/api/w/acme/jobs/run/f/f/dodo/other_flow"
        assert seen == []  # a preview sends nothing

    asyncio.run(main())


@pytest.mark.parametrize("index", [0, 1, 6])
def test_the_worker_sends_nothing_for_an_escaping_url(tmp_path: Path, index: int) -> None:
    url, word = ESCAPES[index]

    async def main() -> None:
        async with windmill() as (wm, seen):
            (tmp_path / "t.js").write_text(escaping(url.format(base=wm)))
            text = config_text(
                tmp_path / "h.db", free_port(), wm + RUN, extra_dest='transform = "t.js"\nschema = "off"'
            )
            async with running_server(settings_for(text, tmp_path)) as base, aiohttp.ClientSession() as http:
                data = await deliver(http, base, "msg_escape", "failed")
        assert seen == []
        [delivery] = data["deliveries"]
        assert word in json.dumps(delivery), delivery

    asyncio.run(main())


def test_a_put_is_sent_as_post_with_a_note_in_the_preview_and_the_attempt(tmp_path: Path) -> None:
    script = "function handler(w) { w.method = 'PUT'; return w; }"

    async def main() -> None:
        async with windmill() as (wm, seen):
            (tmp_path / "t.js").write_text(script)
            text = config_text(
                tmp_path / "h.db", free_port(), wm + RUN, extra_dest='transform = "t.js"\nschema = "off"'
            )
            async with running_server(settings_for(text, tmp_path)) as base, aiohttp.ClientSession() as http:
                answer = await preview(http, base, script)
                assert answer["method"] == "POST" and answer["would_send"] is True
                assert any("set method PUT: sent as POST" in note for note in answer["notes"]), answer["notes"]
                data = await deliver(http, base, "msg_put", "delivered")
        assert [line.split(" ")[0] for line in seen] == ["POST"]
        assert "set method PUT: sent as POST" in json.dumps(data["deliveries"])

    asyncio.run(main())


def deep_script(depth: int) -> str:
    return (
        f"function handler(w) {{ let v = 'x'; for (let i = 0; i < {depth}; i++) v = {{n: v}};"
        " w.payload = {deep: v}; return w; }"
    )


def test_arguments_windmill_would_walk_50_deep_are_refused_in_the_preview_and_never_sent(tmp_path: Path) -> None:
    """CONTRACT A4: Windmill fails the job (test_contract_A4_a_walked_argument_reaching_depth_50_fails_the_job)."""

    async def main() -> None:
        async with windmill() as (wm, seen):
            (tmp_path / "t.js").write_text(deep_script(50))
            text = config_text(
                tmp_path / "h.db", free_port(), wm + RUN, extra_dest='transform = "t.js"\nschema = "off"'
            )
            async with running_server(settings_for(text, tmp_path)) as base, aiohttp.ClientSession() as http:
                fine = await preview(http, base, deep_script(49))
                assert fine["would_send"] is True
                answer = await preview(http, base, deep_script(50))
                assert answer["would_send"] is False
                assert "an argument 'deep' nested 50 or more levels deep" in answer["error"]["message"]
                data = await deliver(http, base, "msg_deep", "failed")
        assert seen == []
        assert "nested 50 or more levels deep" in json.dumps(data["deliveries"])

    asyncio.run(main())


def test_an_event_body_windmill_would_walk_50_deep_is_refused_without_a_transformation() -> None:
    from headrace.deliver.request import Refused, Request, build_request
    from headrace.windmill.urls import parse_run_url

    target = parse_run_url("http://127.0.0.1:9" + RUN)[0]
    deep: Any = "x"
    for _ in range(49):
        deep = {"n": deep}
    ok = asyncio.run(build_request(target, "payment.succeeded", json.dumps({"data": deep}).encode(), "m", None, None))
    assert isinstance(ok, Request)  # the leaf at depth 49
    body = json.dumps({"data": {"n": deep}}).encode()
    refused = asyncio.run(build_request(target, "payment.succeeded", body, "m", None, None))
    assert isinstance(refused, Refused) and "argument 'data' nested 50 or more levels deep" in refused.reason


def test_the_preview_flags_a_reference_written_without_the_helper(tmp_path: Path) -> None:
    """Issue 17 item 7: the guard after the script says where it marked something, in the preview's notes."""
    plain = 'function handler(w) { w.payload = {db: "$res:f/dodo/db", who: w.payload.data.customer.name}; return w; }'
    marked = plain.replace('"$res:f/dodo/db"', 'windmill.reference("$res:f/dodo/db")')

    async def main() -> None:
        async with windmill() as (wm, _):
            text = config_text(tmp_path / "h.db", free_port(), wm + RUN, extra_dest='schema = "off"')
            async with running_server(settings_for(text, tmp_path)) as base, aiohttp.ClientSession() as http:
                flagged = await preview(http, base, plain)
                assert flagged["payload"]["db"] == "\u2060$res:f/dodo/db" and flagged["would_send"] is True
                assert any("would resolve as a reference (db)" in note for note in flagged["notes"]), flagged
                clean = await preview(http, base, marked)
                assert clean["payload"]["db"] == "$res:f/dodo/db"
                assert not any("would resolve as a reference" in note for note in clean["notes"])

    asyncio.run(main())


def test_urls_are_compared_normalised() -> None:
    from headrace.app import make_sandbox
    from headrace.deliver.request import Refused, Request, build_request
    from headrace.transform import Script
    from headrace.windmill.urls import parse_run_url

    target = parse_run_url("https://wm.example.com/api/w/acme/jobs/run/p/f/dodo/on_payment")[0]
    body = dodo_body("payment.succeeded")

    def built(url: str) -> object:
        script = Script("t.js", escaping(url))
        return asyncio.run(build_request(target, "payment.succeeded", body, "m", script, make_sandbox()))

    same = built("HTTPS://WM.Example.com:443/api/w/acme/jobs/run/f/f/dodo/flow")
    assert isinstance(same, Request) and same.target.path == "f/dodo/flow"
    other_port = built("https://wm.example.com:8443/api/w/acme/jobs/run/f/f/dodo/flow")
    assert isinstance(other_port, Refused) and "only wm.example.com" in other_port.reason
