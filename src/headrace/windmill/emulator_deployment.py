"""What the emulator knows about deployments made through Windmill's API (emulator_deploy.py answers the routes):
folders, variables, resources and their types, script versions with their lock builds, flows, schedules, and
every request received. CONTRACT D1-D9, R3, M1 (docs/windmill-contract.md).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.windmill.emulator_model import EmulatorState, Kind, Target

SEEDED_RESOURCE_TYPES = ("postgres", "slack")  # C4: the only types a workspace has without the Hub sync
BUILT_LOCK = "# dependencies locked by the headrace Windmill emulator\n"


@dataclass
class ScriptVersion:
    """What Windmill stores for a script version beyond what the emulator's Target holds."""

    workspace: str
    target: Target
    description: str
    language: str
    kind: str
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class FlowVersion:
    summary: str
    description: str
    value: Any
    schema: Any
    deployed_at: float
    lock_seconds: float
    error: str | None
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def building(self, now: float) -> bool:
        return now < self.deployed_at + self.lock_seconds


@dataclass
class Deployment:
    lock_seconds: float = 0.0  # how long each lock build (dependency job) takes
    lock_errors: dict[str, str] = field(default_factory=dict)  # path -> the error its lock builds end with
    operators: set[str] = field(default_factory=set)  # tokens whose user is an operator
    folders: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    resource_types: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    scripts: dict[str, ScriptVersion] = field(default_factory=dict)  # hash -> version
    flows: dict[tuple[str, str], FlowVersion] = field(default_factory=dict)
    schedules: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every request
    shim_dir: Path | None = None

    def script_building(self, version: ScriptVersion, now: float) -> bool:
        target = version.target
        return now < target.deployed_at + target.lock_seconds

    def script_status(self, version: ScriptVersion, now: float) -> dict[str, Any]:
        """D6: `lock` once built, `lock_error_logs` once failed, neither while building."""
        if self.script_building(version, now):
            return {"lock": None, "lock_error_logs": None, "job_id": version.job_id}
        error = version.target.lock_error
        return {"lock": None if error else BUILT_LOCK, "lock_error_logs": error, "job_id": version.job_id}

    def seeded(self, workspace: str) -> None:
        for name in SEEDED_RESOURCE_TYPES:
            self.resource_types.setdefault((workspace, name), {"name": name, "schema": {}, "description": ""})

    def show(self, workspace: str, kind: Kind, target: Target, body: dict[str, Any]) -> None:
        """scripts/get and flows/get of a version deployed through the API show what was deployed (M1): a
        script's description and language, its `lock` absent while building; a flow's value and
        `lock_error_logs` ("" while building, absent once built, the error when it failed)."""
        now = time.time()
        if kind == "script":
            version = self.scripts.get(target.hash)
            if version is None:
                return
            body.update(description=version.description, language=version.language, kind=version.kind)
            status = self.script_status(version, now)
            body.pop("lock", None)
            if status["lock"] is not None:
                body["lock"] = status["lock"]
            body["lock_error_logs"] = status["lock_error_logs"]
            return
        flow = self.flows.get((workspace, target.path))
        if flow is None:
            return
        body.update(summary=flow.summary, description=flow.description, value=flow.value, schema=flow.schema)
        body.pop("lock_error_logs", None)
        error = "" if flow.building(now) else flow.error
        if error is not None:
            body["lock_error_logs"] = error


def interpolated(state: EmulatorState, value: Any) -> Any:
    """A resource's value as `resources/get_value_interpolated` returns it: every string `$var:PATH` inside it
    replaced by the variable's value (D4: a resource keeps its password in a secret variable)."""
    if isinstance(value, str) and value.startswith("$var:") and value[5:] in state.variables:
        return state.variables[value[5:]]
    if isinstance(value, dict):
        return {key: interpolated(state, item) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolated(state, item) for item in value]
    return value
