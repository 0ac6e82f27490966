"""The HTTP server: ingest, health, the management API and the console on one aiohttp application,
and the `serve` / `worker` process lifecycles (signals, graceful shutdown)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from headrace import console
from headrace.api.routes import APP_KEY, add_routes
from headrace.app import App
from headrace.config import Settings
from headrace.durations import parse_duration
from headrace.metrics import CONTENT_TYPE
from headrace.request_id import with_request_id

log = logging.getLogger("headrace.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_PREFIXES = ("/webhooks/", "/healthz", "/readyz", "/api/openapi.json")


def _auth_middleware(app: App) -> Any:
    token = app.settings.server.admin_token

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token is None or request.path.startswith(PUBLIC_PREFIXES) or request.path == "/login":
            return await handler(request)
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if given and hmac.compare_digest(given.encode(), token.reveal().encode()):
            return await handler(request)
        if console.is_console_path(request.path):
            if console.authorized(request, token):
                return await handler(request)
            raise web.HTTPSeeOther("/login")
        return web.json_response(
            {"error": "unauthorized", "message": "send Authorization: Bearer <admin token> ([server] admin_token)"},
            status=401,
        )

    return check


def build_web_app(app: App) -> web.Application:
    web_app = web.Application(client_max_size=app.settings.server.body_limit, middlewares=[_auth_middleware(app)])
    web_app[APP_KEY] = app

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ok, detail = await app.ready()
        return web.json_response({"status": "ok" if ok else "unavailable", "detail": detail}, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(text=await app.metrics_text())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    web_app.router.add_post("/webhooks/{source}", with_request_id(app.ingestor.handle))
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/metrics", metrics)
    web_app.router.add_get("/readyz", readyz)
    add_routes(web_app.router)
    console.add_routes(web_app.router)
    return web_app


def _install_signals(stop: asyncio.Event, on_reload: Callable[[], None] | None) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_reload)


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[int], None] | None = None,
    with_worker: bool | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop`): accept webhooks, and deliver them unless the worker runs apart."""
    stop = stop or asyncio.Event()
    app = await App.open(settings)
    worker_task = None
    run_worker = settings.server.worker if with_worker is None else with_worker
    try:
        if run_worker:
            worker = await app.start_worker()
            worker_task = asyncio.create_task(worker.run(stop))
        runner = web.AppRunner(build_web_app(app), access_log=None, handle_signals=False)
        await runner.setup()
        host, port = settings.server.host_port
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port  # type: ignore[attr-defined]
        _install_signals(stop, app.reload_scripts)
        log.info(
            "headrace listening on http://%s:%s (store %s, worker %s)",
            host,
            bound,
            app.store.describe()["backend"],
            "on" if run_worker else "off",
        )
        if ready is not None:
            ready(bound)
        await stop.wait()
        log.info("shutting down: no new webhooks; finishing in-flight deliveries")
        await site.stop()  # stop accepting; requests already inside finish their commit
        if worker_task is not None and app.worker is not None:
            await worker_task
            await app.worker.drain(parse_duration(settings.server.shutdown_grace))
        await runner.cleanup()
    finally:
        if worker_task is not None and not worker_task.done():
            worker_task.cancel()
        await app.close()


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """`headrace worker`: deliveries only, no HTTP. Several may run against one store."""
    stop = stop or asyncio.Event()
    app = await App.open(settings)
    try:
        worker = await app.start_worker()
        _install_signals(stop, app.reload_scripts)
        log.info("headrace worker started (store %s)", app.store.describe()["backend"])
        await worker.run(stop)
        await worker.drain(parse_duration(settings.server.shutdown_grace))
    finally:
        await app.close()
