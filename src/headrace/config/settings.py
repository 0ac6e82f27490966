"""Settings: the whole file (one [server], named sources and destinations), the checks across tables, and the
views derived from them (routing, paths relative to the config file)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, model_validator

from headrace.config.database import SQLITE_PREFIX, sqlite_file
from headrace.config.destinations import DestinationSettings
from headrace.config.limits import _Strict
from headrace.config.server import KEYGEN_COMMAND, ServerSettings
from headrace.config.sources import SourceSettings
from headrace.models import Route

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Settings(_Strict):
    server: ServerSettings = Field(default_factory=ServerSettings)  # type: ignore[arg-type]
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    destinations: dict[str, DestinationSettings] = Field(default_factory=dict)
    base_dir: Path = Field(Path("."), exclude=True)

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        for kind, names in (("sources", self.sources), ("destinations", self.destinations)):
            for name in names:
                if not _NAME.match(name):
                    raise ValueError(f"[{kind}.{name}]: names are 1-64 letters, digits, '-' or '_'")
        for name, dest in self.destinations.items():
            if dest.source not in self.sources:
                known = ", ".join(sorted(self.sources)) or "none defined"
                raise ValueError(f"[destinations.{name}] source = {dest.source!r} is not a [sources.NAME] ({known})")
        if self.server.database.startswith(SQLITE_PREFIX):
            try:
                sqlite_file(self.server.database, self.base_dir)
            except ValueError as exc:
                raise ValueError(f"[server] database = {exc}") from None
        if not self.server.admin_token and not self.server.is_loopback():
            raise ValueError(
                f"[server] listen = {self.server.listen!r} is not loopback: "
                f'set admin_token = "env:HEADRACE_ADMIN_TOKEN" (generate one with: {KEYGEN_COMMAND})'
            )
        return self

    def destinations_for(self, source: str, event_type: str) -> list[str]:
        return [
            name
            for name, dest in self.destinations.items()
            if dest.enabled and dest.source == source and dest.matches(event_type)
        ]

    def route(self, name: str) -> Route:
        """Destination `name` with its Windmill target, as the store needs it to derive job ids."""
        return Route(name, self.destinations[name].job_target)

    @property
    def pid_path(self) -> Path | None:
        if self.server.pid_file is None:
            return None
        path = Path(self.server.pid_file)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def sqlite_path(self) -> Path | None:
        if not self.server.database.startswith(SQLITE_PREFIX):
            return None
        return sqlite_file(self.server.database, self.base_dir)
