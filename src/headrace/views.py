"""What the API, the console and the CLI show, in one place: query parameters to an event filter, and models
to JSON-ready dicts (the API's bodies, the console's pages, the CLI's --json output).

A neutral module: api, console and cli all import it, and it imports none of them."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, get_args

from headrace import search
from headrace.config import Settings
from headrace.durations import parse_since
from headrace.models import DeliveryRow, EventFilter, EventRow, EventStatus, Rejection

STATUSES: tuple[str, ...] = get_args(EventStatus)


def event_filter(query: Any, now: float) -> EventFilter:
    """Build a filter from query parameters; ValueError names the bad one."""
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValueError(f"status={status!r}: use one of {', '.join(STATUSES)}")
    limit_text = query.get("limit", "50")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise ValueError("limit: a number from 1 to 1000")
    before = query.get("before")
    if before is not None and not before.isdigit():
        raise ValueError("before: an event id")
    q = query.get("q") or None
    if q is not None:
        search.parse(q)  # QueryError (a ValueError) says what to change: longer than search.MAX_QUERY_CHARS
    return EventFilter(
        q=q,
        status=status,
        event_type=query.get("type") or None,
        source=query.get("source") or None,
        since=parse_since(query["since"], now) if query.get("since") else None,
        until=parse_since(query["until"], now) if query.get("until") else None,
        limit=int(limit_text),
        before_id=int(before) if before else None,
    )


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
