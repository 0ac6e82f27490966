"""The component schemas of the OpenAPI document (api/openapi.py): each response body exactly as views.py writes
it, the preview request and answer, and the test delivery; with the small builders they are made of."""

from __future__ import annotations

from typing import Any

from headrace.dodo import samples
from headrace.models import DELIVERY_STATUSES, EVENT_STATUSES, ID_MAX, JOB_STATES, ORIGINS
from headrace.previews import MAX_KEY, MAX_REQUEST, MAX_SCRIPT

_JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A closed object: every property listed, all of them always present unless `required` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


_STR = {"type": "string"}
_INT = {"type": "integer"}
_OPT_STR = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
# A point in time as the server parses it (durations.parse_since): "2h" ago, unix seconds, RFC 3339 or a date.


def _schemas() -> dict[str, Any]:
    attempt = _object(
        {
            "number": _INT,
            "started_at": _TIME,
            "duration_ms": {"type": "number"},
            "http_status": {"type": ["integer", "null"]},
            "outcome": _STR,
            "detail": _OPT_STR,
            "response_excerpt": _OPT_STR,
            "notes": _OPT_STR,
        }
    )
    job = _object(
        {
            "state": {"type": "string", "enum": list(JOB_STATES)},
            "job_id": _OPT_STR,
            "windmill_url": _OPT_STR,
            "created_at": _OPT_TIME,
            "completed_at": _OPT_TIME,
            "duration_ms": {"type": ["number", "null"]},
            "checks": _INT,
            "excerpt": _OPT_STR,
            "rerun_number": _INT,
        }
    )
    delivery = _object(
        {
            "id": _INT,
            "destination": _STR,
            "generation": _INT,
            "job_id": _STR,
            "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
            "attempts": _INT,
            "next_attempt_at": _OPT_TIME,
            "last_error": _OPT_STR,
            "windmill_job_id": _OPT_STR,
            "windmill_url": _OPT_STR,
            "job": {"anyOf": [{"type": "null"}, _ref("Job")]},
            "payload": {"description": "What was (or will be) sent: JSON, or its text when it is not strict JSON"},
            "created_at": _TIME,
            "updated_at": _TIME,
            "attempt_log": {"type": "array", "items": _ref("Attempt")},
        }
    )
    summary_props = {
        "id": _INT,
        "source": _STR,
        "webhook_id": _STR,
        "type": _STR,
        "status": {"type": "string", "enum": list(EVENT_STATUSES)},
        "received_at": _TIME,
        "webhook_timestamp": _INT,
        "origin": {
            "type": "string",
            "enum": list(ORIGINS),
            "description": '"dodo": a webhook Dodo sent; "reconcile": synthesized by `headrace reconcile`',
        },
    }
    detail = _object(
        {
            **summary_props,
            "event_key": {
                "type": ["string", "null"],
                "description": "The business event the body reports (type, object id, dispute stage or renewal "
                "payment); null when it names no object",
            },
            "duplicate_of": {
                "type": ["integer", "null"],
                "description": "The synthesized event this real one is a late copy of: stored, never delivered",
            },
            "note": {"type": ["string", "null"], "description": "How the event came to be, for the timeline"},
            "headers": {"type": ["object", "null"], "additionalProperties": _STR},
            "body": {"description": "The webhook body: JSON, or its text when it is not strict JSON; null if pruned"},
            "deliveries": {"type": "array", "items": _ref("Delivery")},
        }
    )
    count = _object({"source": _STR, "reason": _STR, "count": _INT})
    rejection = _object({"at": _TIME, "source": _STR, "reason": _STR, "status": _INT, "detail": _STR, "remote": _STR})
    destination = _object(
        {
            "name": _STR,
            "source": _STR,
            "events": {"type": "array", "items": _STR},
            "enabled": {"type": "boolean"},
            "windmill": _object(
                {
                    "host": _STR,
                    "workspace": _STR,
                    "kind": {"type": "string", "enum": ["script", "flow"]},
                    "path": _STR,
                    "mode": {"type": "string", "enum": ["async", "wait"]},
                }
            ),
            "transform": _OPT_STR,
            "retry_schedule": {"type": "array", "items": _STR},
            "schema": {"type": "string", "enum": ["enforce", "warn", "off"]},
            "retry_on_job_failure": _INT,
            "concurrency": _INT,
            "timeout": _STR,
        }
    )
    replayed = _object(
        {
            "replayed": {
                "type": "array",
                "items": _object({"event_id": _INT, "job_ids": {"type": "array", "items": _STR}}),
            }
        }
    )
    return {
        "Error": _object({"error": _STR, "message": _STR}),
        "EventSummary": _object(summary_props),
        "EventList": _object(
            {"events": {"type": "array", "items": _ref("EventSummary")}, "next_before": _INT}, ["events"]
        ),
        "EventDetail": detail,
        "Delivery": delivery,
        "Job": job,
        "Attempt": attempt,
        "Rejections": _object(
            {
                "counts": {"type": "array", "items": count},
                "counted": {"type": "array", "items": count},
                "rejections": {"type": "array", "items": rejection},
            }
        ),
        "Destinations": _object({"destinations": {"type": "array", "items": destination}}),
        "Replayed": replayed,
    }


