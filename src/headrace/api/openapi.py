"""The OpenAPI 3.1 document for the management API (a test checks it lists every /api/v1 route)."""

from __future__ import annotations

from typing import Any

from headrace import __version__, samples
from headrace.deliver.preview import MAX_KEY, MAX_REQUEST, MAX_SCRIPT
from headrace.models import EVENT_STATUSES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_ERROR = {"description": "Problem", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_AUTH = {"401": {"description": "Missing or wrong admin token", **_ERROR}}


def _q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": "Event id or webhook-id",
    "schema": {"type": "string"},
}
_REPLAYED = {
    "description": "New deliveries created",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "replayed": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "event_id": {"type": "integer"},
                                "job_ids": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        }
    },
}


_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_JOB_STATE = {"type": "string", "enum": ["open", "success", "failure", "unknown"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
        "properties": properties,
    }


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
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_KEY,
            "description": "A stored event: its id or webhook-id",
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
_TOO_LARGE = {"413": {"description": "The body or the script is over its limit", **_ERROR}}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "headrace management API",
            "version": __version__,
            "description": "Events, deliveries, replays and rejections. Bearer admin token required.",
        },
        "components": {
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "PreviewRequest": PREVIEW_REQUEST,
                "Preview": PREVIEW,
                "TestDelivery": TEST_DELIVERY,
            },
        },
        "security": [{"admin": []}],
        "paths": {
            "/api/v1/events": {
                "get": {
                    "summary": "List events, newest first",
                    "parameters": [
                        _q("status", "The event's status", {"type": "string", "enum": list(EVENT_STATUSES)}),
                        _q("type", 'Event type, exact or "prefix.*"'),
                        _q("source", "Source name"),
                        _q("since", "2h (ago), ISO 8601 time or unix seconds"),
                        _q("until", "2h (ago), ISO 8601 time or unix seconds"),
                        _q("limit", "1..1000, default 50", {"type": "integer"}),
                        _q("before", "Only events with a smaller id (next page)", {"type": "integer"}),
                    ],
                    "responses": {"200": {"description": "Events"}, "400": _ERROR, **_AUTH},
                }
            },
            "/api/v1/events/{key}": {
                "get": {
                    "summary": "One event with its deliveries and every attempt",
                    "parameters": [_KEY],
                    "responses": {"200": {"description": "The event timeline"}, "404": _ERROR, **_AUTH},
                }
            },
            "/api/v1/events/{key}/replay": {
                "post": {
                    "summary": "Deliver again under a new replay generation (a new Windmill job id)",
                    "parameters": [_KEY],
                    "responses": {"200": _REPLAYED, "404": _ERROR, **_AUTH},
                }
            },
            "/api/v1/replay": {
                "post": {
                    "summary": "Replay every delivery that failed since a time",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["failed", "since"],
                                    "properties": {"failed": {"const": True}, "since": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {"200": _REPLAYED, "400": _ERROR, **_AUTH},
                }
            },
            "/api/v1/rejections": {
                "get": {
                    "summary": "Refused webhooks (no bodies): recorded samples, their counts by source and reason, "
                    "and `counted`, every refusal this process counted since it started",
                    "parameters": [_q("since", "2h (ago), ISO 8601 time or unix seconds")],
                    "responses": {"200": {"description": "Rejections"}, "400": _ERROR, **_AUTH},
                }
            },
            "/api/v1/destinations": {
                "get": {
                    "summary": "Configured destinations (tokens never included)",
                    "responses": {"200": {"description": "Destinations"}, **_AUTH},
                }
            },
            "/api/v1/preview": {
                "post": {
                    "summary": "What a delivery of an event (stored, or a bundled sample) to a destination would send, "
                    "with its script or one given: built by the worker's own function, nothing is sent",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("PreviewRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("Preview"), "The request, the schema check, notes and the key-level diff"),
                        "400": _ERROR,
                        "404": {"description": "No such destination, event, sample type or variant", **_ERROR},
                        **_TOO_LARGE,
                        **_AUTH,
                    },
                }
            },
            "/api/v1/test-deliveries": {
                "post": {
                    "summary": "Send the previewed request once as a test delivery: its own job id, stored apart "
                    "from events (never counted, replayed or tracked as a delivery)",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("PreviewRequest")}},
                    },
                    "responses": {
                        "201": _json(_ref("TestDelivery"), "The test as stored (outcome failed when nothing was sent)"),
                        "400": _ERROR,
                        "404": {"description": "No such destination, event, sample type or variant", **_ERROR},
                        **_TOO_LARGE,
                        **_AUTH,
                    },
                },
                "get": {
                    "summary": "Recent test deliveries, newest first (the newest 500 are kept)",
                    "parameters": [
                        _q("event_id", "Only tests of this stored event", {"type": "integer", "minimum": 0}),
                        _q("limit", "1..100, default 20", {"type": "integer", "minimum": 1, "maximum": 100}),
                    ],
                    "responses": {
                        "200": _json(_object({"tests": {"type": "array", "items": _ref("TestDelivery")}}), "Tests"),
                        "400": _ERROR,
                        **_AUTH,
                    },
                },
            },
            "/api/v1/test-deliveries/{id}": {
                "get": {
                    "summary": "One test delivery, after a look at its Windmill job while it is open",
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "description": "The test delivery's id",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {"200": _json(_ref("TestDelivery"), "The test"), "404": _ERROR, **_AUTH},
                }
            },
        },
    }
