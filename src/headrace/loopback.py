"""An aiohttp application on 127.0.0.1 in a background thread: how the stand-ins (the Windmill emulator, the
Dodo API stand-in) run inside tests that are not async themselves. One event loop per thread; `call` runs a
coroutine on it from the test's thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

T = TypeVar("T")
CALL_TIMEOUT = 60.0  # seconds a call from the test's thread may take


class AppThread:
    def __init__(self, name: str, port: int = 0) -> None:
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None
        self.port = 0

    def serve(self, build: Callable[[], web.Application]) -> None:
        """Start the thread and serve the application `build` makes (on the thread's loop)."""
        self._thread.start()
        self.call(self._start(build))

    def call(self, coro: Awaitable[T]) -> T:
        """Run `coro` on the application's loop and wait for its result."""

        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(CALL_TIMEOUT)

    async def _start(self, build: Callable[[], web.Application]) -> None:
        self.app = build()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._runner is not None:
            self.call(self._runner.cleanup())
        self.call(_cancel_others())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _cancel_others() -> None:
    """Cancel handlers still running (a "hang" fault sleeping), so the loop closes clean."""
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
