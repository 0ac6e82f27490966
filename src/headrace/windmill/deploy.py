"""Deploying the kit into a Windmill workspace through its REST API, in the order `wmill sync push` uses
(CONTRACT D1-D8): whoami -> folder -> missing resource types (C4) -> a secret variable for the database password
-> the `postgresql` resource -> scripts -> wait for every script's lock (R3, R9) -> flows -> wait for their locks
-> schedules.

Two rules, both kept by construction: **no DELETE is ever sent** (the request helper has no such method), and
**nothing headrace did not create is overwritten**: a variable or resource at a kit path whose description is not
headrace's is left alone and reported. What is already deployed is compared first, as `wmill` does, and nothing is
sent for what is unchanged: `skip_if_noop` alone is not enough, because it compares the lock too and `lock: ""`
never equals a built lock (a second run would make a new version of every script and a new 404 window).

plan() only reads; apply() sends what the plan says. Progress goes to a callback, one line per step.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import aiohttp

from headrace.policy import ERROR_EXCERPT, QUOTE_EXCERPT
from headrace.windmill import deploy_routes as routes
from headrace.windmill.client import read_capped
from headrace.windmill.deploy_routes import MARK
from headrace.windmill.kit import Kit, KitResource, kit_resources
from headrace.windmill.urls import Route

NOT_OURS = (
    "exists, was not deployed by headrace connect and differs from the kit; left as it is "
    "(rename or remove it to let connect deploy the kit's)"
)
LOCK_TIMEOUT = 900.0  # seconds to wait for all locks (--lock-timeout): Windmill builds each in a dependency job
POLL = 1.0  # seconds between two looks at a lock
RESPONSE_LIMIT = 4 * 1_048_576  # bytes of one answer read; a kit flow is far smaller
LOG_EXCERPT = 2000  # characters of a lock error shown

# Resource types the kit's scripts take (kit/README.md "Resources to create"); created when missing (C4).
RESOURCE_TYPES: dict[str, dict[str, Any]] = {
    "postgresql": {
        "host": "string",
        "port": "integer",
        "user": "string",
        "dbname": "string",
        "sslmode": "string",
        "password": "string",
    },
    "mysql": {"host": "string", "port": "integer", "user": "string", "database": "string", "password": "string"},
    "slack": {"token": "string"},
    "smtp": {"host": "string", "port": "integer", "user": "string", "password": "string", "from_address": "string"},
    "twilio": {"account_sid": "string", "auth_token": "string", "from_number": "string"},
    "hubspot": {"token": "string"},
    "segment": {"write_key": "string"},
}

Action = Literal["create", "update", "unchanged", "left alone"]
Progress = Callable[[str], None]


class DeployError(Exception):
    """Deploying stopped: says what failed and what to do. Never holds the token."""


@dataclass
class Step:
    kind: str  # folder, resource type, variable, resource, script, flow, schedule
    path: str
    action: Action
    note: str = ""
    route: Route | None = None  # what apply() sends (POST)
    parts: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    query: str = ""
    hash: str | None = None  # a script whose lock must be waited for (unchanged but still building)
    waits: bool = False  # a script or flow whose lock apply() waits for

    def line(self) -> str:
        return f"{self.action:>10}  {self.kind} {self.path}" + (f"  ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Database:
    """The kit's PostgreSQL database, as the `postgresql` resource holds it (password apart)."""

    host: str
    port: int
    user: str
    dbname: str
    sslmode: str
    password: str

    @classmethod
    def from_url(cls, url: str) -> Database:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise DeployError("--database: write postgresql://USER:PASSWORD@HOST:5432/DBNAME")
        query = dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair)
        try:
            port = parts.port or 5432
        except ValueError:
            raise DeployError("--database: the port is not a number") from None
        return cls(
            host=parts.hostname,
            port=port,
            user=unquote(parts.username or "postgres"),
            dbname=unquote(parts.path.lstrip("/")) or "postgres",
            sslmode=query.get("sslmode", "prefer"),
            password=unquote(parts.password or ""),
        )


