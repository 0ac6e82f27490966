"""The emulator's job endpoints: create (R1-R4, R6, R8), wait for the result (W1-W3), look up (J1-J7), and
what a job does when it runs (R9 steps, J4 skipped, J5 canceled).

Sources, in the windmill-labs/windmill repository at v1.721.0 (docs/windmill-contract.md):
`backend/windmill-api/src/jobs.rs`, `backend/windmill-api/src/args.rs`, `backend/windmill-queue/src/jobs.rs`,
`backend/windmill-api-jobs/src/execution.rs`, `backend/windmill-types/src/jobs.rs`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, cast

import msgspec
from aiohttp import web

from headrace.windmill.client import rfc3339
from headrace.windmill.emulator_args import with_query
from headrace.windmill.emulator_auth import TOKEN_KEY, readable, visible
from headrace.windmill.emulator_model import EmulatorState, Job, JobFailed, Kind, Runner, Target
from headrace.windmill.emulator_refs import resolve_args

STATE = web.AppKey("state", EmulatorState)
HANG_UP_POLL = 0.05  # seconds between two looks at a waiting client's connection (W3)
CANCELED_BY_HANG_UP = "http connection broke"  # execution.rs: the reason the guard cancels with
LOGS_TAIL = 20_000  # J6: jobs_u/get shows the last 20,000 characters of a job's logs
TOO_BIG = 90_000  # J6: a result or args stored this large (bytes) or larger are shown as "WINDMILL_TOO_BIG"


def is_async(runner: Runner) -> bool:
    return bool(getattr(runner, "is_async", False)) or inspect.iscoroutinefunction(runner)


def iso(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


def not_found(kind: Kind, path: str) -> web.Response:
    return web.Response(status=404, text=f"Not found: {kind} not found at name {path}")


def quota_text(limit: int) -> str:
    """R6: Windmill Cloud's answer to a run past the concurrency quota (a 400, like "job exists")."""
    return f"Quota exceeded: {limit} jobs are already running in this workspace, the limit of its plan"


_ARGS = msgspec.json.Decoder()


def parse_args(raw: bytes, content_type: str | None) -> dict[str, Any] | web.Response:
    """R1: the body's top-level keys are the arguments. An empty body with no Content-Type is `{}`; any other
    body must be UTF-8, and one whose first character is not `{` (leading whitespace or a BOM included) is
    parsed whole and wrapped as `{"body": ...}` (`null` too); an empty body with a JSON Content-Type is
    invalid JSON (400). Read with msgspec (the emulator's busiest step under load), and with the standard
    library when msgspec refuses, as before (it reads NaN)."""
    if not raw and content_type is None:
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return web.Response(status=400, text=f"Bad request: invalid utf8: {exc}")
    try:
        value = _ARGS.decode(raw)
    except (msgspec.DecodeError, ValueError, RecursionError):
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            return web.Response(status=400, text=f"Bad request: invalid json: {exc}")
    if text[:1] != "{":
        return {"body": value}
    return cast(dict[str, Any], value)


async def run(request: web.Request) -> web.StreamResponse:
    state: EmulatorState = request.app[STATE]
    state.requests += 1
    kind: Kind = "script" if request.match_info["letter"] == "p" else "flow"
    path, workspace = request.match_info["path"], request.match_info["workspace"]
    if state.newest(workspace, kind, path) is not None:
        refused = visible(request, kind, path)
        if refused is not None:
            return refused
    target = state.runnable(workspace, kind, path)
    if target is None:
        return not_found(kind, path)
    raw = await request.read()
    fault = state.next_fault()
    if fault is not None and fault.kind == "status":
        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
        return web.Response(status=fault.status, text=fault.body, headers=headers)
    if fault is not None and fault.kind == "hang":
        await asyncio.sleep(fault.seconds)
    # R1: the body, then raw, wrap_body, include_header, include_query
    args = with_query(request, raw, parse_args(raw, request.headers.get("Content-Type")))
    if isinstance(args, web.Response):
        return args
    if target.preprocessor is not None:
        args = preprocessor_input(request, raw, args)
    job_id = request.query.get("job_id") or str(uuid.uuid4())
    try:
        job_id = str(uuid.UUID(job_id))
    except ValueError:
        return web.Response(status=400, text=f"Bad request: job_id {job_id} is not a UUID")
    with state.lock:
        if job_id in state.jobs:  # every workspace, queued or completed (R2)
            state.duplicate_rejections += 1
            return web.Response(status=400, text=f"Bad request: Job with id {job_id} already exists")
        if state.concurrent_limit is not None and state.busy(workspace) >= state.concurrent_limit:
            return web.Response(status=400, text=quota_text(state.concurrent_limit))
        job = Job(job_id, workspace, kind, path, args, state.now(), completed=False, success=False)
        job.email = request[TOKEN_KEY].email  # the job is its creator's: who may read it (J2)
        job.raw_code = target.content
        job.may_reference = b"$" in raw or b"\\u0024" in raw
        state.jobs[job_id] = job
    base_url = f"{request.scheme}://{request.host}"
    wait = request.match_info["endpoint"] == "run_wait_result"
    if target.delay > 0 or (target.runner is not None and is_async(target.runner)):
        execution = start(state, target, job, base_url)
        if wait:
            return await wait_result(request, state, job, execution)
    else:
        await execute(state, target, job, base_url)  # a plain runner: the job is done before the answer
        if wait:
            return result_response(job.result, job.success)
    if fault is not None and fault.kind == "drop":
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError
    return web.Response(status=201, text=job_id)


