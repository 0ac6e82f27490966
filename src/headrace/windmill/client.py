"""The HTTP client for Windmill's job API. It takes an aiohttp session, so tests and the emulator
decide the transport; it never logs or returns the token."""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl

from headrace.windmill.urls import RunTarget

RESPONSE_LIMIT = 64 * 1024


@functools.lru_cache(maxsize=64)
def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


@dataclass(frozen=True)
class RunResponse:
    """What came back from one run request: an HTTP answer, or a transport error and no status."""

    status: int | None
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # "timeout after 30s", "connection refused", ...
    duration_ms: float = 0.0


class WindmillClient:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

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
        # The run URL is already encoded (parse_run_url) and a job id is a UUID: take it as encoded rather
        # than let yarl re-parse and re-encode the whole URL on every request.
        full_url = yarl.URL(url, encoded=True)
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                full_url,
                data=body,
                headers=headers,
                timeout=_timeout(timeout),
                allow_redirects=False,
            ) as response:
                text = await _read_limited(response)
                retry_after = response.headers.get("Retry-After")
                return RunResponse(
                    status=response.status,
                    body=text,
                    headers={"Retry-After": retry_after} if retry_after is not None else {},
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
        except TimeoutError:
            error = f"no answer within {timeout:g}s"
        except aiohttp.ClientConnectorError as exc:
            error = f"cannot connect to {target.host}: {exc.os_error.strerror or exc.os_error}"
        except aiohttp.ServerDisconnectedError:
            error = "Windmill closed the connection before answering"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return RunResponse(status=None, error=error, duration_ms=(time.perf_counter() - started) * 1000)

    async def job_exists(self, target: RunTarget, token: str, job_id: str, timeout: float = 10.0) -> bool | None:
        """True if Windmill knows the job (queued, running or completed); None when it could not be asked."""
        try:
            async with self._session.get(
                target.job_url(job_id),
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                await response.read()
                if response.status == 200:
                    return True
                if response.status == 404:
                    return False
                return None
        except (TimeoutError, aiohttp.ClientError):
            return None

    async def result_maybe(self, target: RunTarget, token: str, job_id: str, timeout: float = 10.0) -> JobPoll:
        """`jobs_u/completed/get_result_maybe/{id}?get_started=true`: is the job done, did it succeed, what did
        it return. Windmill never answers 404 here (CONTRACT.md J2): a job it does not know is `started: false,
        completed: false`, like a queued one; without `get_started=true` a running job would say `started:
        null` too. A result over RESPONSE_LIMIT comes back cut, as `result_excerpt`, with the outcome read from
        the fields before it (J3)."""
        try:
            async with self._session.get(
                target.result_url(job_id) + "?get_started=true",
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                text, cut = await _read_capped(response)
                status = response.status
        except TimeoutError:
            return JobPoll(status=None, error=f"no answer within {timeout:g}s")
        except aiohttp.ClientError as exc:
            return JobPoll(status=None, error=f"{type(exc).__name__}: {exc}")
        if status != 200:
            return JobPoll(status=status, error=f"HTTP {status}: {text[:200].strip()}")
        if cut:
            fields, result_at = leading_fields(text)
            if result_at is None:
                return JobPoll(status=status, error="HTTP 200 but the answer is cut and unreadable")
            data: Any = {**fields, "result": None}
            excerpt = text[result_at:]
        else:
            try:
                data = json.loads(text)
            except ValueError:
                data = None
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

    async def job_info(self, target: RunTarget, token: str, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """`jobs_u/get/{id}` as a dict ({} when it cannot be read): `duration_ms`, `started_at`, ..."""
        data, _, _ = await self._get_json(target.job_url(job_id), token, timeout)
        return data if isinstance(data, dict) else {}

    async def get_target(self, target: RunTarget, token: str, timeout: float = 10.0) -> TargetInfo:
        """`scripts/get/p/{path}` or `flows/get/{path}`: the target's input schema and deployment state."""
        data, status, error = await self._get_json(target.definition_url, token, timeout)
        if not isinstance(data, dict):
            return TargetInfo(status=status, error=error or f"HTTP {status}: not a JSON object")
        schema = data.get("schema")
        return TargetInfo(
            status=status,
            schema=schema if isinstance(schema, dict) else None,
            keeps_undeclared=target.kind == "flow" or takes_kwargs(data.get("language"), data.get("content")),
            lock_pending=target.kind == "script" and "lock" in data and data["lock"] is None,
            lock_error=str(data.get("lock_error_logs") or ""),
            archived=bool(data.get("archived")) or bool(data.get("deleted")),
            draft_only=bool(data.get("draft_only")),
            summary=str(data.get("summary") or ""),
        )

    async def _get_json(self, url: str, token: str, timeout: float) -> tuple[Any, int | None, str | None]:
        """(decoded body or None, HTTP status or None, an error a person can read or None)."""
        try:
            async with self._session.get(
                url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                text = await _read_limited(response)
                if response.status != 200:
                    return None, response.status, f"HTTP {response.status}: {text[:200].strip()}"
                try:
                    return json.loads(text), 200, None
                except ValueError:
                    return None, 200, "HTTP 200 but the body is not JSON"
        except TimeoutError:
            return None, None, f"no answer within {timeout:g}s"
        except aiohttp.ClientConnectorError as exc:
            return None, None, f"cannot connect: {exc.os_error.strerror or exc.os_error}"
        except aiohttp.ClientError as exc:
            return None, None, f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class JobPoll:
    """One look at a job: `status` None means Windmill could not be asked (see `error`)."""

    status: int | None
    completed: bool = False
    success: bool | None = None
    result: Any = None
    error: str | None = None
    started: bool | None = None  # false or null: queued, or unknown to Windmill in this workspace (J2)
    result_excerpt: str | None = None  # the start of a result too large to read whole (then `result` is None)


@dataclass(frozen=True)
class TargetInfo:
    """What Windmill says about a script or flow; `status` 404 means it does not exist."""

    status: int | None
    schema: dict[str, Any] | None = None
    archived: bool = False
    draft_only: bool = False
    summary: str = ""
    error: str | None = None
    keeps_undeclared: bool = False  # a flow (A5) or a Python main(**kwargs) (A3): undeclared keys arrive
    lock_pending: bool = False  # the newest script version has no lock yet: it does not run yet (R3)
    lock_error: str = ""  # the newest version's lock failed: Windmill runs the previous version (R3)

    @property
    def found(self) -> bool:
        return self.status == 200


async def _read_limited(response: aiohttp.ClientResponse) -> str:
    return (await _read_capped(response))[0]


async def _read_capped(response: aiohttp.ClientResponse) -> tuple[str, bool]:
    """The body, at most RESPONSE_LIMIT bytes of it, and whether it was longer (and cut)."""
    if response.content_length is not None and response.content_length <= RESPONSE_LIMIT:
        return (await response.read()).decode("utf-8", errors="replace"), False
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(16384):
        chunks.append(chunk)
        size += len(chunk)
        if size > RESPONSE_LIMIT:
            break
    data = b"".join(chunks)
    return data[:RESPONSE_LIMIT].decode("utf-8", errors="ignore"), len(data) > RESPONSE_LIMIT


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
