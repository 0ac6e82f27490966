"""The OpenAPI 3.1 document for the management API: every /api/v1 route (a test checks the list), each parameter with
the bounds the server enforces (views.py, durations.py) and each response body exactly as views.py writes it.
tests/integration/test_api_contract.py runs schemathesis against a real server so the two cannot drift."""

from __future__ import annotations

from typing import Any

from headrace import __version__, samples
from headrace.deliver.preview import MAX_KEY, MAX_REQUEST, MAX_SCRIPT
from headrace.durations import TIME_MAX_LENGTH, TIME_PATTERNS
from headrace.models import DELIVERY_STATUSES, EVENT_STATUSES, JOB_STATES
from headrace.search import MAX_QUERY_CHARS
from headrace.views import ID_MAX, KEY_MAX_LENGTH, LIMIT_MAX, TEXT_MAX_LENGTH

_JSON = "application/json"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref("Error")}}}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _ok(description: str, schema: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}


# What every guarded route can answer besides its own result (access.py).
_GUARD = {
    "401": _error("Missing or wrong admin token"),
    "403": _error("Management is closed: no [server] admin_token is set"),
    "429": _error("Too many wrong admin tokens from this address (Retry-After says when to try again)"),
}


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
_POINT = {
    "anyOf": [
        {"type": "string", "pattern": TIME_PATTERNS["duration"], "maxLength": TIME_MAX_LENGTH},
        {"type": "string", "pattern": TIME_PATTERNS["unix"], "maxLength": TIME_MAX_LENGTH},
        {"type": "string", "format": "date-time", "maxLength": TIME_MAX_LENGTH},
        {"type": "string", "format": "date"},
    ]
}
_POINT_OR_EMPTY = {"anyOf": [*_POINT["anyOf"], {"type": "string", "maxLength": 0}]}
_POINT_HELP = "2h (that long ago; units ms, s, m, h, d), unix seconds, an RFC 3339 time or a date (UTC midnight)"


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
    }
    detail = _object(
        {
            **summary_props,
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


def _q(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": "Event id or webhook-id",
    "schema": {"type": "string", "minLength": 1, "maxLength": KEY_MAX_LENGTH},
}
_TEXT = {"type": "string", "maxLength": TEXT_MAX_LENGTH}


_NULLABLE_STR = {"type": ["string", "null"]}
_JOB_STATE = {"type": "string", "enum": ["open", "success", "failure", "unknown"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
# The preview and test-delivery routes answer errors with the JSON error contract.
_ERROR = _error("Problem (the message names it)")
_TOO_LARGE = {"413": _error("The body or the script is over its limit")}
_BODY_TIMEOUT = {"408": _text("The body did not arrive within [server] body_timeout")}


_SEARCH_HELP = (
    "Payload search: ids (payment, subscription, refund, dispute, customer, license key, business, webhook), "
    "emails and words of the payload, all of which must match; a word matches whole words, an id or code of 3 "
    'characters or more (or a word ending in *) also matches as a prefix; "double quotes" for a phrase. Without a '
    "letter or digit it matches nothing. Combines with the other filters."
)
# The event list's own filters, with the same bounds (views.event_filter parses both).
_FILTER = [
    _q("status", "The event's status (empty: any)", {"type": "string", "enum": [*EVENT_STATUSES, ""]}),
    _q("type", 'Event type, exact or "prefix.*" (empty: any)', _TEXT),
    _q("source", "Source name (empty: any)", _TEXT),
    _q("since", f"Received at or after: {_POINT_HELP} (empty: no bound)", _POINT_OR_EMPTY),
    _q("until", f"Received before: {_POINT_HELP} (empty: no bound)", _POINT_OR_EMPTY),
    _q("q", _SEARCH_HELP, {"type": "string", "maxLength": MAX_QUERY_CHARS}),
]
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}}
_PLAN = {
    "type": "object",
    "required": ["events", "deliveries", "destinations", "unrouted_events", "max_event_id", "limit", "token"],
    "properties": {
        "events": {"type": "integer", "description": "Events the filter matches (at most `limit`)"},
        "deliveries": {"type": "integer", "description": "New deliveries executing the token would create"},
        "destinations": {**_COUNTS, "description": "New deliveries per destination"},
        "unrouted_events": {"type": "integer", "description": "Matching events no enabled destination takes today"},
        "max_event_id": {"type": "integer", "description": "The newest event counted; later ones are never sent"},
        "limit": {"type": "integer", "description": "Most events one bulk replay takes (10000)"},
        "token": {"type": "string", "description": "Send it to POST /api/v1/replay/bulk to replay exactly this"},
    },
}


def _bulk_paths() -> dict[str, Any]:
    too_many = {**_ERROR, "description": "The filter matches more than 10000 events (error too_many_events)"}
    changed = {
        "type": "object",
        "required": ["error", "message", "now"],
        "properties": {"error": {"const": "count_changed"}, "message": {"type": "string"}, "now": _PLAN},
    }
    done = {
        "type": "object",
        "required": ["deliveries", "destinations", "replayed"],
        "properties": {
            "deliveries": {"type": "integer"},
            "destinations": _COUNTS,
            "replayed": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "event_id": {"type": "integer"},
                        "job_ids": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    }
    return {
        "/api/v1/replay/bulk": {
            "get": {
                "summary": "Dry run of a bulk replay: how many deliveries the events this filter matches would "
                "re-send, per destination, and the token that replays exactly those",
                "parameters": _FILTER,
                "responses": {"200": _json(_PLAN, "The count"), "400": _ERROR, "422": too_many, **_GUARD},
            },
            "post": {
                "summary": "Replay what a dry run counted (a new generation per delivery). Counted again under the "
                "same filter and newest event id first; refused with 409 and nothing sent if the count changed",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["token"],
                                "properties": {"token": {"type": "string", "minLength": 1, "maxLength": 8192}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json(done, "New deliveries created"),
                    "400": _ERROR,
                    "404": _error(
                        "The token is not one a dry run of this headrace gave (edited or truncated): count again"
                    ),
                    "409": _json(changed, "The count changed since the dry run: nothing sent; `now` is the new count"),
                    "422": too_many,
                    **_BODY_TIMEOUT,
                    "413": _text("The body is larger than the server accepts"),
                    **_GUARD,
                },
            },
        }
    }


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
                **_schemas(),
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
                        _q(
                            "status",
                            "The event's status (empty: any)",
                            {"type": "string", "enum": [*EVENT_STATUSES, ""]},
                        ),
                        _q("type", 'Event type, exact or "prefix.*" (empty: any)', _TEXT),
                        _q("source", "Source name (empty: any)", _TEXT),
                        _q("since", f"Received at or after: {_POINT_HELP} (empty: no bound)", _POINT_OR_EMPTY),
                        _q("until", f"Received before: {_POINT_HELP} (empty: no bound)", _POINT_OR_EMPTY),
                        _q(
                            "limit",
                            "Most events in the answer (default 50); a full page carries next_before",
                            {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX},
                        ),
                        _q(
                            "before",
                            "Only events with a smaller id (the next page: pass next_before)",
                            {"type": "integer", "minimum": 0, "maximum": ID_MAX},
                        ),
                        _q(
                            "q",
                            "Payload search: ids (payment, subscription, refund, dispute, customer, license key, "
                            "business, webhook), emails and words of the payload, all of which must match; a word "
                            "matches whole words, an id or code of 3 characters or more (or a word ending in *) "
                            'also matches as a prefix; "double quotes" for a phrase. '
                            "Without a letter or digit it matches nothing. Combines with the other filters and "
                            "with `before`.",
                            {"type": "string", "maxLength": MAX_QUERY_CHARS},
                        ),
                    ],
                    "responses": {
                        "200": _ok("Events", "EventList"),
                        "400": _error("A query parameter out of bounds (the message names it)"),
                        **_GUARD,
                    },
                }
            },
            "/api/v1/events/{key}": {
                "get": {
                    "summary": "One event with its deliveries and every attempt",
                    "parameters": [_KEY],
                    "responses": {
                        "200": _ok("The event timeline", "EventDetail"),
                        "404": _error("No such event"),
                        **_GUARD,
                    },
                }
            },
            "/api/v1/events/{key}/replay": {
                "post": {
                    "summary": "Deliver again under a new replay generation (a new Windmill job id)",
                    "parameters": [_KEY],
                    "responses": {
                        "200": _ok("New deliveries created", "Replayed"),
                        "404": _error("No such event"),
                        **_GUARD,
                    },
                }
            },
            "/api/v1/replay": {
                "post": {
                    "summary": "Replay every delivery that failed since a time",
                    "requestBody": {
                        "required": True,
                        "content": {
                            _JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["failed", "since"],
                                    "properties": {
                                        "failed": {"const": True},
                                        "since": {**_POINT, "description": _POINT_HELP},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _ok("New deliveries created", "Replayed"),
                        "400": _error('The body is not JSON like {"failed": true, "since": "24h"}'),
                        "408": _text("The body did not arrive within [server] body_timeout"),
                        "413": _text("The body is larger than the server accepts"),
                        **_GUARD,
                    },
                }
            },
            **_bulk_paths(),
            "/api/v1/rejections": {
                "get": {
                    "summary": "Refused webhooks (no bodies): recorded samples, their counts by source and reason, "
                    "and `counted`, every refusal this process counted since it started",
                    "parameters": [
                        _q("since", f"Refused at or after: {_POINT_HELP} (empty: no bound)", _POINT_OR_EMPTY)
                    ],
                    "responses": {
                        "200": _ok("Rejections", "Rejections"),
                        "400": _error("A query parameter out of bounds (the message names it)"),
                        **_GUARD,
                    },
                }
            },
            "/api/v1/destinations": {
                "get": {
                    "summary": "Configured destinations (tokens never included)",
                    "responses": {"200": _ok("Destinations", "Destinations"), **_GUARD},
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
                        **_BODY_TIMEOUT,
                        **_GUARD,
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
                        **_BODY_TIMEOUT,
                        **_GUARD,
                    },
                },
                "get": {
                    "summary": "Recent test deliveries, newest first (the newest 500 are kept)",
                    "parameters": [
                        _q(
                            "event_id",
                            "Only tests of this stored event",
                            {"type": "integer", "minimum": 0, "maximum": ID_MAX},
                        ),
                        _q("limit", "1..100, default 20", {"type": "integer", "minimum": 1, "maximum": 100}),
                    ],
                    "responses": {
                        "200": _json(_object({"tests": {"type": "array", "items": _ref("TestDelivery")}}), "Tests"),
                        "400": _ERROR,
                        **_GUARD,
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
                    "responses": {"200": _json(_ref("TestDelivery"), "The test"), "404": _ERROR, **_GUARD},
                }
            },
        },
    }
