"""Text from Dodo never reaches Windmill in a form it resolves (CONTRACT A4), with no transformation, with a
built-in template and with a user script; strings a transformation writes on purpose are sent as written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.app import make_sandbox
from headrace.deliver.request import Request, build_request
from headrace.transform import Script
from headrace.transform.scripts import load_script
from headrace.windmill.emulator import EmulatorState, running_emulator
from headrace.windmill.emulator_model import FAKE_JOB_TOKEN
from headrace.windmill.references import MARK, unguard
from headrace.windmill.urls import parse_run_url
from tests.helpers import config_text, free_port, post, running_server, settings_for, signed_headers, wait_for

TARGET = parse_run_url("http://127.0.0.1:9/api/w/acme/jobs/run/p/f/dodo/echo")[0]
DB = {"host": "db.internal", "password": "hunter2"}

USER_SCRIPT = """
function handler(w) {
  const d = w.payload.data;
  w.payload = {customer: {name: d.customer.name, email: d.customer.email}, note: d.metadata.note,
               db: "$res:u/me/db", literal: "$WM_WORKSPACE"};
  return w;
}
"""


def dodo_event() -> dict[str, Any]:
    """A payment whose customer typed Windmill reference syntax into checkout fields."""
    return {
        "business_id": "bus_1",
        "type": "payment.succeeded",
        "timestamp": "2026-11-26T10:00:00Z",
        "data": {
            "payload_type": "Payment",
            "payment_id": "pay_1",
            "total_amount": 4999,
            "currency": "USD",
            "customer": {"customer_id": "cus_1", "name": "$WM_TOKEN", "email": "eve@example.com"},
            "metadata": {"note": "$res:u/admin/db"},
        },
    }


def build(script: Script | None, body: bytes | None = None) -> Request:
    body = body if body is not None else json.dumps(dodo_event()).encode()
    built = asyncio.run(
        build_request(TARGET, "payment.succeeded", body, "msg_1", script, make_sandbox() if script else None)
    )
    assert isinstance(built, Request), built
    return built


def test_no_transformation_guards_the_body_and_the_receiver_gets_the_exact_text_back() -> None:
    sent = json.loads(build(None).body)
    assert sent["data"]["customer"]["name"] == MARK + "$WM_TOKEN"
    assert sent["data"]["metadata"]["note"] == MARK + "$res:u/admin/db"
    assert unguard(sent) == dodo_event()


def test_a_guarded_body_to_a_run_wait_result_url_is_still_created_with_run() -> None:
    wait = parse_run_url("http://127.0.0.1:9/api/w/acme/jobs/run_wait_result/p/f/dodo/echo")[0]
    body = json.dumps(dodo_event()).encode()
    for script in (None, Script("t.js", USER_SCRIPT)):
        built = asyncio.run(
            build_request(wait, "payment.succeeded", body, "m", script, make_sandbox() if script else None)
        )
        assert isinstance(built, Request) and "/jobs/run/p/f/dodo/echo" in built.url


def test_no_transformation_and_nothing_to_guard_sends_dodos_bytes() -> None:
    event = dodo_event()
    event["data"]["customer"]["name"] = "Eve"
    event["data"]["metadata"]["note"] = "5$"
    body = json.dumps(event, indent=1).encode()  # not how headrace would serialise it
    assert build(None, body).body is body


def test_an_escaped_dollar_is_guarded_too() -> None:
    body = json.dumps(dodo_event()).replace('"$WM_TOKEN"', '"\\u0024WM_TOKEN"').encode()
    assert b"$WM_TOKEN" not in body
    assert json.loads(build(None, body).body)["data"]["customer"]["name"] == MARK + "$WM_TOKEN"


def test_builtin_payment_sends_the_guarded_customer_name() -> None:
    built = build(load_script("builtin:payment", Path.cwd()))
    assert built.payload["customer_name"] == MARK + "$WM_TOKEN"
    assert built.payload["metadata"] == {"note": MARK + "$res:u/admin/db"}


def test_user_script_gets_guarded_text_and_its_own_strings_are_sent_as_written() -> None:
    built = build(Script("t.js", USER_SCRIPT))
    assert built.payload == {
        "customer": {"name": MARK + "$WM_TOKEN", "email": "eve@example.com"},
        "note": MARK + "$res:u/admin/db",
        "db": "$res:u/me/db",
        "literal": "$WM_WORKSPACE",
    }


def echo_windmill() -> EmulatorState:
    state = EmulatorState()
    state.resources["u/admin/db"] = DB
    state.resources["u/me/db"] = {"host": "mine"}
    state.add_target("script", "f/dodo/echo", lambda args: args)
    return state


@pytest.mark.parametrize("transform", [None, "builtin:payment", "t.js"])
def test_windmill_resolves_the_raw_event_but_not_what_headrace_delivers(tmp_path: Path, transform: str | None) -> None:
    (tmp_path / "t.js").write_text(USER_SCRIPT)
    state = echo_windmill()
    body = json.dumps(dodo_event()).encode()
    extra = 'schema = "off"' + (f'\ntransform = "{transform}"' if transform else "")
    with running_emulator(state) as emulator:
        url = emulator.url("f/dodo/echo")
        # Without the guard: the same event posted straight to Windmill hands the job its token and the database.
        raw = asyncio.run(_run_directly(url.replace("/run/", "/run_wait_result/"), body))
        assert raw["data"]["customer"]["name"] == FAKE_JOB_TOKEN
        assert raw["data"]["metadata"]["note"] == DB
        text = config_text(tmp_path / "h.db", free_port(), url, extra_dest=extra)
        asyncio.run(_deliver(settings_for(text, tmp_path), body))
        [job] = [j for j in state.jobs.values() if j.result != raw]
        seen = json.dumps(job.result)
    assert FAKE_JOB_TOKEN not in seen and "hunter2" not in seen
    assert "$WM_TOKEN" in seen and "$res:u/admin/db" in seen  # delivered, guarded, readable
    if transform == "t.js":
        assert job.result["db"] == {"host": "mine"}  # the script's own reference still works
        assert job.result["literal"] == "$WM_WORKSPACE"  # an argument with no $res:/$var: is not walked (A4)


async def _run_directly(url: str, body: bytes) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url, data=body, headers={"Authorization": "Bearer test-token", "Content-Type": "application/json"}
        ) as response,
    ):
        assert response.status == 200
        return await response.json()


async def _deliver(settings: Any, body: bytes) -> None:
    async with running_server(settings) as base, aiohttp.ClientSession() as http:
        status, _ = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_guard"))
        assert status == 202

        async def delivered() -> bool:
            async with http.get(f"{base}/api/v1/events/msg_guard") as response:
                return (await response.json())["status"] in ("delivered", "job_failed", "failed")

        await wait_for(delivered, 10)
