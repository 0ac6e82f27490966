"""CONTRACT C5: the README's `wmill sync push`, run with the real windmill-cli, destroys nothing it did not bring.

The workspace already holds someone else's folder `f/other` (a script, a flow, a schedule, a plain variable), the
user's resources `f/dodo/db` and `f/dodo/slack` with the secret variable the database resource references, the
user's own script, flow and schedule in the kit's folder, a resource type the user added (`twilio`, as the kit
README says) and the folder `f/dodo` owned by the user (with a group's write permission). A dry run must list no
deletion and no change to any of it; the real push must send no DELETE, write only the kit's own items, and
leave every one of those items as it was. Every request the CLI makes is recorded and answered.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .kitlib import KIT
from .workspace_stand_in import Workspace, serving

WORKSPACE = "acme"
SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {}, "required": []}


def seeded() -> Workspace:
    ws = Workspace(WORKSPACE)
    ws.put("folder", "other", {"summary": "Team B", "display_name": "other", "owners": ["u/bob"], "extra_perms": {}})
    ws.put(
        "folder", "dodo", {"summary": "", "display_name": "dodo", "owners": ["u/alice"], "extra_perms": {"g/ops": True}}
    )
    script = {"summary": "", "description": "", "schema": SCHEMA, "lock": "", "kind": "script", "language": "python3"}
    ws.put("script", "f/other/job", {**script, "content": "def main():\n    return 'team b'\n"})
    ws.put("script", "f/dodo/my_report", {**script, "content": "def main():\n    return 'mine'\n"})
    for flow in ("f/other/nightly", "f/dodo/my_flow"):  # someone else's flow, and one of the user's beside the kit
        ws.put("flow", flow, {"summary": "", "description": "", "schema": SCHEMA, "value": {"modules": []}})
    schedule = {"schedule": "0 0 * * * *", "timezone": "UTC", "enabled": True, "is_flow": False, "args": {}}
    ws.put("schedule", "f/other/hourly", {**schedule, "script_path": "f/other/job"})
    ws.put("schedule", "f/dodo/my_hourly", {**schedule, "script_path": "f/dodo/my_report"})
    ws.put(
        "variable",
        "f/other/config",
        {
            "value": "team b",
            "is_secret": False,
            "description": "",
            "account": None,
            "is_oauth": False,
            "expires_at": None,
        },
    )
    ws.put(
        "variable",
        "f/dodo/db_password",
        {
            "value": "encrypted-by-windmill",
            "is_secret": True,
            "description": "",
            "account": None,
            "is_oauth": False,
            "expires_at": None,
        },
    )
    ws.put(
        "resource",
        "f/dodo/db",
        {
            "resource_type": "postgresql",
            "description": "",
            "value": {
                "host": "db.internal",
                "port": 5432,
                "user": "app",
                "dbname": "shop",
                "sslmode": "require",
                "password": "$var:f/dodo/db_password",
            },
        },
    )
    ws.put(
        "resource",
        "f/dodo/slack",
        {"resource_type": "slack", "description": "", "value": {"token": "$var:f/dodo/db_password"}},
    )
    ws.put(
        "resource_type",
        "twilio",
        {
            "schema": {"type": "object", "properties": {"account_sid": {"type": "string"}}},
            "description": "added by hand",
            "format_extension": None,
            "is_fileset": False,
        },
    )
    return ws


def kit_copy(tmp_path: Path, wmill_yaml: str | None = None) -> Path:
    """The kit as a user has it after `git clone` (scripts, flows, wmill.yaml), in a throwaway directory."""
    root = tmp_path / "kit"
    shutil.copytree(KIT / "f", root / "f")
    (root / "wmill.yaml").write_text(wmill_yaml if wmill_yaml is not None else (KIT / "wmill.yaml").read_text())
    return root


def wmill(cwd: Path, base_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    binary = KIT / "node_modules" / ".bin" / "wmill"
    if not binary.exists():
        pytest.fail("kit/node_modules is missing: run `cd kit && npm install` (make install-dev does it)")
    home = cwd.parent / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [str(binary), "--base-url", base_url, "--token", "not-a-real-token", "--workspace", WORKSPACE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": str(Path(shutil.which("node") or "node").parent), "HOME": str(home), "NO_COLOR": "1"},
    )


def kit_items(root: Path) -> set[str]:
    """Remote paths of the kit's own scripts, flows and schedules (what the push may create or update)."""
    out = set()
    for path in (root / "f").rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel.endswith(".script.yaml"):
            out.add(rel.removesuffix(".script.yaml"))
        elif rel.endswith("__flow/flow.yaml"):
            out.add(rel.removesuffix("__flow/flow.yaml"))
        elif rel.endswith(".schedule.yaml"):
            out.add(rel.removesuffix(".schedule.yaml"))
    return out


def dry_run_changes(root: Path, base_url: str) -> list[dict[str, Any]]:
    done = wmill(root, base_url, "sync", "push", "--dry-run", "--json-output")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout[done.stdout.index("{") :])
    changes: list[dict[str, Any]] = report["changes"]
    return changes


