"""The console's own guard, login and logout. Installed as the console sub-application's middleware, so every
page added to the console is behind it; only the handlers in PUBLIC (the login form and the stylesheet) are not.

With `[server] admin_token` set, a request passes with `Authorization: Bearer <token>` or a live session
cookie (see sessions.py). Without a token the console answers 403 (or is open with `open_management`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from headrace.access import APP_KEY, CLOSED_MESSAGE, Handler, bearer, problem, same_secret
from headrace.console.sessions import Session, Sessions

COOKIE = "headrace_session"
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


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    server = request.app[APP_KEY].settings.server
    if server.management == "open":
        return await handler(request)
    token = server.admin_token
    if token is None:
        return problem(403, "management_closed", CLOSED_MESSAGE)
    if request.match_info.handler in PUBLIC:
        return await handler(request)
    given = bearer(request)
    if given is not None and same_secret(given, token):
        request[AUTH_KEY] = "bearer"
        return await handler(request)
    session = request.app[SESSIONS_KEY].get(request.cookies.get(COOKIE, ""), token)
    if session is None:
        raise web.HTTPSeeOther(f"{root_of(request)}/login")
    request[AUTH_KEY] = "session"
    request[SESSION_KEY] = session
    return await handler(request)


async def login_action(request: web.Request) -> web.StreamResponse:
    from headrace.console.pages import render

    token = request.app[APP_KEY].settings.server.admin_token
    root = root_of(request)
    if token is None:  # open management: nothing to log in to
        raise web.HTTPSeeOther(f"{root}/")
    form = await request.post()
    given = form.get("token", "")
    if not isinstance(given, str) or not given or not same_secret(given, token):
        response = render(request, "login.html", failed=True)
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
