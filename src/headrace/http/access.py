"""Who may use the management surface (/api/v1, /metrics, the console): the admin token, checked in one place.

`[server] admin_token` set: a request needs `Authorization: Bearer <token>` (the console also accepts its
session cookie); during a rotation several tokens are configured and each is accepted. The guards read the
token(s) from the app's current settings on every request, so a config reload takes effect at once. No
token: the surface answers 403 saying how to set one, unless `open_management = true` (loopback listeners
only) opens it. The API and the console are aiohttp sub-applications that each install
their guard as middleware, so a new route is guarded by being added there; nothing decides by path prefix.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from headrace.app import App
from headrace.config import KEYGEN_COMMAND, Secret
from headrace.durations import parse_duration
from headrace.http.throttle import FailureThrottle
from headrace.previews import RefusalKind, Refused

log = logging.getLogger("headrace.access")

APP_KEY = web.AppKey("headrace_app", App)
THROTTLE_KEY = web.AppKey("headrace_auth_throttle", FailureThrottle)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CLOSED_MESSAGE = (
    "no [server] admin_token is configured, so the API, /metrics and the console are closed; "
    f"set one (generate it with: {KEYGEN_COMMAND}) and restart"
)


def app_of(request: web.Request) -> App:
    return request.app[APP_KEY]


def problem(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


# The HTTP status of each kind of refusal a service gives (previews.Refused): decided here, the front door.
STATUS_OF: dict[RefusalKind, int] = {"bad_body": 400, "not_found": 404, "too_large": 413}


def refused(exc: Refused) -> web.Response:
    return problem(STATUS_OF[exc.kind], exc.kind, str(exc))


def same_secret(given: str, token: Secret) -> bool:
    """Constant-time comparison that copes with any text a client sends (non-ASCII, undecodable bytes)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), token.reveal().encode("utf-8", "surrogateescape")
    )


def matching_token(given: str, tokens: tuple[Secret, ...]) -> Secret | None:
    """The admin token `given` is (several are configured during a rotation), or None. Every token is compared,
    so the time taken does not tell which one matched."""
    found = None
    for token in tokens:
        if same_secret(given, token):
            found = token
    return found


async def read_body(request: web.Request) -> bytes:
    """The request body, read within `[server] body_timeout` (408 otherwise); later request.post()/json()
    calls use this copy."""
    settings = app_of(request).settings.server
    try:
        async with asyncio.timeout(parse_duration(settings.body_timeout)):
            return await request.read()
    except TimeoutError:
        raise web.HTTPRequestTimeout(
            text=f"the body did not arrive within {settings.body_timeout} ([server] body_timeout)"
        ) from None


async def json_answer(data: Any, status: int = 200) -> web.Response:
    """`web.json_response`, with the JSON written in a thread: a large answer (a preview's payload, up to a
    destination's payload_limit) never holds the event loop while it is serialised."""
    text = await asyncio.to_thread(json.dumps, data)
    return web.Response(text=text, status=status, content_type="application/json")


def throttled(request: web.Request) -> web.Response | None:
    """429 while this client address has used up its failed attempts; None when it may try a credential."""
    wait = request.app[THROTTLE_KEY].retry_after(request.remote or "")
    if not wait:
        return None
    return problem(
        429,
        "too_many_failures",
        f"too many wrong admin tokens from this address; try again in {wait}s ([server] auth_failures_per_minute)",
        headers={"Retry-After": str(wait)},
    )


def record_failure(request: web.Request, where: str) -> None:
    """Count a wrong admin token against its address and log it once (never the guess)."""
    request.app[THROTTLE_KEY].failed(request.remote or "")
    log.warning("wrong admin token (%s)", where, extra={"remote": request.remote or "", "path": request.path})


def bearer(request: web.Request) -> str | None:
    """The bearer credential a request carries, or None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


async def check_bearer(request: web.Request) -> web.Response | None:
    """None when the request may go on; otherwise the JSON refusal to send."""
    settings = app_of(request).settings.server
    if settings.management == "open":
        return None
    tokens = settings.admin_token
    if not tokens:
        return problem(403, "management_closed", CLOSED_MESSAGE)
    given = bearer(request)
    if given is not None:
        refusal = throttled(request)
        if refusal is not None:
            return refusal
        if matching_token(given, tokens) is not None:
            return None
        record_failure(request, "bearer")
    return problem(
        401,
        "unauthorized",
        "send Authorization: Bearer <admin token> ([server] admin_token)",
        headers={"WWW-Authenticate": 'Bearer realm="headrace"'},
    )


@web.middleware
async def bearer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    refusal = await check_bearer(request)
    return refusal if refusal is not None else await handler(request)


def bearer_only(handler: Handler) -> Handler:
    """One route of the root application guarded like the API (used for /metrics)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        refusal = await check_bearer(request)
        return refusal if refusal is not None else await handler(request)

    return guarded