def preprocessor_input(request: web.Request, raw: bytes, args: dict[str, Any]) -> dict[str, Any]:
    """R8: what a target with a preprocessor receives instead of the body's keys: one argument, `event`.
    (The emulator passes the request's headers but Authorization and Cookie: *unconfirmed* which Windmill keeps.)"""
    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in ("authorization", "cookie")}
    body = args["body"] if set(args) == {"body"} and not raw.lstrip().startswith(b"{") else args
    event = {
        "kind": "webhook",
        "body": body,
        "raw_string": raw.decode("utf-8", errors="replace"),
        "headers": headers,
        "query": dict(request.query),
    }
    return {"event": event}


def start(state: EmulatorState, target: Target, job: Job, base_url: str) -> asyncio.Future[None]:
    execution = asyncio.ensure_future(execute(state, target, job, base_url))
    state.background.add(execution)
    state.running[job.id] = execution

    def finished(future: asyncio.Future[None]) -> None:
        state.background.discard(future)
        state.running.pop(job.id, None)

    execution.add_done_callback(finished)
    return execution


async def execute(state: EmulatorState, target: Target, job: Job, base_url: str) -> None:
    """Run one job: resolve its references (A4), wait out the delay, compute the result, complete it."""
    job.started_at = state.now()
    context: dict[str, Any] = {"base_url": base_url, "workspace": job.workspace, "job_id": job.id, "kind": job.kind}
    try:
        args = resolve_args(state, job, base_url)
        if target.preprocessor is not None:
            args = target.preprocessor(args["event"])  # R8: its return value is main's arguments
        if target.delay > 0:
            await asyncio.sleep(target.delay)
        if target.error is not None:
            raise RuntimeError(target.error)
        for step in target.steps:  # R9: each step runs the newest locked version of its script, at run time
            if not state.locked(job.workspace, step):
                raise JobFailed({"name": "ExecutionErr", "message": f"Not found: script not found at name {step}"})
        if target.runner is None:
            result: Any = {"received": sorted(job.args)}
        elif is_async(target.runner):
            result = await cast(Callable[..., Awaitable[Any]], target.runner)(args, context)
        else:
            result = target.runner(args)
        job.success, job.result, job.is_skipped = True, result, target.skips
    except asyncio.CancelledError:
        return  # `cancel` recorded the outcome
    except JobFailed as exc:
        job.success, job.result = False, {"error": exc.error}
    except Exception as exc:
        job.success = False
        job.result = {"error": {"name": type(exc).__name__, "message": str(exc), "stack": ""}}
    job.duration_ms = (state.now() - job.started_at) * 1000
    job.logs += str(context.get("logs", ""))
    job.logs += f"job {job.id} on {job.kind} {job.path}: {'success' if job.success else 'failure'}\n"
    job.completed = True


def cancel(state: EmulatorState, job: Job, reason: str, by: str | None = None) -> None:
    """Windmill's cancel_job: the job completes as canceled (J5: `Job canceled: {reason} by {user}`), its
    execution is stopped."""
    if job.completed:
        return
    by = by or job.created_by
    job.canceled, job.canceled_reason, job.canceled_by = True, reason, by
    job.success = False
    message = f"Job canceled: {reason} by {by}"
    job.result = {"error": {"name": "Canceled", "message": message, "reason": reason, "canceler": by}}
    started = job.started_at or job.created_at
    job.duration_ms = (state.now() - started) * 1000
    job.completed = True
    execution = state.running.get(job.id)
    if execution is not None:
        execution.cancel()


