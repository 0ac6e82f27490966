"""The setup steps from zero to the first job, each with its state as headrace sees it now and the command that
fixes it (the console's Setup page): Windmill reachable and the token accepted, the kit deployed with its locks
built, the resources the kit reads, a destination for every kit automation, the Dodo endpoint (asked with the
source's api_key), the last event received and delivered.

Network questions go to Windmill with each destination's own token and to Dodo with the source's API key, each
within a timeout; neither is ever shown. A Dodo or Windmill that does not answer makes its step `unknown`.
"""

from __future__ import annotations

import asyncio
import shlex
from dataclasses import dataclass
from typing import Literal

import aiohttp

from headrace.config import Settings
from headrace.config.starter import EMULATOR_URL
from headrace.dodo.endpoint_state import routed_types, source_endpoint_state
from headrace.dodo.transport import DodoApiError
from headrace.policy import LINE_EXCERPT, QUOTE_EXCERPT
from headrace.windmill import deploy_routes as routes
from headrace.windmill.deploy_api import Api, DeployError
from headrace.windmill.deploy_resources import check_resources, create_hint
from headrace.windmill.kit import DESTINATIONS, KitError, find_kit, read_kit

State = Literal["done", "todo", "broken", "unknown"]
CONNECT = "headrace connect windmill --url WINDMILL_URL --workspace WORKSPACE --token env:WINDMILL_TOKEN"


@dataclass(frozen=True)
class SetupStep:
    step: str
    state: State
    detail: str
    fix: str = ""  # the command (or action) that moves this step to done


async def _windmill(settings: Settings, session: aiohttp.ClientSession, timeout: float) -> list[SetupStep]:
    steps: list[SetupStep] = []
    seen: set[tuple[str, str]] = set()
    unreachable: set[tuple[str, str]] = set()
    for name, dest in settings.destinations.items():
        target = dest.target
        if dest.url == EMULATOR_URL:
            detail = f"destination {name} points at the starter's local emulator, not a Windmill you named"
            steps.append(SetupStep("Windmill", "todo", detail, CONNECT))
            continue
        api = Api(session, target.base_url, target.workspace, dest.bearer.reveal())
        where = (target.base_url, target.workspace)
        if where in unreachable:
            continue
        if where not in seen:
            seen.add(where)
            try:
                me = await asyncio.wait_for(api.get(routes.WHOAMI), timeout)
            except (DeployError, TimeoutError) as exc:
                detail = f"{target.base_url}, workspace {target.workspace}: {str(exc)[:QUOTE_EXCERPT] or 'timed out'}"
                steps.append(SetupStep("Windmill reachable, token accepted", "broken", detail, CONNECT))
                unreachable.add(where)
                continue
            who = me.get("email", "?") if isinstance(me, dict) else "?"
            role = (
                " (an operator: can run jobs, cannot deploy the kit)"
                if isinstance(me, dict) and me.get("operator")
                else ""
            )
            detail = f"{target.base_url}, workspace {target.workspace}, as {who}{role}"
            steps.append(SetupStep("Windmill reachable, token accepted", "done", detail))
        steps.append(await _target(api, name, target.kind, target.path, timeout))
    for (base_url, workspace), (api, wired) in _kit_folders(settings, session).items():
        if (base_url, workspace) not in unreachable:
            steps += await _resources(api, wired, timeout)
    return steps


def _kit_folders(
    settings: Settings, session: aiohttp.ClientSession
) -> dict[tuple[str, str], tuple[Api, dict[str, set[str]]]]:
    """Per Windmill workspace: an Api (with a destination's token) and, per kit folder, the kit automations
    (DESTINATIONS names) a destination runs there."""
    found: dict[tuple[str, str], tuple[Api, dict[str, set[str]]]] = {}
    for dest in settings.destinations.values():
        target = dest.target
        folder, _, name = target.path.removeprefix("f/").rpartition("/")
        row = next((row for row in DESTINATIONS if row.target == name and row.kind == target.kind), None)
        if dest.url == EMULATOR_URL or row is None or not target.path.startswith("f/") or "/" in folder:
            continue
        where = (target.base_url, target.workspace)
        if where not in found:
            found[where] = (Api(session, target.base_url, target.workspace, dest.bearer.reveal()), {})
        found[where][1].setdefault(folder, set()).add(row.name)
    return found


async def _resources(api: Api, wired: dict[str, set[str]], timeout: float) -> list[SetupStep]:
    """The resources the kit reads in each folder: one row per missing one that a configured destination's
    runs read (with who reads it and how to create it), or one row saying they all exist."""
    step = f"resources the kit reads exist in workspace {api.workspace}"
    rows: list[SetupStep] = []
    try:
        root = find_kit()
        for folder, names in sorted(wired.items()):
            checks = await asyncio.wait_for(check_resources(api, read_kit(root, folder)), timeout)
            for check in checks:
                readers = [name for name in check.resource.destinations if name in names]
                if check.state == "missing" and readers:
                    detail = (
                        f"{check.resource.path} (type {check.resource.resource_type}) is missing: the jobs of "
                        f"{', '.join(readers)} fail until it exists. headrace never creates it: it holds your secrets"
                    )
                    hint = create_hint(check.resource, api.base_url, api.workspace, "$WINDMILL_TOKEN")
                    rows.append(SetupStep(f"resource {check.resource.path}", "todo", detail, " ".join(hint)))
    except (DeployError, KitError, TimeoutError) as exc:
        return [SetupStep(step, "unknown", str(exc)[:QUOTE_EXCERPT] or "timed out", CONNECT)]
    return rows or [SetupStep(step, "done", "every resource the configured kit automations read")]


