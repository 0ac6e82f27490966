"""The emulator's deployment API: what `wmill sync push` and `headrace connect windmill` call (CONTRACT D1-D8,
C4, R3, M1). Routes come from deploy_routes.py; register() adds them to an emulator app.

- users/whoami: the token's user; a token listed as an operator's says `operator: true` and gets 401 on script
  and flow creation (D1).
- folders, variables, resources, resource types: exists / create (400 when it exists), variables/update,
  resources/create?update_if_exists=true (D2-D4, D8). Only `postgres` and `slack` resource types exist in a new
  workspace (C4). Variables and resources are mirrored into the emulator's `$var:` / `$res:` tables.
- scripts/create: a new path without a parent; an existing path needs `parent_hash` = its head or
  `auto_parent: true`, else 400 `Path conflict`; `skip_if_noop` returns the parent's hash when content, metadata
  **and lock** are identical (so `lock: ""` over a built lock is a new version). Each version is a runnable target
  of the emulator (a Python script runs its `main`), archives its parent, and has its lock built for
  `lock_seconds`: until then `lock` is absent and runs answer 404 (R3); a path listed in `lock_errors` ends with
  `lock_error_logs` and never runs (D5, D6).
- flows/create (400 when it exists), flows/update, flows/exists, flows/deployment_status/p (`""` while building,
  null when built) (D7); flows/get shows the deployed value (M1).
- schedules/get|create|update.

Every request that reaches the emulator is recorded (method, path), so a test can say no DELETE ever came.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from headrace.windmill import deploy_routes as routes
from headrace.windmill.emulator_auth import TOKEN_KEY
from headrace.windmill.emulator_deployment import BUILT_LOCK, Deployment, FlowVersion, ScriptVersion, interpolated
from headrace.windmill.emulator_kit import _WMILL_SHIM, PythonScript, flow_input
from headrace.windmill.emulator_model import EmulatorState, Kind, Runner, Target

__all__ = ["BUILT_LOCK", "DEPLOYMENT", "Deployment", "interpolated", "overlay", "register"]

DEPLOYMENT = web.AppKey("deployment", Deployment)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _bad(text: str) -> web.Response:
    return web.Response(status=400, text=f"Bad request: {text}")


def _not_found(text: str) -> web.Response:
    return web.Response(status=404, text=f"Not found: {text}")


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _bad("the body is not valid JSON")
    return body if isinstance(body, dict) else _bad("the body must be a JSON object")


def _is_operator(request: web.Request, deployment: Deployment) -> bool:
    return request[TOKEN_KEY].secret in deployment.operators


def register(app: web.Application, state: EmulatorState) -> Deployment:
    """Add the deployment routes (and a recorder of every request) to an emulator app."""
    deployment = Deployment()
    app[DEPLOYMENT] = deployment

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        deployment.requests.append((request.method, request.path))
        return await handler(request)

    app.middlewares.insert(0, record)

    def ws(request: web.Request) -> str:
        return request.match_info["workspace"]

    async def whoami(request: web.Request) -> web.Response:
        token = request[TOKEN_KEY]
        operator = _is_operator(request, deployment)
        username = token.email.partition("@")[0]
        return web.json_response(
            {"email": token.email, "username": username, "is_admin": not operator, "operator": operator}
        )

    async def folder_exists(request: web.Request) -> web.Response:
        return web.json_response((ws(request), request.match_info["name"]) in deployment.folders)

    async def folder_create(request: web.Request) -> web.Response:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        name = str(body.get("name", ""))
        if not routes.FOLDER_NAME.match(name):
            return _bad(f"folder name {name!r} must match ^[a-zA-Z_0-9]+$")
        if (ws(request), name) in deployment.folders:
            return _bad(f"Folder {name} already exists")
        owners = list(body.get("owners") or [])
        owner = "u/" + request[TOKEN_KEY].email.partition("@")[0]
        deployment.folders[(ws(request), name)] = {
            **body,
            "owners": [*owners, owner] if owner not in owners else owners,
        }
        return web.Response(text=f"Created folder {name}")

    def readers(table: dict[tuple[str, str], dict[str, Any]], noun: str) -> tuple[Handler, Handler]:
        """`exists/{path}` (a bool) and `get/{path}` (the item, or 404) over one table of path-keyed items."""

        async def exists(request: web.Request) -> web.Response:
            return web.json_response((ws(request), request.match_info["path"]) in table)

        async def get(request: web.Request) -> web.Response:
            item = table.get((ws(request), request.match_info["path"]))
            if item is None:
                return _not_found(f"{noun} {request.match_info['path']} not found")
            return web.json_response(item)

        return exists, get

    variable_exists, variable_get = readers(deployment.variables, "variable")
    resource_exists, resource_get = readers(deployment.resources, "resource")

    async def variable_update(request: web.Request) -> web.Response:
        path = request.match_info["path"]
        variable = deployment.variables.get((ws(request), path))
        if variable is None:
            return _not_found(f"variable {path} not found")
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        variable.update({key: body[key] for key in ("value", "is_secret", "description") if key in body})
        state.variables[path] = str(variable["value"])
        return web.Response(text=f"variable {path} updated")

    def creator(
        table: dict[tuple[str, str], dict[str, Any]],
        noun: str,
        key: str,
        make: Callable[[dict[str, Any]], dict[str, Any]],
        mirror: dict[str, Any] | None = None,
        updatable: bool = False,
    ) -> Handler:
        """`create` for one table: 201 with the key, 400 when it exists (unless `?update_if_exists=true` where
        Windmill takes it), the item also copied into the emulator's `$var:` / `$res:` table `mirror`."""

        async def create(request: web.Request) -> web.Response:
            deployment.seeded(ws(request))
            body = await _json_object(request)
            if isinstance(body, web.Response):
                return body
            name = str(body.get(key, ""))
            update = updatable and request.query.get("update_if_exists") == "true"
            if (ws(request), name) in table and not update:
                return _bad(f"A {noun} with {key} {name} already exists")
            item = table[(ws(request), name)] = make(body)
            if mirror is not None:
                mirror[name] = item["value"]
            return web.Response(status=201, text=name)

        return create

    variable_create = creator(
        deployment.variables,
        "variable",
        "path",
        lambda body: {
            "path": str(body.get("path", "")),
            "value": str(body.get("value", "")),
            "is_secret": bool(body.get("is_secret", False)),
            "description": str(body.get("description", "")),
        },
        state.variables,
    )
    resource_create = creator(
        deployment.resources,
        "resource",
        "path",
        lambda body: {
            "path": str(body.get("path", "")),
            "value": body.get("value"),
            "resource_type": str(body.get("resource_type", "")),  # C4: not validated
            "description": str(body.get("description", "")),
        },
        state.resources,
        updatable=True,
    )
    resource_type_create = creator(deployment.resource_types, "resource type", "name", dict)

    async def resource_type_exists(request: web.Request) -> web.Response:
        deployment.seeded(ws(request))
        return web.json_response((ws(request), request.match_info["name"]) in deployment.resource_types)

    def head(workspace: str, path: str) -> Target | None:
        live = [v for v in state.versions(workspace, "script", path) if not v.archived and not v.deleted]
        return live[-1] if live else None

    def runner(language: str, content: str) -> Runner | None:
        if language != "python3":
            return None  # the emulator runs Python only; other jobs complete with a null result
        if deployment.shim_dir is None:
            deployment.shim_dir = Path(tempfile.mkdtemp(prefix="headrace-emulator-deploy-"))
            (deployment.shim_dir / "wmill.py").write_text(_WMILL_SHIM, encoding="utf-8")
        code = deployment.shim_dir / f"script_{uuid.uuid4().hex}.py"
        code.write_text(content, encoding="utf-8")
        return PythonScript(code, state, deployment.shim_dir)

    async def script_create(request: web.Request) -> web.Response:
        if _is_operator(request, deployment):
            return web.Response(status=401, text="Unauthorized: Operators cannot create scripts for security reasons")
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        workspace, path = ws(request), str(body.get("path", ""))
        current = head(workspace, path)
        parent_hash = body.get("parent_hash")
        if body.get("auto_parent"):
            parent_hash = current.hash if current is not None else None
        if parent_hash is None and current is not None and not current.draft_only:
            return _bad(f"Path conflict for {path} with non-archived hash {current.hash}")
        if parent_hash is not None and (current is None or parent_hash != current.hash):
            if not any(v.hash == parent_hash for v in state.versions(workspace, "script", path)):
                return _bad("The parent hash does not seem to exist")
            return _bad(f"A script with same parent_hash {parent_hash} has been found: the lineage must be linear")
        parent = deployment.scripts.get(str(parent_hash)) if parent_hash is not None else None
        content, language = str(body.get("content", "")), str(body.get("language", "python3"))
        description, kind = str(body.get("description", "")), str(body.get("kind", "script"))
        lock = body.get("lock")
        if request.query.get("skip_if_noop") == "true" and parent is not None:
            old = parent.target
            built = deployment.script_status(parent, time.time())["lock"]
            same = (old.content, old.summary, old.schema, parent.description, parent.language, parent.kind, built)
            if same == (content, str(body.get("summary", "")), body.get("schema"), description, language, kind, lock):
                return web.Response(status=201, text=old.hash)
        if current is not None:
            current.archived = True  # M1: every update archives its parent
        target = state.add_target(
            "script",
            path,
            runner(language, content),
            workspace=workspace,
            schema=body.get("schema"),
            summary=str(body.get("summary", "")),
            content=content,
            lock_seconds=deployment.lock_seconds,
            lock_error=deployment.lock_errors.get(path),
        )
        version = ScriptVersion(workspace, target, description, language, kind)
        deployment.scripts[target.hash] = version
        return web.Response(status=201, text=target.hash)

    async def script_exists(request: web.Request) -> web.Response:
        return web.json_response(head(ws(request), request.match_info["path"]) is not None)

    async def script_status(request: web.Request) -> web.Response:
        version = deployment.scripts.get(request.match_info["hash"])
        if version is None or version.workspace != ws(request):
            return _not_found(f"script {request.match_info['hash']} not found")
        return web.json_response(deployment.script_status(version, time.time()))

    async def flow_save(request: web.Request) -> web.Response:
        if _is_operator(request, deployment):
            return web.Response(status=401, text="Unauthorized: Operators cannot create flows for security reasons")
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        workspace = ws(request)
        creating = request.match_info.route.name == routes.FLOW_CREATE.name
        path = str(body.get("path", "")) if creating else request.match_info["path"]
        exists = bool(state.versions(workspace, "flow", path))
        if creating and exists:
            return _bad(f"Flow {path} already exists")
        if not creating and not exists:
            return _not_found(f"flow {path} not found")
        summary = str(body.get("summary", ""))
        state.add_target("flow", path, flow_input, workspace=workspace, schema=body.get("schema"), summary=summary)
        deployment.flows[(workspace, path)] = FlowVersion(
            summary,
            str(body.get("description", "")),
            body.get("value"),
            body.get("schema"),
            time.time(),
            deployment.lock_seconds,
            deployment.lock_errors.get(path),
        )
        return web.Response(status=201 if creating else 200, text=path)

    async def flow_exists(request: web.Request) -> web.Response:
        return web.json_response(bool(state.versions(ws(request), "flow", request.match_info["path"])))

    async def flow_status(request: web.Request) -> web.Response:
        flow = deployment.flows.get((ws(request), request.match_info["path"]))
        if flow is None:
            return _not_found(f"flow {request.match_info['path']} not found")
        error = "" if flow.building(time.time()) else flow.error
        return web.json_response({"lock_error_logs": error, "job_id": flow.job_id})

    async def schedule_get(request: web.Request) -> web.Response:
        schedule = deployment.schedules.get((ws(request), request.match_info["path"]))
        if schedule is None:
            return _not_found(f"schedule {request.match_info['path']} not found")
        return web.json_response(schedule)

    async def schedule_save(request: web.Request) -> web.Response:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        creating = request.match_info.route.name == routes.SCHEDULE_CREATE.name
        path = str(body.get("path", "")) if creating else request.match_info["path"]
        key = (ws(request), path)
        if creating and key in deployment.schedules:
            return _bad(f"A schedule with path {path} already exists")
        if not creating and key not in deployment.schedules:
            return _not_found(f"schedule {path} not found")
        deployment.schedules[key] = {**deployment.schedules.get(key, {}), **body, "path": path}
        return web.Response(text=path)

    handlers: dict[str, Handler] = {
        routes.WHOAMI.name: whoami,
        routes.FOLDER_EXISTS.name: folder_exists,
        routes.FOLDER_CREATE.name: folder_create,
        routes.VARIABLE_EXISTS.name: variable_exists,
        routes.VARIABLE_GET.name: variable_get,
        routes.VARIABLE_CREATE.name: variable_create,
        routes.VARIABLE_UPDATE.name: variable_update,
        routes.RESOURCE_EXISTS.name: resource_exists,
        routes.RESOURCE_GET.name: resource_get,
        routes.RESOURCE_CREATE.name: resource_create,
        routes.RESOURCE_TYPE_EXISTS.name: resource_type_exists,
        routes.RESOURCE_TYPE_CREATE.name: resource_type_create,
        routes.SCRIPT_CREATE.name: script_create,
        routes.SCRIPT_EXISTS.name: script_exists,
        routes.SCRIPT_STATUS.name: script_status,
        routes.FLOW_CREATE.name: flow_save,
        routes.FLOW_UPDATE.name: flow_save,
        routes.FLOW_EXISTS.name: flow_exists,
        routes.FLOW_STATUS.name: flow_status,
        routes.SCHEDULE_GET.name: schedule_get,
        routes.SCHEDULE_CREATE.name: schedule_save,
        routes.SCHEDULE_UPDATE.name: schedule_save,
    }
    for route in routes.GETS:
        app.router.add_get(route.pattern, handlers[route.name], name=route.name)
    for route in routes.POSTS:
        app.router.add_post(route.pattern, handlers[route.name], name=route.name)

    async def control(request: web.Request) -> web.Response:
        """GET: the recorded requests and what was deployed; POST: set lock_seconds, lock_errors, operators."""
        if request.method == "POST":
            spec = await request.json()
            deployment.lock_seconds = float(spec.get("lock_seconds", deployment.lock_seconds))
            for path, error in spec.get("lock_errors", {}).items():  # null: that path's builds succeed again
                if error is None:
                    deployment.lock_errors.pop(path, None)
                else:
                    deployment.lock_errors[path] = str(error)
            deployment.operators.update(spec.get("operators", []))
        return web.json_response(
            {
                "requests": deployment.requests,
                "script_versions": [[v.workspace, v.target.path, h] for h, v in deployment.scripts.items()],
                "flows": sorted(path for _, path in deployment.flows),
                "variables": sorted(path for _, path in deployment.variables),
                "resources": sorted(path for _, path in deployment.resources),
                "resource_types": sorted(name for _, name in deployment.resource_types),
                "folders": sorted(name for _, name in deployment.folders),
                "schedules": sorted(path for _, path in deployment.schedules),
            }
        )

    app.router.add_route("*", "/_emulator/deployment", control)
    return deployment


def overlay(app: web.Application, workspace: str, kind: Kind, target: Target, body: dict[str, Any]) -> None:
    """What scripts/get and flows/get add for a version deployed through the API (Deployment.show)."""
    deployment = app.get(DEPLOYMENT)
    if deployment is not None:
        deployment.show(workspace, kind, target, body)
