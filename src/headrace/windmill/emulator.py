"""A Windmill stand-in for tests and local demos — NOT Windmill. Production always targets a real one.

It answers the job endpoints headrace uses the way Windmill documents them:

- POST /api/w/{ws}/jobs/run/p|f/{path}          -> 201, body = job UUID as plain text
- POST /api/w/{ws}/jobs/run_wait_result/p|f/... -> 200, body = the job result (JSON)
- ?job_id=UUID on a run endpoint: when that job already exists -> 400, no second job
- GET  /api/w/{ws}/jobs_u/get/{id}              -> 200 job JSON, or 404
- GET  /api/w/{ws}/jobs_u/completed/get_result_maybe/{id} -> {completed, success, result}
- GET  /api/w/{ws}/scripts/get/p/{path}, /api/w/{ws}/flows/get/{path} -> the target with its `schema`,
  `archived` and `draft_only`, or 404. Running an archived or draft-only target by path -> 404, as in
  Windmill (a path runs its latest deployed, non-archived version)
- GET  /api/w/{ws}/resources/get_value_interpolated/{path} -> a resource's value (what `wmill.get_resource`
  asks for); a "$res:PATH" string given as an argument is replaced by that value, as Windmill does
- Authorization: Bearer TOKEN or ?token=TOKEN; a wrong or missing token -> 401
- An unknown script or flow path -> 404 (unless the emulator accepts any path, the demo default)

Job outcomes: a target's runner computes the result (an exception fails the job with Windmill's error
object `{"error": {"name", "message", "stack"}}`), `error=` fails every job, and `delay=` keeps a job
`completed: false` for that long. `emulator_kit.load_kit` turns a Windmill workspace folder (the kit) into
targets whose jobs run the script's Python `main` in a subprocess with Windmill's argument rules.

Faults for tests: fail the next N requests with a status (optionally with Retry-After), hang, or create
the job and then drop the connection without answering. Control endpoints live under /_emulator/.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

from aiohttp import web

BANNER = "headrace Windmill EMULATOR — a stand-in for tests and demos, not a Windmill server"

Runner = Callable[
    ..., Any
]  # (args) -> result, or async (args, context) -> result; may return an awaitable (a job that runs a subprocess)


@dataclass
class Fault:
    kind: Literal["status", "hang", "drop"]
    count: int = 1
    status: int = 500
    retry_after: str | None = None
    seconds: float = 60.0
    body: str = "emulated failure"


@dataclass
class Job:
    id: str
    workspace: str
    kind: Literal["script", "flow"]
    path: str
    args: dict[str, Any]
    created_at: float
    completed: bool = True
    success: bool = True
    result: Any = None
    started_at: float | None = None
    duration_ms: float | None = None


@dataclass
class Target:
    kind: Literal["script", "flow"]
    path: str
    runner: Runner | None = None  # computes the job result from the args
    schema: dict[str, Any] | None = None
    archived: bool = False
    draft_only: bool = False
    delay: float = 0.0  # seconds a job stays `completed: false`
    error: str | None = None  # fail every job with this message
    summary: str = ""

    @property
    def runnable(self) -> bool:
        return not self.archived and not self.draft_only


@dataclass
class EmulatorState:
    tokens: set[str] = field(default_factory=lambda: {"test-token"})
    any_path: bool = True
    targets: dict[tuple[str, str], Target] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)  # path -> value, for "$res:PATH"
    jobs: dict[str, Job] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    background: set[asyncio.Future[None]] = field(default_factory=set)
    requests: int = 0
    duplicate_rejections: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_target(
        self, kind: Literal["script", "flow"], path: str, runner: Runner | None = None, **options: Any
    ) -> Target:
        target = Target(kind, path, runner, **options)
        self.targets[(kind, path)] = target
        return target

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def _next_fault(self) -> Fault | None:
        with self.lock:
            if not self.faults:
                return None
            fault = self.faults[0]
            fault.count -= 1
            if fault.count <= 0:
                self.faults.popleft()
            return fault


def _authorized(request: web.Request, state: EmulatorState) -> bool:
    header = request.headers.get("Authorization", "")
    token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else request.query.get("token")
    return token in state.tokens


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)

    async def run(request: web.Request) -> web.StreamResponse:
        state.requests += 1
        if not _authorized(request, state):
            return web.Response(status=401, text="Unauthorized: invalid or missing token")
        kind: Literal["script", "flow"] = "script" if request.match_info["letter"] == "p" else "flow"
        path = request.match_info["path"]
        workspace = request.match_info["ws"]
        target = state.targets.get((kind, path))
        if (target is None and not state.any_path) or (target is not None and not target.runnable):
            return web.Response(status=404, text=f"Not found: {kind} not found at name {path}")
        raw = await request.read()
        fault = state._next_fault()
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return web.Response(status=fault.status, text=fault.body, headers=headers)
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.seconds)
        try:
            args = json.loads(raw) if raw else {}
        except ValueError:
            return web.Response(status=400, text="Bad request: the body is not valid JSON")
        if not isinstance(args, dict):
            return web.Response(status=400, text="Bad request: the body must be a JSON object of arguments")
        job_id = request.query.get("job_id") or str(uuid.uuid4())
        try:
            job_id = str(uuid.UUID(job_id))
        except ValueError:
            return web.Response(status=400, text=f"Bad request: job_id {job_id} is not a UUID")
        with state.lock:
            if job_id in state.jobs:
                state.duplicate_rejections += 1
                return web.Response(status=400, text=f"Job {job_id} already exists")
            job = Job(job_id, workspace, kind, path, args, time.time())
            state.jobs[job_id] = job
        context = {"base_url": f"{request.scheme}://{request.host}", "workspace": workspace, "job_id": job_id}
        if target is not None and (target.delay > 0 or (target.runner is not None and _is_async(target.runner))):
            job.completed = False
            execution = asyncio.ensure_future(_execute(state, target, job, context))
            state.background.add(execution)
            execution.add_done_callback(state.background.discard)
            if request.match_info["mode"] == "run_wait_result":
                await asyncio.shield(execution)
        else:
            await _execute(state, target, job, context)
        if fault is not None and fault.kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if request.match_info["mode"] == "run_wait_result":
            status = 200 if job.success else 500
            return web.json_response(job.result, status=status)
        return web.Response(status=201, text=job_id)

    async def get_job(request: web.Request) -> web.Response:
        if not _authorized(request, state):
            return web.Response(status=401, text="Unauthorized: invalid or missing token")
        job = state.jobs.get(request.match_info["id"])
        if job is None:
            return web.Response(status=404, text=f"Not found: job {request.match_info['id']} not found")
        body = {
            "id": job.id,
            "type": "CompletedJob" if job.completed else "QueuedJob",
            "workspace_id": job.workspace,
            "script_path": job.path,
            "job_kind": "script" if job.kind == "script" else "flow",
            "args": job.args,
            "success": job.success if job.completed else None,
            "result": job.result if job.completed else None,
            "running": not job.completed and job.started_at is not None,
            "created_at": _iso(job.created_at),
            "started_at": _iso(job.started_at),
        }
        if job.completed:
            body["duration_ms"] = int(job.duration_ms or 0)
        return web.json_response(body)

    async def result_maybe(request: web.Request) -> web.Response:
        if not _authorized(request, state):
            return web.Response(status=401, text="Unauthorized: invalid or missing token")
        job = state.jobs.get(request.match_info["id"])
        if job is None:
            return web.Response(status=404, text=f"Not found: job {request.match_info['id']} not found")
        if not job.completed:
            return web.json_response({"completed": False, "result": None, "started": job.started_at is not None})
        return web.json_response({"completed": True, "success": job.success, "result": job.result, "started": True})

    async def get_definition(request: web.Request) -> web.Response:
        if not _authorized(request, state):
            return web.Response(status=401, text="Unauthorized: invalid or missing token")
        kind: Literal["script", "flow"] = "script" if "/scripts/" in request.path else "flow"
        path = request.match_info["path"]
        target = state.targets.get((kind, path))
        if target is None:
            return web.Response(status=404, text=f"Not found: {kind} not found at name {path}")
        body: dict[str, Any] = {
            "path": target.path,
            "summary": target.summary,
            "description": "",
            "schema": target.schema,
            "archived": target.archived,
            "draft_only": target.draft_only,
            "workspace_id": request.match_info["ws"],
        }
        if kind == "script":
            body.update(hash=f"{abs(hash(path)):016x}", language="python3", kind="script", deleted=False)
        else:
            body["value"] = {"modules": []}
        return web.json_response(body)

    async def get_resource(request: web.Request) -> web.Response:
        if not _authorized(request, state):
            return web.Response(status=401, text="Unauthorized: invalid or missing token")
        path = request.match_info["path"]
        if path not in state.resources:
            return web.Response(status=404, text=f"Not found: resource {path} not found")
        return web.json_response(state.resources[path])

    async def control_jobs(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "jobs": [asdict(job) for job in state.jobs.values()],
                "requests": state.requests,
                "duplicate_rejections": state.duplicate_rejections,
            }
        )

    async def control_fault(request: web.Request) -> web.Response:
        spec = await request.json()
        state.inject(Fault(**spec))
        return web.json_response({"queued": len(state.faults)})

    async def control_reset(request: web.Request) -> web.Response:
        with state.lock:
            state.jobs.clear()
            state.faults.clear()
            state.requests = state.duplicate_rejections = 0
        return web.json_response({"reset": True})

    prefix = "/api/w/{ws}"
    app.router.add_post(prefix + "/jobs/{mode:run|run_wait_result}/{letter:[pf]}/{path:.+}", run)
    app.router.add_get(prefix + "/jobs_u/get/{id}", get_job)
    app.router.add_get(prefix + "/jobs_u/completed/get_result_maybe/{id}", result_maybe)
    app.router.add_get(prefix + "/scripts/get/p/{path:.+}", get_definition)
    app.router.add_get(prefix + "/flows/get/{path:.+}", get_definition)
    app.router.add_get(prefix + "/resources/get_value_interpolated/{path:.+}", get_resource)
    app.router.add_get("/_emulator/jobs", control_jobs)
    app.router.add_post("/_emulator/faults", control_fault)
    app.router.add_post("/_emulator/reset", control_reset)
    return app


def _is_async(runner: Runner) -> bool:
    return bool(getattr(runner, "is_async", False)) or inspect.iscoroutinefunction(runner)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _resolve_resources(state: EmulatorState, args: dict[str, Any]) -> dict[str, Any]:
    """Windmill replaces a top-level "$res:PATH" argument by the resource's value before the job runs."""
    resolved = {}
    for name, value in args.items():
        if isinstance(value, str) and value.startswith("$res:"):
            path = value.removeprefix("$res:")
            if path not in state.resources:
                raise LookupError(f"Resource {path} not found")
            value = state.resources[path]
        resolved[name] = value
    return resolved


