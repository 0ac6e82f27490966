"""The emulator on a real loopback port, and a small client for the contract tests (test_contract_*.py).

Each contract test names its CONTRACT item (docs/windmill-contract.md) so a change that breaks the model
fails by name. URLs come from `headrace.windmill.urls`, the same routes the client and the emulator use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from headrace.windmill import urls
from headrace.windmill.emulator import EmulatorState, build_app

T = TypeVar("T")
TOKEN = "test-token"


@dataclass
class Answer:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Emulator:
    state: EmulatorState
    base: str  # http://127.0.0.1:PORT/api
    http: aiohttp.ClientSession

    def run_url(self, path: str, *, kind: str = "script", workspace: str = "acme", wait: bool = False) -> str:
        return urls.RUN.build(
            self.base,
            workspace=workspace,
            endpoint="run_wait_result" if wait else "run",
            letter=urls.LETTERS[kind],
            path=path,
        )

    async def run(
        self,
        path: str,
        body: Any = None,
        *,
        kind: str = "script",
        workspace: str = "acme",
        job_id: str | None = None,
        wait: bool = False,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        query: dict[str, str] | None = None,
    ) -> Answer:
        params = dict(query or {})
        if job_id is not None:
            params["job_id"] = job_id
        data = raw if raw is not None else json.dumps({} if body is None else body).encode()
        async with self.http.post(
            self.run_url(path, kind=kind, workspace=workspace, wait=wait),
            data=data,
            params=params,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as response:
            return Answer(response.status, await response.text())

    async def get(
        self,
        route: urls.Route,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
        **parts: str,
    ) -> Answer:
        parts.setdefault("workspace", "acme")
        url = route.build(self.base, **parts)
        async with self.http.get(url, headers=headers, params=query or {}) as response:
            return Answer(response.status, await response.text())

    async def job(self, job_id: str, workspace: str = "acme", no_logs: bool = False) -> Answer:
        suffix = "?no_logs=true" if no_logs else ""
        url = urls.JOB.build(self.base, workspace=workspace, job_id=job_id) + suffix
        async with self.http.get(url) as response:
            return Answer(response.status, await response.text())

    async def cancel(self, job_id: str, reason: str, by: str) -> None:
        """Someone cancels the job in Windmill (J5), through the emulator's control endpoint."""
        url = self.base.removesuffix("/api") + "/_emulator/cancel"
        async with self.http.post(url, json={"job_id": job_id, "reason": reason, "by": by}) as response:
            assert response.status == 200, await response.text()

    async def result_maybe(self, job_id: str, workspace: str = "acme", query: dict[str, str] | None = None) -> Answer:
        return await self.get(urls.RESULT_MAYBE, query=query, workspace=workspace, job_id=job_id)

    async def until_completed(self, job_id: str, workspace: str = "acme", timeout: float = 10.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            answer = await self.result_maybe(job_id, workspace)
            body: dict[str, Any] = answer.json()
            if body["completed"]:
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"job {job_id} not completed within {timeout}s: {body}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def serving(state: EmulatorState, token: str | None = TOKEN) -> AsyncIterator[Emulator]:
    """The emulator on 127.0.0.1 (a free port) in this event loop, and a session that sends `token`."""
    runner = web.AppRunner(build_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession(headers=headers) as http:
            yield Emulator(state, f"http://127.0.0.1:{port}/api", http)
    finally:
        for execution in list(state.background):
            execution.cancel()
        await runner.cleanup()


def scenario(state: EmulatorState, body: Callable[[Emulator], Awaitable[T]]) -> T:
    """Run `body` against the emulator serving `state`, in a fresh event loop."""

    async def main() -> T:
        async with serving(state) as emulator:
            return await body(emulator)

    return run(main())


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
