"""Job outcomes, schema preflight and metrics, end to end over loopback HTTP against the emulator."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.windmill.emulator import EmulatorState, EmulatorThread, Fault, Token, running_emulator
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

SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "business_id": {"type": "string"},
        "timestamp": {"type": "string"},
        "data": {"type": "object"},
    },
    "required": ["type", "data"],
}


def settings(tmp_path: Path, url: str, extra: str = "", server: str = "") -> Any:
    return settings_for(
        config_text(tmp_path / "h.db", free_port(), url, extra_dest=extra, extra_server=server), tmp_path
    )


async def send(base: str, webhook_id: str, body: bytes | None = None) -> int:
    body = body or dodo_body()
    async with aiohttp.ClientSession() as http:
        status, _ = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, webhook_id))
    return status


async def event_json(base: str, key: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers=headers) as http, http.get(f"{base}/api/v1/events/{key}") as r:
        assert r.status == 200
        return await r.json()


async def until(base: str, key: str, predicate: Any, timeout: float = 15.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        data = await event_json(base, key)
        return data if predicate(data) else None

    result: dict[str, Any] = await wait_for(check, timeout, interval=0.05)
    return result


def job_states(data: dict[str, Any]) -> list[str | None]:
    return [d["job"]["state"] if d["job"] else None for d in data["deliveries"]]


def run_with(state: EmulatorState, scenario: Any) -> EmulatorThread:
    with running_emulator(state) as emu:
        asyncio.run(scenario(emu))
        return emu


def test_slow_job_stays_open_then_succeeds_with_windmill_duration(tmp_path: Path) -> None:
    state = EmulatorState(any_path=False)
    state.add_target("script", "f/dodo/on_payment", lambda args: {"booked": args["data"]["payment_id"]}, delay=2.0)

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server(settings(tmp_path, emu.url(), "job_results = true")) as base:
            await send(base, "msg_slow")
            opened = await until(base, "msg_slow", lambda d: job_states(d) == ["open"] and d["status"] == "delivered")
            assert opened["deliveries"][0]["job"]["completed_at"] is None
            done = await until(base, "msg_slow", lambda d: job_states(d) == ["success"])
        job = done["deliveries"][0]["job"]
        assert job["duration_ms"] >= 1900 and job["checks"] >= 2  # looked at least once while it ran
        assert json.loads(job["excerpt"]) == {"booked": "pay_1"}
        assert job["windmill_url"].endswith(f"/run/{job['job_id']}?workspace=acme")

    run_with(state, scenario)


def test_failed_job_is_recorded_and_rerun_under_new_job_ids(tmp_path: Path) -> None:
    state = EmulatorState(any_path=False)

    def fail(args: dict[str, Any]) -> Any:
        raise ValueError("currency XXX is not supported")

    state.add_target("script", "f/dodo/on_payment", fail)

    async def scenario(emu: EmulatorThread) -> None:
        cfg = settings(tmp_path, emu.url(), "retry_on_job_failure = 2")
        async with running_server(cfg) as base:
            await send(base, "msg_fails")
            data = await until(base, "msg_fails", lambda d: job_states(d) == ["failure"] * 3, timeout=20)
            await asyncio.sleep(1.5)  # no fourth run
            data = await event_json(base, "msg_fails")
            async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/events?status=job_failed") as r:
                listed = [e["webhook_id"] for e in (await r.json())["events"]]
        assert data["status"] == "job_failed" and listed == ["msg_fails"]  # delivered, but the job failed
        assert job_states(data) == ["failure"] * 3
        assert [d["generation"] for d in data["deliveries"]] == [0, 1, 2]
        assert [d["job"]["rerun_number"] for d in data["deliveries"]] == [0, 1, 2]
        assert data["deliveries"][0]["job"]["excerpt"].startswith("ValueError: currency XXX is not supported")
        assert sorted(emu.state.jobs) == sorted(expected_job_id(cfg, "msg_fails", "payments", g) for g in range(3))

    run_with(state, scenario)


def test_run_wait_result_url_creates_the_job_with_run_and_tracks_its_result(tmp_path: Path) -> None:
    state = EmulatorState(any_path=False)
    state.add_target("script", "f/dodo/on_payment", lambda args: {"total": args["data"]["total_amount"]})

    async def scenario(emu: EmulatorThread) -> None:
        url = emu.url().replace("/jobs/run/", "/jobs/run_wait_result/")
        async with running_server(settings(tmp_path, url, "job_results = true")) as base:
            await send(base, "msg_wait")
            data = await until(base, "msg_wait", lambda d: job_states(d) == ["success"])
        delivery = data["deliveries"][0]
        assert [a["http_status"] for a in delivery["attempt_log"]] == [201]  # created by jobs/run, not waited on
        job = delivery["job"]
        assert json.loads(job["excerpt"]) == {"total": 4999} and job["checks"] >= 1  # the tracker saw the result

    run_with(state, scenario)


def test_enforce_refuses_a_mismatch_then_a_deployed_fix_and_replay_delivers(tmp_path: Path) -> None:
    state = EmulatorState(any_path=False)
    target = state.add_target(
        "script",
        "f/dodo/on_payment",
        schema={"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]},
    )

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server(settings(tmp_path, emu.url())) as base:
            await send(base, "msg_enforce")
            data = await until(base, "msg_enforce", lambda d: d["status"] == "failed")
            error = data["deliveries"][0]["last_error"]
            assert "missing required argument 'amount' (integer)" in error
            assert (
                "not declared by the target (Windmill drops them): 'business_id', 'type', 'timestamp', 'data'" in error
            )
            assert "then replay" in error and emu.state.jobs == {}
            target.schema = SCHEMA  # the script's signature is fixed and deployed
            await asyncio.sleep(1.1)
            async with aiohttp.ClientSession() as http, http.post(f"{base}/api/v1/events/msg_enforce/replay") as r:
                assert r.status == 200
            await until(base, "msg_enforce", lambda d: d["status"] == "delivered")
        assert len(emu.state.jobs) == 1

    run_with(state, scenario)


def test_warn_sends_and_notes_the_mismatch(tmp_path: Path) -> None:
    state = EmulatorState(any_path=False)
    state.add_target(
        "script",
        "f/dodo/on_payment",
        schema={**SCHEMA, "properties": {**SCHEMA["properties"], "data": {"type": "string"}}},
    )

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server(settings(tmp_path, emu.url(), 'schema = "warn"')) as base:
            await send(base, "msg_warn")
            data = await until(base, "msg_warn", lambda d: d["status"] == "delivered")
        [attempt] = data["deliveries"][0]["attempt_log"]
        assert attempt["notes"].startswith("schema warning (sent anyway")
        assert "argument 'data': expected string, sent object" in attempt["notes"]
        assert len(emu.state.jobs) == 1

    run_with(state, scenario)


def test_unavailable_schema_does_not_block_delivery(tmp_path: Path) -> None:
    # The token may run jobs but not read scripts: scripts/get is 403 while the run succeeds.
    state = EmulatorState(tokens=set())
    state.add_token(Token("test-token", scopes=frozenset({"jobs:run", "jobs:read"})))
    state.add_target("script", "f/dodo/on_payment")

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server(settings(tmp_path, emu.url())) as base:
            await send(base, "msg_noschema")
            data = await until(base, "msg_noschema", lambda d: d["status"] == "delivered")
        [attempt] = data["deliveries"][0]["attempt_log"]
        note = "schema not checked: the token may run script f/dodo/on_payment but not read its definition (HTTP 403"
        assert attempt["notes"].startswith(note)

    run_with(state, scenario)


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


def test_metrics_after_a_known_sequence(tmp_path: Path) -> None:
    state = EmulatorState(any_path=False)
    state.add_target("script", "f/dodo/on_payment", lambda args: "ok")
    state.inject(Fault("status", count=1, status=503))
    admin = '\nadmin_token = "metrics-admin-token"'
    auth = {"Authorization": "Bearer metrics-admin-token"}

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server(settings(tmp_path, emu.url(), server=admin)) as base:
            for webhook_id in ("m1", "m2", "m3", "m1"):
                assert await send(base, webhook_id) in (200, 202)
            body = dodo_body()
            async with aiohttp.ClientSession() as http:
                bad = signed_headers(body, "m4") | {"webhook-signature": "v1,AAAA"}
                assert (await post(http, f"{base}/webhooks/dodo", body, bad))[0] == 401
                assert (await post(http, f"{base}/webhooks/nope", body, signed_headers(body, "m5")))[0] == 404

            async def jobs_done() -> dict[str, float] | None:
                async with aiohttp.ClientSession(headers=auth) as http, http.get(f"{base}/metrics") as r:
                    assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                    values = parse_metrics(await r.text())
                key = 'headrace_jobs_total{destination="payments",outcome="success"}'
                return values if values.get(key) == 3 else None

            async def gauges_settled() -> dict[str, float] | None:  # the store gauges are cached for a second
                values = await jobs_done()
                settled = values is not None and values["headrace_jobs_open"] == 0
                return values if settled and values["headrace_queue_oldest_age_seconds"] == 0 else None

            values = await wait_for(gauges_settled, 15)
            async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as r:
                assert r.status == 401  # behind the admin token, like the API
        assert values['headrace_events_received_total{source="dodo",outcome="accepted"}'] == 3
        assert values['headrace_events_received_total{source="dodo",outcome="duplicate"}'] == 1
        assert values['headrace_events_rejected_total{source="dodo",reason="bad_signature"}'] == 1
        assert values['headrace_events_rejected_total{source="(unknown)",reason="unknown_source"}'] == 1
        assert values['headrace_deliveries_total{destination="payments",outcome="delivered"}'] == 3
        assert values['headrace_delivery_retries_total{destination="payments",reason="http_503"}'] == 1
        assert values['headrace_delivery_attempt_duration_seconds_count{destination="payments"}'] == 4
        assert values["headrace_jobs_open"] == 0
        assert values["headrace_queue_oldest_age_seconds"] == 0

    run_with(state, scenario)


@pytest.mark.parametrize("kind", ["script", "flow"])
def test_emulator_definitions_like_windmill(kind: str) -> None:
    state = EmulatorState(any_path=False)
    state.add_target(kind, "f/dodo/x", schema=SCHEMA, draft_only=True)  # type: ignore[arg-type]

    async def scenario(emu: EmulatorThread) -> None:
        base = f"http://127.0.0.1:{emu.port}/api/w/acme"
        path = "scripts/get/p" if kind == "script" else "flows/get"
        auth = {"Authorization": "Bearer test-token"}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(f"{base}/{path}/f/dodo/x") as r:
                body = await r.json()
                assert r.status == 200 and body["schema"] == SCHEMA and body["draft_only"] is True
            async with http.get(f"{base}/{path}/f/dodo/missing") as r:
                assert r.status == 404
            letter = "p" if kind == "script" else "f"
            async with http.post(f"{base}/jobs/run/{letter}/f/dodo/x", json={}) as r:
                assert r.status == 201  # a draft-only target runs by path (CONTRACT R4)
            async with aiohttp.ClientSession() as anonymous, anonymous.get(f"{base}/{path}/f/dodo/x") as r:
                assert r.status == 401

    run_with(state, scenario)
