"""`POST /api/v1/preview` and test deliveries (`/api/v1/test-deliveries`) over real HTTP, with the Windmill
emulator on loopback, the process-pool sandbox and a real SQLite store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.dodo import samples
from headrace.previews import MAX_REQUEST, MAX_SCRIPT
from headrace.windmill.emulator import EmulatorThread, running_emulator
from tests.helpers import (
    config_text,
    deployed_windmill,
    dodo_body,
    expected_job_id,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)

SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}, "customer_name": {"type": "string"}},
    "required": ["amount", "customer_name"],
}
GOOD = """function handler(w) {
  const p = w.payload.data;
  w.payload = {amount: p.total_amount, customer_name: p.customer.name};
  return w;
}"""
TOKEN = "preview-admin-token-1"


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    state = deployed_windmill()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"seen": args.get("amount")}, schema=SCHEMA)
    state.add_target("script", "f/dodo/broken", error="boom: the ledger is locked", schema=SCHEMA)
    with running_emulator(state) as emu:
        yield emu


@asynccontextmanager
async def server(tmp_path: Path, emulator: EmulatorThread, **options: Any) -> AsyncIterator[str]:
    text = config_text(tmp_path / "h.db", free_port(), emulator.url(), **options)
    text += f"""
[destinations.broken]
source = "dodo"
events = ["payment.*"]
url = "{emulator.url("f/dodo/broken")}"
token = "test-token"
schema = "off"
"""
    async with running_server(settings_for(text, tmp_path)) as base:
        yield base


async def ask(http: aiohttp.ClientSession, url: str, spec: Any) -> tuple[int, Any]:
    data = spec if isinstance(spec, bytes) else json.dumps(spec).encode()
    async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as response:
        return response.status, await response.json()


def test_preview_answers_every_field(tmp_path: Path, emulator: EmulatorThread) -> None:
    async def main() -> None:
        async with server(tmp_path, emulator) as base, aiohttp.ClientSession() as http:
            status, answer = await ask(
                http,
                f"{base}/api/v1/preview",
                {"destination": "payments", "event_type": "payment.succeeded", "script": GOOD},
            )
            assert status == 200, answer
            sample = samples.load("payment.succeeded")
            assert answer["url"] == emulator.url()
            assert answer["method"] == "POST"
            assert answer["headers"] == {"Content-Type": "application/json", "Authorization": "Bearer ***"}
            expected = {"amount": sample["data"]["total_amount"], "customer_name": sample["data"]["customer"]["name"]}
            assert answer["payload"] == expected
            assert json.loads(answer["body"]) == expected
            assert answer["cancel"] is False and answer["error"] is None and answer["would_send"] is True
            assert answer["notes"] == []
            assert answer["script"] == "edited script"
            assert answer["input"] == {
                "label": "sample payment.succeeded",
                "event_type": "payment.succeeded",
                "webhook_id": "msg_headrace_sample",
                "event_id": None,
            }
            assert answer["schema"] == {
                "checked": True,
                "mode": "enforce",
                "target": "script f/dodo/on_payment",
                "verdict": "fits",
                "reason": "",
                "problems": [],
            }
            diff = {row["key"]: row for row in answer["diff"]}
            assert diff["amount"] == {"key": "amount", "change": "added", "after": str(expected["amount"])}
            assert diff["data"]["change"] == "removed" and diff["type"]["change"] == "removed"
            assert "test-token" not in json.dumps(answer)

    asyncio.run(main())


def test_preview_shows_the_error_line_cancel_schema_problems_and_redacts_tokens(
    tmp_path: Path, emulator: EmulatorThread
) -> None:
    scripts = {
        "error": "function handler(w) {\n  const x = 1;\n  w.payload = w.payload.data.nope.deeper;\n  return w;\n}",
        "cancel": "function handler(w) { w.cancel = w.eventType === 'payment.succeeded'; return w; }",
        "schema": "function handler(w) { w.payload = {amount: 'forty', extra: 1}; return w; }",
        "headers": "function handler(w) { w.headers = {Authorization: 'Bearer mine-secret', 'X-Api-Key': 'k-secret',"
        " 'X-Trace': 'visible', 'Content-Length': '1'}; w.payload = {amount: 1, customer_name: ''}; return w; }",
    }

    async def main() -> dict[str, Any]:
        found = {}
        async with server(tmp_path, emulator) as base, aiohttp.ClientSession() as http:
            for name, script in scripts.items():
                spec = {"destination": "payments", "event_type": "payment.succeeded", "script": script}
                status, found[name] = await ask(http, f"{base}/api/v1/preview", spec)
                assert status == 200, found[name]
        return found

    found = asyncio.run(main())
    error = found["error"]["error"]
    assert error["line"] == 3 and "TypeError" in error["message"] and "edited script" in error["message"]
    assert found["error"]["payload"] is None and found["error"]["would_send"] is False
    assert found["error"]["schema"]["checked"] is False
    assert found["cancel"]["cancel"] is True and found["cancel"]["would_send"] is False
    assert found["cancel"]["error"] is None and found["cancel"]["payload"]["type"] == "payment.succeeded"
    check = found["schema"]["schema"]
    assert check["checked"] is True and check["verdict"] == "not sent"
    assert {p["path"] for p in check["problems"]} == {"amount", "customer_name", "extra"}
    shown = found["headers"]
    assert shown["headers"] == {
        "Authorization": "Bearer ***",
        "X-Api-Key": "***",
        "X-Trace": "visible",
        "Content-Type": "application/json",
    }
    assert "secret" not in json.dumps(shown)
    assert any("Content-Length" in note for note in shown["notes"])


def test_preview_of_a_stored_event_a_variant_and_the_destination_script(tmp_path: Path, emulator: EmulatorThread):
    (tmp_path / "t.js").write_text(GOOD)
    variant = samples.variants("payment.succeeded")[0]

    async def main() -> None:
        async with (
            server(tmp_path, emulator, extra_dest='transform = "t.js"') as base,
            aiohttp.ClientSession() as http,
        ):
            body = dodo_body("payment.succeeded", customer={"name": "Ann"})
            assert (await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_stored")))[0] == 202
            status, answer = await ask(
                http, f"{base}/api/v1/preview", {"destination": "payments", "event_id": "msg_stored"}
            )
            assert status == 200, answer
            assert answer["payload"] == {"amount": 4999, "customer_name": "Ann"} and answer["script"] == "t.js"
            assert answer["input"]["event_id"] == 1 and answer["input"]["webhook_id"] == "msg_stored"
            assert answer["input"]["label"] == "event 1 (msg_stored)"
            status, by_id = await ask(http, f"{base}/api/v1/preview", {"destination": "payments", "event_id": "1"})
            assert status == 200 and by_id["body"] == answer["body"]
            # The id as ingest answered it (a JSON number) is the same event.
            status, by_number = await ask(http, f"{base}/api/v1/preview", {"destination": "payments", "event_id": 1})
            assert status == 200 and by_number["body"] == answer["body"], by_number
            spec = {"destination": "payments", "event_type": "payment.succeeded", "variant": variant}
            status, answer = await ask(http, f"{base}/api/v1/preview", spec)
            assert status == 200 and answer["input"]["label"] == f"sample payment.succeeded, variant {variant}"
            spec = {"destination": "payments", "event_type": "refund.succeeded"}
            status, answer = await ask(http, f"{base}/api/v1/preview", spec)
            assert status == 200 and answer["input"]["event_type"] == "refund.succeeded"

    asyncio.run(main())


def test_preview_refusals_and_limits_at_and_past(tmp_path: Path, emulator: EmulatorThread) -> None:
    base_spec = {"destination": "payments", "event_type": "payment.succeeded"}
    head = "function handler(w) { return w; }\n//"
    at_limit = head + "x" * (MAX_SCRIPT - len(head))
    cases: list[tuple[Any, int, str]] = [
        (b"not json", 400, "not JSON"),
        ([1, 2], 400, "JSON object"),
        ({"event_type": "payment.succeeded"}, 400, "destination: required"),
        ({**base_spec, "destination": "nope"}, 404, "no destination 'nope'"),
        ({"destination": "payments"}, 400, "one of event_id"),
        ({**base_spec, "event_id": "1"}, 400, "one of event_id"),
        ({**base_spec, "event_type": "payment.succeded"}, 404, "did you mean payment.succeeded"),
        ({**base_spec, "variant": "no-such"}, 404, "has no sample variant"),
        ({"destination": "payments", "event_id": "1", "variant": "x"}, 400, "variant: goes with event_type"),
        ({"destination": "payments", "event_id": "msg_none"}, 404, "no event 'msg_none'"),
        ({"destination": "payments", "event_id": "x" * 201}, 400, "at most 200"),
        ({"destination": "payments", "event_id": 2**63}, 400, "an event id is from 0 to 9223372036854775807"),
        ({"destination": "payments", "event_id": -1}, 400, "an event id is from 0 to"),
        ({"destination": "payments", "event_id": True}, 400, "event_id: a string, got bool"),
        ({"destination": "payments", "event_id": 1.5}, 400, "event_id: a string, got float"),
        ({"destination": "payments", "event_id": 9}, 404, "no event '9' (give the event id or the webhook-id)"),
        ({**base_spec, "script": 5}, 400, "script: a string"),
        ({**base_spec, "script": "  "}, 400, "script: empty"),
        ({**base_spec, "colour": "red"}, 400, "unknown field(s) colour"),
        ({**base_spec, "script": at_limit + "y"}, 413, f"the limit is {MAX_SCRIPT:,}"),
        ({**base_spec, "script": "ü" * (MAX_SCRIPT // 2 + 1)}, 413, f"the limit is {MAX_SCRIPT:,}"),
        (json.dumps({**base_spec, "pad": " " * MAX_REQUEST}).encode(), 413, f"the limit is {MAX_REQUEST:,}"),
    ]

    async def main() -> None:
        async with server(tmp_path, emulator) as base, aiohttp.ClientSession() as http:
            for spec, status, text in cases:
                got, answer = await ask(http, f"{base}/api/v1/preview", spec)
                assert (got, text in answer.get("message", "")) == (status, True), (
                    spec if len(str(spec)) < 300 else "",
                    answer,
                )
            assert len(at_limit.encode()) == MAX_SCRIPT
            got, answer = await ask(http, f"{base}/api/v1/preview", {**base_spec, "script": at_limit})
            assert got == 200 and answer["error"] is None, answer
            got, answer = await ask(http, f"{base}/api/v1/test-deliveries", {**base_spec, "destination": "nope"})
            assert got == 404

    asyncio.run(main())


def test_preview_and_test_deliveries_need_the_admin_token(tmp_path: Path, emulator: EmulatorThread) -> None:
    async def main() -> None:
        async with server(tmp_path, emulator, admin_token=TOKEN) as base:
            spec = {"destination": "payments", "event_type": "payment.succeeded"}
            async with aiohttp.ClientSession() as http:
                for path in ("/api/v1/preview", "/api/v1/test-deliveries"):
                    assert (await ask(http, base + path, spec))[0] == 401
                async with http.get(f"{base}/api/v1/test-deliveries/1") as response:
                    assert response.status == 401
            async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
                assert (await ask(http, f"{base}/api/v1/preview", spec))[0] == 200

    asyncio.run(main())


def test_a_test_delivery_has_its_own_job_id_its_outcome_and_never_touches_the_event(
    tmp_path: Path, emulator: EmulatorThread
) -> None:
    (tmp_path / "t.js").write_text(GOOD)
    text = config_text(tmp_path / "h.db", free_port(), emulator.url(), extra_dest='transform = "t.js"')
    settings = settings_for(text, tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            body = dodo_body("payment.succeeded", customer={"name": "Ann"})
            assert (await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_real")))[0] == 202

            async def delivered() -> Any:
                async with http.get(f"{base}/api/v1/events/msg_real") as response:
                    event = await response.json()
                job = event["deliveries"][0]["job"]
                return event if job and job["state"] == "success" else None

            before = await wait_for(delivered)
            real_job = expected_job_id(settings, "msg_real", "payments", 0)
            spec = {"destination": "payments", "event_id": "msg_real"}
            status, first = await ask(http, f"{base}/api/v1/test-deliveries", spec)
            assert status == 201, first
            status, second = await ask(http, f"{base}/api/v1/test-deliveries", spec)
            assert status == 201
            assert first["test"] is True and first["outcome"] == "delivered" and first["http_status"] == 201
            assert len({first["job_id"], second["job_id"], real_job}) == 3  # never a real delivery's, never shared
            assert first["payload"] == {"amount": 4999, "customer_name": "Ann"} and first["event_id"] == 1
            assert first["job"]["state"] == "open"

            async def outcome() -> Any:
                async with http.get(f"{base}/api/v1/test-deliveries/{first['id']}") as response:
                    found = await response.json()
                return found if found["job"]["state"] != "open" else None

            done = await wait_for(outcome)
            assert done["job"]["state"] == "success" and json.loads(done["job"]["excerpt"]) == {"seen": 4999}
            assert first["job_id"] in done["job"]["windmill_url"]
            job = emulator.state.jobs[first["job_id"]]
            assert job.args == {"amount": 4999, "customer_name": "Ann"}
            # The event is untouched: the same deliveries, the same status, nothing for bulk replay to pick up.
            async with http.get(f"{base}/api/v1/events/msg_real") as response:
                after = await response.json()
            assert after["deliveries"] == before["deliveries"] and after["status"] == before["status"] == "delivered"
            async with http.get(f"{base}/api/v1/events") as response:
                assert [e["status"] for e in (await response.json())["events"]] == ["delivered"]
            async with http.post(f"{base}/api/v1/replay", json={"failed": True, "since": "1h"}) as response:
                assert (await response.json())["replayed"] == []
            async with http.get(f"{base}/api/v1/test-deliveries?event_id=1") as response:
                listed = (await response.json())["tests"]
            assert [t["id"] for t in listed] == [second["id"], first["id"]]
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
            delivered_series = [ln for ln in metrics.splitlines() if ln.startswith("headrace_deliveries_total{")]
            assert any(ln.endswith(" 1") and 'outcome="delivered"' in ln for ln in delivered_series), delivered_series
            for path in ("/api/v1/test-deliveries/999", "/api/v1/test-deliveries/x"):
                async with http.get(base + path) as response:
                    assert response.status == 404
            async with http.get(f"{base}/api/v1/test-deliveries?limit=0") as response:
                assert response.status == 400

    asyncio.run(main())


def test_a_failing_job_and_a_refused_test_are_reported(tmp_path: Path, emulator: EmulatorThread) -> None:
    async def main() -> None:
        async with server(tmp_path, emulator) as base, aiohttp.ClientSession() as http:
            spec = {"destination": "broken", "event_type": "payment.failed"}
            status, test = await ask(http, f"{base}/api/v1/test-deliveries", spec)
            assert status == 201 and test["outcome"] == "delivered"

            async def outcome() -> Any:
                async with http.get(f"{base}/api/v1/test-deliveries/{test['id']}") as response:
                    found = await response.json()
                return found if found["job"]["state"] != "open" else None

            done = await wait_for(outcome)
            assert done["job"]["state"] == "failure" and "the ledger is locked" in done["job"]["excerpt"]
            # schema = "enforce" and a payload that does not fit: not sent, as a delivery would not be.
            spec = {
                "destination": "payments",
                "event_type": "payment.succeeded",
                "script": "function handler(w) { return w; }",
            }
            status, refused = await ask(http, f"{base}/api/v1/test-deliveries", spec)
            assert status == 201 and refused["outcome"] == "failed" and refused["job"] is None
            assert "does not match the input schema" in refused["detail"]
            cancel = "function handler(w) { w.cancel = true; return w; }"
            status, cancelled = await ask(http, f"{base}/api/v1/test-deliveries", {**spec, "script": cancel})
            assert status == 201 and cancelled["outcome"] == "cancelled"
            assert len(emulator.state.jobs) == 1

    asyncio.run(main())


_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
}


def problems(value: Any, schema: dict[str, Any], components: dict[str, Any], at: str = "$") -> list[str]:
    """The subset of JSON Schema the OpenAPI document uses, checked strictly (a small, honest validator: the
    document's own words, not a copy of them)."""
    if "$ref" in schema:
        return problems(value, components[schema["$ref"].rsplit("/", 1)[1]], components, at)
    found: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(
            isinstance(value, _TYPES[t]) and not (t in ("integer", "number") and isinstance(value, bool)) for t in types
        )
        if not ok:
            return [f"{at}: {value!r:.60} is not {types}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: {value!r} not in enum")
    if "const" in schema and value != schema["const"]:
        found.append(f"{at}: {value!r} is not {schema['const']!r}")
    if "oneOf" in schema:
        matching = [s for s in schema["oneOf"] if not problems(value, s, components, at)]
        if len(matching) != 1:
            found.append(f"{at}: matches {len(matching)} of oneOf")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{at}: {name} missing")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                found += problems(item, properties[name], components, f"{at}.{name}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{at}: {name} not documented")
            elif isinstance(schema.get("additionalProperties"), dict):
                found += problems(item, schema["additionalProperties"], components, f"{at}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], components, f"{at}[{index}]")
    return found


def test_answers_match_the_openapi_document_exactly(tmp_path: Path, emulator: EmulatorThread) -> None:
    from headrace.api.openapi import document

    doc = document()
    components = doc["components"]["schemas"]
    paths = doc["paths"]

    def schema_of(path: str, method: str, status: int) -> dict[str, Any]:
        return paths[path][method]["responses"][str(status)]["content"]["application/json"]["schema"]  # type: ignore[no-any-return]

    specs = [
        {"destination": "payments", "event_type": "payment.succeeded", "script": GOOD},
        {"destination": "payments", "event_type": "payment.succeeded", "script": "function handler(w) { x(); }"},
        {
            "destination": "payments",
            "event_type": "payment.succeeded",
            "script": "function handler(w) { w.cancel = true; return w; }",
        },
        {"destination": "payments", "event_type": "payment.succeeded"},
        {"destination": "broken", "event_type": "refund.succeeded"},
    ]
    for spec in specs:
        assert not problems(spec, components["PreviewRequest"], components), spec

    async def main() -> None:
        async with server(tmp_path, emulator) as base, aiohttp.ClientSession() as http:
            for spec in specs:
                status, answer = await ask(http, f"{base}/api/v1/preview", spec)
                assert status == 200
                assert not problems(answer, schema_of("/api/v1/preview", "post", 200), components), answer
                status, test = await ask(http, f"{base}/api/v1/test-deliveries", spec)
                assert status == 201
                assert not problems(test, schema_of("/api/v1/test-deliveries", "post", 201), components), test
            async with http.get(f"{base}/api/v1/test-deliveries") as response:
                listed = await response.json()
            assert len(listed["tests"]) == len(specs)
            assert not problems(listed, schema_of("/api/v1/test-deliveries", "get", 200), components)
            async with http.get(f"{base}/api/v1/test-deliveries/{listed['tests'][0]['id']}") as response:
                one = await response.json()
            assert not problems(one, schema_of("/api/v1/test-deliveries/{id}", "get", 200), components)
            status, refusal = await ask(http, f"{base}/api/v1/preview", {"destination": "nope", "event_type": "x"})
            assert status == 404 and not problems(refusal, components["Error"], components)

    asyncio.run(main())


def test_a_hostile_script_hits_the_sandbox_limits_and_the_server_keeps_answering(
    tmp_path: Path, emulator: EmulatorThread
) -> None:
    loop = "function handler(w) {\n  for (;;) {}\n}"
    native = "function handler(w) { w.payload = {s: String(10n ** 300000n)}; return w; }"

    async def main() -> None:
        async with server(tmp_path, emulator) as base, aiohttp.ClientSession() as http:
            for script in (loop, native):
                spec = {"destination": "payments", "event_type": "payment.succeeded", "script": script}
                task = asyncio.ensure_future(ask(http, f"{base}/api/v1/preview", spec))
                async with http.get(f"{base}/healthz") as response:  # the event loop is not held by the script
                    assert response.status == 200
                status, answer = await task
                message = answer["error"]["message"]
                assert status == 200 and "handler exceeded the" in message and "limit" in message, message
                assert answer["would_send"] is False and not emulator.state.jobs

    asyncio.run(main())
