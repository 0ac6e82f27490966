"""The kit as Windmill sees it: signatures parsed by Windmill's own parser, metadata, flows, `wmill lint`."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .kitlib import KIT, SCRIPTS, run_kit_tool
from .test_kit_templates import HANDLED, documented_fields, run_many

pytestmark = pytest.mark.node

# Which kit scripts and flows take exactly the output of which built-in template.
PAIRS = {
    "payment": ["validate_payment", "record_payment"],
    "subscription": ["subscription_lifecycle"],
    "dispute": ["record_dispute"],
    "refund": ["record_refund"],
    "license_key": ["email_license_key"],
    "payout": ["record_payout"],
    "credit": ["record_credit"],
    "abandoned_checkout": ["email_checkout_recovery"],
    "dunning": ["email_dunning_notice"],
    "entitlement_grant": ["record_entitlement_grant"],
}
FLOWS = {
    "on_payment": "payment",
    "on_subscription": "subscription",
    "on_dispute": "dispute",
    "on_credit": "credit",
    "on_payout": "payout",
    "on_entitlement_grant": "entitlement_grant",
}
PARSER_TYPES = {"string": "str", "integer": "int", "boolean": "bool", "object": "object", "array": "list"}

PY_FILES = sorted(SCRIPTS.glob("*.py"))
FLOW_FILES = sorted(SCRIPTS.glob("*__flow/flow.yaml"))
SCHEDULE_FILES = sorted(SCRIPTS.glob("*.schedule.yaml"))


@pytest.fixture(scope="module")
def signatures() -> dict[str, Any]:
    parsed = run_kit_tool({"op": "parse_python", "files": [str(p) for p in PY_FILES]})
    return {Path(path).stem: sig for path, sig in parsed.items()}


@pytest.fixture(scope="module")
def metadata() -> dict[str, Any]:
    files = [str(p) for p in sorted(SCRIPTS.glob("*.script.yaml"))] + [str(p) for p in FLOW_FILES]
    return run_kit_tool({"op": "load_yaml", "files": files})


def kind_of(typ: Any) -> str:
    if isinstance(typ, str):
        return typ
    return next(iter(typ))


def is_resource(arg: dict[str, Any]) -> bool:
    return isinstance(arg["typ"], dict) and "resource" in arg["typ"]


def test_every_script_has_metadata_and_a_main(signatures: dict[str, Any]) -> None:
    assert len(PY_FILES) >= 15
    for path in PY_FILES:
        assert path.with_suffix(".script.yaml").is_file(), f"{path.name} has no .script.yaml"
        assert signatures[path.stem].get("args") is not None, f"{path.name}: Windmill cannot parse main()"


@pytest.mark.parametrize(("template", "script"), [(t, s) for t, scripts in PAIRS.items() for s in scripts])
def test_script_arguments_are_exactly_the_template_output(template: str, script: str, signatures: dict[str, Any]):
    fields = documented_fields(template)
    args = {a["name"]: a for a in signatures[script]["args"] if not is_resource(a)}
    assert set(args) == set(fields), (
        f"{script}.py main() minus resources differs from builtin:{template}: "
        f"missing {sorted(set(fields) - set(args))}, extra {sorted(set(args) - set(fields))}"
    )
    for name, (kind, nullable) in fields.items():
        assert kind_of(args[name]["typ"]) == PARSER_TYPES[kind], f"{script}.{name}: {args[name]['typ']} vs {kind}"
        if nullable:
            assert args[name]["has_default"], f"{script}.{name} may be null, so it needs a default"
    # Windmill passes None for a missing required argument and drops unknown ones: check the real outputs.
    for event_type, webhook in zip(
        HANDLED[template], run_many([(template, e) for e in HANDLED[template]]), strict=True
    ):
        for name, arg in args.items():
            if not arg["has_default"]:
                assert webhook["payload"].get(name) is not None, f"{script}: required {name} is null for {event_type}"


def test_resource_arguments_default_to_kit_resource_paths(signatures: dict[str, Any]) -> None:
    resources = {}
    for script, sig in signatures.items():
        for arg in sig["args"]:
            if is_resource(arg):
                assert arg["has_default"] and str(arg["default"]).startswith("$res:f/dodo/"), (script, arg)
                resources[arg["default"]] = arg["typ"]["resource"]
    assert resources == {
        "$res:f/dodo/db": "postgresql",
        "$res:f/dodo/mysql": "mysql",
        "$res:f/dodo/slack": "slack",
        "$res:f/dodo/smtp": "smtp",
        "$res:f/dodo/twilio": "twilio",
        "$res:f/dodo/hubspot": "hubspot",
        "$res:f/dodo/segment": "segment",
    }
    readme = (KIT / "README.md").read_text()
    for path, kind in resources.items():
        assert path.removeprefix("$res:") in readme and kind in readme, f"README does not explain {path} ({kind})"


def test_script_yaml_schema_matches_the_signature(signatures: dict[str, Any], metadata: dict[str, Any]) -> None:
    for path in PY_FILES:
        meta = metadata[str(path.with_suffix(".script.yaml"))]
        assert meta["kind"] == "script" and meta["summary"] and "lock" in meta
        schema, args = meta["schema"], signatures[path.stem]["args"]
        assert set(schema["properties"]) == {a["name"] for a in args}, path.name
        assert schema["required"] == [a["name"] for a in args if not a["has_default"]], path.name
        for arg in args:
            prop = schema["properties"][arg["name"]]
            if is_resource(arg):
                assert prop["format"] == f"resource-{arg['typ']['resource']}"
                assert prop["default"] == arg["default"]


def test_flows_are_valid_windmill_yaml() -> None:
    files = [{"path": str(p), "type": "flow"} for p in FLOW_FILES]
    files += [{"path": str(p), "type": "schedule"} for p in SCHEDULE_FILES]
    assert {p.parent.name for p in FLOW_FILES} == {f"{name}__flow" for name in FLOWS}
    errors = run_kit_tool({"op": "validate_yaml", "files": files})
    assert errors == {f["path"]: [] for f in files}


def test_the_validator_does_reject_a_broken_flow(tmp_path: Path) -> None:
    broken = tmp_path / "flow.yaml"
    broken.write_text("summary: x\nvalue:\n  modules:\n    - id: a\n      value:\n        type: script\n")
    errors = run_kit_tool({"op": "validate_yaml", "files": [{"path": str(broken), "type": "flow"}]})
    assert errors[str(broken)], "windmill-yaml-validator accepted a script step without a path"


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_flow_inputs_are_the_template_output_and_steps_get_every_argument(
    flow: str, signatures: dict[str, Any], metadata: dict[str, Any]
) -> None:
    doc = metadata[str(SCRIPTS / f"{flow}__flow" / "flow.yaml")]
    assert set(doc["schema"]["properties"]) == set(documented_fields(FLOWS[flow]))
    modules = [*doc["value"]["modules"], doc["value"]["failure_module"]]
    assert doc["value"]["failure_module"]["id"] == "failure"
    for module in modules:
        value = module["value"]
        script = value["path"].removeprefix("f/dodo/")
        names = {a["name"] for a in signatures[script]["args"]}
        assert set(value["input_transforms"]) == names, f"{flow}.{module['id']} does not set exactly {script}'s args"
        for name, transform in value["input_transforms"].items():
            if transform["type"] == "javascript" and transform["expr"].startswith("flow_input."):
                field = transform["expr"].removeprefix("flow_input.")
                assert field in doc["schema"]["properties"], f"{flow}.{module['id']}.{name} reads unknown {field}"
    retried = [m["id"] for m in doc["value"]["modules"] if "retry" in m]
    assert retried, f"{flow} has no step retries"


def test_wmill_lint_passes_offline() -> None:
    wmill = KIT / "node_modules" / ".bin" / "wmill"
    if not wmill.exists():
        pytest.fail("kit/node_modules is missing: run `cd kit && npm install`")
    done = subprocess.run(
        [str(wmill), "lint", "--json", "--fail-on-warn"],
        cwd=KIT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": str(Path(shutil.which("node") or "node").parent), "HOME": str(KIT / "node_modules" / ".home")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout[done.stdout.index("{") :])
    assert report["success"] and report["issues"] == [] and report["warnings"] == [], report
    assert report["validatedFiles"] == len(FLOW_FILES) + len(SCHEDULE_FILES), report


# CONTRACT C1-C4 (docs/windmill-contract.md): the layout `wmill sync push` reads, checked offline.

WMILL_CLI = KIT / "node_modules" / "windmill-cli" / "esm" / "main.js"
OPENFLOW = KIT / "node_modules" / "windmill-yaml-validator" / "dist" / "gen" / "openflow.json"
STANDARD_RESOURCE_TYPES = {"postgresql", "mysql", "slack", "smtp", "hubspot"}  # windmill-common lib.rs, migrations


def wmill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    binary = KIT / "node_modules" / ".bin" / "wmill"
    if not binary.exists():
        pytest.fail("kit/node_modules is missing: run `cd kit && npm install`")
    return subprocess.run(
        [str(binary), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": str(Path(shutil.which("node") or "node").parent), "HOME": str(cwd)},
    )


def test_contract_C1_scripts_and_flows_are_in_the_non_dotted_layout() -> None:
    config = run_kit_tool({"op": "load_yaml", "files": [str(KIT / "wmill.yaml")]})[str(KIT / "wmill.yaml")]
    assert config["nonDottedPaths"] is True
    cli = WMILL_CLI.read_text("utf-8")
    assert 'flow: "__flow"' in cli and 'flow: { yaml: "flow.yaml"' in cli  # the CLI's own non-dotted names
    for path in PY_FILES:
        assert path.with_suffix(".script.yaml").is_file(), path
    flows = [p for p in SCRIPTS.iterdir() if p.is_dir()]
    assert flows and all(p.name.endswith("__flow") and (p / "flow.yaml").is_file() for p in flows), flows
    assert not list(KIT.glob("f/**/*.flow")), "a dotted flow folder is not read with nonDottedPaths: true"


def test_contract_C2_every_folder_has_a_folder_meta_yaml_that_never_rewrites_the_folder(tmp_path: Path) -> None:
    folders = [p for p in (KIT / "f").iterdir() if p.is_dir()]
    assert [p.name for p in folders] == ["dodo"]
    done = wmill("folder", "new", "dodo", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    files = [str(tmp_path / "f" / "dodo" / "folder.meta.yaml"), str(SCRIPTS / "folder.meta.yaml")]
    written, ours = (run_kit_tool({"op": "load_yaml", "files": files})[f] for f in files)
    # `wmill folder new` writes owners: [] and extra_perms: {}; pushed over an existing folder those replace its
    # owners and permissions (C5). The kit's file is the empty mapping: the push creates a missing folder and
    # compares only the fields present, so it never changes one (tests/kit/test_kit_sync_push.py).
    assert {"owners", "extra_perms"} <= set(written) and ours == {}
    readme = (KIT / "README.md").read_text("utf-8")
    assert "folder.meta.yaml" in readme and "non-admin" in readme


def test_contract_C2_the_cli_refuses_a_folder_without_meta_for_non_admins() -> None:
    cli = WMILL_CLI.read_text("utf-8")
    check = cli[cli.index("const missingFolders = [];") :]
    check = check[: check.index("process.exit(1);") + 20]
    assert 'path14.join("f", folderName, "folder.meta.yaml")' in check and "if (!userIsAdmin)" in check


def test_contract_C3_directives_and_openflow_fields_are_real(metadata: dict[str, Any]) -> None:
    for path in PY_FILES:
        lines = path.read_text("utf-8").splitlines()
        if any(line.startswith("# extra_requirements:") for line in lines):
            assert lines[0] == "# extra_requirements:", f"{path.name}: the directive must open the file"
    openflow = OPENFLOW.read_text("utf-8")
    used = {"failure_module", "random_factor", "skip_if", "continue_on_error"}
    flows_text = "".join(p.read_text("utf-8") for p in FLOW_FILES)
    for field in used:
        assert f'"{field}"' in openflow, f"{field} is not in Windmill's OpenFlow schema"
    assert "failure_module" in flows_text and "random_factor" in flows_text


def test_contract_C4_resource_types_are_standard_or_documented(metadata: dict[str, Any]) -> None:
    readme = (KIT / "README.md").read_text("utf-8")
    used = set()
    for meta in metadata.values():
        for prop in (meta.get("schema") or {}).get("properties", {}).values():
            fmt = prop.get("format", "")
            if fmt.startswith("resource-"):
                used.add(fmt.removeprefix("resource-"))
    assert used & STANDARD_RESOURCE_TYPES == STANDARD_RESOURCE_TYPES
    assert used - STANDARD_RESOURCE_TYPES == {"twilio", "segment"}
    for kind in used - STANDARD_RESOURCE_TYPES:  # twilio, segment: unconfirmed as standard types
        assert f"`{kind}`" in readme and "Add resource type" in readme, f"README does not say how to add {kind}"
