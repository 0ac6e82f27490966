"""Helpers for the Windmill kit tests: paths, the kit's scripts as modules, the Node tool."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "kit"
SCRIPTS = KIT / "f" / "dodo"
TEMPLATES = ROOT / "src" / "headrace" / "transform" / "builtin"
SAMPLES = ROOT / "src" / "headrace" / "dodo" / "samples" / "data"
TOOL = Path(__file__).parent / "js" / "kit_tool.mjs"

PG_TABLES = [
    "dodo_customers",
    "dodo_ledger",
    "dodo_payment_subscriptions",
    "dodo_subscriptions",
    "dodo_subscription_events",
    "dodo_inventory",
    "dodo_inventory_movements",
    "dodo_daily_metrics",
    "dodo_payouts",
    "dodo_payout_events",
    "dodo_notifications",
    "dodo_credit_events",
    "dodo_entitlement_grants",
    "dodo_entitlement_grant_events",
]


def load_script(name: str) -> ModuleType:
    """Import kit/f/dodo/<name>.py as a fresh module (Windmill runs each script on its own)."""
    path = SCRIPTS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"kit_script_{name}_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_kit_tool(request: dict[str, Any]) -> Any:
    if not (KIT / "node_modules" / "windmill-parser-wasm-py").is_dir():
        pytest.fail("kit/node_modules is missing: run `cd kit && npm install` (make install-dev does it)")
    done = subprocess.run(
        ["node", str(TOOL)], input=json.dumps(request), capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"kit_tool.mjs failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def sample(event_type: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SAMPLES / f"{event_type}.json").read_text())
    return body


def shape(template: str, event_type: str, webhook_id: str, timestamp: str | None = None, **data: Any) -> Any:
    """Run a built-in template (in Node) on a sample with `data` fields overridden; return its payload."""
    body = sample(event_type)
    body["data"].update(data)
    if timestamp is not None:
        body["timestamp"] = timestamp
    case = {"template": str(TEMPLATES / f"{template}.js"), "event_type": event_type, "body": body}
    [result] = run_kit_tool({"op": "templates", "cases": [{**case, "webhook_id": webhook_id}]})
    assert result["ok"], result["error"]
    return result["webhook"]["payload"]