async def wait_result(
    request: web.Request, state: EmulatorState, job: Job, execution: asyncio.Future[None]
) -> web.StreamResponse:
    """W1-W3: 200 with the result, 422 with a failed job's result, 500 after the wait limit. When the wait
    ends without a result - the limit, or the client hanging up - the job is cancelled."""
    deadline = time.monotonic() + (state.wait_timeout if state.wait_timeout > 0 else 2.0)
    try:
        while not execution.done():
            if request.transport is None or request.transport.is_closing():
                cancel(state, job, CANCELED_BY_HANG_UP)
                raise asyncio.CancelledError
            if time.monotonic() >= deadline:
                cancel(state, job, CANCELED_BY_HANG_UP)
                return web.Response(status=500, text=f"timeout after {state.wait_timeout:g}s")
            await asyncio.wait({execution}, timeout=HANG_UP_POLL)
    except asyncio.CancelledError:
        cancel(state, job, CANCELED_BY_HANG_UP)
        raise
    return result_response(job.result, job.success)


def result_response(result: Any, success: bool) -> web.Response:
    """execution.rs result_to_response: a result may set its own status with `windmill_status_code`."""
    if isinstance(result, dict) and any(key in result for key in _COMPOSITE):
        status = result.get("windmill_status_code", result.get("wm_status_code"))
        headers = result.get("windmill_headers", result.get("wm_headers")) or {}
        content_type = result.get("windmill_content_type", result.get("wm_content_type"))
        value = result.get("result")
        if status is None:
            status = 422 if not success else (200 if value is not None else 204)
        if content_type is not None:
            text = value if isinstance(value, str) else json.dumps(value)
            return web.Response(status=int(status), text=text, headers={**headers, "Content-Type": content_type})
        if value is None:
            return web.Response(status=int(status), headers=headers)
        return web.json_response(value, status=int(status), headers=headers)
    return web.json_response(result, status=200 if success else 422)


_COMPOSITE = (
    "windmill_status_code",
    "wm_status_code",
    "windmill_content_type",
    "wm_content_type",
    "windmill_headers",
    "wm_headers",
)


def shown(value: Any) -> Any:
    """J6: a stored value this large or larger is shown as the string WINDMILL_TOO_BIG."""
    return "WINDMILL_TOO_BIG" if len(json.dumps(value, default=str).encode()) >= TOO_BIG else value


async def get_job(request: web.Request) -> web.Response:
    """J1: per workspace; tagged QueuedJob / CompletedJob. J6: large by default: the code unless
    ?no_code=true, the logs' last LOGS_TAIL characters unless ?no_logs=true; a big result or args shown as
    WINDMILL_TOO_BIG. J4: a skipped flow is `success: true, is_skipped: true`."""
    state: EmulatorState = request.app[STATE]
    job = state.job_in(request.match_info["workspace"], request.match_info["job_id"])
    if job is None:
        return web.Response(status=404, text=f"Not found: Job {request.match_info['job_id']} not found")
    refused = readable(request, job)  # J2: a job the token's user may not read (jobs.rs:1355-1366)
    if refused is not None:
        return refused
    body: dict[str, Any] = {
        "id": job.id,
        "type": "CompletedJob" if job.completed else "QueuedJob",
        "workspace_id": job.workspace,
        "script_path": job.path,
        "job_kind": job.kind,
        "args": shown(job.args),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "created_by": job.created_by,
        "email": job.email,
        "canceled": job.canceled,
        "canceled_by": job.canceled_by,
        "canceled_reason": job.canceled_reason,
    }
    if job.completed:
        body.update(
            success=job.success,
            result=shown(job.result),
            duration_ms=int(job.duration_ms or 0),
            is_skipped=job.is_skipped,
        )
    else:
        body.update(running=job.started_at is not None, scheduled_for=iso(job.created_at))
    if request.query.get("no_code") != "true":
        body.update(raw_code=job.raw_code, raw_lock="# lock\n" if job.kind == "script" else None)
    if request.query.get("no_logs") != "true":
        body["logs"] = job.logs[-LOGS_TAIL:]
    return web.json_response(body)


