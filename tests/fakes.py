"""Test doubles for the attempt unit: the typed Windmill fake (headrace.windmill.fake), a sandbox that runs a
Python function as the handler, and the attempter wired with them. No network, no JS engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headrace.config import DestinationSettings
from headrace.deliver.attempt import Attempter
from headrace.deliver.preflight import SchemaCache
from headrace.models import Claimed, job_id_for
from headrace.observe.metrics import Metrics
from headrace.transform import Script, WebhookObject
from headrace.windmill.fake import FakeWindmill, as_api
from tests.helpers import config_text, dodo_body, settings_for

URL = "http://127.0.0.1:9/api/w/acme/jobs/run/p/f/dodo/on_payment"


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
    api = as_api(client)
    return Attempter(api, SchemaCache(api), Metrics(lambda: now), clock=lambda: now, rand=lambda: 0.5)
