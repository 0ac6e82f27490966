"""The Windmill kit as files (kit/f/dodo/...: scripts, flows, a schedule, in `wmill sync` layout), read into what
the deployment API takes, moved into the folder the user chose (`f/dodo/...` -> `f/FOLDER/...` everywhere:
paths, flow steps, `$res:` defaults, script text).

Where the kit is: `--kit DIR`; else beside the package in a source checkout or an editable install
(`<repo>/kit`); else in a wheel's data files (`<prefix>/share/headrace/kit`, pyproject `data-files`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from headrace.files import NotRegular, TooLarge, read_at_most

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


KIT_FOLDER = "dodo"
KIT_FILE_LIMIT = 1_048_576  # bytes per kit file: the kit is small text, not data


class KitError(Exception):
    """The kit folder is missing or one of its files cannot be read; names the file."""


@dataclass(frozen=True)
class KitScript:
    path: str
    body: dict[str, Any]  # scripts/create fields: summary, description, content, language, schema, kind


@dataclass(frozen=True)
class KitFlow:
    path: str
    body: dict[str, Any]  # flows/create fields: summary, description, value, schema


@dataclass(frozen=True)
class Kit:
    folder: str
    scripts: tuple[KitScript, ...]
    flows: tuple[KitFlow, ...]
    schedules: tuple[tuple[str, dict[str, Any]], ...]
    summary: str = ""
    sql: dict[str, Path] = field(default_factory=dict)  # dialect -> table definitions


def find_kit(given: str | Path | None = None) -> Path:
    """The kit's root folder (the one holding f/dodo)."""
    if given is not None:
        candidates = [Path(given)]
    else:
        candidates = [Path(__file__).resolve().parents[3] / "kit", Path(sys.prefix) / "share" / "headrace" / "kit"]
    for candidate in candidates:
        if (candidate / "f" / KIT_FOLDER).is_dir():
            return candidate
    where = ", ".join(str(c) for c in candidates)
    raise KitError(f"no Windmill kit (f/{KIT_FOLDER}/) in {where}; give --kit DIR (the kit/ folder of headrace)")