def api_base(url: str) -> str:
    """Windmill's API root (`.../api`) from the address a person gives (with or without /api, a final /)."""
    return url.strip().rstrip("/").removesuffix("/api") + "/api"


class Api:
    """The deployment routes of one workspace, over aiohttp. GET and POST only: there is no delete here."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, workspace: str, token: str) -> None:
        self._http = http
        self.base_url = api_base(base_url)
        self.workspace = workspace
        self._headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: Literal["GET", "POST"], route: Route, body: Any = None, query: str = "", **parts: str
    ) -> tuple[int, str]:
        url = route.build(self.base_url, workspace=self.workspace, **parts) + query
        try:
            async with self._http.request(method, url, json=body, headers=self._headers) as response:
                status = response.status
                text, cut = await read_capped(response, RESPONSE_LIMIT)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeployError(f"cannot reach Windmill at {self.base_url}: {exc.__class__.__name__} {exc}") from None
        if cut:
            raise DeployError(f"{method} {route.name}: the answer is larger than {RESPONSE_LIMIT} bytes")
        if status in (401, 403):
            raise DeployError(
                f"Windmill refused {method} {route.template.format(workspace=self.workspace, **parts)} "
                f"with {status}: {text[:QUOTE_EXCERPT]}. Check the token, that it belongs to workspace "
                f"{self.workspace}, and (for a scoped token) that it has the scopes for folders, resources, "
                "variables, scripts, flows and schedules"
            )
        return status, text

    async def get(self, route: Route, **parts: str) -> Any:
        """The JSON answer, or None for a 404."""
        status, text = await self.call("GET", route, **parts)
        if status == 404:
            return None
        if status != 200:
            raise DeployError(f"GET {route.name} {parts}: Windmill answered {status}: {text[:QUOTE_EXCERPT]}")
        try:
            return json.loads(text)
        except ValueError:
            raise DeployError(f"GET {route.name} {parts}: the answer is not JSON; is this a Windmill URL?") from None

    async def post(self, step: Step) -> str:
        """The answer's text (scripts/create: the new hash, which must not go through a JSON parser)."""
        assert step.route is not None
        status, text = await self.call("POST", step.route, step.body, step.query, **step.parts)
        if status == 400 and step.action == "create" and ("already exists" in text or "Path conflict" in text):
            raise DeployError(
                f"create {step.kind} {step.path}: it appeared after connect looked (another connect run, or a "
                "person, made it meanwhile); nothing of it was changed. Run connect windmill again: it compares "
                "first and leaves what is not headrace's alone"
            )
        if status not in (200, 201):
            raise DeployError(
                f"{step.action} {step.kind} {step.path}: Windmill answered {status}: {text[:ERROR_EXCERPT]}"
            )
        return text