_NULLABLE_STR = {"type": ["string", "null"]}
_JOB_STATE = {"type": "string", "enum": ["open", "success", "failure", "unknown"]}


PREVIEW_REQUEST: dict[str, Any] = {
    "type": "object",
    "required": ["destination"],
    "additionalProperties": False,
    "description": f"One of event_id or event_type. The body is at most {MAX_REQUEST} bytes (413 past it).",
    "properties": {
        "destination": {"type": "string", "minLength": 1, "description": "A configured destination's name"},
        "script": {
            "type": "string",
            "pattern": "\\S",
            "maxLength": MAX_SCRIPT,
            "description": f"JavaScript that replaces the destination's transformation, at most {MAX_SCRIPT} "
            "bytes of UTF-8 (413 past it); leave it out to use the destination's own",
        },
        "event_id": {
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": MAX_KEY},
                {"type": "integer", "minimum": 0, "maximum": ID_MAX},
            ],
            "description": "A stored event: its id (a number, or as text) or its webhook-id",
        },
        "event_type": {
            "type": "string",
            "enum": list(samples.EVENT_TYPES),
            "description": "A bundled sample event",
        },
        "variant": {"type": "string", "description": "A variant of the sample (`headrace samples list TYPE`)"},
    },
    "oneOf": [{"required": ["event_id"]}, {"required": ["event_type"]}],
    "dependentRequired": {"variant": ["event_type"]},
}

PREVIEW: dict[str, Any] = _object(
    {
        "url": {"type": "string", "description": "The Windmill run URL (without the job id)"},
        "method": {"type": "string", "enum": ["POST", "PUT"]},
        "headers": {
            "type": "object",
            "additionalProperties": _STR,
            "description": "Every header headrace sets; tokens and credential-looking values shown as ***",
        },
        "payload": {"description": "The JSON sent (or the cancelled payload); null when nothing was made"},
        "body": {**_NULLABLE_STR, "description": "The exact body bytes sent, as text; null when nothing is sent"},
        "cancel": {"type": "boolean"},
        "error": {
            "oneOf": [
                {"type": "null"},
                _object({"message": _STR, "line": {"type": ["integer", "null"]}}),
            ],
            "description": "Why nothing would be sent: the JavaScript error and its line, or the rule refused",
        },
        "notes": {"type": "array", "items": _STR},
        "would_send": {"type": "boolean"},
        "input": _object(
            {
                "label": _STR,
                "event_type": _STR,
                "webhook_id": _STR,
                "event_id": {"type": ["integer", "null"]},
            }
        ),
        "script": {**_NULLABLE_STR, "description": 'The script run: its configured name, "edited script", or null'},
        "schema": _object(
            {
                "checked": {"type": "boolean"},
                "mode": {"type": "string", "enum": ["enforce", "warn", "off"]},
                "target": _STR,
                "verdict": {"type": "string", "enum": ["fits", "not sent", "sent anyway"]},
                "reason": {"type": "string", "description": "Why the payload was not checked"},
                "problems": {
                    "type": "array",
                    "items": _object({"path": _STR, "kind": _STR, "message": _STR}),
                },
            },
            required=["checked", "mode", "reason", "problems"],
        ),
        "diff": {
            "type": "array",
            "items": _object(
                {
                    "key": _STR,
                    "change": {"type": "string", "enum": ["added", "removed", "changed"]},
                    "before": _STR,
                    "after": _STR,
                },
                required=["key", "change"],
            ),
        },
    }
)

TEST_DELIVERY: dict[str, Any] = _object(
    {
        "id": {"type": "integer"},
        "test": {"const": True},
        "destination": _STR,
        "event_id": {"type": ["integer", "null"]},
        "input": _STR,
        "event_type": _STR,
        "script": _NULLABLE_STR,
        "job_id": {"type": "string", "description": "Its own Windmill job id, never a real delivery's"},
        "url": _STR,
        "outcome": {"type": "string", "enum": ["delivered", "failed", "cancelled"]},
        "http_status": {"type": ["integer", "null"]},
        "detail": _NULLABLE_STR,
        "payload": {"description": "The payload sent (null when none)"},
        "created_at": _STR,
        "job": {
            "oneOf": [
                {"type": "null"},
                _object(
                    {
                        "state": _JOB_STATE,
                        "job_id": _STR,
                        "windmill_url": _NULLABLE_STR,
                        "completed_at": _NULLABLE_STR,
                        "duration_ms": {"type": ["number", "null"]},
                        "checks": {"type": "integer"},
                        "excerpt": _NULLABLE_STR,
                    }
                ),
            ]
        },
    }
)