def _read(path: Path) -> str:
    try:
        return read_at_most(path, KIT_FILE_LIMIT).decode("utf-8")
    except (TooLarge, NotRegular) as exc:
        raise KitError(str(exc)) from None
    except OSError as exc:
        raise KitError(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KitError(f"{path}: not UTF-8 text") from None


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise KitError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise KitError(f"{path}: expected a mapping at the top")
    return data


def _moved(value: Any, folder: str) -> Any:
    """`value` with every `f/dodo/` in its strings turned into `f/FOLDER/`."""
    if folder == KIT_FOLDER:
        return value
    if isinstance(value, str):
        return value.replace(f"f/{KIT_FOLDER}/", f"f/{folder}/")
    if isinstance(value, dict):
        return {key: _moved(item, folder) for key, item in value.items()}
    if isinstance(value, list):
        return [_moved(item, folder) for item in value]
    return value


_LANGUAGES = {".py": "python3", ".ts": "bun"}


def read_kit(root: Path, folder: str = KIT_FOLDER) -> Kit:
    """Every script, flow and schedule under `root/f/dodo`, as deployed into `f/<folder>`."""
    source = root / "f" / KIT_FOLDER
    scripts = []
    for meta in sorted(source.glob("*.script.yaml")):
        stem = meta.name.removesuffix(".script.yaml")
        code = next((source / f"{stem}{s}" for s in _LANGUAGES if (source / f"{stem}{s}").is_file()), None)
        if code is None:
            raise KitError(f"{meta}: no {stem}.py or {stem}.ts beside it")
        data = _yaml(meta)
        body = {
            "summary": str(data.get("summary") or ""),
            "description": str(data.get("description") or ""),
            "content": _read(code),
            "language": _LANGUAGES[code.suffix],
            "schema": data.get("schema"),
            "kind": str(data.get("kind") or "script"),
        }
        scripts.append(KitScript(f"f/{folder}/{stem}", _moved(body, folder)))
    flows = []
    for meta in sorted(source.glob("*__flow/flow.yaml")):
        data = _yaml(meta)
        body = {key: data.get(key) for key in ("summary", "description", "value", "schema")}
        body["summary"], body["description"] = str(body["summary"] or ""), str(body["description"] or "")
        flows.append(KitFlow(f"f/{folder}/{meta.parent.name.removesuffix('__flow')}", _moved(body, folder)))
    schedules = []
    for meta in sorted(source.glob("*.schedule.yaml")):
        name = meta.name.removesuffix(".schedule.yaml")
        schedules.append((f"f/{folder}/{name}", _moved(_yaml(meta), folder)))
    folder_meta = source / "folder.meta.yaml"
    summary = str(_yaml(folder_meta).get("summary") or "") if folder_meta.is_file() else ""
    sql = {path.stem: path for path in sorted((root / "sql").glob("*.sql"))}
    return Kit(folder, tuple(scripts), tuple(flows), tuple(schedules), summary, sql)


@dataclass(frozen=True)
class KitDestination:
    """One headrace destination `connect windmill` writes: which events go to which kit target, reshaped by
    which built-in template (transform/builtin/NAME.js)."""

    name: str
    events: tuple[str, ...]
    kind: str  # "flow" or "script"
    target: str  # the kit name under f/<folder>/
    template: str


# The one table of what the kit handles. A new kit automation is one more row.
DESTINATIONS = (
    KitDestination("payments", ("payment.*",), "flow", "on_payment", "payment"),
    KitDestination("subscriptions", ("subscription.*",), "flow", "on_subscription", "subscription"),
    KitDestination("disputes", ("dispute.*",), "flow", "on_dispute", "dispute"),
    KitDestination("refunds", ("refund.*",), "script", "record_refund", "refund"),
    KitDestination("license_keys", ("license_key.*",), "script", "email_license_key", "license_key"),
    KitDestination("payouts", ("payout.*",), "flow", "on_payout", "payout"),
    KitDestination("credits", ("credit.*",), "flow", "on_credit", "credit"),
    KitDestination(
        "abandoned_checkouts", ("abandoned_checkout.*",), "script", "email_checkout_recovery", "abandoned_checkout"
    ),
    KitDestination("dunning", ("dunning.*",), "script", "email_dunning_notice", "dunning"),
    KitDestination("entitlement_grants", ("entitlement_grant.*",), "flow", "on_entitlement_grant", "entitlement_grant"),
)


@dataclass(frozen=True)
class KitResource:
    """A resource the kit's code reads (a `$res:` default or flow input): its path, its resource type, and the
    kit automations (DESTINATIONS names) whose runs read it."""

    path: str
    resource_type: str
    destinations: tuple[str, ...]


RES_PREFIX = "$res:"


def _script_resources(script: KitScript) -> dict[str, tuple[str, str]]:
    """argument name -> (resource path, resource type) for every argument whose default is `$res:PATH`."""
    schema = script.body.get("schema") or {}
    found = {}
    for name, spec in (schema.get("properties") or {}).items():
        default = spec.get("default") if isinstance(spec, dict) else None
        if isinstance(default, str) and default.startswith(RES_PREFIX):
            kind = str(spec.get("format") or "").removeprefix("resource-")
            found[name] = (default.removeprefix(RES_PREFIX), kind)
    return found


def _flow_resources(value: Any, scripts: dict[str, dict[str, tuple[str, str]]]) -> set[tuple[str, str]]:
    """(path, type) of every resource a flow's steps read: a static `$res:` input (typed by the called script's
    argument), or a called kit script's `$res:` default the step does not set."""
    found: set[tuple[str, str]] = set()
    if isinstance(value, list):
        for item in value:
            found |= _flow_resources(item, scripts)
    elif isinstance(value, dict):
        if value.get("type") == "script" and isinstance(value.get("input_transforms"), dict):
            own = scripts.get(str(value.get("path")), {})
            inputs = value["input_transforms"]
            for name, (path, kind) in own.items():
                given = inputs.get(name)
                if given is None:
                    found.add((path, kind))
            for name, given in inputs.items():
                static = given.get("value") if isinstance(given, dict) else None
                if isinstance(static, str) and static.startswith(RES_PREFIX):
                    found.add((static.removeprefix(RES_PREFIX), own.get(name, ("", ""))[1]))
        for item in value.values():
            found |= _flow_resources(item, scripts)
    return found


def kit_resources(kit: Kit) -> tuple[KitResource, ...]:
    """Every resource the kit reads, read from the kit's files (script schemas and flow steps), with the
    automations that need it. The user creates these (their values are secrets); `f/FOLDER/db` is the one
    `connect windmill --database` creates."""
    scripts = {script.path: _script_resources(script) for script in kit.scripts}
    flows = {flow.path: _flow_resources(flow.body.get("value"), scripts) for flow in kit.flows}
    types: dict[str, str] = {}
    users: dict[str, set[str]] = {}
    for resources in [*flows.values(), *(set(args.values()) for args in scripts.values())]:
        for path, kind in resources:
            types[path] = types.get(path) or kind
            users.setdefault(path, set())
    for row in DESTINATIONS:
        target = f"f/{kit.folder}/{row.target}"
        read = flows.get(target, set()) if row.kind == "flow" else set(scripts.get(target, {}).values())
        for path, _ in read:
            users[path].add(row.name)
    order = [row.name for row in DESTINATIONS]
    return tuple(KitResource(path, types[path], tuple(sorted(users[path], key=order.index))) for path in sorted(types))
