"""Reading headrace.toml: TOML, then secret references, then validation; every problem becomes one
ConfigError that names the file, the table and the key."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from headrace.config.secret import Secret, _resolve
from headrace.config.settings import Settings


class ConfigError(Exception):
    """A config problem a person can fix: names the file, the key and what to do."""


def _resolve_secrets(raw: dict[str, Any], environ: Mapping[str, str], base_dir: Path) -> None:
    """Replace secret strings (env:/file: references or literals) by Secret objects, naming the key on error."""

    def convert(value: Any, where: str) -> Secret:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string such as "env:NAME"')
        try:
            return Secret(_resolve(value, environ, base_dir))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    server = raw.get("server")
    if isinstance(server, dict) and "admin_token" in server:
        tokens = server["admin_token"]
        if isinstance(tokens, list):
            if not tokens:
                raise ConfigError(
                    "[server] admin_token: the list is empty; give one token or several (during a rotation), "
                    "or remove the key"
                )
            server["admin_token"] = [
                convert(item, f"[server] admin_token[{index}]") for index, item in enumerate(tokens)
            ]
        else:
            server["admin_token"] = convert(tokens, "[server] admin_token")
    for name, source in (raw.get("sources") or {}).items():
        if isinstance(source, dict) and isinstance(source.get("secrets"), list):
            source["secrets"] = [
                convert(item, f"[sources.{name}] secrets[{index}]") for index, item in enumerate(source["secrets"])
            ]
    for name, dest in (raw.get("destinations") or {}).items():
        if not isinstance(dest, dict):
            continue
        if "token" in dest:
            dest["token"] = convert(dest["token"], f"[destinations.{name}] token")
        if isinstance(dest.get("url"), str) and dest["url"].startswith(("env:", "file:")):
            try:
                dest["url"] = _resolve(dest["url"], environ, base_dir)
            except ValueError as exc:
                raise ConfigError(f"[destinations.{name}] url: {exc}") from None


def _location(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] in ("sources", "destinations"):
        table, key = f"[{parts[0]}.{parts[1]}]", parts[2:]
    elif parts and parts[0] == "server":
        table, key = "[server]", parts[1:]
    else:
        table, key = "", parts
    key_text = ".".join(k for k in key if not k.startswith("function-after"))
    return f"{table} {key_text}".strip() or "(top level)"


def parse(
    text: str,
    *,
    origin: str = "headrace.toml",
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    _resolve_secrets(raw, environ, base_dir or Path("."))
    raw["base_dir"] = base_dir or Path(".")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key; check the spelling against docs/configuration.md"
            elif error["type"] == "missing":
                message = "required key is missing"
            lines.append(f"  {_location(error['loc'])}: {message}")
        raise ConfigError(f"{origin} has {len(lines)} problem(s):\n" + "\n".join(lines)) from None


def load(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; create one with `headrace init -c {path}`") from None
    return parse(text, origin=str(path), environ=environ, base_dir=path.resolve().parent)
