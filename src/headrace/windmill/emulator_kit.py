"""Targets from a Windmill workspace folder, for the emulator: each `f/.../name.py` with its
`name.script.yaml` becomes a script whose schema is the yaml's `schema` and whose jobs run the file's
Python `main` in a subprocess; each `f/.../name__flow/flow.yaml` becomes a flow with its `schema` (a flow's
steps are not run: its job completes with `{"flow_input": ...}`, every argument it received, or fails at the
first `type: script` step whose script has no lock, R9).

Arguments follow Windmill's rules for Python (`python_executor.rs`, CONTRACT A1-A3): each top-level key of
the JSON body is one argument; keys `main` does not declare are dropped (A1) unless it takes `**kwargs`,
which gets every key (A3); a declared argument that was not sent gets the Python default, or None when it
has none (A1); one sent as `null` whose parameter has a default gets the default (A2). References such as
"$res:PATH" are resolved by the emulator before the job starts (A4, emulator_refs). A flow keeps every
input, declared or not (A5). `wmill.get_resource` works inside the job: when the real `wmill`
package is not installed, a small stand-in asks the emulator's resources endpoint the way `wmill` asks
Windmill's. Reading the yaml needs PyYAML.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from headrace.windmill.client import script_steps
from headrace.windmill.emulator_model import FAKE_JOB_TOKEN, EmulatorState, JobFailed, Target

JOB_TIMEOUT = 120.0
LOG_LIMIT = 64 * 1024  # characters of a job's output kept as its logs

# Runs inside the job's subprocess: argv = [script, args_file, result_file, shim_dir].
_WRAPPER = r"""
import importlib.util, inspect, json, sys, traceback
script, args_file, result_file, shim_dir = sys.argv[1:5]
sys.path.append(shim_dir)  # after site-packages: a real `wmill` wins over the stand-in
with open(args_file) as f:
    given = json.load(f)
def finish(body, code):
    with open(result_file, "w") as f:
        json.dump(body, f, default=str)
    sys.exit(code)
try:
    spec = importlib.util.spec_from_file_location("__windmill_main__", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kwargs = {}
    params = inspect.signature(module.main).parameters
    for name, param in params.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if name in given and not (given[name] is None and param.default is not param.empty):
            kwargs[name] = given[name]
        elif param.default is param.empty:
            kwargs[name] = None
    if any(param.kind is param.VAR_KEYWORD for param in params.values()):
        kwargs.update((key, value) for key, value in given.items() if key not in params)
    result = module.main(**kwargs)
except BaseException as exc:
    finish({"name": type(exc).__name__, "message": str(exc), "stack": traceback.format_exc()}, 1)
finish(result, 0)
"""

_WMILL_SHIM = '''"""Stand-in for the `wmill` client inside emulator jobs: get_resource/get_variable over the API."""
import json, os, urllib.request

def _get(path):
    url = os.environ["BASE_INTERNAL_URL"] + "/api/w/" + os.environ["WM_WORKSPACE"] + path
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["WM_TOKEN"]})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())

def get_resource(path, none_if_undefined=False):
    try:
        return _get("/resources/get_value_interpolated/" + path.removeprefix("$res:"))
    except Exception:
        if none_if_undefined:
            return None
        raise

def get_variable(path):
    return _get("/variables/get_value/" + path.removeprefix("$var:"))

def get_workspace():
    return os.environ["WM_WORKSPACE"]
'''


class PythonScript:
    """A job runner that executes `main` of one .py file in a fresh interpreter."""

    is_async = True

    def __init__(self, path: Path, state: EmulatorState, shim_dir: Path, timeout: float = JOB_TIMEOUT) -> None:
        self.path = path
        self.state = state
        self.shim_dir = shim_dir
        self.timeout = timeout

    async def __call__(self, args: dict[str, Any], context: dict[str, Any]) -> Any:
        with tempfile.TemporaryDirectory(prefix="headrace-emulator-job-") as tmp:
            args_file, result_file = Path(tmp) / "args.json", Path(tmp) / "result.json"
            args_file.write_text(json.dumps(args), encoding="utf-8")
            env = {
                **os.environ,
                "BASE_INTERNAL_URL": str(context["base_url"]),
                "WM_WORKSPACE": str(context["workspace"]),
                "WM_JOB_ID": str(context["job_id"]),
                "WM_TOKEN": FAKE_JOB_TOKEN,
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _WRAPPER,
                str(self.path),
                str(args_file),
                str(result_file),
                str(self.shim_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=tmp,
            )
            try:
                logs, _ = await asyncio.wait_for(process.communicate(), self.timeout)
            except asyncio.CancelledError:  # the job was cancelled (W3): stop its process too
                process.kill()
                await process.wait()
                raise
            except TimeoutError:
                process.kill()
                await process.wait()
                raise JobFailed(
                    {"name": "Timeout", "message": f"job ran longer than {self.timeout:g}s", "stack": ""}
                ) from None
            context["logs"] = logs.decode("utf-8", "replace")[-LOG_LIMIT:]  # the job's logs (J1)
            if not result_file.exists():
                tail = logs.decode("utf-8", "replace")[-2000:]
                raise JobFailed({"name": "ExecutionErr", "message": f"the job died: {tail}", "stack": ""})
            result = json.loads(result_file.read_text(encoding="utf-8"))
            if process.returncode != 0:
                raise JobFailed(result)
            return result


def flow_input(args: dict[str, Any]) -> dict[str, Any]:
    """A kit flow's job: its steps are not run; it completes with `flow_input`, which holds every argument,
    declared or not (A5)."""
    return {"flow_input": args}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise RuntimeError("reading Windmill's .script.yaml and flow.yaml needs PyYAML: pip install pyyaml") from None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def load_kit(state: EmulatorState, folder: Path) -> list[Target]:
    """Add every script and flow under `folder` (a workspace in `wmill sync` layout) to the emulator."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    shim_dir = Path(tempfile.mkdtemp(prefix="headrace-emulator-wmill-"))
    (shim_dir / "wmill.py").write_text(_WMILL_SHIM, encoding="utf-8")
    added = []
    for meta in sorted(folder.rglob("*.script.yaml")):
        if "node_modules" in meta.parts:
            continue
        code = meta.with_name(meta.name.removesuffix(".script.yaml") + ".py")
        if not code.is_file():
            continue  # a TypeScript or other-language script: not run by the emulator
        data = _read_yaml(meta)
        path = code.relative_to(folder).with_suffix("").as_posix()
        schema = data.get("schema") if isinstance(data.get("schema"), dict) else None
        runner = PythonScript(code, state, shim_dir)
        summary = str(data.get("summary") or "")
        content = code.read_text("utf-8")
        added.append(state.add_target("script", path, runner, schema=schema, summary=summary, content=content))
    for meta in sorted(folder.rglob("*__flow/flow.yaml")):
        if "node_modules" in meta.parts:
            continue
        data = _read_yaml(meta)
        path = meta.parent.relative_to(folder).as_posix().removesuffix("__flow")
        schema = data.get("schema") if isinstance(data.get("schema"), dict) else None
        summary = str(data.get("summary") or "")
        value = data.get("value")
        # R9: a flow job fails at a step whose script has no lock
        steps = script_steps(value.get("modules") if isinstance(value, dict) else None)
        added.append(state.add_target("flow", path, flow_input, schema=schema, summary=summary, steps=steps))
    return added
