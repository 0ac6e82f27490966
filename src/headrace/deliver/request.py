"""What a delivery sends: the one function that turns a Dodo event and a destination into a Windmill request.

The worker, `headrace check` and `headrace transform` all call `build_request`, so a preview is the delivery:
the Dodo body as is, or what the destination's transformation made of it, with every rule applied here and
nowhere else (the payload is a JSON object; a changed URL is a Windmill run URL on the destination's host).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headrace.transform import Sandbox, Script, TransformError, WebhookObject
from headrace.windmill.urls import RunTarget, WindmillUrlError, parse_run_url


@dataclass(frozen=True)
class Request:
    """What will be sent for one delivery, after the transformation."""

    target: RunTarget  # where the job is created: the destination's target, or the one the transformation chose
    method: str
    headers: Mapping[str, str]  # the handler's own headers; the client adds Content-Type and the token
    body: bytes
    transformed: str | None  # the transformed payload JSON, kept for the timeline (None: the Dodo body as is)
    payload: Any = None  # the transformed payload (None: the Dodo body is sent as is)
    notes: tuple[str, ...] = ()  # what the timeline should show beside the attempt

    @property
    def url(self) -> str:
        return self.target.run_url


@dataclass(frozen=True)
class Refused:
    """Nothing is sent: the transformation failed or asked for something delivery does not allow."""

    reason: str
    payload: str | None = None  # the transformed payload JSON, when there was one


@dataclass(frozen=True)
class Skipped:
    """The transformation set `cancel = true`."""

    payload: str


Built = Request | Refused | Skipped


async def build_request(
    target: RunTarget,
    event_type: str,
    body: bytes,
    webhook_id: str,
    script: Script | None,
    sandbox: Sandbox | None,
) -> Built:
    """The request for one delivery of one event to `target`: the Dodo body as is, or what `script` made of it."""
    if script is None or sandbox is None:
        return Request(target, "POST", {}, body, None)
    try:
        parsed = json.loads(body)
        result = await sandbox.transform(
            script, WebhookObject(event_type=event_type, payload=parsed, url=target.run_url, webhook_id=webhook_id)
        )
    except TransformError as exc:
        return Refused(f"transformation {script.name} failed: {exc}. Fix the script, then replay.")
    payload_json = json.dumps(result.payload, separators=(",", ":"), ensure_ascii=False)
    if result.cancel:
        return Skipped(payload_json)
    if not isinstance(result.payload, dict):
        return Refused(
            f"transformation {script.name} returned a payload of type {type(result.payload).__name__}; "
            "Windmill needs a JSON object (each key becomes one argument of main)",
            payload_json,
        )
    chosen = target
    if result.url != target.run_url:
        checked = _checked_target(result.url, target, script.name)
        if isinstance(checked, str):
            return Refused(checked, payload_json)
        chosen = checked
    return Request(chosen, result.method, dict(result.headers), payload_json.encode(), payload_json, result.payload)


def _checked_target(url: str, target: RunTarget, script: str) -> RunTarget | str:
    """A transformation may point a delivery at another Windmill run URL on the same host, nothing else.
    Returns the new target, or why it is refused."""
    try:
        chosen, _ = parse_run_url(url)
    except WindmillUrlError as exc:
        return f"transformation {script} set url to something that is not a Windmill run URL: {exc}"
    if chosen.base_url != target.base_url:
        return (
            f"transformation {script} set url to host {chosen.host}; only {target.host} "
            "(the destination's Windmill) is allowed"
        )
    return chosen
