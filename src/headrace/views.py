"""What the API, the console and the CLI show, in one place: query parameters to an event filter, and models
to JSON-ready dicts (the API's bodies, the console's pages, the CLI's --json output).

A neutral module: api, console and cli all import it, and it imports none of them."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any, get_args

from headrace import search
from headrace.config import Settings
from headrace.durations import parse_since
from headrace.models import (
    ID_MAX,
    ORIGINS,
    DeliveryRow,
    EventFilter,
    EventRow,
    EventStatus,
    Rejection,
    TestDelivery,
    parse_id,
)

STATUSES: tuple[str, ...] = get_args(EventStatus)


# The bounds of the query parameters, published by the OpenAPI document (api/openapi.py).
LIMIT_MAX = 1000
TEXT_MAX_LENGTH = 200  # type and source names
KEY_MAX_LENGTH = 400  # an event id or webhook-id in a path
_DIGITS = re.compile(r"^[0-9]{1,19}$")


def event_filter(query: Any, now: float) -> EventFilter:
    """Build a filter from query parameters; ValueError names the bad one. An empty parameter means "any"."""
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValueError(f"status={status[:40]!r}: use one of {', '.join(STATUSES)}")
    limit_text = query.get("limit", "50")
    if not _DIGITS.match(limit_text) or not 1 <= int(limit_text) <= LIMIT_MAX:
        raise ValueError(f"limit: a number from 1 to {LIMIT_MAX}")
    before = query.get("before")
    if before is not None and parse_id(before) is None:
        raise ValueError(f"before: an event id (0 to {ID_MAX})")
    texts = {name: query.get(name) or None for name in ("type", "source")}
    for name, value in texts.items():
        if value is not None and len(value) > TEXT_MAX_LENGTH:
            raise ValueError(f"{name}: at most {TEXT_MAX_LENGTH} characters")
    origin = query.get("origin") or None
    if origin is not None and origin not in ORIGINS:
        raise ValueError(f"origin={origin[:40]!r}: use one of {', '.join(ORIGINS)}")
    q = query.get("q") or None
    if q is not None:
        search.parse(q)  # QueryError (a ValueError) says what to change: longer than search.MAX_QUERY_CHARS
    return EventFilter(
        q=q,
        status=status,
        event_type=texts["type"],
        source=texts["source"],
        since=_point("since", query, now),
        until=_point("until", query, now),
        limit=int(limit_text),
        before_id=int(before) if before is not None else None,
        origin=origin,
    )


def _point(name: str, query: Any, now: float) -> float | None:
    text = query.get(name)
    if not text:
        return None
    try:
        return parse_since(text, now)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_summary(event: EventRow) -> dict[str, Any]:
    return {
        "id": event.id,
        "source": event.source,
        "webhook_id": event.webhook_id,
        "type": event.event_type,
        "status": event.status,
        "received_at": iso(event.received_at),
        "webhook_timestamp": event.webhook_timestamp,
        "origin": event.origin,
    }


def delivery(row: DeliveryRow, settings: Settings | None = None) -> dict[str, Any]:
    dest = settings.destinations.get(row.destination) if settings else None
    ui = dest.target.ui_url(row.windmill_job_id) if dest and row.windmill_job_id else None
    return {
        "id": row.id,
        "destination": row.destination,
        "generation": row.generation,
        "job_id": row.job_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": iso(row.next_attempt_at) if row.status == "pending" else None,
        "last_error": row.last_error or None,
        "windmill_job_id": row.windmill_job_id,
        "windmill_url": ui,
        "job": job_outcome(row, ui),
        "payload": _json_or_none(row.payload),
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
        "attempt_log": [
            {
                "number": a.number,
                "started_at": iso(a.started_at),
                "duration_ms": round(a.duration_ms, 1),
                "http_status": a.http_status,
                "outcome": a.outcome,
                "detail": a.detail or None,
                "response_excerpt": a.response_excerpt or None,
                "notes": a.notes or None,
            }
            for a in row.attempt_rows
        ],
    }


def job_outcome(row: DeliveryRow, ui_url: str | None = None) -> dict[str, Any] | None:
    """What became of the Windmill job: state open|success|failure|unknown, duration, result or error excerpt."""
    if row.job_state is None:
        return None
    return {
        "state": row.job_state,
        "job_id": row.windmill_job_id,
        "windmill_url": ui_url,
        "created_at": iso(row.job_created_at),
        "completed_at": iso(row.job_completed_at),
        "duration_ms": None if row.job_duration_ms is None else round(row.job_duration_ms, 1),
        "checks": row.job_checks,
        "excerpt": row.job_excerpt or None,
        "rerun_number": row.job_reruns,
    }


def event_detail(event: EventRow, settings: Settings | None = None) -> dict[str, Any]:
    data = event_summary(event)
    data["event_key"] = event.event_key
    data["duplicate_of"] = event.duplicate_of  # a late copy of this (synthesized) event: stored, not delivered
    data["note"] = event.note or None
    data["headers"] = event.headers
    data["body"] = _json_or_none(event.body.decode("utf-8", "replace")) if event.body is not None else None
    data["deliveries"] = [delivery(d, settings) for d in event.deliveries]
    return data


def rejection(item: Rejection) -> dict[str, Any]:
    return {
        "at": iso(item.at),
        "source": item.source,
        "reason": item.reason,
        "status": item.status,
        "detail": item.detail,
        "remote": item.remote,
    }


def counted_refusals(app: Any) -> list[dict[str, Any]]:
    """Every refusal this process counted since it started (the store keeps only a sample), by source and reason;
    the series /metrics starts at 0 for configured sources are left out until they count something."""
    counters = app.metrics.counters["headrace_events_rejected_total"]
    return [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(counters.items()) if n]


def destination(name: str, settings: Settings) -> dict[str, Any]:
    dest = settings.destinations[name]
    target = dest.target
    return {
        "name": name,
        "source": dest.source,
        "events": list(dest.events),
        "enabled": dest.enabled,
        "windmill": {
            "host": target.host,
            "workspace": target.workspace,
            "kind": target.kind,
            "path": target.path,
            "mode": target.mode,
        },
        "transform": dest.transform,
        "retry_schedule": list(dest.retry_schedule),
        "schema": dest.schema_mode,
        "retry_on_job_failure": dest.retry_on_job_failure,
        "concurrency": dest.concurrency,
        "timeout": dest.timeout,
    }


def _not_strict(text: str) -> Any:
    raise ValueError(f"{text} is not strict JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is not a finite number")
    return value


def _json_or_none(text: str | None) -> Any:
    """Stored JSON as a value that re-serializes as strict JSON; anything else (say a body stored by an older
    version with NaN, or too deep to walk) as its text, escaped so it encodes as UTF-8."""
    if text is None:
        return None
    try:
        value = json.loads(text, parse_constant=_not_strict, parse_float=_finite)
        json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except (ValueError, RecursionError, UnicodeEncodeError):
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def test_delivery(test: TestDelivery, settings: Settings | None = None) -> dict[str, Any]:
    """A test delivery (the preview page's "Send a test"): `test: true`, never an event's delivery."""
    dest = settings.destinations.get(test.destination) if settings else None
    ui = dest.target.ui_url(test.job_id) if dest and test.job_state is not None else None
    return {
        "id": test.id,
        "test": True,
        "destination": test.destination,
        "event_id": test.event_id,
        "input": test.input,
        "event_type": test.event_type,
        "script": test.script or None,
        "job_id": test.job_id,
        "url": test.url,
        "outcome": test.outcome,
        "http_status": test.http_status,
        "detail": test.detail or None,
        "payload": _json_or_none(test.payload),
        "created_at": iso(test.created_at),
        "job": None
        if test.job_state is None
        else {
            "state": test.job_state,
            "job_id": test.job_id,
            "windmill_url": ui,
            "completed_at": iso(test.job_completed_at),
            "duration_ms": None if test.job_duration_ms is None else round(test.job_duration_ms, 1),
            "checks": test.job_checks,
            "excerpt": test.job_excerpt or None,
        },
    }
