"""A Windmill stand-in for tests and local demos — NOT Windmill. Production always targets a real one.

It is built on the model of Windmill in docs/windmill-contract.md (each behaviour with the Windmill
source it was read from, and the test that holds the emulator to it). The routes come from
`windmill/urls.py`, the same place the client builds its URLs from:

- POST jobs/run/p|f/{path}: 201 with the job UUID (R1; the query parameters that change the arguments or
  panic are emulator_args); `?job_id=` that exists in ANY workspace -> 400 (R2); an undeployed path, or a
  script whose lock is still being built -> 404 (R3); archived and draft-only targets run (R4); HEAD -> 200,
  any other method -> 405 (R7)
- POST jobs/run_wait_result/p|f/{path}: 200 with the result, 422 with a failed job's result, 500 after
  `wait_timeout` (default 600 s); the job is cancelled when the wait ends without a result (W1-W3)
- GET jobs_u/get/{id}: per workspace, 404 elsewhere (J1), large (J6); jobs_u/completed/get_result_maybe/{id}:
  never 404, `started` only with ?get_started=true (J2); jobs_u/completed/get_timing/{id} (J6); skipped
  flows (J4) and canceled jobs (J5, POST /_emulator/cancel); jobs/completed/list, paged and filtered (J7)
- J2: a job is read by the user who created it, an admin, or a user who reads its whole folder
  (`Token.reads_job`); anyone else gets 403 from the three lookups above, and the list leaves the job out
- GET scripts/get/p/{path}, flows/get/{path}: the newest version whatever its lock, `lock` absent while it
  builds (M1); preprocessors (R8); a flow's script steps (R9, a flow run fails at a step with no lock)
- R6: `Fault.sql_error()`, `Fault.quota()`, `EmulatorState(concurrent_limit=30)` answer the other 400s
- T1: scoped tokens (`Token(scopes=...)`, `jobs:run:scripts:{path}`) get 403 outside their scopes; an
  authenticated token is cached per workspace for `auth_cache_seconds` (120 s) by the emulator's clock, so a
  token revoked with `EmulatorState.revoke` or `POST /_emulator/revoke {"token"}` works until then
- GET resources/get_value_interpolated/{path}, variables/get_value/{path}: what `wmill` asks inside a job
- auth (R5) is one middleware (emulator_auth); reference resolution (A4) is emulator_refs

An undeployed path is 404 for runs and definitions alike; `EmulatorState(any_path=True)` (the
`--accept-any-path` flag of `headrace dev windmill`) deploys any path on first use instead, with no schema.

Job outcomes: a target's runner computes the result (an exception fails the job with Windmill's error
object `{"error": {"name", "message", "stack"}}`), `error=` fails every job, and `delay=` keeps a job
`completed: false` for that long. `emulator_kit.load_kit` turns a Windmill workspace folder (the kit) into
targets whose jobs run the script's Python `main` in a subprocess with Windmill's argument rules.

Faults for tests: fail the next N requests with a status (optionally with Retry-After), hang, or create
the job and then drop the connection without answering. Control endpoints live under /_emulator/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

from aiohttp import web

from headrace.loopback import AppThread
from headrace.windmill import emulator_deploy, urls
from headrace.windmill.deploy_routes import MARK
from headrace.windmill.emulator_auth import middleware, visible
from headrace.windmill.emulator_jobs import (
    STATE,
    cancel,
    completed_list,
    get_job,
    get_timing,
    not_found,
    result_maybe,
    run,
)
from headrace.windmill.emulator_model import (
    BANNER,
    FAKE_JOB_TOKEN,
    TIMEOUT_WAIT_RESULT,
    EmulatorState,
    Fault,
    Job,
    JobFailed,
    Kind,
    Runner,
    Target,
    Token,
)

__all__ = [
    "BANNER",
    "FAKE_JOB_TOKEN",
    "TIMEOUT_WAIT_RESULT",
    "EmulatorState",
    "EmulatorThread",
    "Fault",
    "Job",
    "JobFailed",
    "Runner",
    "Target",
    "Token",
    "build_app",
    "running_emulator",
]


async def get_definition(request: web.Request) -> web.Response:
    """M1: the newest version of a script or flow, whatever its lock state."""
    state: EmulatorState = request.app[STATE]
    kind: Kind = "script" if request.match_info.route.name == urls.SCRIPT.name else "flow"
    path, workspace = request.match_info["path"], request.match_info["workspace"]
    target = state.newest(workspace, kind, path)
    if target is None:
        return not_found(kind, path)
    refused = visible(request, kind, path)
    if refused is not None:
        return refused
    body: dict[str, Any] = {
        "workspace_id": workspace,
        "path": target.path,
        "summary": target.summary,
        "description": f"{MARK}: a stand-in the emulator holds itself",
        "schema": target.schema,
        "archived": target.archived,
        "created_at": target.deployed_at,
    }
    if kind == "script":
        body.update(
            hash=target.hash,
            language="python3",
            content=target.content,  # M2
            kind="script",
            deleted=target.deleted,
            draft_only=target.draft_only,
            lock_error_logs=target.lock_error,
            has_preprocessor=target.preprocessor is not None,  # R8
        )
        if target.lock_ready(time.time()):
            body["lock"] = ""  # M1: a built lock is a string; while it builds the key is absent, not null
    else:
        modules = [{"id": f"step{n}", "value": {"type": "script", "path": step}} for n, step in enumerate(target.steps)]
        body["value"] = {"modules": modules}  # R9: each step resolves its script's locked version at run time
        if target.preprocessor is not None:  # R8
            body["value"]["preprocessor_module"] = {"id": "preprocessor", "value": {"type": "rawscript"}}
        if target.draft_only:  # flows omit draft_only when it is null (M1)
            body["draft_only"] = True
    emulator_deploy.overlay(request.app, workspace, kind, target, body)  # what was deployed through the API
    return web.json_response(body)


async def get_resource(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE]
    path = request.match_info["path"]
    if path not in state.resources:
        return web.Response(status=404, text=f"Not found: resource {path} not found")
    return web.json_response(emulator_deploy.interpolated(state, state.resources[path]))  # D4


async def get_variable(request: web.Request) -> web.Response:
    state: EmulatorState = request.app[STATE]
    path = request.match_info["path"]
    if path not in state.variables:
        return web.Response(status=404, text=f"Not found: variable {path} not found")
    return web.json_response(state.variables[path])


async def answer_head(request: web.Request) -> web.Response:
    """R7: HEAD on a run route answers 200 with nothing, without authentication or a job (`jobs.rs:136-179`)."""
    return web.Response()


_JOB_FIELDS = tuple(f.name for f in fields(Job))


def shallow(job: Job) -> dict[str, Any]:
    """`asdict(job)` without its deep copy of the arguments and result (the answer is serialised at once)."""
    return {name: getattr(job, name) for name in _JOB_FIELDS}


def build_app(state: EmulatorState) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[middleware(state)])
    app[STATE] = state
    handlers = {
        urls.JOB: get_job,
        urls.RESULT_MAYBE: result_maybe,
        urls.TIMING: get_timing,
        urls.COMPLETED_LIST: completed_list,
        urls.SCRIPT: get_definition,
        urls.FLOW: get_definition,
        urls.RESOURCE_VALUE: get_resource,
        urls.VARIABLE_VALUE: get_variable,
    }
    app.router.add_post(urls.RUN.pattern, run, name=urls.RUN.name)
    app.router.add_route("HEAD", urls.RUN.pattern, answer_head)  # R7: POST and HEAD only, anything else 405
    for route, handler in handlers.items():
        app.router.add_get(route.pattern, handler, name=route.name)

    async def control_jobs(request: web.Request) -> web.Response:
        """Every job, or with `?count=true` only how many (what a benchmark polls for: listing 10,000 jobs
        with their arguments at 10 Hz took most of the emulator's CPU, and the bench measured itself)."""
        summary = {"requests": state.requests, "duplicate_rejections": state.duplicate_rejections}
        if request.query.get("count") == "true":
            return web.json_response({"count": len(state.jobs), **summary})
        return web.json_response({"jobs": [shallow(job) for job in state.jobs.values()], **summary})

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

    emulator_deploy.register(app, state)  # D1-D8: the deployment API

    async def control_cancel(request: web.Request) -> web.Response:
        """Someone cancels a job in Windmill's UI (J5): {"job_id", "reason", "by"}."""
        spec = await request.json()
        job = state.jobs.get(spec["job_id"])
        if job is None:
            return web.json_response({"canceled": False}, status=404)
        cancel(state, job, spec.get("reason") or "", spec.get("by"))
        return web.json_response({"canceled": True})

    async def control_revoke(request: web.Request) -> web.Response:
        """Someone deletes a token in Windmill (T1): {"token"}. It keeps working until its cache entries expire."""
        spec = await request.json()
        state.revoke(str(spec["token"]))
        return web.json_response({"revoked": True, "cached_for_seconds": state.auth_cache_seconds})

    app.router.add_get("/_emulator/jobs", control_jobs)
    app.router.add_post("/_emulator/revoke", control_revoke)
    app.router.add_post("/_emulator/cancel", control_cancel)
    app.router.add_post("/_emulator/faults", control_fault)
    app.router.add_post("/_emulator/reset", control_reset)
    return app


class EmulatorThread(AppThread):
    """The emulator on 127.0.0.1 in a background thread, for tests that are not async themselves."""

    def __init__(self, state: EmulatorState | None = None, port: int = 0) -> None:
        super().__init__("windmill-emulator", port)
        self.state = state or EmulatorState()

    def start(self) -> EmulatorThread:
        self.serve(lambda: build_app(self.state))
        return self

    def url(self, path: str = "f/dodo/on_payment", kind: str = "p", workspace: str = "acme") -> str:
        base = f"http://127.0.0.1:{self.port}/api"
        return urls.RUN.build(base, workspace=workspace, endpoint="run", letter=kind, path=path)


@contextmanager
def running_emulator(state: EmulatorState | None = None) -> Iterator[EmulatorThread]:
    emulator = EmulatorThread(state).start()
    try:
        yield emulator
    finally:
        emulator.stop()
