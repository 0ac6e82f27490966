"""Load and validate headrace.toml into frozen settings: at start-up, and again at each reload (SIGHUP),
whose result replaces the running settings only when it is valid (app.py, reload.py).

This is the only module that reads os.environ: `env:NAME` references are resolved here, and nowhere
else; so are `file:PATH` references (a secret kept in a file of its own, read again at every reload).
Every setting carries its default and help text in the model, and docs/configuration.md is generated
from these models (a test fails when it is out of date).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from headrace.durations import parse_duration
from headrace.models import Route, target_key
from headrace.windmill.urls import RunTarget, WindmillUrlError, parse_run_url

MIN_ADMIN_TOKEN = 16
MAX_ADMIN_TOKENS = 5
KEYGEN_COMMAND = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
DEFAULT_RETRY_SCHEDULE = ("5s", "5m", "30m", "2h", "5h", "10h", "10h")
DEFAULT_PAYLOAD_LIMIT = 1_048_576  # as large as the default ingest body limit
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EVENT_PATTERN = re.compile(r"^(\*|[a-z_]+\.\*|[a-z_]+\.[a-z_]+)$")


class ConfigError(Exception):
    """A config problem a person can fix: names the file, the key and what to do."""


class Secret:
    """A resolved secret. Never shown by str(), repr() or logging."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


SECRET_FILE_LIMIT = 65536  # bytes: a file: reference holds one secret or URL, not a document


def _resolve(value: str, environ: Mapping[str, str], base_dir: Path | None = None) -> str:
    if value.startswith("env:"):
        name = value[4:]
        if name not in environ or environ[name] == "":
            raise ValueError(f"environment variable {name} is not set (referenced as env:{name}); export it")
        return environ[name]
    if value.startswith("file:"):
        return _read_secret_file(Path(value[5:]), base_dir or Path("."))
    return value


def _read_secret_file(path: Path, base_dir: Path) -> str:
    """The content of a `file:PATH` reference (relative to the config file's folder), without its final line
    break. Read at start-up and at every reload: the way to rotate a secret the environment cannot change."""
    full = path if path.is_absolute() else base_dir / path
    try:
        with full.open("rb") as handle:
            data = handle.read(SECRET_FILE_LIMIT + 1)
    except OSError as exc:
        raise ValueError(f"cannot read {full} (referenced as file:{path}): {exc.strerror}") from None
    if len(data) > SECRET_FILE_LIMIT:
        raise ValueError(f"{full} (referenced as file:{path}) is larger than {SECRET_FILE_LIMIT} bytes")
    try:
        text = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"{full} (referenced as file:{path}) is not UTF-8 text") from None
    if not text:
        raise ValueError(f"{full} (referenced as file:{path}) is empty")
    return text


def resolve_reference(value: str, environ: Mapping[str, str] | None = None) -> str:
    """`value` itself, the environment variable an `env:NAME` value names, or the content of the file a
    `file:PATH` value names (ValueError if it is unset or unreadable)."""
    return _resolve(value, os.environ if environ is None else environ)


def _duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]

# Limits of the settings whose absurd values would misbehave quietly: (lowest, highest) in seconds.
TIMEOUT_LIMITS = (1.0, 3600.0)
RETRY_STEP_LIMITS = (0.01, 7 * 86400.0)
TOLERANCE_LIMITS = (1.0, 3600.0)
SHUTDOWN_GRACE_LIMITS = (0.0, 600.0)
# Retention: at least 3 days for events (a pruned event's webhook-id is forgotten, and Dodo retries an event
# for about a day), at least an hour for rejection rows; at most about ten years for either.
RETENTION_LIMITS = (3 * 86400.0, 3650 * 86400.0)
REJECTION_RETENTION_LIMITS = (3600.0, 3650 * 86400.0)
RETENTION_OFF = ("off", "0")
BODY_LIMITS = (1024, 64 * 1024 * 1024)
CONCURRENCY_LIMITS = (1, 256)


def _within(value: str, limits: tuple[float, float], meaning: str) -> str:
    """`value` if its duration lies within `limits`, else a ValueError saying the range and what the key does."""
    low, high = limits
    if not low <= parse_duration(value) <= high:
        raise ValueError(f"{value!r} is out of range: write from {_seconds(low)} to {_seconds(high)} ({meaning})")
    return value


def _count_within(value: int, limits: tuple[int, int], unit: str) -> int:
    low, high = limits
    if not low <= value <= high:
        raise ValueError(f"{value} is out of range: write from {low} to {high} {unit}")
    return value