def covers(deployed: Any, wanted: Any) -> bool:
    """Whether what is deployed holds everything headrace would send: objects may carry more keys (what Windmill
    adds when it stores them), every other value must be equal."""
    if isinstance(wanted, dict):
        return isinstance(deployed, dict) and all(
            key in deployed and covers(deployed[key], value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(deployed, list)
            and len(deployed) == len(wanted)
            and all(covers(d, w) for d, w in zip(deployed, wanted, strict=True))
        )
    return bool(deployed == wanted)


def _same_script(deployed: dict[str, Any], body: dict[str, Any]) -> bool:
    """Unchanged: the same code, summary, schema and language, and its lock did not fail (the description is
    left out: a description-only change is not worth a new version and a new lock build)."""
    wanted = {key: body.get(key) for key in ("content", "summary", "schema", "language")}
    return covers(deployed, wanted) and not deployed.get("lock_error_logs")


def _marked(body: dict[str, Any]) -> dict[str, Any]:
    """A script's or flow's body with MARK in its description: what tells a later run that the item is
    headrace's to update."""
    description = str(body.get("description") or "")
    return {**body, "description": f"{description}\n\n{MARK}" if description else MARK}


def _ours(deployed: dict[str, Any]) -> bool:
    return MARK in str(deployed.get("description") or "")


def _without_description(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "description"}


async def _owned(api: Api, kind: str, route: Route, path: str, wanted: dict[str, Any], create: Step) -> Step:
    """A variable or resource: created when absent; updated only when headrace made it (its description carries
    MARK) and it differs; otherwise left alone."""
    current = await api.get(route, path=path)
    if current is None:
        return create
    if MARK not in str(current.get("description") or ""):
        return Step(kind, path, "left alone", "exists and was not created by headrace; check it yourself")
    if covers(current, wanted):
        return Step(kind, path, "unchanged")
    return Step(kind, path, "update", route=create.route, parts=create.parts, body=create.body, query=create.query)


async def plan(api: Api, kit: Kit, database: Database | None) -> list[Step]:
    """What apply() would do, read from the workspace without changing it."""
    steps: list[Step] = []
    folder = kit.folder
    if await api.get(routes.FOLDER_EXISTS, name=folder):
        steps.append(Step("folder", folder, "unchanged"))
    else:
        body = {"name": folder, "summary": kit.summary, "owners": [], "extra_perms": {}}
        steps.append(Step("folder", folder, "create", route=routes.FOLDER_CREATE, body=body))
    for name, fields in RESOURCE_TYPES.items():
        if await api.get(routes.RESOURCE_TYPE_EXISTS, name=name):
            steps.append(Step("resource type", name, "unchanged"))
            continue
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {key: {"type": kind, "description": ""} for key, kind in fields.items()},
            "required": [],
        }
        body = {"name": name, "schema": schema, "description": f"{name} (added by headrace for the kit)"}
        steps.append(Step("resource type", name, "create", route=routes.RESOURCE_TYPE_CREATE, body=body))
    if database is not None:
        variable_path, resource_path = f"f/{folder}/db_password", f"f/{folder}/db"
        variable = {"value": database.password, "is_secret": True, "description": f"{MARK}: the kit database password"}
        create = Step(
            "variable", variable_path, "create", route=routes.VARIABLE_CREATE, body={"path": variable_path, **variable}
        )
        step = await _owned(api, "variable", routes.VARIABLE_GET, variable_path, {"value": database.password}, create)
        if step.action == "update":
            step.route, step.parts, step.body = routes.VARIABLE_UPDATE, {"path": variable_path}, variable
        steps.append(step)
        value = {
            "host": database.host,
            "port": database.port,
            "user": database.user,
            "dbname": database.dbname,
            "sslmode": database.sslmode,
            "password": f"$var:{variable_path}",
        }
        resource = {
            "path": resource_path,
            "value": value,
            "resource_type": "postgresql",
            "description": f"{MARK}: the kit database",
        }
        create = Step("resource", resource_path, "create", route=routes.RESOURCE_CREATE, body=resource)
        step = await _owned(api, "resource", routes.RESOURCE_GET, resource_path, {"value": value}, create)
        if step.action == "update":
            step.query = "?update_if_exists=true"
        if steps[-1].action == "left alone" and step.action in ("create", "update"):
            note = f"its password would be the variable {variable_path}, which is not headrace's"
            step = Step("resource", resource_path, "left alone", note)
        steps.append(step)
    for script in kit.scripts:
        deployed = await api.get(routes.SCRIPT_GET, path=script.path)
        body = {"path": script.path, **_marked(script.body), "lock": ""}
        if deployed is None:
            steps.append(Step("script", script.path, "create", route=routes.SCRIPT_CREATE, body=body, waits=True))
        elif _same_script(deployed, script.body):
            building = "lock" not in deployed or deployed.get("lock") is None
            note = "its lock is still being built" if building else ""
            hash_ = str(deployed.get("hash")) if building else None
            steps.append(Step("script", script.path, "unchanged", note, hash=hash_, waits=building))
        elif not _ours(deployed):
            steps.append(Step("script", script.path, "left alone", NOT_OURS))
        else:
            note = "its last lock failed" if deployed.get("lock_error_logs") else "differs from the kit"
            update = {**body, "auto_parent": True}
            steps.append(Step("script", script.path, "update", note, routes.SCRIPT_CREATE, body=update, waits=True))
        steps[-1].query = "?skip_if_noop=true" if steps[-1].route else ""
    for flow in kit.flows:
        deployed = await api.get(routes.FLOW_GET, path=flow.path)
        body = {"path": flow.path, **_marked(flow.body)}
        if deployed is None:
            steps.append(Step("flow", flow.path, "create", route=routes.FLOW_CREATE, body=body, waits=True))
        elif covers(deployed, _without_description(flow.body)) and not deployed.get("lock_error_logs"):
            building = deployed.get("lock_error_logs") == ""
            steps.append(
                Step(
                    "flow", flow.path, "unchanged", "its lock is still being built" if building else "", waits=building
                )
            )
        elif not _ours(deployed):
            steps.append(Step("flow", flow.path, "left alone", NOT_OURS))
        else:
            parts = {"path": flow.path}
            note = "its last lock failed" if deployed.get("lock_error_logs") else "differs from the kit"
            steps.append(Step("flow", flow.path, "update", note, routes.FLOW_UPDATE, parts, body, waits=True))
    for path, schedule in kit.schedules:
        deployed = await api.get(routes.SCHEDULE_GET, path=path)
        if deployed is None:
            steps.append(
                Step("schedule", path, "create", route=routes.SCHEDULE_CREATE, body={"path": path, **schedule})
            )
        elif covers(deployed, schedule):
            steps.append(Step("schedule", path, "unchanged"))
        else:
            # Never changed once it exists: someone may have paused it or moved its time on purpose.
            note = "exists and differs from the kit; an existing schedule is left as it is"
            steps.append(Step("schedule", path, "left alone", note))
    return steps


