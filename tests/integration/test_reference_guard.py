"""Text from Dodo never reaches Windmill in a form it resolves (CONTRACT A4), with no transformation, with a
built-in template and with a user script, also after the script has cut customer text into pieces; a reference
a transformation means is written with `windmill.reference(...)` and sent as written."""

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
               db: windmill.reference("$res:u/me/db"), literal: "$WM_WORKSPACE"};
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


def test_user_script_gets_guarded_text_and_only_its_marked_references_are_sent_as_written() -> None:
    built = build(Script("t.js", USER_SCRIPT))
    assert built.payload == {
        "customer": {"name": MARK + "$WM_TOKEN", "email": "eve@example.com"},
        "note": MARK + "$res:u/admin/db",
        "db": "$res:u/me/db",
        "literal": MARK + "$WM_WORKSPACE",  # written as a plain string: guarded, and the note says where
    }
    assert "1 string(s) Windmill would resolve as a reference (literal)" in built.guarded
    assert built.guarded in built.notes and "windmill.reference" in built.guarded


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
        assert job.result["literal"] == MARK + "$WM_WORKSPACE"  # not marked as a reference: guarded


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


# A typical dashboard handler (issue 17 item 7): before the guard ran after the script, 3 of 11 such jobs received
# a secret, the job's token or a resource, because a piece of customer text starts with `$` once cut out.
DASHBOARD = """
function handler(w) {
  const d = w.payload.data;
  const [first, ...rest] = d.customer.name.trim().split(" ");
  w.payload = {
    first_name: first,
    last_name: rest.join(" "),
    words: d.customer.name.trim().split(" "),
    tags: d.metadata.tags.split(",").map((t) => t.trim()),
    note: d.metadata.note.trim(),
    db: windmill.reference("$res:u/me/db"),
  };
  return w;
}
"""


def dashboard_event() -> dict[str, Any]:
    event = dodo_event()
    event["data"]["customer"]["name"] = "  Ann $var:u/admin/secret"
    event["data"]["metadata"] = {"tags": "vip, $WM_TOKEN,$res:u/admin/db", "note": "  $jsonvar:u/admin/config"}
    return event


def test_pieces_of_customer_text_are_guarded_after_the_script_and_the_marked_reference_is_not() -> None:
    built = build(Script("dash.js", DASHBOARD), json.dumps(dashboard_event()).encode())
    payload = built.payload
    assert payload["last_name"] == MARK + "$var:u/admin/secret"
    assert payload["words"] == ["Ann", MARK + "$var:u/admin/secret"]
    assert payload["tags"] == ["vip", MARK + "$WM_TOKEN", MARK + "$res:u/admin/db"]
    assert payload["note"] == MARK + "$jsonvar:u/admin/config"
    assert payload["db"] == "$res:u/me/db"
    assert unguard(payload["tags"]) == ["vip", "$WM_TOKEN", "$res:u/admin/db"]  # the customer's exact text
    assert "(last_name, words[1], tags[1], tags[2], note)" in built.guarded


@pytest.mark.parametrize("helper", [True, False])
def test_the_dashboard_handler_through_the_worker_hands_windmill_no_secret(tmp_path: Path, helper: bool) -> None:
    source = DASHBOARD if helper else DASHBOARD.replace('db: windmill.reference("$res:u/me/db"),', "")
    (tmp_path / "dash.js").write_text(source)
    state = echo_windmill()
    state.variables["u/admin/secret"] = "s3cret-value"
    state.variables["u/admin/config"] = '{"api_key": "k-123"}'
    body = json.dumps(dashboard_event()).encode()
    with running_emulator(state) as emulator:
        extra = 'schema = "off"\ntransform = "dash.js"'
        text = config_text(tmp_path / "h.db", free_port(), emulator.url("f/dodo/echo"), extra_dest=extra)
        asyncio.run(_deliver(settings_for(text, tmp_path), body))
        [job] = state.jobs.values()
    seen = json.dumps(job.result)
    for leaked in ("s3cret-value", FAKE_JOB_TOKEN, "hunter2", "k-123"):
        assert leaked not in seen
    if helper:
        assert job.result["db"] == {"host": "mine"}  # windmill.reference(...) still resolves
    assert unguard(job.result["last_name"]) == "$var:u/admin/secret"


def test_windmill_reference_refuses_what_is_not_a_reference_and_cannot_be_forged_by_text() -> None:
    script = Script("r.js", 'function handler(w) { w.payload = {x: windmill.reference("Ann")}; return w; }')
    body = json.dumps(dodo_event()).encode()
    built = asyncio.run(build_request(TARGET, "payment.succeeded", body, "m", script, make_sandbox()))
    assert not isinstance(built, Request) and "windmill.reference: give a reference" in built.reason
    # Concatenated into other text a reference is just text; the secret mark never reaches Windmill.
    joined = Script(
        "j.js", 'function handler(w) { w.payload = {x: "a" + windmill.reference("$var:u/a/b")}; return w; }'
    )
    built = asyncio.run(build_request(TARGET, "payment.succeeded", body, "m", joined, make_sandbox()))
    assert isinstance(built, Request) and built.payload == {"x": "a$var:u/a/b"} and built.guarded == ""


def test_check_flags_a_transformation_that_writes_a_reference_without_the_helper(tmp_path: Path) -> None:
    from headrace.check import check

    (tmp_path / "plain.js").write_text('function handler(w) { w.payload = {db: "$res:u/me/db"}; return w; }')
    with running_emulator(echo_windmill()) as emulator:
        extra = 'schema = "off"\ntransform = "plain.js"'
        text = config_text(tmp_path / "h.db", free_port(), emulator.url("f/dodo/echo"), extra_dest=extra)
        report = asyncio.run(check(settings_for(text, tmp_path), sandbox=make_sandbox(), timeout=3))
    rows = [r for r in report.rows if r.check.startswith("payment.")]
    assert rows and all(r.status == "warn" and "would resolve as a reference (db)" in r.detail for r in rows)
    assert all("windmill.reference" in r.fix for r in rows)


def test_an_object_whose_only_key_is_interpolate_is_guarded() -> None:
    script = Script("i.js", 'function handler(w) { w.payload = {x: {"$interpolate": "${a}"}}; return w; }')
    built = build(script)
    assert built.payload == {"x": {MARK + "$interpolate": "${a}"}}


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "$var:x"}',  # a string that starts with $
        b'{"a": "\\u0024var:x"}',  # one that starts with an escape
        b'{"a": "x"}'.replace(b"x", MARK.encode()),  # the mark, anywhere
        b'{"a": "price: 5 $", "b": "C:\\\\dir", "c": "\xe2\x82\xac 5"}',  # the bytes, but none at a string's start
        b'{"a": "plain"}',
    ],
)
def test_the_quick_look_for_text_to_guard_agrees_with_the_plain_rule(body: bytes) -> None:
    """build_request skips parsing a body with nothing to guard; the first look is for single bytes."""
    from headrace.deliver.request import _MARK_BYTES, _may_need_guard

    assert _may_need_guard(body) == (b'"$' in body or b'"\\' in body or _MARK_BYTES in body)
