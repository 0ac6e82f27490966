"""A Dodo Payments API stand-in for tests and local demos — NOT Dodo. Production always talks to Dodo.

Answers like Dodo's API as the `dodopayments` SDK 1.123.0 models it (tests/integration/test_contract_dodo_standin.py
runs the SDK against it for every route):

- webhook endpoints: GET/POST /webhooks (cursor pages: `limit`, `iterator`; `data`, `iterator`, `done`;
  `idempotency_key` honoured), GET/PATCH/DELETE /webhooks/{id}, GET /webhooks/{id}/secret (`whsec_...`),
  GET/PATCH /webhooks/{id}/headers (sent with every webhook)
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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import aiohttp
from aiohttp import web

from headrace.config.secret import decode_secret
from headrace.dodo.kinds import KINDS
from headrace.dodo.signature import sign
from headrace.dodo.standin_model import BANNER, DEFAULT_API_KEY, Delivery, Endpoint, Fault, StandinState, new_id
from headrace.dodo.standin_routes import (
    STATE,
    create_webhook,
    delete_webhook,
    endpoint_or_404,
    error_response,
    get_headers,
    get_object,
    get_webhook,
    json_object,
    list_objects,
    list_webhooks,
    middleware,
    patch_headers,
    patch_webhook,
    webhook_secret,
)
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

SESSION = web.AppKey("session", aiohttp.ClientSession)
EMIT_TIMEOUT = 15.0  # seconds: Dodo (Svix) gives an endpoint 15 s to answer

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
    body = await json_object(request)
    event_type = body.get("type")
    object_id, data = body.get("object_id"), body.get("data")
    if not isinstance(event_type, str) or (object_id is not None and not isinstance(object_id, str)):
        return error_response(400, "INVALID_REQUEST", 'give {"type": "payment.succeeded", "object_id": optional}')
    if data is not None and not isinstance(data, dict):
        return error_response(400, "INVALID_REQUEST", "data must be an object")
    try:
        deliveries = await emit(request.app[STATE], request.app[SESSION], event_type, object_id=object_id, data=data)
    except (ValueError, LookupError) as exc:
        return error_response(400, "INVALID_REQUEST", str(exc))
    return web.json_response({"deliveries": [asdict(d) for d in deliveries]})


async def control_seed(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    body = await json_object(request)
    try:
        if "id" in request.match_info:
            record = request.app[STATE].update(kind, request.match_info["id"], body)
        else:
            record = request.app[STATE].seed(kind, body, event_type=request.query.get("event_type"))
    except KeyError:
        return error_response(404, "NOT_FOUND", f"no {kind} object {request.match_info.get('id')!r}")
    except ValueError as exc:
        return error_response(400, "INVALID_REQUEST", str(exc))
    return web.json_response(record)


async def control_fault(request: web.Request) -> web.Response:
    body = await json_object(request)
    try:
        fault = Fault(**body)
    except TypeError as exc:
        return error_response(400, "INVALID_REQUEST", str(exc))
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
    endpoint_or_404(request)
    request.app[STATE].rotate_secret(request.match_info["id"])
    return web.json_response({"rotated": True})


def build_app(state: StandinState) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[middleware])
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
    app.router.add_get("/webhooks/{id}/headers", get_headers)
    app.router.add_patch("/webhooks/{id}/headers", patch_headers)
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
