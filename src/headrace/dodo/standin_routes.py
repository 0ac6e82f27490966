"""The Dodo stand-in's API routes (standin.py builds the app): auth, input checks with Dodo's 422, webhook
endpoints and object lists. Each answer is the shape the `dodopayments` SDK 1.123.0 models
(tests/integration/test_contract_dodo_standin.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from headrace.dodo import samples
from headrace.dodo.standin_model import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_WEBHOOK_LIMIT,
    FIELD_LIMITS,
    MAX_PAGE_SIZE,
    WEBHOOK_LIST_LIMIT,
    Endpoint,
    StandinState,
    parse_time,
)
from headrace.dodo.standin_shapes import list_item, retrieved

STATE = web.AppKey("state", StandinState)


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


class Invalid(Exception):
    """A request the stand-in refuses with 422, as Dodo does."""


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = request.app[STATE]
    if request.path.startswith("/_standin/"):
        try:
            return await handler(request)
        except Invalid as exc:
            return error_response(400, "INVALID_REQUEST", str(exc))
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in state.api_keys:
        return error_response(401, "UNAUTHORIZED", "Invalid API key")
    fault = state.take_fault(request.method, request.path)
    if fault is None or fault.after:
        with state.lock:
            state.requests.append((request.method, request.path))
        try:
            response = await handler(request)
        except Invalid as exc:
            response = error_response(422, "INVALID_REQUEST", str(exc))
        if fault is None:
            return response
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    return web.Response(status=fault.status, text=fault.body, headers=headers, content_type="application/json")


# ---- input checks --------------------------------------------------------------------------------------


async def json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Invalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise Invalid("the body is not a JSON object")
    return body


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise Invalid(f"{key} is required")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{key} must be a string")
    if len(value) > FIELD_LIMITS.get(key, 1024):
        raise Invalid(f"{key} is longer than {FIELD_LIMITS.get(key, 1024)} characters")
    if key == "url" and not value.startswith(("http://", "https://")):
        raise Invalid("url must be an http(s) URL")
    return value


def _filter_types(body: dict[str, Any]) -> list[str] | None:
    value = body.get("filter_types")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise Invalid("filter_types must be a list of event types")
    unknown = [t for t in value if t not in samples.EVENT_TYPES]
    if unknown:
        raise Invalid(f"unknown event types in filter_types: {', '.join(unknown[:5])}")
    return list(dict.fromkeys(value))


def _string_map(body: dict[str, Any], key: str) -> dict[str, str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise Invalid(f"{key} must be an object of strings")
    if len(value) > 50:
        raise Invalid(f"{key}: at most 50 entries")
    return dict(value)


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool) is not (kind is bool)):
        raise Invalid(f"{key} must be a {kind.__name__}")
    return value


def _int_param(request: web.Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name} must be an integer") from None
    if value < low or (high is not None and value > high):
        raise Invalid(f"{name} must be between {low} and {high}" if high is not None else f"{name} must be >= {low}")
    return value


# ---- webhook endpoints ---------------------------------------------------------------------------------


def endpoint_or_404(request: web.Request) -> Endpoint:
    endpoint = request.app[STATE].endpoints.get(request.match_info["id"])
    if endpoint is None:
        raise web.HTTPNotFound(
            text=json.dumps({"code": "NOT_FOUND", "message": "Webhook not found"}), content_type="application/json"
        )
    return endpoint


async def list_webhooks(request: web.Request) -> web.Response:
    state = request.app[STATE]
    limit = _int_param(request, "limit", DEFAULT_WEBHOOK_LIMIT, 1, WEBHOOK_LIST_LIMIT)
    iterator = request.query.get("iterator")
    with state.lock:
        ids = list(state.endpoints)
        start = 0
        if iterator:
            if iterator not in state.endpoints:
                raise Invalid("iterator is not one this API gave")
            start = ids.index(iterator) + 1
        page = [state.endpoints[i].to_json() for i in ids[start : start + limit]]
        done = start + limit >= len(ids)
    return web.json_response({"data": page, "iterator": page[-1]["id"] if page else None, "done": done})


async def create_webhook(request: web.Request) -> web.Response:
    body = await json_object(request)
    url = _text(body, "url", required=True)
    assert url is not None
    try:
        endpoint, _ = request.app[STATE].add_endpoint(
            url,
            description=_text(body, "description") or "",
            filter_types=_filter_types(body),
            metadata=_string_map(body, "metadata"),
            disabled=bool(_optional(body, "disabled", bool)),
            rate_limit=_optional(body, "rate_limit", int),
            headers=_string_map(body, "headers"),
            idempotency_key=_text(body, "idempotency_key"),
        )
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    return web.json_response(endpoint.to_json())


async def get_webhook(request: web.Request) -> web.Response:
    return web.json_response(endpoint_or_404(request).to_json())


async def patch_webhook(request: web.Request) -> web.Response:
    endpoint = endpoint_or_404(request)
    body = await json_object(request)
    changes = {
        "url": _text(body, "url"),
        "description": _text(body, "description"),
        "filter_types": _filter_types(body),
        "metadata": _string_map(body, "metadata"),
        "disabled": _optional(body, "disabled", bool),
        "rate_limit": _optional(body, "rate_limit", int),
    }
    state = request.app[STATE]
    with state.lock:
        for key, value in changes.items():
            if value is not None:  # null leaves a field as it is
                setattr(endpoint, key, value)
        endpoint.updated_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return web.json_response(endpoint.to_json())


async def delete_webhook(request: web.Request) -> web.Response:
    endpoint = endpoint_or_404(request)
    state = request.app[STATE]
    with state.lock:
        state.deleted[endpoint.id] = state.endpoints.pop(endpoint.id)
    return web.Response(status=204)


async def get_headers(request: web.Request) -> web.Response:
    """The custom headers sent with each webhook (HeaderRetrieveResponse); none is marked sensitive here."""
    return web.json_response({"headers": dict(endpoint_or_404(request).headers), "sensitive": []})


async def patch_headers(request: web.Request) -> web.Response:
    """Add or change custom headers (the others stay), as Dodo's PATCH /webhooks/{id}/headers does."""
    endpoint = endpoint_or_404(request)
    headers = _string_map(await json_object(request), "headers")
    if headers is None:
        raise Invalid("headers is required")
    state = request.app[STATE]
    with state.lock:
        if len({**endpoint.headers, **headers}) > 50:
            raise Invalid("headers: at most 50 entries")
        endpoint.headers.update(headers)
    return web.Response(status=204)


async def webhook_secret(request: web.Request) -> web.Response:
    return web.json_response({"secret": endpoint_or_404(request).secret})


# ---- objects -------------------------------------------------------------------------------------------


def _time_param(request: web.Request, name: str) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise Invalid(f"{name} must be an RFC 3339 date-time") from None


def list_objects(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE]
        cap = state.page_number_cap if kind == "payments" else None
        page_number = _int_param(request, "page_number", 0, 0, cap)
        page_size = _int_param(request, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        chosen = state.list_window(kind, _time_param(request, "created_at_gte"), _time_param(request, "created_at_lte"))
        start = page_number * page_size
        items = [list_item(kind, record, derived) for record, derived in chosen[start : start + page_size]]
        return web.json_response({"items": items})

    return handler


def get_object(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        record = request.app[STATE].get(kind, request.match_info["id"])
        if record is None:
            return error_response(404, "NOT_FOUND", f"{kind.rstrip('s')} not found")
        return web.json_response(retrieved(kind, record))

    return handler
