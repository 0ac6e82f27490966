"""The HTTP server: ingest, health, the management API and the console on one aiohttp application,
and the `serve` / `worker` process lifecycles (signals, graceful shutdown)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Middleware

from headrace import console
from headrace.api import routes as api_routes
from headrace.app import App
from headrace.config import Settings
from headrace.durations import parse_duration
from headrace.http import access_log, listener, proxy
from headrace.http.access import APP_KEY, THROTTLE_KEY, bearer, bearer_only, matching_token, record_failure, throttled
from headrace.http.request_id import with_request_id
from headrace.http.throttle import FailureThrottle
from headrace.observe.metrics import CONTENT_TYPE
from headrace.ops import indexer, outages, periodic, pidfile, reconciling, retention

log = logging.getLogger("headrace.server")
# After an early answer (408, 413) read and drop the rest of the body for at most this long, so the client can
# read the answer, then close (aiohttp's default of 10 s would let a slow sender hold the connection on).
LINGER = 1.0


class QuietParseErrors(logging.Filter):
    """aiohttp logs every malformed HTTP request (bad header line, oversized field...) at ERROR with a traceback
    and a copy of the offending bytes, which may hold a token. Make it one INFO line naming only the problem."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            problem = (exc.message or type(exc).__name__).strip().splitlines()[0][:120]
            record.msg, record.args = "malformed HTTP request refused (%s): %s", (exc.code, problem)
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def quiet_parse_errors() -> None:
    server_logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietParseErrors) for f in server_logger.filters):
        server_logger.addFilter(QuietParseErrors())


