"""The emulator's authentication: one middleware in front of every Windmill route (R5).

`backend/windmill-api-auth/src/auth.rs`: the token is read from `Authorization: Bearer`, then from the
`token` cookie, then from `?token=`. No token or an unknown one -> 401. A token of a user who is not in
the workspace -> 401. A scoped token calling a route outside its scopes -> 403. A token whose user
cannot see the path -> also 401, "... (but it exists)" (`windmill-common/src/lib.rs`); that last check
needs the target, so the lookup does it (`visible`), with the token this middleware attached. A job the
token's user may not read is 403 (J2, `readable`).

T1, the cache (auth.rs:133-140, 451-457): a token the database accepts is kept per (workspace, token) for 120 s
(`EmulatorState.auth_cache_seconds`) from that moment, by Windmill's clock (`EmulatorState.now()`, which
`clock_offset` moves); a hit does not extend it, a refusal is not cached. So a token deleted in Windmill
(`EmulatorState.revoke`, `POST /_emulator/revoke`) keeps working, with the rights it was cached with, until its
entry expires: up to 2 minutes, and in each workspace separately.

Scopes (`backend/windmill-api-auth/src/scopes.rs`) read `domain:action[:kind[:path]]`. A route needs a domain
and an action (a run is `jobs:run` of kind `scripts` or `flows` on its path; a GET is `read`). `write` and
`run` include `read`, so the token Windmill's Webhooks panel makes, `jobs:run:scripts:{path}` (T1), runs that
path and follows its jobs by id, but `scripts/get` (domain `scripts`) answers 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from headrace.windmill import urls
from headrace.windmill.deploy_routes import DEPLOY_SCOPES
from headrace.windmill.emulator_model import EmulatorState, Job, Kind, Token

TOKEN_KEY = web.RequestKey("token", Token)

# The (domain, action) each route needs from a scoped token (scopes.rs: `extract_domain_from_route`,
# `map_http_method_to_action`).
ROUTE_SCOPES = {
    urls.RUN.name: ("jobs", "run"),
    urls.JOB.name: ("jobs", "read"),
    urls.RESULT_MAYBE.name: ("jobs", "read"),
    urls.TIMING.name: ("jobs", "read"),
    urls.COMPLETED_LIST.name: ("jobs", "read"),
    urls.SCRIPT.name: ("scripts", "read"),
    urls.FLOW.name: ("flows", "read"),
    urls.RESOURCE_VALUE.name: ("resources", "read"),
    urls.VARIABLE_VALUE.name: ("variables", "read"),
    **DEPLOY_SCOPES,
}
_INCLUDES = {("write", "read"), ("run", "read")}  # ScopeAction::includes


def grants(scope: str, domain: str, action: str, kind: str | None, path: str | None) -> bool:
    """Whether one scope string lets a request through (scopes.rs `scope_grants_access`, as the emulator
    reads it): same domain, an action that includes the needed one, and when the scope names a kind and a
    path (`jobs:run:scripts:f/dodo/x`, a trailing `*` for a prefix) a run of that kind and path."""
    parts = scope.split(":", 3)
    if len(parts) < 2 or parts[0] != domain:
        return False
    if parts[1] != action and (parts[1], action) not in _INCLUDES:
        return False
    if len(parts) >= 3 and kind is not None and parts[2] != kind:
        return False
    if len(parts) == 4 and path is not None:
        wanted = parts[3]
        return path == wanted or (wanted.endswith("*") and path.startswith(wanted[:-1]))
    return True


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
        name = request.match_info.route.name or ""
        needed = ROUTE_SCOPES.get(name)
        if needed is None:  # not a Windmill route (the emulator's own /_emulator/ controls)
            return await handler(request)
        state.calls[name] = state.calls.get(name, 0) + 1
        secret = token_from(request)
        workspace = request.match_info.get("workspace", "")
        token = state.cached(workspace, secret) if secret is not None else None
        if token is None:  # not cached, or the entry expired: ask the database
            token = state.token(secret)
            if token is None:
                return web.Response(status=401, text="Unauthorized: Could not authenticate with the given token")
            if token.workspaces is not None and workspace not in token.workspaces:
                return web.Response(status=401, text=f"Unauthorized: the token's user is not in workspace {workspace}")
            state.remember(workspace, token)
        if token.scopes is not None:
            domain, action = needed
            kind = path = None
            if name == urls.RUN.name:
                kind = "scripts" if request.match_info["letter"] == "p" else "flows"
                path = request.match_info["path"]
            if not any(grants(scope, domain, action, kind, path) for scope in token.scopes):
                required = ":".join(filter(None, (domain, action, kind)))
                return web.Response(status=403, text=f"Permission denied: Access denied. Required scope: {required}")
        request[TOKEN_KEY] = token
        return await handler(request)

    return authenticate


def readable(request: web.Request, job: Job) -> web.Response | None:
    """J2: None when the request's token may read `job`; else Windmill's 403 for a job that exists
    (`require_job_read_access`, backend/windmill-api/src/jobs.rs:969-1108)."""
    if request[TOKEN_KEY].reads_job(job.created_by, job.path):
        return None
    return web.Response(
        status=403,
        text=(
            f"Permission denied: You do not have access to run {job.id}. Ask a user who can see it to open the run "
            'and share a read-only link with you (the "Share" button on the run page).'
        ),
    )


def visible(request: web.Request, kind: Kind, path: str) -> web.Response | None:
    """None when the request's token may use `path`; else Windmill's 401 for a path that exists."""
    token = request[TOKEN_KEY]
    if token.sees(path):
        return None
    return web.Response(
        status=401,
        text=f"Unauthorized: the token's user has no read access to {kind} {path} (but it exists)",
    )