def _seconds(value: float) -> str:
    if value == 0:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{round(value * 1000)}ms"


class ServerSettings(_Strict):
    listen: str = Field("127.0.0.1:8787", description="Address and port the HTTP server binds, HOST:PORT.")
    database: str = Field(
        "sqlite:///headrace.db",
        description="Where events are stored: sqlite:///PATH (embedded, default) or postgresql://USER@HOST/DB.",
    )
    admin_token: tuple[Secret, ...] = Field(
        (),
        description="Bearer token for /api/v1, /metrics and the console (env:NAME recommended), at least "
        f"{MIN_ADMIN_TOKEN} characters; or a list of up to {MAX_ADMIN_TOKENS} while a rotation is under way (each "
        "one is accepted). Without it (and without open_management) those answer 403.",
    )
    open_management: bool = Field(
        False,
        description="Serve /api/v1, /metrics and the console to anyone, without a token. Only for a laptop: "
        "allowed only on a loopback listen address and without admin_token.",
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description='Reverse proxies (addresses or networks, e.g. "127.0.0.1", "10.0.0.0/8") whose '
        "X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host are believed; from anyone else they are ignored.",
    )
    base_path: str = Field(
        "",
        description="Path prefix everything is served under when a proxy forwards e.g. https://host/hr/ "
        'unchanged: "/hr" puts ingest at /hr/webhooks/NAME and the console at /hr/console/.',
    )
    rejections_per_minute: int = Field(
        10,
        ge=1,
        le=100_000,
        description="Refused webhooks written to the store (and logged) per source, reason and minute; the rest "
        "are counted in memory (headrace_events_rejected_total) and summed up in one row per minute.",
    )
    auth_failures_per_minute: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Failed admin-token attempts (console login or bearer) allowed per client address: this many "
        "at once, then one every 60/N seconds; meanwhile that address gets 429 with Retry-After.",
    )
    max_connections: int = Field(
        1000,
        ge=16,
        le=1_000_000,
        description="Most client connections held at once; one more closes the oldest. Keep it under the "
        "open-files limit (headrace raises its soft limit to fit when it can).",
    )
    header_timeout: Duration = Field(
        "15s",
        description="How long a connection may take to send a request's headers, counted from connecting or "
        "from the previous response (so also how long an idle keep-alive connection stays open).",
    )
    body_timeout: Duration = Field(
        "30s", description="How long a client may take to send a request body; then 408 and the connection closes."
    )
    session_lifetime: Duration = Field(
        "12h",
        description="How long a console login lasts. Sessions also end at logout, when the admin token they "
        "were opened with is removed from admin_token (a reload), and when headrace restarts (kept in memory).",
    )
    retention: str = Field(
        "30d",
        description="Finished events (delivered, cancelled, unrouted; job outcome known) older than this are "
        "deleted with their deliveries and attempts, by `headrace serve` in small batches (or `headrace db "
        'prune`). Pending, in-flight and failed ones are kept. 3d or more; "off" keeps everything.',
    )
    rejection_retention: str = Field(
        "7d",
        description='Refused-webhook rows older than this are deleted the same way. 1h or more; "off" keeps them.',
    )
    body_limit: int = Field(
        1_048_576, description="Largest accepted webhook body in bytes (1024 to 67108864); larger gets 413."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log line format: text or json.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Least severe level logged.")
    worker: bool = Field(
        True,
        description="Run the delivery worker inside `headrace serve`. Set false to run `headrace worker` apart.",
    )
    shutdown_grace: Duration = Field(
        "10s",
        description="On SIGTERM, how long in-flight deliveries may finish before they are released (0s to 10m).",
    )
    pid_file: str | None = Field(
        None,
        description="`headrace serve` writes its process id here (atomically) once it listens, and removes the "
        "file at exit, so `kill -HUP $(cat FILE)` reloads the config. Relative to the config file's folder; "
        "`--pid-file` overrides it.",
    )
    transform_workers: int = Field(
        4,
        ge=1,
        le=64,
        description="Sandbox processes that run .js transformations (started on demand, ~15 MB each). A script "
        "past its limit holds one for at most 400 ms; the others keep serving. 4 suits 2 cores.",
    )

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:8787")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)") from None
        return value

    @field_validator("pid_file")
    @classmethod
    def _pid_file(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value.endswith("/") or len(value) > 4096):
            raise ValueError(f"{value[:100]!r}: give a file path, e.g. /run/headrace/headrace.pid")
        return value

    @field_validator("base_path")
    @classmethod
    def _base_path(cls, value: str) -> str:
        value = value.rstrip("/")
        if value and not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
            raise ValueError(f'{value!r}: write a path such as "/hr" (letters, digits, . _ ~ -)')
        return value

    @cached_property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in self.trusted_proxies)

    @field_validator("header_timeout", "body_timeout", "session_lifetime")
    @classmethod
    def _positive(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError(f'{value!r}: must be longer than 0, e.g. "15s"')
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _one_or_several(cls, value: Any) -> Any:
        if value is None:
            return ()
        return (value,) if isinstance(value, Secret) else value

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: tuple[Secret, ...]) -> tuple[Secret, ...]:
        if len(value) > MAX_ADMIN_TOKENS:
            raise ValueError(
                f"has {len(value)} tokens; at most {MAX_ADMIN_TOKENS} (one, plus the next one while rotating)"
            )
        for index, secret in enumerate(value):
            token = secret.reveal()
            if len(token) < MIN_ADMIN_TOKEN or len(set(token)) < 8 or not token.isprintable() or " " in token:
                which = f"token #{index + 1} is " if len(value) > 1 else ""
                raise ValueError(
                    f"{which}too short or too plain ({len(token)} characters): use at least {MIN_ADMIN_TOKEN} "
                    f"printable characters, no spaces, at least 8 different ones; generate one with: {KEYGEN_COMMAND}"
                )
        return value

    @model_validator(mode="after")
    def _management(self) -> ServerSettings:
        if self.open_management and self.admin_token:
            raise ValueError("open_management = true and admin_token are both set: keep one (the token)")
        if self.open_management and self.trusted_proxies:
            raise ValueError(
                "open_management = true with trusted_proxies: a proxy would make the open API public; "
                f"set admin_token instead (generate one with: {KEYGEN_COMMAND})"
            )
        if self.open_management and not self.is_loopback():
            raise ValueError(
                f"open_management = true is only allowed on a loopback listen address, not {self.listen!r}; "
                f"set admin_token instead (generate one with: {KEYGEN_COMMAND})"
            )
        return self

    @property
    def management(self) -> Literal["token", "open", "closed"]:
        """How /api/v1, /metrics and the console are guarded."""
        if self.admin_token:
            return "token"
        return "open" if self.open_management else "closed"

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if value.strip() in RETENTION_OFF:
            return "off"
        return _within(value, RETENTION_LIMITS, 'how long finished events are kept; default 30d, "off" keeps all')

    @field_validator("rejection_retention")
    @classmethod
    def _rejection_retention(cls, value: str) -> str:
        if value.strip() in RETENTION_OFF:
            return "off"
        return _within(value, REJECTION_RETENTION_LIMITS, 'how long refused-webhook rows are kept; default 7d, "off"')

    @property
    def retention_seconds(self) -> float | None:
        """How long finished events are kept, or None to keep them all."""
        return None if self.retention == "off" else parse_duration(self.retention)

    @property
    def rejection_retention_seconds(self) -> float | None:
        return None if self.rejection_retention == "off" else parse_duration(self.rejection_retention)

    @field_validator("shutdown_grace")
    @classmethod
    def _grace(cls, value: str) -> str:
        return _within(value, SHUTDOWN_GRACE_LIMITS, "how long in-flight deliveries may finish on SIGTERM; default 10s")

    @field_validator("body_limit")
    @classmethod
    def _body_limit(cls, value: int) -> int:
        return _count_within(value, BODY_LIMITS, "bytes (default 1048576; Dodo's events are a few KB)")

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        if not value.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError(f"{value!r}: use sqlite:///PATH or postgresql://USER@HOST/DB")
        return value

    def is_loopback(self) -> bool:
        host = self.host_port[0]
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


