"""The operator console: server-rendered pages over the App (events, timelines, replays, rejections).

Same admin token as the API. A browser logs in once with the token; the console then keeps a session
cookie (HttpOnly, SameSite=Strict) that is an HMAC of the token, never the token itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from headrace.api import serialize
from headrace.api.routes import APP_KEY, event_filter
from headrace.app import App
from headrace.config import Secret

COOKIE = "headrace_console"

_env = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files("headrace.console").joinpath("templates", name).read_text("utf-8")
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)


def session_value(token: Secret) -> str:
    return hmac.new(token.reveal().encode(), b"headrace console session v1", hashlib.sha256).hexdigest()


def is_console_path(path: str) -> bool:
    return path == "/" or path.startswith(("/events", "/rejections", "/destinations", "/login", "/logout"))


def authorized(request: web.Request, token: Secret) -> bool:
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie, session_value(token))


def _render(request: web.Request, name: str, **context: Any) -> web.Response:
    app: App = request.app[APP_KEY]
    html = _env.get_template(name).render(
        secured=app.settings.server.admin_token is not None, path=request.path, **context
    )
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def events_page(request: web.Request) -> web.Response:
    app: App = request.app[APP_KEY]
    error = None
    try:
        flt = event_filter(request.query, app.clock())
    except ValueError as exc:
        error, flt = str(exc), event_filter({}, app.clock())
    events = [serialize.event_summary(e) for e in await app.list_events(flt)]
    stats = await app.stats()
    counts: dict[str, int] = {}
    for (_, status), n in stats.deliveries.items():
        counts[status] = counts.get(status, 0) + n
    oldest = None if stats.oldest_pending_at is None else round(time.time() - stats.oldest_pending_at)
    return _render(
        request,
        "events.html",
        events=events,
        query=dict(request.query),
        error=error,
        counts=counts,
        oldest_pending_s=oldest,
        next_before=events[-1]["id"] if len(events) == flt.limit else None,
    )


async def event_page(request: web.Request) -> web.Response:
    app: App = request.app[APP_KEY]
    event = await app.get_event(request.match_info["key"])
    if event is None:
        return _render(request, "missing.html", key=request.match_info["key"])
    return _render(
        request, "event.html", event=serialize.event_detail(event, app.settings), replayed=request.query.get("replayed")
    )


async def replay_action(request: web.Request) -> web.Response:
    app: App = request.app[APP_KEY]
    try:
        results = await app.replay([request.match_info["key"]])
    except LookupError:
        raise web.HTTPNotFound(text="no such event") from None
    count = sum(len(r.job_ids) for r in results)
    raise web.HTTPSeeOther(f"/events/{results[0].event_id}?replayed={count}")


async def rejections_page(request: web.Request) -> web.Response:
    app: App = request.app[APP_KEY]
    items = [serialize.rejection(r) for r in await app.rejections(None, 200)]
    stats = await app.stats()
    counts = [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(stats.rejections.items())]
    return _render(request, "rejections.html", rejections=items, counts=counts)


async def destinations_page(request: web.Request) -> web.Response:
    app: App = request.app[APP_KEY]
    stats = await app.stats()
    rows = []
    for name in app.settings.destinations:
        row = serialize.destination(name, app.settings)
        row["counts"] = {status: n for (dest, status), n in stats.deliveries.items() if dest == name}
        rows.append(row)
    return _render(request, "destinations.html", destinations=rows)


async def login_page(request: web.Request) -> web.Response:
    return _render(request, "login.html", failed=False)


async def login_action(request: web.Request) -> web.Response:
    app: App = request.app[APP_KEY]
    token = app.settings.server.admin_token
    form = await request.post()
    given = str(form.get("token", ""))
    if token is None:  # open management: nothing to log in to
        raise web.HTTPSeeOther("/")
    if not hmac.compare_digest(given.encode(), token.reveal().encode()):
        response = _render(request, "login.html", failed=True)
        response.set_status(401)
        return response
    response = web.HTTPSeeOther("/")
    response.set_cookie(COOKIE, session_value(token), httponly=True, samesite="Strict", path="/", secure=request.secure)
    raise response


async def logout_action(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", events_page)
    router.add_get("/events/{key}", event_page)
    router.add_post("/events/{key}/replay", replay_action)
    router.add_get("/rejections", rejections_page)
    router.add_get("/destinations", destinations_page)
    router.add_get("/login", login_page)
    router.add_post("/login", login_action)
    router.add_post("/logout", logout_action)