async def whoami(api: Api) -> dict[str, Any]:
    """D1; an operator cannot create scripts or flows, so deploying stops here."""
    me = await api.get(routes.WHOAMI)
    if not isinstance(me, dict):
        raise DeployError(f"{api.base_url} does not answer users/whoami like Windmill; is it a Windmill URL?")
    if me.get("operator"):
        raise DeployError(
            f"the token belongs to {me.get('email', 'a user')}, an operator in workspace {api.workspace}: Windmill "
            "does not let operators create scripts or flows. Use the token of a developer or an admin"
        )
    return me


async def _wait_for_locks(api: Api, steps: list[Step], progress: Progress, timeout: float, poll: float) -> None:
    """Wait until every lock of `steps` is built (R3, R9); a failed one stops the deploy with its error."""
    waiting = [step for step in steps if step.waits]
    if not waiting:
        return
    kind = waiting[0].kind
    deadline = asyncio.get_running_loop().time() + timeout
    for done, step in enumerate(waiting):
        said = False
        while True:
            if kind == "script":
                status = await api.get(routes.SCRIPT_STATUS, hash=str(step.hash))
                built, error = status and status.get("lock") is not None, status and status.get("lock_error_logs")
            else:
                status = await api.get(routes.FLOW_STATUS, path=step.path)
                error = status and status.get("lock_error_logs")
                built = status is not None and status.get("lock_error_logs") is None
            if error:
                raise DeployError(
                    f"Windmill could not build the lock of {kind} {step.path}:\n{str(error)[-LOG_EXCERPT:]}\n"
                    f"Fix the dependency (see the {kind}'s deployment in Windmill), then run connect windmill again"
                )
            if built:
                break
            if not said:
                progress(f"waiting for the lock of {kind} {step.path} ({done} of {len(waiting)} built)")
                said = True
            if asyncio.get_running_loop().time() > deadline:
                raise DeployError(
                    f"the lock of {kind} {step.path} was not built within {timeout:g}s; Windmill's workers may be "
                    "busy or stopped. Run connect windmill again later: it waits without sending anything new"
                )
            await asyncio.sleep(poll)
    progress(f"all {len(waiting)} {kind} locks built")


