"""The operator console: an aiohttp sub-application (mounted at `/console`) with its own guard.

Every route added in `build` is behind `auth.guard` (admin token: a session from the login form, or a bearer
header) and every response carries SECURITY_HEADERS; the login form and the stylesheet are the only public
routes. Sessions are server-side, expire and are revocable (sessions.py).
"""

from __future__ import annotations

from aiohttp import web

from headrace.app import App
from headrace.console import activity, auth, bulk, pages, setup, trying
from headrace.console.sessions import Sessions
from headrace.durations import parse_duration
from headrace.http.access import APP_KEY, Handler

PREFIX = "/console"

# Scripts and styles only from our own static files (no inline code, no other origin; fetch only to
# ourselves), no framing, no referrer leaking event ids to other sites. `same-origin`, not `no-referrer`: under
# no-referrer browsers send `Origin: null` with the console's own forms (Fetch: serializing a request origin),
# which the CSRF check must refuse.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every console response, pages, redirects and errors alike (a response-prepare signal, so raised
    HTTP exceptions get them too)."""
    response.headers.update(SECURITY_HEADERS)


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/", pages.events_page),
    ("GET", "/events/{key}", pages.event_page),
    ("POST", "/events/{key}/replay", pages.replay_action),
    ("GET", "/replay", bulk.confirm_page),
    ("POST", "/replay", bulk.replay_action),
    ("GET", "/rejections", pages.rejections_page),
    ("GET", "/destinations", pages.destinations_page),
    ("GET", "/setup", setup.setup_page),
    ("GET", "/try", trying.try_page),
    ("POST", "/try/preview", trying.preview_action),
    ("POST", "/try/send", trying.send_action),
    ("GET", "/try/tests/{key}", trying.test_status),
    ("POST", "/try/download", trying.download_action),
    ("GET", "/destinations/{name}", activity.destination_page),
    ("GET", "/static/{name}", pages.static_file),
    ("GET", "/login", pages.login_page),
    ("POST", "/login", auth.public(auth.login_action)),
    ("POST", "/logout", auth.logout_action),
]


def build(app: App, root: str) -> web.Application:
    """The console sub-application; `root` is the public path it is mounted at (base path + PREFIX)."""
    console = web.Application(middlewares=[auth.guard])
    console.on_response_prepare.append(security_headers)
    console[APP_KEY] = app
    console[auth.ROOT_KEY] = root
    console[auth.SESSIONS_KEY] = Sessions(parse_duration(app.settings.server.session_lifetime), app.clock)
    for method, path, handler in ROUTES:
        console.router.add_route(method, path, handler)
    return console
