"""A Dodo Payments API stand-in for tests and local demos — NOT Dodo. Production always talks to Dodo.

Answers like Dodo's API as the `dodopayments` SDK 1.123.0 models it (tests/contract/test_dodo_standin.py
runs the SDK against it for every route):

- webhook endpoints: GET/POST /webhooks (cursor pages: `limit`, `iterator`; `data`, `iterator`, `done`;
  `idempotency_key` honoured), GET/PATCH/DELETE /webhooks/{id}, GET /webhooks/{id}/secret (`whsec_...`)
- objects: GET /{kind} (`created_at_gte/lte`, `page_number` from 0, `page_size` <= 100, newest first; the
  reduced list models) and GET /{kind}/{id} (the full model) for payments, refunds, disputes,
  subscriptions, license_keys; payouts are listed only, as in Dodo's API
- `Authorization: Bearer KEY` with one of the accepted keys, else 401

Control endpoints (no auth, loopback) under /_standin/: seed or change objects, inject faults (429 with
Retry-After, 500, ...), rotate a secret as the dashboard would, read the state, and EMIT: send a
Standard-Webhooks-signed webhook of any of the 48 types to every enabled endpoint subscribed to it (empty
`filter_types` = all), each signed with that endpoint's secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import aiohttp
from aiohttp import web

from headrace import samples
from headrace.dodo.kinds import KINDS
from headrace.dodo.standin_model import (
    BANNER,
    DEFAULT_API_KEY,
    DEFAULT_PAGE_SIZE,
    DEFAULT_WEBHOOK_LIMIT,
    FIELD_LIMITS,
    MAX_PAGE_SIZE,
    WEBHOOK_LIST_LIMIT,
    Delivery,
    Endpoint,
    Fault,
    StandinState,
    new_id,
    parse_time,
)
from headrace.dodo.standin_shapes import list_item, retrieved
from headrace.ingest.signature import decode_secret, sign
from headrace.loopback import AppThread

__all__ = [
    "BANNER",
    "DEFAULT_API_KEY",
    "Delivery",
    "Endpoint",
    "Fault",
    "StandinState",
    "StandinThread",
    "build_app",
    "emit",
    "running_standin",
]

STATE = web.AppKey("state", StandinState)
SESSION = web.AppKey("session", aiohttp.ClientSession)
EMIT_TIMEOUT = 15.0  # seconds: Dodo (Svix) gives an endpoint 15 s to answer


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)


class Invalid(Exception):
    """A request the stand-in refuses with 422, as Dodo does."""


@web.middleware
async def _middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    state = request.app[STATE]
    if request.path.startswith("/_standin/"):
        return await handler(request)
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in state.api_keys:
        return _error(401, "UNAUTHORIZED", "Invalid API key")
    fault = state.take_fault(request.method, request.path)
    if fault is None or fault.after:
        with state.lock:
            state.requests.append((request.method, request.path))
        try:
            response = await handler(request)
        except Invalid as exc:
            response = _error(422, "INVALID_REQUEST", str(exc))
        if fault is None:
            return response
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
    return web.Response(status=fault.status, text=fault.body, headers=headers, content_type="application/json")


# ---- input checks --------------------------------------------------------------------------------------


async def _json_object(request: web.Request) -> dict[str, Any]:
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


def _endpoint(request: web.Request) -> Endpoint:
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
    body = await _json_object(request)
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
    return web.json_response(_endpoint(request).to_json())


async def patch_webhook(request: web.Request) -> web.Response:
    endpoint = _endpoint(request)
    body = await _json_object(request)
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
    endpoint = _endpoint(request)
    state = request.app[STATE]
    with state.lock:
        state.endpoints.pop(endpoint.id, None)
    return web.Response(status=204)


async def webhook_secret(request: web.Request) -> web.Response:
    return web.json_response({"secret": _endpoint(request).secret})


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
            return _error(404, "NOT_FOUND", f"{kind.rstrip('s')} not found")
        return web.json_response(retrieved(kind, record))

    return handler


# ---- emit ----------------------------------------------------------------------------------------------


async def emit(
    state: StandinState,
    session: aiohttp.ClientSession,
    event_type: str,
    *,
    object_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> list[Delivery]:
    """Send one webhook of `event_type` to every enabled endpoint subscribed to it, signed with each
    endpoint's secret (one message, one webhook-id, as Svix does). Returns what each endpoint answered."""
    body = json.dumps(state.event_body(event_type, object_id=object_id, data=data)).encode()
    webhook_id = new_id("msg_")
    timestamp = int(time.time())
    deliveries = []
    for endpoint in state.subscribers(event_type):
        headers = {
            **endpoint.headers,
            "Content-Type": "application/json",
            "User-Agent": "Svix-Webhooks/1.0 (headrace Dodo stand-in)",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(decode_secret(endpoint.secret), webhook_id, timestamp, body),
        }
        try:
            async with session.post(
                endpoint.url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=EMIT_TIMEOUT)
            ) as response:
                await response.read()
                delivery = Delivery(endpoint.id, endpoint.url, webhook_id, event_type, response.status)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = f"no answer within {EMIT_TIMEOUT:g}s" if isinstance(exc, TimeoutError) else type(exc).__name__
            delivery = Delivery(endpoint.id, endpoint.url, webhook_id, event_type, None, reason)
        deliveries.append(delivery)
    with state.lock:
        state.deliveries.extend(deliveries)
    return deliveries