async def get_timing(request: web.Request) -> web.Response:
    """J6: `jobs_u/completed/get_timing/{id}`, a small body: when the job was created and started, how long it took."""
    state: EmulatorState = request.app[STATE]
    job = state.job_in(request.match_info["workspace"], request.match_info["job_id"])
    if job is None or not job.completed:
        return web.Response(status=404, text=f"Not found: Completed job {request.match_info['job_id']} not found")
    refused = readable(request, job)  # J2 (jobs.rs:9055)
    if refused is not None:
        return refused
    timing = {
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "duration_ms": int(job.duration_ms or 0),
    }
    return web.json_response(timing)


async def result_maybe(request: web.Request) -> web.Response:
    """J2: never 404; an unknown or unfinished job is `completed: false`, and `started` is null unless the
    caller asks `?get_started=true` (then true when running, false when queued or unknown). A job the token's
    user may not read is 403 when it is completed, and with `get_started=true` when it is queued or running
    too (jobs.rs:8928, 8974: both branches call `require_job_read_access`). J3: the fields in Windmill's order,
    the outcome before the result."""
    state: EmulatorState = request.app[STATE]
    job = state.job_in(request.match_info["workspace"], request.match_info["job_id"])
    if job is None or not job.completed:
        started = None
        if request.query.get("get_started") == "true":
            refused = None if job is None else readable(request, job)
            if refused is not None:
                return refused
            started = job is not None and job.started_at is not None
        return web.json_response({"started": started, "success": None, "completed": False, "result": None})
    refused = readable(request, job)
    if refused is not None:
        return refused
    success = job.success and not job.is_skipped  # `status = 'success'` only: a skipped flow is false here (J4)
    return web.json_response({"started": True, "success": success, "completed": True, "result": job.result})


DEFAULT_PER_PAGE, MAX_PER_PAGE = 1000, 10_000  # J7: windmill-common utils.rs `paginate`


def _query_time(request: web.Request, name: str) -> float | None:
    """An RFC 3339 query parameter as a timestamp; ValueError names it when it is not one."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"Failed to deserialize query string: {name}: invalid datetime {raw!r}") from None


def _listed(job: Job) -> dict[str, Any]:
    """J7: one item of `jobs/completed/list` (ListableCompletedJob): the outcome and duration, no result."""
    return {
        "type": "CompletedJob",
        "workspace_id": job.workspace,
        "id": job.id,
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "duration_ms": int(job.duration_ms or 0),
        "success": job.success,  # `status = 'success' OR 'skipped'` (J4)
        "script_path": job.path,
        "deleted": False,
        "canceled": job.canceled,
        "canceled_by": job.canceled_by,
        "canceled_reason": job.canceled_reason,
        "job_kind": job.kind,
        "permissioned_as": f"u/{job.created_by}",
        "is_flow_step": False,
        "language": "python3" if job.kind == "script" else None,
        "is_skipped": job.is_skipped,
        "email": job.email,
        "visible_to_owner": True,
        "tag": "flow" if job.kind == "flow" else "python3",
    }


async def completed_list(request: web.Request) -> web.Response:
    """J7: `GET jobs/completed/list`: the workspace's completed jobs, newest created first, `per_page` (default
    1000, at most 10,000) from `page` (1-based). Filters headrace uses: `script_path_exact` (comma-separated),
    `created_or_started_after` (`created_at >= t OR started_at >= t`), `job_kinds`. Row-level security leaves out
    a job the token's user may not read (J2), with no error."""
    state: EmulatorState = request.app[STATE]
    query = request.query
    try:
        after = _query_time(request, "created_or_started_after")
        per_page = min(MAX_PER_PAGE, max(1, int(query.get("per_page", DEFAULT_PER_PAGE))))
        page = max(1, int(query.get("page", 1)))
    except ValueError as exc:
        return web.Response(status=400, text=str(exc))
    paths = set(query["script_path_exact"].split(",")) if "script_path_exact" in query else None
    kinds = set(query["job_kinds"].split(",")) if "job_kinds" in query else None
    workspace = request.match_info["workspace"]
    token = request[TOKEN_KEY]
    everyone = token.paths is None  # an admin's token reads every job: no per-job test (the benches list 10,000s)
    with state.lock:
        jobs = [
            job
            for job in state.jobs.values()
            if job.workspace == workspace
            and job.completed
            and (everyone or token.reads_job(job.created_by, job.path))
            and (paths is None or job.path in paths)
            and (kinds is None or job.kind in kinds)
            and (after is None or job.created_at >= after or (job.started_at or 0) >= after)
        ]
    jobs.sort(key=lambda job: job.created_at, reverse=query.get("order_desc", "true") != "false")
    start = (page - 1) * per_page
    return web.json_response([_listed(job) for job in jobs[start : start + per_page]])
