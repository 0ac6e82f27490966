"""A headless Chromium driven over the DevTools protocol (loopback websocket): navigate, type, click, wait, read,
screenshot.

For console flows that need a click (forms), which `--dump-dom` cannot do. Runtime.evaluate runs in the page
from outside it, so the console's CSP (no script at all) stays as it is.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        await self.ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self.ws.receive(timeout=30)).data)
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def loaded(self, path: str, timeout: float = 15.0) -> str:
        """Wait until the page at a URL with this path has loaded; its URL."""
        deadline = time.monotonic() + timeout
        state = None
        while True:
            with contextlib.suppress(RuntimeError):  # the page is navigating: ask again
                state = await self.evaluate("[document.readyState, location.pathname, location.href]")
                if state and state[0] == "complete" and state[1] == path:
                    return str(state[2])
            if time.monotonic() > deadline:
                raise AssertionError(f"no page at {path} loaded within {timeout}s (last: {state})")
            await asyncio.sleep(0.05)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", url=url)
        from urllib.parse import urlsplit

        await self.loaded(urlsplit(url).path or "blank")

    async def wait(self, expression: str, timeout: float = 15.0) -> Any:
        """Until a JavaScript expression in the page is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"the page never showed: {expression}")
            await asyncio.sleep(0.05)

    async def type_into(self, element_id: str, text: str) -> None:
        """Replace a field's text as a person would: focus it, select all, type (input events fire)."""
        await self.evaluate(f"document.getElementById({json.dumps(element_id)}).focus()")
        await self.evaluate(f"document.getElementById({json.dumps(element_id)}).select()")
        await self.send("Input.insertText", text=text)

    async def click(self, selector: str) -> None:
        await self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    async def text(self) -> str:
        return str(await self.evaluate("document.body.innerText"))

    async def html(self) -> str:
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def screenshot(self, path: Path) -> None:
        data = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(path.write_bytes, base64.b64decode(data["data"]))


@contextlib.asynccontextmanager
async def browser(width: int = 1280, height: int = 900) -> AsyncIterator[Browser]:
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:  # its helpers may still write
        process = await asyncio.create_subprocess_exec(
            CHROMIUM or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                if time.monotonic() > deadline or process.returncode is not None:
                    raise RuntimeError("Chromium did not open its DevTools port")
                await asyncio.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                    pages = [t for t in await response.json() if t["type"] == "page"]
                async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=64 * 2**20) as ws:
                    page = Browser(ws)
                    await page.send("Page.enable")
                    yield page
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