# ---- control -------------------------------------------------------------------------------------------


async def control_emit(request: web.Request) -> web.Response:
    body = await _json_object(request)
    event_type = body.get("type")
    object_id, data = body.get("object_id"), body.get("data")
    if not isinstance(event_type, str) or (object_id is not None and not isinstance(object_id, str)):
        return _error(400, "INVALID_REQUEST", 'give {"type": "payment.succeeded", "object_id": optional}')
    if data is not None and not isinstance(data, dict):
        return _error(400, "INVALID_REQUEST", "data must be an object")
    try:
        deliveries = await emit(request.app[STATE], request.app[SESSION], event_type, object_id=object_id, data=data)
    except (ValueError, LookupError) as exc:
        return _error(400, "INVALID_REQUEST", str(exc))
    return web.json_response({"deliveries": [asdict(d) for d in deliveries]})


async def control_seed(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    body = await _json_object(request)
    try:
        if "id" in request.match_info:
            record = request.app[STATE].update(kind, request.match_info["id"], body)
        else:
            record = request.app[STATE].seed(kind, body, event_type=request.query.get("event_type"))
    except KeyError:
        return _error(404, "NOT_FOUND", f"no {kind} object {request.match_info.get('id')!r}")
    except ValueError as exc:
        return _error(400, "INVALID_REQUEST", str(exc))
    return web.json_response(record)


async def control_fault(request: web.Request) -> web.Response:
    body = await _json_object(request)
    try:
        fault = Fault(**body)
    except TypeError as exc:
        return _error(400, "INVALID_REQUEST", str(exc))
    state = request.app[STATE]
    with state.lock:
        state.faults.append(fault)
    return web.json_response({"queued": len(state.faults)})


async def control_state(request: web.Request) -> web.Response:
    state = request.app[STATE]
    with state.lock:
        return web.json_response(
            {
                "endpoints": [e.to_json() for e in state.endpoints.values()],
                "objects": {kind: len(table) for kind, table in state.objects.items()},
                "requests": [list(r) for r in state.requests],
                "deliveries": [asdict(d) for d in state.deliveries],
            }
        )


async def control_rotate(request: web.Request) -> web.Response:
    _endpoint(request)
    request.app[STATE].rotate_secret(request.match_info["id"])
    return web.json_response({"rotated": True})


def build_app(state: StandinState) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[_middleware])
    app[STATE] = state

    async def session_context(app: web.Application) -> Any:
        app[SESSION] = aiohttp.ClientSession()
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session_context)
    app.router.add_get("/webhooks", list_webhooks)
    app.router.add_post("/webhooks", create_webhook)
    app.router.add_get("/webhooks/{id}", get_webhook)
    app.router.add_patch("/webhooks/{id}", patch_webhook)
    app.router.add_delete("/webhooks/{id}", delete_webhook)
    app.router.add_get("/webhooks/{id}/secret", webhook_secret)
    for kind in KINDS.values():
        app.router.add_get(f"/{kind.name}", list_objects(kind.name))
        if kind.retrievable:
            app.router.add_get(f"/{kind.name}/{{id}}", get_object(kind.name))
    app.router.add_post("/_standin/emit", control_emit)
    app.router.add_post("/_standin/objects/{kind}", control_seed)
    app.router.add_patch("/_standin/objects/{kind}/{id}", control_seed)
    app.router.add_post("/_standin/faults", control_fault)
    app.router.add_get("/_standin/state", control_state)
    app.router.add_post("/_standin/webhooks/{id}/rotate", control_rotate)
    return app


class StandinThread(AppThread):
    """The stand-in on 127.0.0.1 in a background thread, for tests that are not async themselves."""

    def __init__(self, state: StandinState | None = None, port: int = 0) -> None:
        super().__init__("dodo-standin", port)
        self.state = state or StandinState()

    @property
    def url(self) -> str:
        """The base URL, for DODO_PAYMENTS_BASE_URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StandinThread:
        self.serve(lambda: build_app(self.state))
        return self

    def emit(
        self, event_type: str, *, object_id: str | None = None, data: dict[str, Any] | None = None
    ) -> list[Delivery]:
        assert self.app is not None
        return self.call(emit(self.state, self.app[SESSION], event_type, object_id=object_id, data=data))


@contextmanager
def running_standin(state: StandinState | None = None) -> Iterator[StandinThread]:
    standin = StandinThread(state).start()
    try:
        yield standin
    finally:
        standin.stop()
