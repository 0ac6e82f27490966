"""The HTTP client for Windmill's job API. It takes an aiohttp session, so tests and the emulator
decide the transport; it never logs or returns the token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from headrace.windmill.urls import RunTarget

RESPONSE_LIMIT = 64 * 1024


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
        token: str,
        job_id: str,
        body: bytes,
        *,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> RunResponse:
        request_headers = {**(headers or {}), "Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        started = time.perf_counter()
        try:
            async with self._session.request(
                method,
                url,
                params={"job_id": job_id},
                data=body,
                headers=request_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                text = await _read_limited(response)
                return RunResponse(
                    status=response.status,
                    body=text,
                    headers=dict(response.headers),
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

    async def result_maybe(self, target: RunTarget, token: str, job_id: str, timeout: float = 10.0) -> dict[str, Any]:
        async with self._session.get(
            target.result_url(job_id),
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            response.raise_for_status()
            data: dict[str, Any] = await response.json()
            return data


async def _read_limited(response: aiohttp.ClientResponse) -> str:
    chunks = []
    size = 0
    async for chunk in response.content.iter_chunked(16384):
        chunks.append(chunk)
        size += len(chunk)
        if size >= RESPONSE_LIMIT:
            break
    return b"".join(chunks)[:RESPONSE_LIMIT].decode("utf-8", errors="replace")


async def close_quietly(session: aiohttp.ClientSession) -> None:
    await session.close()
    await asyncio.sleep(0)