def test_contract_C5_a_dry_run_lists_nothing_of_theirs(tmp_path: Path) -> None:
    ws = seeded()
    root = kit_copy(tmp_path)
    with serving(ws) as base_url:
        changes = dry_run_changes(root, base_url)
    deletions = [c["path"] for c in changes if c["type"] == "deleted"]
    assert deletions == [], f"the dry run would delete: {deletions}"
    kit = kit_items(root)
    foreign = [c for c in changes if _item_of(c["path"]) not in kit]
    # The folder shows as "edited" because the remote one has owners the (empty) local file does not name; the
    # push compares only the local fields and sends nothing for it (next test: no folders/update).
    assert foreign == [{"type": "edited", "path": "f/dodo/folder.meta.yaml"}], foreign
    assert ws.writes() == [], ws.writes()


def test_contract_C5_the_stand_in_does_show_the_deletions_of_a_folder_wide_sync(tmp_path: Path) -> None:
    """The kit's wmill.yaml before the fix (`includes: f/**`, resources and variables synced): everything goes."""
    config = (KIT / "wmill.yaml").read_text()
    start, end = config.index("includes:"), config.index("excludes:")
    old = config[:start] + 'includes:\n  - "f/**"\n' + config[end:]
    for flag in ("skipVariables", "skipResources", "skipResourceTypes"):
        old = old.replace(f"{flag}: true", f"{flag}: false")
    ws = seeded()
    with serving(ws) as base_url:
        changes = dry_run_changes(kit_copy(tmp_path, old), base_url)
    deleted = {_item_of(c["path"]) for c in changes if c["type"] == "deleted"}
    assert {"f/dodo/db", "f/dodo/slack", "f/dodo/my_report", "f/dodo/my_flow", "f/dodo/my_hourly"} <= deleted
    assert {"f/other/job", "f/other/nightly", "f/other/hourly", "f/other/config", "twilio"} <= deleted


def test_contract_C5_a_real_push_sends_no_delete_and_changes_nothing_of_theirs(tmp_path: Path) -> None:
    ws = seeded()
    before = ws.snapshot()
    root = kit_copy(tmp_path)
    with serving(ws) as base_url:
        done = wmill(root, base_url, "sync", "push", "--yes")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    deletes = [r for r in ws.requests if r[0] == "DELETE"]
    assert deletes == [], f"the push sent DELETE: {deletes}"
    kit = kit_items(root)
    for method, url, body in ws.writes():
        target = (body or {}).get("path") if isinstance(body, dict) else None
        assert target in kit, f"the push wrote something that is not the kit's: {method} {url} {str(body)[:200]}"
    after = ws.snapshot()
    for key, item in before.items():
        assert after.get(key) == item, f"{key} changed: {item} -> {after.get(key)}"
    created = {path for (kind, path) in after if (kind, path) not in before}
    assert created == kit, created ^ kit  # the whole kit arrived
    assert ws.unanswered == [], f"the stand-in did not answer: {ws.unanswered}"


def test_contract_C5_on_an_empty_workspace_the_push_creates_the_folder_and_the_kit(tmp_path: Path) -> None:
    ws = Workspace(WORKSPACE)
    root = kit_copy(tmp_path)
    with serving(ws) as base_url:
        done = wmill(root, base_url, "sync", "push", "--yes")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert ("POST", f"/api/w/{WORKSPACE}/folders/create", {"name": "dodo"}) in ws.requests
    assert {path for (kind, path) in ws.items if kind != "folder"} == kit_items(root)
    assert [r for r in ws.requests if r[0] == "DELETE"] == [] and ws.unanswered == []


def test_contract_C5_the_includes_name_exactly_the_kit_items() -> None:
    """One include per kit script (`NAME.*`), flow (`NAME__flow/**`) and schedule; no folder-wide glob."""
    config = (KIT / "wmill.yaml").read_text()
    block = config[config.index("includes:") : config.index("excludes:")]
    includes = {line.strip().removeprefix("- ").strip('"') for line in block.splitlines()[1:] if line.strip()}
    expected = {"f/dodo/folder.meta.yaml"}
    for path in kit_items(KIT):
        if (KIT / f"{path}__flow").is_dir():
            expected.add(f"{path}__flow/**")
        elif (KIT / f"{path}.schedule.yaml").is_file():
            expected.add(f"{path}.schedule.yaml")
        else:
            expected.add(f"{path}.*")
    assert includes == expected, f"missing: {sorted(expected - includes)}; not kit items: {sorted(includes - expected)}"
    for flag in ("skipVariables", "skipResources", "skipResourceTypes", "skipSecrets", "skipWorkspaceDependencies"):
        assert f"\n{flag}: true\n" in config, flag


def _item_of(path: str) -> str:
    """The remote item a changed file belongs to: f/dodo/x.py and f/dodo/x.script.yaml -> f/dodo/x."""
    if "__flow/" in path:
        return path.split("__flow/")[0]
    for suffix in (".script.yaml", ".schedule.yaml", ".resource.yaml", ".variable.yaml", ".resource-type.yaml", ".py"):
        if path.endswith(suffix):
            return path.removesuffix(suffix)
    return path
