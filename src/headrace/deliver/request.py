"""What a delivery sends: the one function that turns a Dodo event and a destination into a Windmill request.

The worker, `headrace check` and `headrace transform` all call `build_request`, so a preview is the delivery:
the Dodo body as is, or what the destination's transformation made of it, with every rule applied here and
nowhere else (the payload is a JSON object; a changed URL is a Windmill run URL in the destination's host and
workspace;
the job is created with `jobs/run`, never by waiting on `run_wait_result`; the headers follow `headers_for`).

Text from Dodo never reaches Windmill in a form it would resolve (CONTRACT.md A4): every string value of the
Dodo body that starts with `$` gets the guard mark (windmill/references.py) before the transformation sees it,
and before the body is sent as is (re-serialized only when a string changed; otherwise the bytes Dodo sent).
After the transformation every output string Windmill would resolve is guarded again (a piece of customer
text split out by the script starts with `$` too), except what the script wrote with
`windmill.reference(...)`; the attempt, the preview and `check` say where. Arguments Windmill's reference
walk would take 50 levels deep are refused (the job would fail). The method is always POST (CONTRACT R7).

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
from headrace.windmill.references import MARK, MAX_INTERPOLATION_DEPTH, guard, guard_output, too_deep
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
    # The note saying where the transformation wrote strings Windmill would resolve, sent guarded ("" when it
    # wrote none); it is among `notes` too, and `check` flags it.
    guarded: str = ""

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
        if not _may_need_guard(body) and not _may_be_deep(body):
            return Request(sent_to, "POST", {}, body, None)
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError) as exc:
            return Refused(f"the event body cannot be read as JSON ({type(exc).__name__}); it cannot be sent")
        deep = _nested_argument(parsed, body) if isinstance(parsed, dict) else None
        if deep is not None:
            return Refused(f"the event body has {deep}")
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
        payload, guarded = result.payload, []
        payload_json = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
        if '"$' in payload_json:  # a string (or key) that starts with `$`: guard what Windmill would resolve
            payload, guarded = guard_output(payload)
            if guarded:
                payload_json = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
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
    if not isinstance(payload, dict):
        return Refused(
            f"transformation {script.name} returned a payload of type {type(payload).__name__}; "
            "Windmill needs a JSON object (each key becomes one argument of main)",
            payload_json,
        )
    deep = _nested_argument(payload, payload_json)
    if deep is not None:
        return Refused(f"transformation {script.name} returned {deep}", payload_json)
    chosen = sent_to
    if result.url != target.run_url:
        checked = _checked_target(result.url, target, script.name)
        if isinstance(checked, str):
            return Refused(checked, payload_json)
        chosen = created_async(checked)
    headers, notes = _handler_headers(result.headers, script.name)
    guard_note = _guarded_note(script.name, guarded) if guarded else ""
    if guard_note:
        notes += (guard_note,)
    if result.method != "POST":
        notes += (
            f"transformation {script.name} set method {result.method}: sent as POST, the only method Windmill's "
            "run routes accept (anything else is 405, CONTRACT R7)",
        )
    return Request(chosen, "POST", headers, sent, payload_json, payload, notes, guard_note)


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
    starts with an escape (`"\\u0024`), no mark anywhere. Most bodies, so most deliveries skip parsing.
    Each two-byte search starts at every `"` of the body (~2.4 us on 2.7 KB); the single bytes they need
    (`$`, a backslash, the mark's first byte) are looked for first, and are usually absent (~0.5 us for all three)."""
    if b"$" not in body and b"\\" not in body and _MARK_BYTES[:1] not in body:
        return False
    return b'"$' in body or b'"\\' in body or _MARK_BYTES in body


def _may_be_deep(body: bytes | str) -> bool:
    """False when the JSON cannot nest MAX_INTERPOLATION_DEPTH levels: fewer opening brackets than that."""
    if isinstance(body, str):
        return body.count("{") + body.count("[") >= MAX_INTERPOLATION_DEPTH
    return body.count(b"{") + body.count(b"[") >= MAX_INTERPOLATION_DEPTH


def _nested_argument(args: dict[str, Any], text: bytes | str) -> str | None:
    """Why the arguments cannot be sent because Windmill's reference walk would fail the job (CONTRACT A4), or
    None. Refused whether or not the argument holds reference text now: customer text can put it there."""
    name = too_deep(args) if _may_be_deep(text) else None
    if name is None:
        return None
    return (
        f"an argument {name!r} nested {MAX_INTERPOLATION_DEPTH} or more levels deep: Windmill fails such a job "
        "as soon as any text in it holds $var:, $res:, $jsonvar: or $encrypted: (customer text can), so it is "
        "not sent. Flatten it, then replay."
    )


def _guarded_note(script: str, where: list[str]) -> str:
    shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
    return (
        f"transformation {script} wrote {len(where)} string(s) Windmill would resolve as a reference ({shown}): "
        "sent guarded (U+2060 in front, so Windmill passes them as text; unguard them in the script). "
        'For a reference you mean, write windmill.reference("$res:f/dodo/db") in the transformation.'
    )


def _too_deep(script: Script) -> str:
    return (
        f"transformation {script.name} returned a payload nested too deeply to send (hundreds of levels); "
        "Windmill arguments are plain objects: flatten the payload, then replay."
    )


def _checked_target(url: str, target: RunTarget, script: str) -> RunTarget | str:
    """A transformation may point a delivery at another script or flow of the destination's Windmill and
    workspace, nothing else: the URL is parsed (plain path segments only, no `..`, no percent-encoding) and
    compared normalised; its query must be the destination's own (query parameters change how Windmill runs
    the job, which is the destination's setting). Returns the new target, or why it is refused."""
    try:
        chosen, token = parse_run_url(url)
    except WindmillUrlError as exc:
        return f"transformation {script} set url to something that is not a Windmill run URL: {exc}"
    if token is not None:
        return (
            f"transformation {script} set url with a ?token=; a transformation cannot choose the token (the "
            "destination's is sent): remove it from the url"
        )
    if chosen.normalised_base != target.normalised_base:
        where = (
            f"host {chosen.host}; only {target.host}"
            if chosen.host.lower() != target.host.lower()
            else f"{chosen.base_url}; only {target.base_url}"
        )
        return f"transformation {script} set url to {where} (the destination's Windmill) is allowed"
    if chosen.workspace != target.workspace:
        # Windmill looks jobs up per workspace (CONTRACT.md J1) and the job id is made unique to the
        # destination's workspace: a job created elsewhere could be neither confirmed nor tracked.
        return (
            f"transformation {script} set url to workspace {chosen.workspace}; only {target.workspace} (the "
            "destination's workspace) is allowed: add a destination for the other workspace instead"
        )
    if chosen.extra_query != target.extra_query:
        changed = sorted(set(chosen.extra_query) ^ set(target.extra_query))
        names = ", ".join(dict.fromkeys(key[:40] for key, _ in changed[:5]))
        return (
            f"transformation {script} changed the url's query ({names}); a transformation may choose only the "
            "script or flow path: query parameters are the destination's, set them in its url"
        )
    return chosen