async def apply(
    api: Api, steps: list[Step], progress: Progress, *, timeout: float = LOCK_TIMEOUT, poll: float = POLL
) -> None:
    """Send what `steps` say, in order, waiting for the script locks before the flows and for the flow locks
    before the schedules."""
    sending = [step for step in steps if step.route is not None]
    sent = 0
    for kind in ("folder", "resource type", "variable", "resource", "script", "flow", "schedule"):
        for step in (s for s in steps if s.kind == kind and s.route is not None):
            sent += 1
            progress(f"[{sent}/{len(sending)}] {step.action} {step.kind} {step.path}")
            answer = await api.post(step)
            if kind == "script":
                step.hash = answer.strip()
        if kind in ("script", "flow"):
            await _wait_for_locks(api, [s for s in steps if s.kind == kind], progress, timeout, poll)


ResourceState = Literal["exists", "created by connect", "missing"]


@dataclass(frozen=True)
class ResourceCheck:
    """A resource the kit reads, and whether the workspace has it. headrace creates only `f/FOLDER/db` (with
    --database); the others hold the user's secrets and are theirs to create."""

    resource: KitResource
    state: ResourceState

    def lines(self, base_url: str, workspace: str, token_shell: str) -> list[str]:
        """What connect prints for it: the state, who reads it and, when missing, how to create it."""
        r = self.resource
        readers = ", ".join(r.destinations) or "no kit automation (only kit scripts no destination runs)"
        head = f"{self.state:>18}  resource {r.path} (type {r.resource_type}), read by: {readers}"
        if self.state != "missing":
            return [head]
        return [head, *("                    " + line for line in create_hint(r, base_url, workspace, token_shell))]


def create_hint(resource: KitResource, base_url: str, workspace: str, token_shell: str) -> list[str]:
    """How a person creates `resource`: in Windmill's UI, or the exact `resources/create` request (values to
    fill in; headrace never sends it: they are the user's secrets)."""
    fields = RESOURCE_TYPES.get(resource.resource_type, {})
    value = {key: 0 if kind == "integer" else f"<{key}>" for key, kind in fields.items()}
    body = {"path": resource.path, "resource_type": resource.resource_type, "value": value}
    url = routes.RESOURCE_CREATE.build(api_base(base_url), workspace=workspace)
    lines = [
        f"create it in Windmill: Resources -> Add resource -> {resource.resource_type}, path {resource.path}; or",
        f"curl -X POST {url} -H \"Authorization: Bearer {token_shell}\" -H 'Content-Type: application/json' "
        f"-d '{json.dumps(body)}'",
    ]
    if resource.resource_type == "postgresql":
        lines.append("(or run connect windmill with --database postgresql://USER:PASSWORD@HOST:5432/DB: it creates it)")
    return lines


async def check_resources(api: Api, kit: Kit, steps: list[Step] | None = None) -> list[ResourceCheck]:
    """Each resource the kit reads (kit_resources: from the kit's files) with its state in the workspace, asked
    with `resources/exists` (read-only). `steps`: a plan whose create step makes one counts as made by connect."""
    creating = {step.path for step in steps or () if step.kind == "resource" and step.action == "create"}
    checks = []
    for resource in kit_resources(kit):
        if resource.path in creating:
            checks.append(ResourceCheck(resource, "created by connect"))
            continue
        exists = await api.get(routes.RESOURCE_EXISTS, path=resource.path)
        checks.append(ResourceCheck(resource, "exists" if exists is True else "missing"))
    return checks
