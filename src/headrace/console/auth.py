"""The console's own guard, login and logout. Installed as the console sub-application's middleware, so every
page added to the console is behind it; only the handlers in PUBLIC (the login form and the stylesheet) are not.

With `[server] admin_token` set, a request passes with `Authorization: Bearer <token>` (any of the configured
tokens) or a live session cookie (see sessions.py: a session lasts while the token it was opened with is
still configured). Without a token the console answers 403 (or is open with `open_management`).
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from headrace.console.sessions import Session, Sessions
from headrace.http.access import (
    APP_KEY,
    CLOSED_MESSAGE,
    Handler,
    bearer,
    matching_token,
    problem,
    read_body,
    record_failure,
    throttled,
)

log = logging.getLogger("headrace.console")

COOKIE = "headrace_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSIONS_KEY = web.AppKey("headrace_console_sessions", Sessions)
ROOT_KEY = web.AppKey("headrace_console_root", str)
SESSION_KEY = web.RequestKey("headrace_console_session", Session)
AUTH_KEY = web.RequestKey("headrace_console_auth", str)  # "bearer" or "session"
PUBLIC: set[Any] = set()


def public(handler: Handler) -> Handler:
    """Mark a console handler as reachable without a session (the login form, static files)."""
    PUBLIC.add(handler)
    return handler


def root_of(request: web.Request) -> str:
    return request.app[ROOT_KEY]


def session_of(request: web.Request) -> Session | None:
    return request.get(SESSION_KEY)


def own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}".lower()


def same_origin(request: web.Request) -> bool:
    """Did a page of this console send this request? Browsers send Origin with every POST; a request with
    neither Origin nor Sec-Fetch-Site comes from a non-browser client, which no other site can drive."""
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    return origin.lower() == own_origin(request)


def _cross_site(request: web.Request, why: str) -> web.Response:
    log.warning(
        "refused a console %s: %s", request.method, why, extra={"remote": request.remote or "", "path": request.path}
    )
    return problem(
        403,
        "cross_site_request",
        f"refused: {why}. State-changing console requests must come from the console's own pages "
        f"({own_origin(request)}); reload the page and try again",
    )


async def _csrf_refusal(request: web.Request, session: Session | None) -> web.Response | None:
    """For a state-changing request from a browser: the Origin must be the console's own and, within a
    session, the form must carry the session's CSRF token. None when the request may go on."""
    if request.method in SAFE_METHODS:
        return None
    if not same_origin(request):
        return _cross_site(request, f"it came from another origin ({request.headers.get('Origin', '?')[:100]})")
    if session is not None:
        await read_body(request)
        form = await request.post()
        given = form.get("csrf")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), session.csrf.encode()):
            return _cross_site(request, "the form's CSRF token is missing or not this session's")
    return None


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    server = request.app[APP_KEY].settings.server
    if server.management == "open":
        refusal = await _csrf_refusal(request, None)
        return refusal if refusal is not None else await handler(request)
    tokens = server.admin_token
    if not tokens:
        return problem(403, "management_closed", CLOSED_MESSAGE)
    if request.match_info.handler in PUBLIC:
        refusal = await _csrf_refusal(request, None)  # a login from another site is refused too
        return refusal if refusal is not None else await handler(request)
    given = bearer(request)
    if given is not None:
        refusal = throttled(request)
        if refusal is not None:
            return refusal
        if matching_token(given, tokens) is None:
            record_failure(request, "bearer")
            return problem(401, "unauthorized", "the bearer token is not the admin token ([server] admin_token)")
        request[AUTH_KEY] = "bearer"  # a header no other site can make a browser send: no CSRF check needed
        return await handler(request)
    session = request.app[SESSIONS_KEY].get(request.cookies.get(COOKIE, ""), tokens)
    if session is None:
        raise web.HTTPSeeOther(f"{root_of(request)}/login")
    refusal = await _csrf_refusal(request, session)
    if refusal is not None:
        return refusal
    request[AUTH_KEY] = "session"
    request[SESSION_KEY] = session
    return await handler(request)


async def login_action(request: web.Request) -> web.StreamResponse:
    from headrace.console.pages import render

    tokens = request.app[APP_KEY].settings.server.admin_token
    root = root_of(request)
    if not tokens:  # open management: nothing to log in to
        raise web.HTTPSeeOther(f"{root}/")
    refusal = throttled(request)
    if refusal is not None:
        response = render(request, "login.html", failed=False, wait=refusal.headers["Retry-After"])
        response.set_status(429)
        response.headers["Retry-After"] = refusal.headers["Retry-After"]
        return response
    await read_body(request)
    form = await request.post()
    given = form.get("token", "")
    token = matching_token(given, tokens) if isinstance(given, str) and given else None
    if token is None:
        record_failure(request, "console login")
        response = render(request, "login.html", failed=True, wait=None)
        response.set_status(401)
        return response
    session_id, session = request.app[SESSIONS_KEY].open(token)
    response = web.HTTPSeeOther(f"{root}/")
    response.set_cookie(
        COOKIE,
        session_id,
        httponly=True,
        samesite="Strict",
        path=f"{root}/",
        secure=request.secure,
        max_age=max(1, int(session.expires_at - request.app[SESSIONS_KEY].clock())),
    )
    raise response


async def logout_action(request: web.Request) -> web.StreamResponse:
    request.app[SESSIONS_KEY].close(request.cookies.get(COOKIE, ""))
    response = web.HTTPSeeOther(f"{root_of(request)}/login")
    response.del_cookie(COOKIE, path=f"{root_of(request)}/")
    raise response
