"""Test doubles for the attempt unit: a Windmill client that answers from a script and records every call,
and a sandbox that runs a Python function as the handler. No network, no JS engine."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from headrace.config import DestinationSettings
from headrace.deliver.attempt import Attempter
from headrace.deliver.preflight import SchemaCache
from headrace.metrics import Metrics
from headrace.models import Claimed, job_id_for
from headrace.transform import Script, WebhookObject
from headrace.windmill.client import JobPoll, RunResponse, TargetInfo
from headrace.windmill.urls import RunTarget
from tests.helpers import config_text, dodo_body, settings_for

URL = "http://127.0.0.1:9/api/w/acme/jobs/run/p/f/dodo/on_payment"


@dataclasses.dataclass
class RunCall:
    target: RunTarget
    url: str
    job_id: str
    body: bytes
    method: str
    headers: dict[str, str]


class FakeWindmill:
    """Answers `run` from `answers` (a RunResponse, or an exception to raise), in order; the last one repeats."""

    def __init__(self, *answers: RunResponse | BaseException, schema: dict[str, Any] | None = None) -> None:
        self.answers = list(answers) or [RunResponse(201, "")]
        self.runs: list[RunCall] = []
        self.exists: bool | None = True
        self.schema = schema
        self.lookups: list[tuple[str, str]] = []  # (url, job id) of job_exists / result_maybe / job_info

    async def run(
        self,
        target: RunTarget,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        method: str = "POST",
        timeout: float = 30.0,
    ) -> RunResponse:
        job_id = url.rpartition("job_id=")[2]
        self.runs.append(RunCall(target, url, job_id, body, method, dict(headers)))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        if answer.status is not None and 200 <= answer.status < 300 and not answer.body:
            return dataclasses.replace(answer, body=job_id)
        return answer

    async def job_exists(self, target: RunTarget, token: str, job_id: str, timeout: float = 10.0) -> bool | None:
        self.lookups.append((target.job_url(job_id), job_id))
        return self.exists

    async def result_maybe(self, target: RunTarget, token: str, job_id: str, timeout: float = 10.0) -> JobPoll:
        self.lookups.append((target.result_url(job_id), job_id))
        return JobPoll(200)

    async def job_info(self, target: RunTarget, token: str, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
        return {}

    async def job_duration(self, target: RunTarget, token: str, job_id: str, timeout: float = 10.0) -> float | None:
        return None

    async def get_target(self, target: RunTarget, token: str, timeout: float = 10.0) -> TargetInfo:
        return TargetInfo(200, schema=self.schema)


class PySandbox:
    """Runs `handler(webhook) -> webhook` written in Python, with the sandbox's calling convention."""

    def __init__(self, handler: Callable[[WebhookObject], WebhookObject]) -> None:
        self.handler = handler

    async def transform(self, script: Script, webhook: WebhookObject) -> WebhookObject:
        return self.handler(webhook)


def destination(tmp_path: Path, url: str = URL, extra: str = "", schedule: str = '["1s", "2s"]') -> DestinationSettings:
    text = config_text(tmp_path / "h.db", 1, url, schedule=schedule, extra_dest=extra)
    return settings_for(text, tmp_path).destinations["payments"]


def claimed(webhook_id: str = "msg_1", attempts: int = 0, body: bytes | None = None, **data: Any) -> Claimed:
    body = body if body is not None else dodo_body("payment.succeeded", **data)
    return Claimed(
        delivery_id=1,
        event_id=1,
        destination="payments",
        generation=0,
        job_id=job_id_for("deployment-test", "http://windmill.test/api/w/acme", "dodo", webhook_id, "payments", 0),
        attempts=attempts,
        source="dodo",
        webhook_id=webhook_id,
        event_type=json.loads(body).get("type", ""),
        body=body,
    )


def attempter(client: FakeWindmill, now: float = 1000.0) -> Attempter:
    return Attempter(client, SchemaCache(client), Metrics(lambda: now), clock=lambda: now, rand=lambda: 0.5)  # type: ignore[arg-type]
