"""What a delivery sends: the one function that turns a Dodo event and a destination into a Windmill request.

The worker, `headrace check` and `headrace transform` all call `build_request`, so a preview is the delivery:
the Dodo body as is, or what the destination's transformation made of it, with every rule applied here and
nowhere else (the payload is a JSON object; a changed URL is a Windmill run URL in the destination's host and
workspace;
the job is created with `jobs/run`, never by waiting on `run_wait_result`; the headers follow `headers_for`).

Text from Dodo never reaches Windmill in a form it would resolve (CONTRACT.md A4): every string value of the
Dodo body that starts with `$` gets the guard mark (windmill/references.py) before the transformation sees it,
and before the body is sent as is (re-serialized only when a string changed; otherwise the bytes Dodo sent).
Strings the transformation writes itself are sent as written.

Headers (docs/transformations.md): a handler's own headers are sent as it set them, except headrace's own
(HEADRACE_HEADERS: Content-Type, since the body is always JSON, and the framing and hop-by-hop headers), which
are dropped with a note in the attempt. `Authorization` follows Svix: a handler that sets its own wins, and
the destination's token is then not sent (the attempt notes it, never the value). A transformed payload over
the destination's `payload_limit` is refused.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headrace.config import DEFAULT_PAYLOAD_LIMIT
from headrace.transform import Sandbox, Script, TransformError, WebhookObject
from headrace.windmill.references import MARK, guard
from headrace.windmill.urls import RunTarget, WindmillUrlError, parse_run_url

_MARK_BYTES = MARK.encode()
# TransformError.limit values that say the run was stopped from outside (wall clock, dead process), not that
# the script overran its CPU or memory limit or threw: worth another attempt.
TRANSIENT_LIMITS = frozenset({"wall", "process"})

# Headers a handler may not set (docs/transformations.md): the body is always JSON, and framing and
# hop-by-hop headers describe the request the HTTP client really sends, not what a handler wishes.
HEADRACE_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "expect",
    }
)


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

    def full_url(self, job_id: str) -> str:
        """The URL requested: the run URL with the delivery's job id appended."""
        url = self.url
        return f"{url}{'&' if '?' in url else '?'}job_id={job_id}"

    def headers_for(self, token: str) -> dict[str, str]:
        """Every header headrace sets on the request (the HTTP client adds only Host, Content-Length,
        User-Agent and Accept*): the handler's (already without headrace's own, see HEADRACE_HEADERS), then
        Content-Type, then the token unless the handler set its own Authorization."""
        headers = dict(self.headers)
        headers["Content-Type"] = "application/json"
        if not any(k.lower() == "authorization" for k in headers):
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def preview(self, job_id: str) -> bytes:
        """The request as an HTTP/1.1 message, as `headrace transform --request` prints it; the destination's
        token is shown as `***`."""
        lines = [f"{self.method} {self.full_url(job_id)}"]
        lines += [f"{k}: {v}" for k, v in self.headers_for("***").items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(frozen=True)
class Refused:
    """Nothing is sent: the transformation failed or asked for something delivery does not allow."""

    reason: str
    payload: str | None = None  # the transformed payload JSON, when there was one
    # Not the script's fault: the sandbox's wall-clock deadline or a dead sandbox process (an overloaded
    # machine); the worker retries it on the destination's schedule instead of failing the delivery.
    transient: bool = False
    line: int | None = None  # the script line the JavaScript error came from, when the engine said


@dataclass(frozen=True)
class Skipped:
    """The transformation set `cancel = true`."""

    payload: str  # the payload JSON, for the timeline
    webhook: WebhookObject  # what the handler returned, for `headrace transform`


Built = Request | Refused | Skipped


async def build_request(
    target: RunTarget,
    event_type: str,
    body: bytes,
    webhook_id: str,
    script: Script | None,
    sandbox: Sandbox | None,
    payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
    *,
    origin: str = "dodo",
) -> Built:
    """The request for one delivery of one event to `target`: the Dodo body as is, or what `script` made of it."""
    sent_to = created_async(target)
    if script is None or sandbox is None:
        if not _may_need_guard(body):
            return Request(sent_to, "POST", {}, body, None)
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as exc:
            return Refused(f"the event body cannot be read as JSON ({type(exc).__name__}); it cannot be sent")
        guarded = guard(parsed)
        if guarded is parsed:
            return Request(sent_to, "POST", {}, body, None)  # nothing to guard: the bytes Dodo sent
        return Request(
            sent_to, "POST", {}, json.dumps(guarded, separators=(",", ":"), ensure_ascii=False).encode(), None
        )
    try:
        parsed = guard(json.loads(body))
    except (ValueError, RecursionError) as exc:
        return Refused(f"the event body cannot be read as JSON ({type(exc).__name__}); it cannot be transformed")
    try:
        result = await sandbox.transform(
            script,
            WebhookObject(
                event_type=event_type, payload=parsed, url=target.run_url, webhook_id=webhook_id, origin=origin
            ),
        )
    except TransformError as exc:
        if exc.limit in TRANSIENT_LIMITS:
            return Refused(
                f"transformation {script.name} did not finish: {exc}. Retried on the schedule (a busy machine is "
                "not the script's fault); if every attempt ends this way, make the handler do less work",
                transient=True,
                line=exc.line,
            )
        return Refused(f"transformation {script.name} failed: {exc}. Fix the script, then replay.", line=exc.line)
    except RecursionError:
        return Refused(_too_deep(script))
    try:
        payload_json = json.dumps(result.payload, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:
        return Refused(_too_deep(script))
    sent = payload_json.encode()
    if len(sent) > payload_limit:  # before anything keeps it (the timeline stores a cancelled payload too)
        return Refused(
            f"transformation {script.name} returned a payload of {len(sent):,} bytes; the limit is "
            f"{payload_limit:,} (payload_limit of the destination). Send less (Windmill arguments are not a "
            "file store), or raise payload_limit, then replay."
        )
    if result.cancel:
        return Skipped(payload_json, result)
    if not isinstance(result.payload, dict):
        return Refused(
            f"transformation {script.name} returned a payload of type {type(result.payload).__name__}; "
            "Windmill needs a JSON object (each key becomes one argument of main)",
            payload_json,
        )
    chosen = sent_to
    if result.url != target.run_url:
        checked = _checked_target(result.url, target, script.name)
        if isinstance(checked, str):
            return Refused(checked, payload_json)
        chosen = created_async(checked)
    headers, notes = _handler_headers(result.headers, script.name)
    return Request(chosen, result.method, headers, sent, payload_json, result.payload, notes)


def _handler_headers(headers: Mapping[str, str], script: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """The handler's headers without headrace's own (HEADRACE_HEADERS: framing and hop-by-hop, which the
    HTTP client sets from the request it really sends), and the attempt notes saying what was dropped."""
    kept: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in headers.items():
        lower = name.lower()
        if lower in HEADRACE_HEADERS or lower.startswith("proxy-"):
            dropped.append(name)
        else:
            kept[name] = value
    notes: list[str] = []
    if dropped:
        notes.append(
            f"transformation {script} set {', '.join(dropped)}: not sent, these headers are headrace's "
            "(the body is JSON, framing and connection headers follow the request actually sent)"
        )
    if any(name.lower() == "authorization" for name in kept):
        notes.append(f"transformation {script} set its own Authorization header; it was sent instead of the token")
    return kept, tuple(notes)


def created_async(target: RunTarget) -> RunTarget:
    """The target a job is created at: always `jobs/run/...`, also for a `run_wait_result` URL. Windmill cancels
    a job whose waiting client hangs up (CONTRACT.md W3), so headrace never waits on a run request; the
    tracker follows the job's outcome instead (docs/operations.md)."""
    return target if target.mode == "async" else dataclasses.replace(target, mode="async")


def _may_need_guard(body: bytes) -> bool:
    """False when no string in the JSON body can start with `$` or the guard mark: no `"$`, no string that
    starts with an escape (`"\\u0024`), no mark anywhere. Most bodies, so most deliveries skip parsing."""
    return b'"$' in body or b'"\\' in body or _MARK_BYTES in body


def _too_deep(script: Script) -> str:
    return (
        f"transformation {script.name} returned a payload nested too deeply to send (hundreds of levels); "
        "Windmill arguments are plain objects: flatten the payload, then replay."
    )


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
    if chosen.workspace != target.workspace:
        # Windmill looks jobs up per workspace (CONTRACT.md J1) and the job id is made unique to the
        # destination's workspace: a job created elsewhere could be neither confirmed nor tracked.
        return (
            f"transformation {script} set url to workspace {chosen.workspace}; only {target.workspace} (the "
            "destination's workspace) is allowed: add a destination for the other workspace instead"
        )
    return chosen
