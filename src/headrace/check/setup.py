"""The setup steps from zero to the first job, each with its state as headrace sees it now and the command that
fixes it (the console's Setup page): Windmill reachable and the token accepted, the kit deployed with its locks
built, a destination for every kit automation, the Dodo endpoint, the last event received and delivered.

Network questions go to Windmill with each destination's own token, with a timeout; tokens are never shown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import aiohttp

from headrace.config import Settings
from headrace.starter import EMULATOR_URL
from headrace.windmill import deploy_routes as routes
from headrace.windmill.deploy import Api, DeployError
from headrace.windmill.kit import DESTINATIONS

State = Literal["done", "todo", "broken", "unknown"]
CONNECT = "headrace connect windmill --url WINDMILL_URL --workspace WORKSPACE --token env:WINDMILL_TOKEN"
CONNECT_DODO = "headrace connect dodo --public-url https://YOUR-HOST/webhooks/dodo --api-key env:DODO_PAYMENTS_API_KEY"


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
                detail = f"{target.base_url}, workspace {target.workspace}: {str(exc)[:300] or 'timed out'}"
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
    return steps


async def _target(api: Api, name: str, kind: str, path: str, timeout: float) -> SetupStep:
    """The destination's script or flow is deployed and its lock built (R3: until then runs answer 404)."""
    step = f"{kind} {path} deployed, lock built"
    try:
        deployed = await asyncio.wait_for(
            api.get(routes.SCRIPT_GET if kind == "script" else routes.FLOW_GET, path=path), timeout
        )
    except (DeployError, TimeoutError) as exc:
        return SetupStep(step, "unknown", f"destination {name}: {str(exc)[:300] or 'timed out'}", CONNECT)
    if not isinstance(deployed, dict):
        return SetupStep(step, "todo", f"destination {name}: not deployed in workspace {api.workspace}", CONNECT)
    error = deployed.get("lock_error_logs")
    if error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
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
    steps.append(
        SetupStep(
            "Dodo endpoint registered with the right event types",
            "unknown",
            "headrace does not ask Dodo from here; `connect dodo` registers it and prints what it found",
            CONNECT_DODO,
        )
    )
    return steps


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
