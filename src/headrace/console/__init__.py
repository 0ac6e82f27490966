"""The operator console: an aiohttp sub-application (mounted at `/console`) with its own guard.

Every route added in `build` is behind `auth.guard` (admin token: a session from the login form, or a
bearer header); the login form is the only public page. Sessions are server-side, expire and are revocable
(sessions.py).
"""

from __future__ import annotations

from aiohttp import web

from headrace.access import APP_KEY
from headrace.app import App
from headrace.console import auth, pages
from headrace.console.sessions import Sessions
from headrace.durations import parse_duration

PREFIX = "/console"


def build(app: App, root: str) -> web.Application:
    """The console sub-application; `root` is the public path it is mounted at (base path + PREFIX)."""
    console = web.Application(middlewares=[auth.guard])
    console[APP_KEY] = app
    console[auth.ROOT_KEY] = root
    console[auth.SESSIONS_KEY] = Sessions(parse_duration(app.settings.server.session_lifetime), app.clock)
    router = console.router
    router.add_get("/", pages.events_page)
    router.add_get("/events/{key}", pages.event_page)
    router.add_post("/events/{key}/replay", pages.replay_action)
    router.add_get("/rejections", pages.rejections_page)
    router.add_get("/destinations", pages.destinations_page)
    router.add_get("/login", pages.login_page)
    router.add_post("/login", auth.public(auth.login_action))
    router.add_post("/logout", auth.logout_action)
    return console