async def _nosniff(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def build_web_app(app: App) -> web.Application:
    """Ingest and health on the root application, public; the API (/api/v1) and the console (/console) as
    sub-applications that each guard every route of theirs; /metrics guarded like the API."""
    middlewares: list[Middleware] = [proxy.forwarded]
    if app.settings.server.access_log:
        middlewares.append(access_log.middleware(f"{app.settings.server.base_path}/webhooks/"))
    web_app = web.Application(client_max_size=app.settings.server.body_limit, middlewares=middlewares)
    web_app[APP_KEY] = app
    web_app.on_response_prepare.append(_nosniff)
    base = app.settings.server.base_path

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        ok, detail = await app.ready()
        answer = {"status": "ok" if ok else "unavailable"}
        if _may_see_readiness_detail(request):
            answer["detail"] = detail
        return web.json_response(answer, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        response = web.Response(text=await app.metrics_text())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def to_console(request: web.Request) -> web.Response:
        query = f"?{request.query_string}" if request.query_string else ""
        raise web.HTTPFound(f"{base}{console.PREFIX}/{query}")

    web_app.router.add_post(f"{base}/webhooks/{{source}}", with_request_id(app.ingestor.handle))
    web_app.router.add_get(f"{base}/healthz", healthz)
    web_app.router.add_get(f"{base}/readyz", readyz)
    web_app.router.add_get(f"{base}/api/openapi.json", api_routes.openapi)
    web_app.router.add_get(f"{base}/metrics", bearer_only(metrics))
    web_app.router.add_get(f"{base}/", to_console)
    if base:  # health stays reachable at the root for local probes that do not go through the proxy
        web_app.router.add_get(base, to_console)
        web_app.router.add_get("/healthz", healthz)
        web_app.router.add_get("/readyz", readyz)
    throttle = FailureThrottle(app.settings.server.auth_failures_per_minute)
    web_app[THROTTLE_KEY] = throttle
    for prefix, sub in (
        (api_routes.PREFIX, api_routes.build(app)),
        (console.PREFIX, console.build(app, f"{base}{console.PREFIX}")),
    ):
        sub[THROTTLE_KEY] = throttle
        web_app.add_subapp(f"{base}{prefix}", sub)
    return web_app


def _may_see_readiness_detail(request: web.Request) -> bool:
    """Why /readyz fails names the database path and the recovery commands: for the host's own probes (a
    loopback client that no proxy forwarded for) and holders of the admin token; anyone else gets the status.
    A token tried here counts against the same throttle as the API's."""
    client = proxy.address_of(request.remote or "")
    forwarded = "X-Forwarded-For" in request.headers or "Forwarded" in request.headers
    if client is not None and client.is_loopback and not forwarded:
        return True
    given = bearer(request)
    if given is None or throttled(request) is not None:
        return False
    if matching_token(given, request.app[APP_KEY].settings.server.admin_token) is not None:
        return True
    record_failure(request, "readyz")
    return False


def _install_signals(stop: asyncio.Event, on_reload: Callable[[], object] | None) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if on_reload is not None:
        loop.add_signal_handler(signal.SIGHUP, on_reload)


_TASKS: set[asyncio.Task[Any]] = set()


def _background(coro: Coroutine[Any, Any, Any]) -> None:
    """Run `coro` as a task of its own (a signal handler cannot await), kept until it ends."""
    task = asyncio.get_running_loop().create_task(coro)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def _flush_refusals(app: App, stop: asyncio.Event) -> None:
    """Write each minute's summary of refusals that were counted but not recorded (refusals.py)."""
    while not stop.is_set():
        await periodic.pause(stop, 5)
        await app.ingestor.flush_refusals(final=stop.is_set())


async def serve(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    ready: Callable[[int], None] | None = None,
    with_worker: bool | None = None,
    config_path: Path | None = None,
    pid_file: Path | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop`): accept webhooks, and deliver them unless the worker runs apart.

    The port is bound first, before the store opens and the worker starts, so a port in use is one line."""
    stop = stop or asyncio.Event()
    server_settings = settings.server
    quiet_parse_errors()
    sock = listener.bind(server_settings)
    try:
        app = await App.open(settings)
    except BaseException:
        sock.close()
        raise
    worker_task = None
    run_worker = server_settings.worker if with_worker is None else with_worker
    try:
        listener.ensure_descriptors(server_settings.max_connections)
        runner = web.AppRunner(
            build_web_app(app),
            access_log=None,
            handle_signals=False,
            keepalive_timeout=parse_duration(server_settings.header_timeout),
            lingering_time=LINGER,
        )
        await runner.setup()
        assert runner.server is not None
        cap = listener.ConnectionCap(
            runner.server,
            server_settings.max_connections,
            server_settings.max_connections_per_peer,
            server_settings.proxy_networks,
        )
        listening = await asyncio.get_running_loop().create_server(cap, sock=sock, backlog=1024)
        bound = sock.getsockname()[1]
        if run_worker:
            worker = await app.start_worker()
            worker_task = asyncio.create_task(worker.run(stop))
        _install_signals(stop, lambda: _background(app.reload_off_loop(config_path)))
        if server_settings.management == "closed":
            log.warning("the API, /metrics and the console are closed: set [server] admin_token to use them")
        elif server_settings.management == "open":
            log.warning("open_management = true: the API, /metrics and the console answer anyone without a token")
        log.info(
            "headrace listening on http://%s:%s%s/ (store %s, worker %s)",
            server_settings.host_port[0],
            bound,
            server_settings.base_path,
            app.store.describe()["backend"],
            "on" if run_worker else "off",
        )
        if pid_file is not None:
            pidfile.write(pid_file)
        if ready is not None:
            ready(bound)
        loops = periodic.Supervisor(stop)
        loops.start("refusal flusher", lambda: _flush_refusals(app, stop))
        loops.start("retention", lambda: retention.run(app.store, app.settings, stop, app.clock))
        # the indexer ends after the round under way; what is still queued is indexed at the next start
        loops.start("search indexer", lambda: indexer.run(app.store, stop, busy=app.ingestor.busy))
        sources = list(app.settings.sources)  # a stretch headrace was down is reported until each is reconciled
        loops.start("alive record", lambda: outages.stay_alive(app.store, stop, app.clock, sources=sources))
        # (stay_alive writes a last beat at the stop)
        # a reconcile pass under way is cancelled at the stop, between two stores; the next start does it again
        loops.start(
            "scheduled reconcile",
            lambda: reconciling.run(app.store, lambda: app.settings, stop, app.clock),
            cancel_at_stop=True,
        )
        await stop.wait()
        log.info("shutting down: no new webhooks; finishing in-flight deliveries")
        listening.close()  # stop accepting; requests already inside finish their commit
        await loops.wait()
        if worker_task is not None and app.worker is not None:
            await worker_task
            await app.worker.drain(parse_duration(app.settings.server.shutdown_grace))
        await runner.cleanup()
    finally:
        if pid_file is not None:
            pidfile.remove(pid_file)
        sock.close()
        if worker_task is not None and not worker_task.done():
            worker_task.cancel()
        await app.close()


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    config_path: Path | None = None,
    pid_file: Path | None = None,
) -> None:
    """`headrace worker`: deliveries only, no HTTP. Several may run against one store."""
    stop = stop or asyncio.Event()
    app = await App.open(settings)
    try:
        worker = await app.start_worker()
        _install_signals(stop, lambda: _background(app.reload_off_loop(config_path)))
        if pid_file is not None:
            pidfile.write(pid_file)
        log.info("headrace worker started (store %s)", app.store.describe()["backend"])
        await worker.run(stop)
        await worker.drain(parse_duration(app.settings.server.shutdown_grace))
    finally:
        if pid_file is not None:
            pidfile.remove(pid_file)
        await app.close()
