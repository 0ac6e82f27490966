"""The OpenAPI 3.1 document for the management API: every /api/v1 route (a test checks the list), each parameter with
the bounds the server enforces (views.py, durations.py) and each response body exactly as views.py writes it
(their component schemas are in openapi_schemas.py).
tests/integration/test_api_contract.py runs schemathesis against a real server so the two cannot drift."""

from __future__ import annotations

from typing import Any

from headrace import __version__
from headrace.api.openapi_schemas import (
    _JSON,
    PREVIEW,
    PREVIEW_REQUEST,
    TEST_DELIVERY,
    _object,
    _ref,
    _schemas,
)
from headrace.durations import TIME_MAX_LENGTH, TIME_PATTERNS
from headrace.models import EVENT_STATUSES, ID_MAX, ORIGINS
from headrace.search import MAX_QUERY_CHARS
from headrace.views import KEY_MAX_LENGTH, LIMIT_MAX, TEXT_MAX_LENGTH


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


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
                        _q(
                            "origin",
                            'Where the event came from: "dodo" (a webhook received) or "reconcile" (synthesized '
                            "by `headrace reconcile` from Dodo's API); empty: any",
                            {"type": "string", "enum": [*ORIGINS, ""]},
                        ),
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
