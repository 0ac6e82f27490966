"""The HTTP client for Windmill's job API. It takes an aiohttp session, so tests and the emulator
decide the transport; it never logs or returns the token."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yarl

from headrace.policy import LINE_EXCERPT
from headrace.windmill import urls
from headrace.windmill.api import LOOKUP_TIMEOUT, RESPONSE_LIMIT, JobPoll, ListedJob, RunResponse, TargetInfo
from headrace.windmill.connections import RunConnections, RunError
from headrace.windmill.urls import RunTarget

__all__ = [
    "RESPONSE_LIMIT",
    "JobPoll",
    "ListedJob",
    "RunResponse",
    "TargetInfo",
    "WindmillClient",
    "leading_fields",
    "takes_kwargs",
]

# jobs_u/get without logs and code: Windmill shows a result or args of 90,000 bytes or more as "WINDMILL_TOO_BIG"
# (J6), so the rest of the body stays well under this.
JOB_INFO_LIMIT = 1024 * 1024
SMALL_JOB = "?no_logs=true&no_code=true"
# jobs/completed/list: an item is under 1 KiB (no result, no args, no code), so a page of LIST_PAGE fits well.
LIST_LIMIT = 4 * 1024 * 1024


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


@dataclass(frozen=True)
class _Answer:
    """One HTTP exchange with Windmill: the status and body (cut at `cap` bytes: `cut`), or a transport error
    a person can read and no status."""

    status: int | None
    text: str = ""
    cut: bool = False
    error: str | None = None
    retry_after: str | None = None
    duration_ms: float = 0.0


class WindmillClient:
    """Windmill's job API as headrace uses it (`WindmillApi`, windmill/api.py). Every request goes through
    `_request`: one place for the bearer token, the timeout, the read cap and what a transport error says.
    Run requests, one per delivery, go through `runs` when given (connections.py: the same request for far less
    work than the session's; the app passes it), else through `_request` too."""

    def __init__(self, session: aiohttp.ClientSession, runs: RunConnections | None = None) -> None:
        self._session = session
        self._runs = runs

    async def _request(
        self,
        url: str | yarl.URL,
        token: str | None,
        timeout: float,
        *,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        cap: int = RESPONSE_LIMIT,
    ) -> _Answer:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        started = time.perf_counter()
        try:
            async with self._session.request(
                method, url, data=body, headers=sent, timeout=_timeout(timeout), allow_redirects=False
            ) as response:
                text, cut = await read_capped(response, cap)
                return _Answer(
                    response.status,
                    text,
                    cut,
                    retry_after=response.headers.get("Retry-After"),
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
        except TimeoutError:
            error = f"no answer within {timeout:g}s"
        except aiohttp.ClientConnectorError as exc:
            error = f"cannot connect to {urlsplit(str(url)).netloc}: {exc.os_error.strerror or exc.os_error}"
        except aiohttp.ServerDisconnectedError:
            error = "Windmill closed the connection before answering"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return _Answer(None, error=error, duration_ms=(time.perf_counter() - started) * 1000)

    async def run(
        self,
        target: RunTarget,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        method: str = "POST",
        timeout: float = 30.0,
    ) -> RunResponse:
        """Send one run request as given: `url` with its job_id, `headers` with the token (deliver/request.py
        decides both)."""
        if self._runs is not None:
            return await self._run(self._runs, url, body, headers, method, timeout)
        # The run URL is already encoded (parse_run_url) and a job id is a UUID: take it as encoded rather
        # than let yarl re-parse and re-encode the whole URL on every request.
        answer = await self._request(
            yarl.URL(url, encoded=True), None, timeout, method=method, body=body, headers=headers
        )
        if answer.status is None:
            return RunResponse(status=None, error=answer.error, duration_ms=answer.duration_ms)
        return RunResponse(
            status=answer.status,
            body=answer.text,
            headers={"Retry-After": answer.retry_after} if answer.retry_after is not None else {},
            duration_ms=answer.duration_ms,
        )

    async def _run(
        self, runs: RunConnections, url: str, body: bytes, headers: Mapping[str, str], method: str, timeout: float
    ) -> RunResponse:
        """`run` over `runs`: what `_request` would answer, read the way `read_capped` reads it."""
        started = time.perf_counter()
        try:
            answer = await runs.send(url, method, headers, body, RESPONSE_LIMIT, timeout)
        except TimeoutError:
            error = f"no answer within {timeout:g}s"
        except RunError as exc:
            error = str(exc)
        else:
            return RunResponse(
                status=answer.status,
                body=answer.body.decode("utf-8", errors="ignore" if answer.cut else "replace"),
                headers={"Retry-After": answer.retry_after} if answer.retry_after is not None else {},
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        return RunResponse(status=None, error=error, duration_ms=(time.perf_counter() - started) * 1000)

    async def job_exists(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> bool | None:
        """True if Windmill knows the job (queued, running or completed); None when it could not be asked."""
        answer = await self._request(target.job_url(job_id) + SMALL_JOB, token, timeout)
        return {200: True, 404: False}.get(answer.status or 0)

    async def result_maybe(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> JobPoll:
        """`jobs_u/completed/get_result_maybe/{id}?get_started=true`: is the job done, did it succeed, what did
        it return. Windmill never answers 404 here (CONTRACT.md J2): a job it does not know is `started: false,
        completed: false`, like a queued one; without `get_started=true` a running job would say `started:
        null` too. `success` is false for a skipped flow (J4: see `job_info`). A result over RESPONSE_LIMIT
        comes back cut, as `result_excerpt`, with the outcome read from the fields before it (J3)."""
        answer = await self._request(target.result_url(job_id) + "?get_started=true", token, timeout)
        if answer.status is None:
            return JobPoll(status=None, error=answer.error)
        status, text = answer.status, answer.text
        if status != 200:
            return JobPoll(status=status, error=f"HTTP {status}: {text[:LINE_EXCERPT].strip()}")
        if answer.cut:
            fields, result_at = leading_fields(text)
            if result_at is None:
                return JobPoll(status=status, error="HTTP 200 but the answer is cut and unreadable")
            data: Any = {**fields, "result": None}
            excerpt = text[result_at:]
        else:
            data = _json(text)
            if not isinstance(data, dict):
                return JobPoll(status=status, error="HTTP 200 but the body is not a JSON object")
            excerpt = None
        return JobPoll(
            status=status,
            completed=bool(data.get("completed")),
            success=None if data.get("success") is None else bool(data.get("success")),
            result=data.get("result"),
            started=None if data.get("started") is None else bool(data.get("started")),
            result_excerpt=excerpt,
        )

    async def job_info(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> dict[str, Any]:
        """`jobs_u/get/{id}?no_logs=true&no_code=true` as a dict ({} when it cannot be read): `success` (true for
        a skipped flow too), `is_skipped`, `canceled`, `canceled_by`, `canceled_reason`. Without the two flags
        the body carries the code and 20,000 characters of logs (J6)."""
        answer = await self._request(target.job_url(job_id) + SMALL_JOB, token, timeout, cap=JOB_INFO_LIMIT)
        data = _json(answer.text) if answer.status == 200 and not answer.cut else None
        return data if isinstance(data, dict) else {}

    async def job_duration(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> float | None:
        """How long a completed job ran, in ms, from `jobs_u/completed/get_timing/{id}` (J6: a small body,
        whatever the job's result, code and logs); None when it cannot be read."""
        url = urls.TIMING.build(target.base_url, workspace=target.workspace, job_id=job_id)
        answer = await self._request(url, token, timeout)
        data = _json(answer.text) if answer.status == 200 else None
        duration = data.get("duration_ms") if isinstance(data, dict) else None
        return float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else None

    async def completed_jobs(
        self, target: RunTarget, token: str, since: float, page: int, per_page: int, timeout: float = LOOKUP_TIMEOUT
    ) -> list[ListedJob] | None:
        """`jobs/completed/list?script_path_exact=PATH&created_or_started_after=T&order_desc=false&per_page=N&
        page=P` (J7), oldest created first: the jobs a tracker round looks for are the oldest due, and a backlog of
        newer ones would otherwise fill every page before them. Each item has the job's id, `success` (true for a
        skipped flow), `is_skipped`, `canceled`, `canceled_by`, `canceled_reason` and `duration_ms`, never its
        result. None when the page could not be read whole."""
        url = yarl.URL(urls.COMPLETED_LIST.build(target.base_url, workspace=target.workspace)).with_query(
            script_path_exact=target.path,
            created_or_started_after=rfc3339(since),
            order_desc="false",
            per_page=str(per_page),
            page=str(page),
        )
        answer = await self._request(url, token, timeout, cap=LIST_LIMIT)
        data = _json(answer.text) if answer.status == 200 and not answer.cut else None
        if not isinstance(data, list):
            return None
        return [job for job in map(_listed_job, data) if job is not None]

    async def get_target(self, target: RunTarget, token: str, timeout: float = LOOKUP_TIMEOUT) -> TargetInfo:
        """`scripts/get/p/{path}` or `flows/get/{path}`: the target's input schema and deployment state."""
        answer = await self._request(target.definition_url, token, timeout)
        if answer.status != 200:
            error = answer.error or f"HTTP {answer.status}: {answer.text[:LINE_EXCERPT].strip()}"
            return TargetInfo(status=answer.status, error=error)
        data = None if answer.cut else _json(answer.text)
        if not isinstance(data, dict):
            why = f"larger than {RESPONSE_LIMIT // 1024} KiB" if answer.cut else "not a JSON object"
            return TargetInfo(status=200, error=f"HTTP 200 but the body is {why}")
        schema = data.get("schema")
        value = data.get("value")
        value = value if isinstance(value, dict) else {}
        is_script = target.kind == "script"
        return TargetInfo(
            status=200,
            schema=schema if isinstance(schema, dict) else None,
            keeps_undeclared=not is_script or takes_kwargs(data.get("language"), data.get("content")),
            # M1: while a script's lock builds, `lock` is absent (not null); a built lock is a string.
            lock_pending=is_script and not isinstance(data.get("lock"), str),
            lock_error=str(data.get("lock_error_logs") or ""),
            archived=bool(data.get("archived")) or bool(data.get("deleted")),
            draft_only=bool(data.get("draft_only")),
            summary=str(data.get("summary") or ""),
            preprocessor=bool(data.get("has_preprocessor"))
            if is_script
            else value.get("preprocessor_module") is not None,
            steps=() if is_script else script_steps(value.get("modules")),
        )


def rfc3339(ts: float) -> str:
    """A timestamp as Windmill's query parameters take it (chrono `DateTime<Utc>`), to the millisecond."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def _listed_job(item: Any) -> ListedJob | None:
    """One `jobs/completed/list` item (ListableCompletedJob), or None for one that is not a job object."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str):
        return None
    duration = item.get("duration_ms")
    return ListedJob(
        id=item["id"],
        success=item.get("success") is True,
        duration_ms=float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else 0.0,
        is_skipped=item.get("is_skipped") is True,
        canceled=item.get("canceled") is True,
        canceled_by=str(item.get("canceled_by") or ""),
        canceled_reason=str(item.get("canceled_reason") or ""),
        created_at=_unix_time(item.get("created_at")),
    )


def _unix_time(value: Any) -> float | None:
    """An RFC 3339 timestamp as Windmill writes it (`2026-12-06T18:59:01.123456Z`) in unix seconds; None if not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


async def read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[str, bool]:
    """The body, at most `cap` bytes of it, and whether it was longer (and cut)."""
    if response.content_length is not None and response.content_length <= cap:
        return (await response.read()).decode("utf-8", errors="replace"), False
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(16384):
        chunks.append(chunk)
        size += len(chunk)
        if size > cap:
            break
    data = b"".join(chunks)
    return data[:cap].decode("utf-8", errors="ignore"), len(data) > cap


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


MAX_STEPS = 200  # flow steps `check` looks at (each costs one scripts/get)
MAX_STEP_DEPTH = 10  # loops and branches inside each other, deeper steps are not looked at


def script_steps(modules: object, depth: int = 0) -> tuple[str, ...]:
    """The script paths of a flow's `type: script` steps, in order, branches and loops included (R9), each once."""
    found: list[str] = []
    if not isinstance(modules, list) or depth > MAX_STEP_DEPTH:
        return ()
    for module in modules:
        value = module.get("value") if isinstance(module, dict) else None
        if not isinstance(value, dict):
            continue
        if value.get("type") == "script" and isinstance(value.get("path"), str):
            found.append(value["path"])
        found.extend(script_steps(value.get("modules"), depth + 1))  # forloopflow, whileloopflow
        for branch in (value.get("branches") or []) if isinstance(value.get("branches"), list) else []:
            found.extend(script_steps(branch.get("modules") if isinstance(branch, dict) else None, depth + 1))
        if isinstance(value.get("default"), list):  # branchone's default branch
            found.extend(script_steps(value["default"], depth + 1))
    return tuple(dict.fromkeys(found))[:MAX_STEPS]


_PY_MAIN = re.compile(r"^(?:async[ \t]+)?def[ \t]+main[ \t]*\((?P<params>(?:[^()]|\([^()]*\))*)\)", re.MULTILINE)


def takes_kwargs(language: object, content: object) -> bool:
    """Whether a Python script's `main` takes `**kwargs` (CONTRACT.md A3: then every key is passed). Windmill's
    schema does not say so (the parser's `star_kwargs` is not kept in it); `scripts/get` returns the code."""
    if language != "python3" or not isinstance(content, str):
        return False
    match = _PY_MAIN.search(content)
    return match is not None and "**" in match.group("params")


def leading_fields(text: str) -> tuple[dict[str, Any], int | None]:
    """The top-level fields of a JSON object cut short, up to `result`: ({field: value}, where the result's
    text starts or None). Windmill writes `get_result_maybe` as started, success, completed, result, in that
    order (`CompletedJobResult` in backend/windmill-api/src/jobs.rs), so a cut body still says the outcome."""
    decoder = json.JSONDecoder()
    fields: dict[str, Any] = {}
    at = _skip(text, 0)
    if not text.startswith("{", at):
        return fields, None
    at += 1
    while True:
        try:
            key, at = decoder.raw_decode(text, _skip(text, at))
            at = _skip(text, at)
            if not isinstance(key, str) or not text.startswith(":", at):
                return fields, None
            at = _skip(text, at + 1)
            if key == "result":
                return fields, at
            fields[key], at = decoder.raw_decode(text, at)
        except ValueError:
            return fields, None
        at = _skip(text, at)
        if not text.startswith(",", at):
            return fields, None
        at += 1


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t\r\n":
        at += 1
    return at
