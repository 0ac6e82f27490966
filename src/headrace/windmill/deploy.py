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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from headrace.windmill import deploy_routes as routes
from headrace.windmill.deploy_api import Api, DeployError, Step
from headrace.windmill.deploy_routes import MARK
from headrace.windmill.kit import RESOURCE_TYPES, Kit
from headrace.windmill.urls import Route

NOT_OURS = (
    "exists, was not deployed by headrace connect and differs from the kit; left as it is "
    "(rename or remove it to let connect deploy the kit's)"
)
LOCK_TIMEOUT = 900.0  # seconds to wait for all locks (--lock-timeout): Windmill builds each in a dependency job
POLL = 1.0  # seconds between two looks at a lock
LOG_EXCERPT = 2000  # characters of a lock error shown

Progress = Callable[[str], None]


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
