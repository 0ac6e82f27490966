"""Reading headrace.toml: TOML, then secret references, then validation; every problem becomes one
ConfigError that names the file, the table and the key.

`need_secrets=False` is for the commands that only need the database (db status/migrate/prune/copy, backup, events,
replay, `check --config-only`): on a systemd install the secrets live in the unit's EnvironmentFile, not in an
operator's shell. A secret reference that cannot be resolved then becomes an `Unresolved` secret: a random value
of the right form (so the rest of the file is validated as usual) that matches nothing — a process that used it
would refuse every webhook and every token, never accept one. A secret that is set is checked as always."""

from __future__ import annotations

import base64
import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from headrace.config.secret import Secret, _resolve
from headrace.config.settings import Settings
from headrace.files import NotRegular, TooLarge, read_at_most

CONFIG_SIZE_LIMIT = 1_048_576  # bytes: a config larger than this is not one a person wrote


class ConfigError(Exception):
    """A config problem a person can fix: names the file, the key and what to do."""


class Unresolved(Secret):
    """A secret reference this command did not need and could not resolve (see the module docstring)."""

    __slots__ = ("reference",)

    def __init__(self, reference: str, signing: bool) -> None:
        random = "whsec_" + base64.b64encode(os.urandom(32)).decode() if signing else secrets.token_urlsafe(32)
        super().__init__(random)
        self.reference = reference


def _resolve_secrets(raw: dict[str, Any], environ: Mapping[str, str], base_dir: Path, *, needed: bool) -> None:
    """Replace secret strings (env:/file: references or literals) by Secret objects, naming the key on error;
    unless `needed`, a reference that cannot be resolved becomes `Unresolved`."""

    def convert(value: Any, where: str, signing: bool = False) -> Secret:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string such as "env:NAME"')
        try:
            return Secret(_resolve(value, environ, base_dir))
        except ValueError as exc:
            if not needed and value.startswith(("env:", "file:")):
                return Unresolved(value, signing)
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
                convert(item, f"[sources.{name}] secrets[{index}]", signing=True)
                for index, item in enumerate(source["secrets"])
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
    need_secrets: bool = True,
) -> Settings:
    """The settings `text` holds; `need_secrets=False`: see the module docstring."""
    environ = os.environ if environ is None else environ
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
    _resolve_secrets(raw, environ, base_dir or Path("."), needed=need_secrets)
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


def load(path: str | Path, environ: Mapping[str, str] | None = None, *, need_secrets: bool = True) -> Settings:
    path = Path(path)
    try:
        text = read_at_most(path, CONFIG_SIZE_LIMIT).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; create one with `headrace init -c {path}`") from None
    except TooLarge:
        raise ConfigError(f"cannot read {path}: larger than {CONFIG_SIZE_LIMIT} bytes; is it the right file?") from None
    except NotRegular:
        raise ConfigError(f"cannot read {path}: not a regular file (a FIFO, a device or a directory)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {path}: not UTF-8 text") from None
    return parse(text, origin=str(path), environ=environ, base_dir=path.resolve().parent, need_secrets=need_secrets)


def unresolved_references(settings: Settings) -> list[str]:
    """Where the file names a secret this process could not resolve (only with need_secrets=False): the key and
    the reference (`env:NAME`, `file:PATH`), never a value."""
    found = [("[server] admin_token", t) for t in settings.server.admin_token]
    found += [(f"[sources.{name}] secrets", t) for name, source in settings.sources.items() for t in source.secrets]
    found += [(f"[destinations.{name}] token", d.token) for name, d in settings.destinations.items() if d.token]
    return [f"{key} ({secret.reference})" for key, secret in found if isinstance(secret, Unresolved)]