async def _execute(state: EmulatorState, target: Target | None, job: Job, context: dict[str, Any]) -> None:
    """Run one job: wait out the target's delay, compute the result, mark it completed."""
    job.started_at = time.time()
    try:
        if target is not None and target.delay > 0:
            await asyncio.sleep(target.delay)
        if target is not None and target.error is not None:
            raise RuntimeError(target.error)
        if target is not None and target.runner is not None:
            args = _resolve_resources(state, job.args)
            if _is_async(target.runner):
                job.result = await cast(Callable[..., Awaitable[Any]], target.runner)(args, context)
            else:
                job.result = target.runner(args)
        else:
            job.result = {"received": sorted(job.args)}
    except JobFailed as exc:
        job.success, job.result = False, {"error": exc.error}
    except Exception as exc:
        job.success = False
        job.result = {"error": {"name": type(exc).__name__, "message": str(exc), "stack": ""}}
    job.duration_ms = (time.time() - job.started_at) * 1000
    job.completed = True


class JobFailed(Exception):
    """Raised by a runner with Windmill's error object for the job ({"name", "message", "stack"})."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message", "")))
        self.error = error


class EmulatorThread:
    """The emulator on 127.0.0.1 in a background thread, for tests that are not async themselves."""

    def __init__(self, state: EmulatorState | None = None, port: int = 0) -> None:
        self.state = state or EmulatorState()
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="windmill-emulator", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> EmulatorThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(build_app(self.state), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(_cancel_others(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, path: str = "f/dodo/on_payment", kind: str = "p", workspace: str = "acme") -> str:
        return f"http://127.0.0.1:{self.port}/api/w/{workspace}/jobs/run/{kind}/{path}"


async def _cancel_others() -> None:
    """Cancel handlers still sleeping in a "hang" fault, so the loop closes clean."""
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


@contextmanager
def running_emulator(state: EmulatorState | None = None) -> Iterator[EmulatorThread]:
    emulator = EmulatorThread(state).start()
    try:
        yield emulator
    finally:
        emulator.stop()
