"""`[server] access_log = true`: one line per request to the API, the console, /metrics and the health probes.

Never for webhooks (ingest logs each one already, and refusals are summed up per minute), and never a query
string, a header or a body: they may hold a token. The path, the method, the status, the time taken and the
client (after trusted-proxy resolution) only.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Middleware

from headrace.http.access import Handler

log = logging.getLogger("headrace.access")


def middleware(webhooks_prefix: str) -> Middleware:
    """The access-log middleware; requests under `webhooks_prefix` pass through unlogged."""

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(webhooks_prefix):
            return await handler(request)
        started, status = time.perf_counter(), 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            log.info(
                "%s %s %d %.1f ms",
                request.method,
                request.path,
                status,
                elapsed,
                extra={"remote": request.remote or "", "status": status, "duration_ms": round(elapsed, 1)},
            )

    return access