class SourceSettings(_Strict):
    secrets: tuple[Secret, ...] = Field(
        description="Standard Webhooks signing secrets (whsec_...), several while a rotation is under way."
    )
    tolerance: Duration = Field("5m", description="How far webhook-timestamp may be from now, either way (1s to 1h).")

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: str) -> str:
        return _within(value, TOLERANCE_LIMITS, "how far webhook-timestamp may be from now; default 5m")

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, value: tuple[Secret, ...]) -> tuple[Secret, ...]:
        if not value:
            raise ValueError('give at least one signing secret, e.g. secrets = ["env:DODO_WEBHOOK_SECRET"]')
        from headrace.ingest.signature import decode_secret

        for index, secret in enumerate(value):
            try:
                decode_secret(secret.reveal())
            except ValueError as exc:
                raise ValueError(f"secret #{index + 1}: {exc}") from None
        return value


class DestinationSettings(_Strict):
    source: str = Field(description="Name of the [sources.NAME] whose events this destination receives.")
    events: tuple[str, ...] = Field(
        description='Event types to deliver: exact names ("payment.succeeded"), "prefix.*", or "*".'
    )
    url: str = Field(description="The Windmill webhook URL as copied from Windmill (a ?token= in it is used).")
    token: Secret | None = Field(None, description="Windmill token (env:NAME), unless the URL carries ?token=.")
    transform: str | None = Field(
        None,
        description='JavaScript transformation: "builtin:NAME" or a .js file path; omitted = Dodo body as is.',
    )
    retry_schedule: tuple[Duration, ...] = Field(
        DEFAULT_RETRY_SCHEDULE,
        description="Delays between attempts after transient failures; then failed. 1 to 50 steps, each 10ms to 7d.",
    )
    schema_mode: Literal["enforce", "warn", "off"] = Field(
        "enforce",
        alias="schema",
        description="Check payloads against the target's input schema before sending: enforce (a mismatch "
        "is a failed, replayable delivery), warn (send, note the mismatch) or off.",
    )
    retry_on_job_failure: int = Field(
        0,
        ge=0,
        le=10,
        description="Re-run a job that Windmill reports failed, under a new job id, at most this many times.",
    )
    enabled: bool = Field(True, description="Disabled destinations get no new deliveries.")
    concurrency: int = Field(8, description="Most requests in flight to this destination at once (1 to 256).")
    timeout: Duration = Field(
        "30s", description="How long one request to Windmill may take before it is retried (1s to 1h)."
    )
    payload_limit: int = Field(
        DEFAULT_PAYLOAD_LIMIT,
        ge=1024,
        le=64 * 1_048_576,
        description="Largest transformed payload in bytes; a transformation returning more fails the delivery.",
    )

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, populate_by_name=True)

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError('subscribe to at least one event type, e.g. events = ["payment.*"]')
        for pattern in value:
            if not _EVENT_PATTERN.match(pattern):
                raise ValueError(f'{pattern!r}: write an event type ("payment.succeeded"), "payment.*" or "*"')
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            parse_run_url(value)
        except WindmillUrlError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError(
                "is empty, so a delivery would fail at its first transient error (a timeout, a 502); "
                'give at least one delay, e.g. ["5s", "5m", "30m"], or leave the key out for the default'
            )
        if len(value) > 50:
            raise ValueError(f"has {len(value)} steps; at most 50")
        for index, step in enumerate(value):
            try:
                _within(step, RETRY_STEP_LIMITS, "the delay before the next attempt")
            except ValueError as exc:
                raise ValueError(f"step {index + 1}: {exc}") from None
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        return _within(value, TIMEOUT_LIMITS, "how long one request to Windmill may take; default 30s")

    @field_validator("concurrency")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        return _count_within(value, CONCURRENCY_LIMITS, "requests at once (default 8)")

    @model_validator(mode="after")
    def _needs_token(self) -> DestinationSettings:
        if self.token is None and parse_run_url(self.url)[1] is None:
            raise ValueError('no Windmill token: add token = "env:WINDMILL_TOKEN" or a ?token= in the url')
        return self

    # Derived views used by the rest of the code, computed once (the worker reads them per delivery).
    @cached_property
    def target(self) -> RunTarget:
        return parse_run_url(self.url)[0]

    @cached_property
    def job_target(self) -> str:
        """Where this destination's jobs are created (base URL and workspace), as job ids see it."""
        return target_key(self.target.base_url, self.target.workspace)

    @cached_property
    def bearer(self) -> Secret:
        token = self.token if self.token is not None else parse_run_url(self.url)[1]
        return token if isinstance(token, Secret) else Secret(token or "")

    @cached_property
    def retry_delays(self) -> tuple[float, ...]:
        return tuple(parse_duration(step) for step in self.retry_schedule)

    @cached_property
    def timeout_seconds(self) -> float:
        return parse_duration(self.timeout)

    def matches(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.events)


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
        if not self.server.database.startswith("sqlite:///"):
            return None
        path = Path(self.server.database.removeprefix("sqlite:///"))
        return path if path.is_absolute() else self.base_dir / path


_SECRET_KEYS = {("server", "admin_token"), ("sources", "secrets"), ("destinations", "token")}


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
