"""Try a transformation: what a delivery of one event to one destination would send, without sending it.

The service that reads a request, refuses it and looks events up is headrace/previews.py (the console's
"Try a transformation" page and `POST /api/v1/preview` both call it). The request is built here by
`build_request` (deliver/request.py), the function the worker uses, so the preview *is* the delivery; the answer
adds what a person needs beside it: the schema check against the Windmill target's input schema, the JavaScript
error with its line, and a key-level diff against the input.

An edited script runs in the app's sandbox (worker processes, CPU/memory/wall-clock limits) under a name of its
own (EDITED), never as a trusted built-in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from headrace.config import DestinationSettings
from headrace.deliver.preflight import SchemaCache, judge
from headrace.deliver.request import Built, Request, Skipped, build_request
from headrace.dodo import samples
from headrace.transform import Sandbox, Script
from headrace.transform.fair import EDITED

SAMPLE_WEBHOOK_ID = "msg_headrace_sample"  # the webhook-id a bundled sample is tried with
DIFF_LIMIT = 200  # rows of the key-level diff
REDACTED = "***"
# Header names whose values are credentials: shown as ***. Authorization keeps its scheme ("Bearer ***").
_SECRET_WORDS = ("auth", "token", "secret", "key", "cookie", "password", "signature", "session")


@dataclass(frozen=True)
class Input:
    """The Dodo event a preview runs on."""

    event_type: str
    body: bytes
    webhook_id: str
    event_id: int | None  # the stored event, or None for a sample
    source: str | None  # the stored event's source
    label: str  # "event 12 (msg_…)" / "sample payment.succeeded, variant jpy"


def sample_input(event_type: str, variant: str | None) -> Input:
    body = json.dumps(samples.load(event_type, variant), ensure_ascii=False).encode()
    label = f"sample {event_type}" + (f", variant {variant}" if variant else "")
    return Input(event_type, body, SAMPLE_WEBHOOK_ID, None, None, label)


def script_for(edited: str | None, own: Script | None) -> Script | None:
    """An edited script runs as EDITED (untrusted, in the pool); otherwise the destination's own, if any."""
    return Script(EDITED, edited) if edited is not None else own


async def preview(
    dest: DestinationSettings,
    script: Script | None,
    given: Input,
    sandbox: Sandbox | None,
    schemas: SchemaCache,
) -> dict[str, Any]:
    """The preview answer: the request `build_request` makes, the schema check, notes and the diff."""
    built = await build_request(
        dest.target, given.event_type, given.body, given.webhook_id, script, sandbox, dest.payload_limit
    )
    notes: list[str] = []
    if given.source is not None and (given.source != dest.source or not dest.matches(given.event_type)):
        notes.append(
            f"this destination does not receive {given.event_type} events from source {given.source} "
            f"(its events: {', '.join(dest.events)}, source {dest.source}): a real delivery would not happen"
        )
    if not dest.enabled:
        notes.append("this destination is disabled (enabled = false): nothing is delivered to it now")
    answer = _answer(built, dest)
    answer["notes"] = notes + answer["notes"]
    answer["input"] = {
        "label": given.label,
        "event_type": given.event_type,
        "webhook_id": given.webhook_id,
        "event_id": given.event_id,
    }
    answer["script"] = script.name if script is not None else None
    answer["schema"] = await _schema(built, dest, schemas)
    before = _json_or_none(given.body)
    after = answer["payload"]
    answer["diff"] = key_diff(before, after) if after is not None else []
    return answer


def _answer(built: Built, dest: DestinationSettings) -> dict[str, Any]:
    if isinstance(built, Request):
        return {
            "url": built.url,
            "method": built.method,
            "headers": redact(built.headers_for(REDACTED)),
            "payload": _json_or_none(built.body),
            "body": built.body.decode("utf-8", "replace"),
            "cancel": False,
            "error": None,
            "notes": list(built.notes),
            "would_send": True,
        }
    if isinstance(built, Skipped):
        hook = built.webhook
        return {
            "url": hook.url,
            "method": hook.method,
            "headers": redact(dict(hook.headers)),
            "payload": json.loads(built.payload),
            "body": None,
            "cancel": True,
            "error": None,
            "notes": ["the transformation set cancel = true: nothing is sent (the delivery is recorded as cancelled)"],
            "would_send": False,
        }
    return {
        "url": dest.target.run_url,
        "method": "POST",
        "headers": {},
        "payload": None if built.payload is None else json.loads(built.payload),
        "body": None,
        "cancel": False,
        "error": {"message": built.reason, "line": built.line},
        "notes": [],
        "would_send": False,
    }


async def _schema(built: Built, dest: DestinationSettings, schemas: SchemaCache) -> dict[str, Any]:
    """The check against the input schema of the target the request goes to: problems, or why it could not be
    checked (the verdict deliveries use, preflight.judge)."""
    mode = dest.schema_mode
    if not isinstance(built, Request):
        reason = "nothing would be sent, so nothing was checked"
        return {"checked": False, "mode": mode, "reason": reason, "problems": []}
    verdict = await judge(schemas, built, dest.bearer.reveal(), mode)
    if not verdict.checked:
        return {"checked": False, "mode": mode, "reason": verdict.note, "problems": []}
    problems = [{"path": p.path, "kind": p.kind, "message": p.message} for p in verdict.problems]
    return {
        "checked": True,
        "mode": mode,
        "target": f"{built.target.kind} {built.target.path}",
        "verdict": verdict.outcome,
        "reason": "",
        "problems": problems,
    }


def redact(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as shown to people: Authorization as `Bearer ***`, any credential-looking header as ***."""
    shown = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower == "authorization":
            scheme, _, rest = value.partition(" ")
            shown[name] = f"{scheme} {REDACTED}" if rest else REDACTED
        elif any(word in lower for word in _SECRET_WORDS):
            shown[name] = REDACTED
        else:
            shown[name] = value
    return shown


def key_diff(before: Any, after: Any) -> list[dict[str, Any]]:
    """What the transformation changed, key by key: top-level keys and the keys of `data`, each `added`,
    `removed` or `changed` (with both values). Unchanged keys are left out."""
    rows: list[dict[str, Any]] = []
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    _compare(old, new, "", rows, nested={"data"})
    return rows[:DIFF_LIMIT]


def _compare(
    old: dict[str, Any], new: dict[str, Any], prefix: str, rows: list[dict[str, Any]], nested: set[str]
) -> None:
    for key in [*old, *(k for k in new if k not in old)]:
        path = f"{prefix}{key}"
        if key in nested and isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
            _compare(old[key], new[key], f"{path}.", rows, set())
        elif key not in new:
            rows.append({"key": path, "change": "removed", "before": _show(old[key])})
        elif key not in old:
            rows.append({"key": path, "change": "added", "after": _show(new[key])})
        elif old[key] != new[key] or type(old[key]) is not type(new[key]):
            rows.append({"key": path, "change": "changed", "before": _show(old[key]), "after": _show(new[key])})


def _show(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
