"""The attempt unit (prepare -> send -> classify -> outcome) with a fake Windmill client: no network, no store."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from headrace.models import Cancelled, Delivered, Failed, Retry
from headrace.transform import Script, TransformError, WebhookObject
from headrace.windmill.client import RunResponse
from tests.fakes import FakeWindmill, PySandbox, attempter, claimed, destination

SCRIPT = Script("t.js", "function handler(w) { return w; }")


def test_created_job_is_delivered_with_the_deterministic_job_id(tmp_path: Path) -> None:
    client = FakeWindmill(RunResponse(201, ""))
    delivery = claimed()
    attempt, outcome = asyncio.run(attempter(client).attempt(delivery, destination(tmp_path), None, None))
    assert outcome == Delivered(delivery.job_id)
    assert attempt.http_status == 201 and attempt.request_payload is None
    [call] = client.runs
    assert call.job_id == delivery.job_id and call.body == delivery.body and call.method == "POST"


def test_server_error_is_retried_on_the_schedule_then_failed(tmp_path: Path) -> None:
    client = FakeWindmill(RunResponse(503, "busy"))
    dest = destination(tmp_path, schedule='["10s"]')
    _, first = asyncio.run(attempter(client, now=1000.0).attempt(claimed(attempts=0), dest, None, None))
    assert isinstance(first, Retry) and first.at == 1010.0 and "HTTP 503" in first.reason
    _, last = asyncio.run(attempter(client, now=1000.0).attempt(claimed(attempts=1), dest, None, None))
    assert isinstance(last, Failed) and last.reason.startswith("gave up after 2 attempts")


def test_already_exists_is_confirmed_with_a_lookup(tmp_path: Path) -> None:
    client = FakeWindmill(RunResponse(400, "Job with id X already exists"))
    delivery = claimed()
    _, outcome = asyncio.run(attempter(client).attempt(delivery, destination(tmp_path), None, None))
    assert outcome == Delivered(delivery.job_id)
    assert client.lookups == [(f"http://127.0.0.1:9/api/w/acme/jobs_u/get/{delivery.job_id}", delivery.job_id)]
    client.exists = False
    _, outcome = asyncio.run(attempter(client).attempt(delivery, destination(tmp_path), None, None))
    assert isinstance(outcome, Failed) and "Fix the payload" in outcome.reason


def test_transformation_cancel_and_refusal_send_nothing(tmp_path: Path) -> None:
    client = FakeWindmill()
    dest = destination(tmp_path)
    cancel = PySandbox(lambda w: dataclasses.replace(w, cancel=True))
    _, outcome = asyncio.run(attempter(client).attempt(claimed(), dest, SCRIPT, cancel))
    assert isinstance(outcome, Cancelled)
    not_object = PySandbox(lambda w: dataclasses.replace(w, payload=[1, 2]))
    attempt, outcome = asyncio.run(attempter(client).attempt(claimed(), dest, SCRIPT, not_object))
    assert isinstance(outcome, Failed) and "needs a JSON object" in outcome.reason
    assert attempt.request_payload == "[1,2]"
    assert client.runs == []


def test_transformed_payload_headers_and_same_host_url_are_sent(tmp_path: Path) -> None:
    client = FakeWindmill()

    def handler(w: WebhookObject) -> WebhookObject:
        return dataclasses.replace(
            w,
            payload={"id": w.webhook_id, "amount": w.payload["data"]["total_amount"]},
            url=w.url.replace("f/dodo/on_payment", "f/dodo/other"),
            headers={"x-from": "headrace"},
        )

    attempt, outcome = asyncio.run(
        attempter(client).attempt(claimed(), destination(tmp_path), SCRIPT, PySandbox(handler))
    )
    assert isinstance(outcome, Delivered)
    [call] = client.runs
    assert call.body == b'{"id":"msg_1","amount":4999}' and attempt.request_payload == call.body.decode()
    assert call.url.endswith(f"/jobs/run/p/f/dodo/other?job_id={call.job_id}")
    assert call.headers == {
        "x-from": "headrace",
        "Content-Type": "application/json",
        "Authorization": "Bearer test-token",
    }


def test_a_handlers_own_authorization_wins_and_is_noted(tmp_path: Path) -> None:
    client = FakeWindmill()
    sandbox = PySandbox(lambda w: dataclasses.replace(w, headers={"authorization": "Bearer from-the-script"}))
    attempt, outcome = asyncio.run(attempter(client).attempt(claimed(), destination(tmp_path), SCRIPT, sandbox))
    assert isinstance(outcome, Delivered)
    [call] = client.runs
    assert call.headers == {"authorization": "Bearer from-the-script", "Content-Type": "application/json"}
    assert "set its own Authorization header" in attempt.notes and "from-the-script" not in attempt.notes


class LimitSandbox:
    """A sandbox whose every run ends with TransformError of one `limit` kind, as transform/pool.py raises it."""

    def __init__(self, limit: str | None) -> None:
        self.limit = limit

    async def transform(self, script: Script, webhook: WebhookObject) -> WebhookObject:
        raise TransformError(f"{script.name}: stopped ({self.limit})", limit=self.limit)


def test_a_run_stopped_from_outside_is_retried_on_the_schedule_then_failed(tmp_path: Path) -> None:
    """The wall-clock deadline on an overloaded machine, or a dead sandbox process, is not the script's fault."""
    client = FakeWindmill()
    dest = destination(tmp_path, schedule='["10s"]')
    for limit in ("wall", "process"):
        sandbox = LimitSandbox(limit)
        _, first = asyncio.run(attempter(client, now=1000.0).attempt(claimed(attempts=0), dest, SCRIPT, sandbox))
        assert isinstance(first, Retry) and first.at == 1010.0, limit
        assert f"stopped ({limit})" in first.reason and "Retried on the schedule" in first.reason
        _, last = asyncio.run(attempter(client, now=1000.0).attempt(claimed(attempts=1), dest, SCRIPT, sandbox))
        assert isinstance(last, Failed) and last.reason.startswith("gave up after 2 attempts"), limit
    assert client.runs == []


def test_a_script_that_overruns_its_own_limits_or_throws_fails_for_good(tmp_path: Path) -> None:
    client = FakeWindmill()
    dest = destination(tmp_path, schedule='["10s", "10s"]')
    for limit in ("cpu", "memory", None):
        _, outcome = asyncio.run(attempter(client).attempt(claimed(), dest, SCRIPT, LimitSandbox(limit)))
        assert isinstance(outcome, Failed) and "Fix the script, then replay" in outcome.reason, limit
    assert client.runs == []
