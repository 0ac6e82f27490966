"""Windmill's reference resolution in job arguments (CONTRACT A4), as its worker does it before a job runs.

`backend/windmill-worker/src/common.rs` (transform_json, transform_json_value):

- only a top-level argument whose raw JSON matches `\\$(?:var|jsonvar|res|encrypted):` is walked at all;
- the walk goes through objects at any depth and through arrays found at depth <= 2 with <= 1000 items;
- a string starting with `$var:PATH` becomes the variable's value, `$jsonvar:PATH` the variable parsed as
  JSON, `$res:PATH` the resource's value (a path needs at least two segments), `$encrypted:...` the
  decrypted value (the emulator holds no key: the job fails), and `$NAME` the reserved variable NAME
  (`WM_TOKEN`, `WM_WORKSPACE`, ...) when there is one, else the string is left as it is;
- a missing variable or resource fails the job before it starts. There is no escape syntax;
- any value the walk reaches at depth 50 or more (the argument itself is depth 0, each object member or
  walked array item one more) fails the job: "Maximum resource/variable interpolation depth (50) exceeded"
  (`MAX_INTERPOLATION_DEPTH`, `:265, 277-281`).

A string in a walked argument is therefore resolved whoever wrote it: a customer named `$WM_TOKEN`
in an argument that also holds a `$res:` path receives the job's token.
"""

from __future__ import annotations

import json
import re
from typing import Any

from headrace.windmill.emulator_model import FAKE_JOB_TOKEN, EmulatorState, Job, JobFailed

TRIGGER = re.compile(r"\$(?:var|jsonvar|res|encrypted):")
MAX_ARRAY_DEPTH = 2
MAX_ARRAY_ITEMS = 1000
MAX_INTERPOLATION_DEPTH = 50


def reserved_variables(job: Job, base_url: str) -> dict[str, str]:
    """The reserved variables a job sees (`windmill-common/src/variables.rs`), with a fake token."""
    return {
        "WM_WORKSPACE": job.workspace,
        "WM_TOKEN": FAKE_JOB_TOKEN,
        "WM_EMAIL": job.email,
        "WM_USERNAME": job.email.partition("@")[0],
        "WM_BASE_URL": base_url,
        "WM_JOB_ID": job.id,
        "WM_JOB_PATH": job.path,
        "WM_FLOW_JOB_ID": "",
        "WM_ROOT_FLOW_JOB_ID": "",
        "WM_FLOW_PATH": "",
        "WM_SCHEDULE_PATH": "",
        "WM_PERMISSIONED_AS": "u/" + job.email.partition("@")[0],
        "WM_STATE_PATH": f"{job.path}/user",
        "WM_FLOW_STEP_ID": "",
        "WM_OBJECT_PATH": f"{job.path.replace('/', '_')}/manual/{job.id}",
        "WM_WORKER_GROUP": "default",
    }


def resolve_args(state: EmulatorState, job: Job, base_url: str) -> dict[str, Any]:
    """The arguments the job's code receives. Raises JobFailed as Windmill fails such a job."""
    if not job.may_reference:
        return job.args
    resolved: dict[str, Any] = {}
    reserved: dict[str, str] | None = None
    for name, value in job.args.items():
        if not TRIGGER.search(json.dumps(value)):
            resolved[name] = value
            continue
        if reserved is None:
            reserved = reserved_variables(job, base_url)
        resolved[name] = _walk(state, name, value, reserved, 0)
    return resolved


def _walk(state: EmulatorState, name: str, value: Any, reserved: dict[str, str], depth: int) -> Any:
    if depth >= MAX_INTERPOLATION_DEPTH:
        message = (
            f"Maximum resource/variable interpolation depth ({MAX_INTERPOLATION_DEPTH}) exceeded for `{name}`; "
            "this usually indicates a circular `$res:` or `$var:` reference"
        )
        raise JobFailed({"name": "InternalErr", "message": message, "stack": ""})
    if isinstance(value, str):
        return _string(state, name, value, reserved)
    if isinstance(value, dict):
        return {key: _walk(state, key, item, reserved, depth + 1) for key, item in value.items()}
    if isinstance(value, list) and depth <= MAX_ARRAY_DEPTH and len(value) <= MAX_ARRAY_ITEMS:
        return [_walk(state, name, item, reserved, depth + 1) for item in value]
    return value


def _string(state: EmulatorState, name: str, text: str, reserved: dict[str, str]) -> Any:
    if text.startswith("$var:") or text.startswith("$jsonvar:"):
        path = text.partition(":")[2]
        if path not in state.variables:
            raise _not_found(f"Variable {path} not found for `{name}`")
        if text.startswith("$var:"):
            return state.variables[path]
        try:
            return json.loads(state.variables[path])
        except ValueError as exc:
            raise JobFailed(
                {"name": "InternalErr", "message": f"Failed to parse $jsonvar value as JSON: {exc}", "stack": ""}
            ) from None
    if text.startswith("$res:"):
        path = text.removeprefix("$res:")
        if len(path.split("/")) < 2:
            message = f"Argument `{name}` is an invalid resource path: {path}"
            raise JobFailed({"name": "InternalErr", "message": message, "stack": ""})
        if path not in state.resources:
            raise _not_found(f"Resource {path} not found for `{name}`")
        return state.resources[path]
    if text.startswith("$encrypted:"):
        raise JobFailed(
            {"name": "InternalErr", "message": "Failed to decrypt '$encrypted:' value (emulator)", "stack": ""}
        )
    if text.startswith("$"):
        return reserved.get(text[1:], text)
    return text


def _not_found(message: str) -> JobFailed:
    return JobFailed({"name": "NotFound", "message": message, "stack": ""})
