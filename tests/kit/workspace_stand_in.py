"""A small Windmill workspace on loopback for `wmill sync push`: it holds items, exports them and records requests.

Only what the real windmill-cli 1.819.0 asks during `sync push` is answered (found by running the CLI against a
recording server). The export follows Windmill's own tarball (`backend/windmill-api/src/workspaces_export.rs`):
`f/NAME/folder.meta.json`, `PATH.py` + `PATH.script.json`, `PATH.resource.json`, `PATH.variable.json` (secrets
only without `skip_secrets`), `NAME.resource-type.json`, `PATH.flow.json`, `PATH.schedule.json`. Every request is
recorded, answered or not, so a test can say exactly what the CLI sent.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

USER = {
    "email": "alice@example.com",
    "username": "alice",
    "is_admin": False,
    "operator": False,
    "is_super_admin": False,
}
KINDS = {"folder", "script", "flow", "resource", "variable", "resource_type", "schedule"}
# the API section of each kind (resource types are under resources/type/)
API_KIND = {
    "folders": "folder",
    "scripts": "script",
    "flows": "flow",
    "resources": "resource",
    "variables": "variable",
    "schedules": "schedule",
}


class Workspace:
    """Items by (kind, path) plus every request the CLI made: (method, path with query, JSON body or None)."""

    def __init__(self, workspace_id: str) -> None:
        self.id = workspace_id
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.unanswered: list[tuple[str, str]] = []

    def put(self, kind: str, path: str, item: dict[str, Any]) -> None:
        assert kind in KINDS, kind
        self.items[(kind, path)] = copy.deepcopy(item)

    def snapshot(self) -> dict[tuple[str, str], dict[str, Any]]:
        return copy.deepcopy(self.items)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]

    # --- the export -------------------------------------------------------------------------------

    def archive(self, query: Any) -> bytes:
        skip = {name: query.get(name) == "true" for name in ("skip_variables", "skip_resources", "skip_secrets")}
        skip_types = query.get("skip_resource_types") == "true"
        schedules = query.get("include_schedules") == "true"
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for (kind, path), item in sorted(self.items.items()):
                body = {k: v for k, v in item.items() if k not in ("path", "content", "language", "name")}
                if kind == "folder":
                    archive.writestr(f"f/{path}/folder.meta.json", json.dumps(body, indent=2))
                elif kind == "script":
                    archive.writestr(f"{path}.py", item["content"])
                    archive.writestr(f"{path}.script.json", json.dumps(body, indent=2))
                elif kind == "resource" and not skip["skip_resources"]:
                    archive.writestr(f"{path}.resource.json", json.dumps(body, indent=2))
                elif kind == "variable" and not skip["skip_variables"]:
                    if not (item.get("is_secret") and skip["skip_secrets"]):
                        archive.writestr(f"{path}.variable.json", json.dumps(body, indent=2))
                elif kind == "resource_type" and not skip_types:
                    archive.writestr(f"{path}.resource-type.json", json.dumps(body, indent=2))
                elif kind == "flow":
                    archive.writestr(f"{path}.flow.json", json.dumps(body, indent=2))
                elif kind == "schedule" and schedules:
                    archive.writestr(f"{path}.schedule.json", json.dumps(body, indent=2))
        return buffer.getvalue()

    # --- HTTP ---------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.requests.append((request.method, request.path_qs, body))
        answer = self.answer(request.method, request.path, request.query, body)
        if answer is None:
            self.unanswered.append((request.method, request.path_qs))
            return web.Response(status=404, text="not found in the stand-in")
        return answer

    def answer(self, method: str, path: str, query: Any, body: Any) -> web.StreamResponse | None:
        if path == "/api/version":
            return web.Response(text="v1.721.0")
        if path == "/api/users/whoami":
            return web.json_response(USER)
        if path == "/api/workspaces/users":
            return web.json_response({"email": USER["email"], "workspaces": [{"id": self.id, "name": self.id}]})
        prefix = f"/api/w/{self.id}/"
        if not path.startswith(prefix):
            return None
        route = path[len(prefix) :]
        if route == "users/whoami":
            return web.json_response(USER)
        if route == "workspaces/tarball":
            return web.Response(body=self.archive(query), content_type="application/octet-stream")
        if route in ("workspaces/list_ws_specific", "jobs/queue/list", "jobs/completed/list"):
            return web.json_response([])  # no workspace-specific items; no dependency (lock) jobs run here
        if route == "resources/file_resource_type_to_file_ext_map":
            return web.json_response({})
        return self.item_route(method, route, body)

    def item_route(self, method: str, route: str, body: Any) -> web.StreamResponse | None:
        section, _, rest = route.partition("/")
        if section == "resources" and rest.startswith("type/"):
            kind, rest = "resource_type", rest[len("type/") :]
        elif section in API_KIND:
            kind = API_KIND[section]
        else:
            return None
        action, _, path = rest.partition("/")
        if kind == "script" and path.startswith("p/"):
            path = path[2:]
        key = (kind, path)
        if method == "GET" and action == "exists":
            return web.json_response(key in self.items)
        if method == "GET" and action == "get":
            if key not in self.items:
                return web.Response(status=404, text=f"{kind} {path} not found")
            return web.json_response({**self.items[key], "path": path, "name": path})
        if method == "POST" and action == "create" and isinstance(body, dict):
            path = str(body.get("path") or body.get("name"))
            self.items[(kind, path)] = {k: v for k, v in body.items() if k not in ("path", "name")}
            return web.json_response("created", status=201 if kind != "folder" else 200)
        if method == "POST" and action == "update" and key in self.items and isinstance(body, dict):
            self.items[key].update({k: v for k, v in body.items() if k not in ("path", "name")})
            return web.json_response("updated")
        if (method, action) in (("DELETE", "delete"), ("POST", "archive")) and key in self.items:
            del self.items[key]  # an archived script or flow leaves the export as a deleted one does
            return web.json_response(action + "d")
        return None


@contextmanager
def serving(workspace: Workspace) -> Iterator[str]:
    """Serve `workspace` on a loopback port in a background thread; yield its base URL (ending with /)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(workspace.app(), access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
