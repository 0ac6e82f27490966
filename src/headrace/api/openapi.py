"""The OpenAPI 3.1 document for the management API (a test checks it lists every /api/v1 route)."""

from __future__ import annotations

from typing import Any

from headrace import __version__
from headrace.models import EVENT_STATUSES

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


_FILTER = [
    _q("status", "The event's status", {"type": "string", "enum": list(EVENT_STATUSES)}),
    _q("type", 'Event type, exact or "prefix.*"'),
    _q("source", "Source name"),
    _q("since", "2h (ago), ISO 8601 time or unix seconds"),
    _q("until", "2h (ago), ISO 8601 time or unix seconds"),
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


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
                "responses": {"200": _json("The count", _PLAN), "400": _ERROR, "422": too_many, **_AUTH},
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
                                "properties": {"token": {"type": "string", "maxLength": 8192}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": _json("New deliveries created", done),
                    "400": _ERROR,
                    "409": _json("The count changed since the dry run: nothing sent; `now` is the new count", changed),
                    "422": too_many,
                    **_AUTH,
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
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                }
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
            **_bulk_paths(),
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
        },
    }
