"""The emulator's authentication: one middleware in front of every Windmill route (R5).

`backend/windmill-api-auth/src/auth.rs`: the token is read from `Authorization: Bearer`, then from the
`token` cookie, then from `?token=`. No token or an unknown one -> 401. A token of a user who is not in
the workspace -> 401. A scoped token calling a route outside its scopes -> 403. A token whose user
cannot see the path -> also 401, "... (but it exists)" (`windmill-common/src/lib.rs`); that last check
needs the target, so the lookup does it (`visible`), with the token this middleware attached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from headrace.windmill import urls
from headrace.windmill.deploy_routes import DEPLOY_SCOPES
from headrace.windmill.emulator_model import EmulatorState, Kind, Token

TOKEN_KEY = web.RequestKey("token", Token)

# The scope each route needs from a scoped token (the emulator's reading of Windmill's scope names).
ROUTE_SCOPES = {
    urls.RUN.name: "jobs:run",
    urls.JOB.name: "jobs:read",
    urls.RESULT_MAYBE.name: "jobs:read",
    urls.SCRIPT.name: "scripts:read",
    urls.FLOW.name: "flows:read",
    urls.RESOURCE_VALUE.name: "resources:read",
    urls.VARIABLE_VALUE.name: "variables:read",
    **DEPLOY_SCOPES,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_from(request: web.Request) -> str | None:
    """Bearer header first, then the `token` cookie, then `?token=` (auth.rs)."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    cookie = request.cookies.get("token")
    if cookie:
        return cookie
    return request.query.get("token")


def middleware(state: EmulatorState) -> Middleware:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        scope = ROUTE_SCOPES.get(request.match_info.route.name or "")
        if scope is None:  # not a Windmill route (the emulator's own /_emulator/ controls)
            return await handler(request)
        token = state.token(token_from(request))
        if token is None:
            return web.Response(status=401, text="Unauthorized: Could not authenticate with the given token")
        workspace = request.match_info.get("workspace", "")
        if token.workspaces is not None and workspace not in token.workspaces:
            return web.Response(status=401, text=f"Unauthorized: the token's user is not in workspace {workspace}")
        if token.scopes is not None and scope not in token.scopes:
            return web.Response(status=403, text=f"Forbidden: the token lacks the scope {scope} for this route")
        request[TOKEN_KEY] = token
        return await handler(request)

    return authenticate


def visible(request: web.Request, kind: Kind, path: str) -> web.Response | None:
    """None when the request's token may use `path`; else Windmill's 401 for a path that exists."""
    token = request[TOKEN_KEY]
    if token.sees(path):
        return None
    return web.Response(
        status=401,
        text=f"Unauthorized: the token's user has no read access to {kind} {path} (but it exists)",
    )
