"""The OpenAPI 3.1 document for the management API (a test checks it lists every /api/v1 route)."""

from __future__ import annotations

from typing import Any

from headrace import __version__
from headrace.models import EVENT_STATUSES
from headrace.search import MAX_QUERY_CHARS

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
        },
    }