async def _target(api: Api, name: str, kind: str, path: str, timeout: float) -> SetupStep:
    """The destination's script or flow is deployed and its lock built (R3: until then runs answer 404)."""
    step = f"{kind} {path} deployed, lock built"
    try:
        deployed = await asyncio.wait_for(
            api.get(routes.SCRIPT_GET if kind == "script" else routes.FLOW_GET, path=path), timeout
        )
    except (DeployError, TimeoutError) as exc:
        return SetupStep(step, "unknown", f"destination {name}: {str(exc)[:QUOTE_EXCERPT] or 'timed out'}", CONNECT)
    if not isinstance(deployed, dict):
        return SetupStep(step, "todo", f"destination {name}: not deployed in workspace {api.workspace}", CONNECT)
    error = deployed.get("lock_error_logs")
    if error:
        first = str(error).strip().splitlines()[0][:LINE_EXCERPT] if str(error).strip() else ""
        return SetupStep(
            step, "broken", f"destination {name}: the lock failed: {first}", f"fix the dependency, then {CONNECT}"
        )
    building = deployed.get("lock") is None if kind == "script" else error == ""
    if building:
        return SetupStep(
            step, "todo", f"destination {name}: the lock is being built; runs answer 404 until then", "wait"
        )
    return SetupStep(step, "done", f"destination {name}")


def _destinations(settings: Settings) -> SetupStep:
    targets = {dest.target.path.rsplit("/", 1)[-1] for dest in settings.destinations.values()}
    missing = [row.target for row in DESTINATIONS if row.target not in targets]
    if not missing:
        return SetupStep("a destination for every kit automation", "done", f"{len(DESTINATIONS)} kit automations wired")
    return SetupStep(
        "a destination for every kit automation", "todo", "no destination for " + ", ".join(missing), CONNECT
    )


async def setup_steps(settings: Settings, session: aiohttp.ClientSession, timeout: float = 5.0) -> list[SetupStep]:
    """Every step but the events (the console adds those from the store)."""
    steps = await _windmill(settings, session, timeout)
    if not settings.destinations:
        steps.append(SetupStep("Windmill", "todo", "no destination configured", CONNECT))
    steps.append(_destinations(settings))
    for name in settings.sources:
        steps.append(await _dodo(settings, name, session, timeout))
    return steps


async def _dodo(settings: Settings, name: str, session: aiohttp.ClientSession, timeout: float) -> SetupStep:
    """Source `name`'s endpoint in Dodo (dodo/endpoint_state.py), asked with the source's api_key within
    `timeout`; without an api_key, or when Dodo does not answer: unknown."""
    source = settings.sources[name]
    step = f"Dodo endpoint for source {name}: registered, enabled, subscribed to the routed event types"
    reference = source.api_key or "env:DODO_PAYMENTS_API_KEY"
    fix = (
        f"headrace connect dodo --source {name} --public-url https://YOUR-HOST/webhooks/{name} "
        f"--api-key {reference} --mode {source.mode}"
    )
    if source.api_key is None:
        detail = "the source has no api_key, so headrace cannot ask Dodo (`connect dodo` stores it)"
        return SetupStep(step, "unknown", detail, fix)
    wanted = routed_types(settings, name)
    try:
        state = await asyncio.wait_for(
            source_endpoint_state(name, source, settings.base_dir, wanted, session, timeout), timeout
        )
    except (DodoApiError, ValueError, TimeoutError) as exc:
        return SetupStep(step, "unknown", f"could not ask Dodo: {str(exc)[:QUOTE_EXCERPT] or 'no answer in time'}", fix)
    if state.endpoint is not None:
        fix = fix.replace(f"https://YOUR-HOST/webhooks/{name}", shlex.quote(state.endpoint.url))
    if state.condition == "ok":
        return SetupStep(step, "done", state.describe())
    if state.condition == "disabled":
        return SetupStep(step, "broken", state.describe(), f"{fix} (enables it again; then headrace reconcile)")
    return SetupStep(step, "todo", state.describe(), fix)


def event_steps(last_received: str | None, last_delivered: str | None) -> list[SetupStep]:
    """The last event received and the last one delivered (each given as a short description, or None)."""
    send = "headrace send payment.succeeded --to http://127.0.0.1:8787/webhooks/dodo --secret env:DODO_WEBHOOK_SECRET"
    received = (
        SetupStep("an event received", "done", last_received)
        if last_received
        else SetupStep(
            "an event received", "todo", "none yet", f"send a test webhook from Dodo's dashboard, or: {send}"
        )
    )
    delivered = (
        SetupStep("an event delivered to Windmill", "done", last_delivered)
        if last_delivered
        else SetupStep(
            "an event delivered to Windmill",
            "todo",
            "none yet",
            "see the Events page for why (a destination's filter, a failed delivery)",
        )
    )
    return [received, delivered]
