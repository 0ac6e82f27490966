"""What a config reload (SIGHUP, `systemctl reload`) may change, decided in one place.

Everything under [sources.*] and [destinations.*] changes on reload, and so do the [server] keys in
RELOADABLE (the admin tokens, open_management, trusted_proxies, body_timeout, shutdown_grace): each is read
where it is used, per request or per attempt. The other [server] keys are fixed for the life of the
process (a bound socket, an open store, a started worker, sized pools and tables): a reload that changes one
keeps the running value and says that a restart is needed. `merge` is pure; app.py applies its result.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from headrace.config import ConfigError, ServerSettings, Settings

RELOADABLE = frozenset({"admin_token", "open_management", "trusted_proxies", "body_timeout", "shutdown_grace"})
RESTART_ONLY = tuple(name for name in ServerSettings.model_fields if name not in RELOADABLE)


@dataclass(frozen=True)
class Reload:
    settings: Settings  # what to apply: the new file, with the running value of every restart-only key
    needs_restart: tuple[str, ...]  # [server] keys the file changed that only a restart applies
    summary: str  # what changed, for the log (names only, never a value)


def merge(current: Settings, new: Settings) -> Reload:
    """The settings to run with after a reload from `new` (ConfigError when they do not fit together)."""
    kept = {
        name: getattr(current.server, name)
        for name in RESTART_ONLY
        if getattr(new.server, name) != getattr(current.server, name)
    }
    merged = new
    if kept:
        values = {name: getattr(new.server, name) for name in ServerSettings.model_fields} | kept
        try:
            server = ServerSettings.model_validate(values)
            merged = Settings.model_validate(
                {"server": server, "sources": new.sources, "destinations": new.destinations, "base_dir": new.base_dir}
            )
        except ValidationError as exc:
            problems = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in exc.errors())
            raise ConfigError(
                f"the new [server] settings only work with {', '.join(sorted(kept))} as changed, which needs a "
                f"restart ({problems}); restart headrace to apply them"
            ) from None
    return Reload(merged, tuple(sorted(kept)), summarize(current, merged))


def summarize(old: Settings, new: Settings) -> str:
    parts = []
    for kind, before, after in (
        ("sources", old.sources, new.sources),
        ("destinations", old.destinations, new.destinations),
    ):
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(name for name in set(before) & set(after) if before[name] != after[name])
        for verb, names in (("added", added), ("removed", removed), ("changed", changed)):
            if names:
                parts.append(f"{kind} {verb}: {', '.join(names)}")
    server = sorted(name for name in RELOADABLE if getattr(old.server, name) != getattr(new.server, name))
    if server:
        parts.append(f"[server] changed: {', '.join(server)}")
    if not parts:
        parts.append(NO_CHANGE)
    parts.append(f"admin tokens: {len(new.server.admin_token)}")
    return "; ".join(parts)


# After an edit, "no change" usually means the process reads another file than the one edited: a container with
# the config bind-mounted as a single file keeps the old inode when an editor replaces the file.
NO_CHANGE = (
    "no change (if you edited the file, this process reads another one: a container must mount the config's "
    "folder, not the file)"
)
