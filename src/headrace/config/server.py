"""[server]: the HTTP server, the store, management access, retention and logging."""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from headrace.config.limits import (
    BODY_LIMITS,
    BODY_TIMEOUT_LIMITS,
    HEADER_TIMEOUT_LIMITS,
    REJECTION_RETENTION_LIMITS,
    RETENTION_LIMITS,
    RETENTION_OFF,
    RETENTION_REASON,
    SESSION_LIFETIME_LIMITS,
    SHUTDOWN_GRACE_LIMITS,
    Duration,
    _count_within,
    _Strict,
    _within,
)
from headrace.config.placeholders import is_placeholder
from headrace.config.secret import Secret, strength_bits
from headrace.durations import parse_duration
from headrace.policy import WAL_LIMIT

MIN_ADMIN_TOKEN = 16
MIN_ADMIN_TOKEN_BITS = 64  # secret.strength_bits: 16 random hex characters score 82, password12345678 about 16
MAX_ADMIN_TOKENS = 5
KEYGEN_COMMAND = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"

# Durations whose absurd values would misbehave quietly: their range, and what the key does (for the refusal).
_BOUNDED_DURATIONS = {
    "header_timeout": (HEADER_TIMEOUT_LIMITS, "how long a client may take to send its headers; default 15s"),
    "body_timeout": (BODY_TIMEOUT_LIMITS, "how long a client may take to send a body; default 30s"),
    "session_lifetime": (SESSION_LIFETIME_LIMITS, "how long a console login lasts; default 12h"),
    "shutdown_grace": (SHUTDOWN_GRACE_LIMITS, "how long in-flight deliveries may finish on SIGTERM; default 10s"),
}


class ServerSettings(_Strict):
    listen: str = Field("127.0.0.1:8787", description="Address and port the HTTP server binds, HOST:PORT.")
    database: str = Field(
        "sqlite:///headrace.db",
        description="Where events are stored: SQLite (embedded, default) or postgresql://USER@HOST/DB. "
        "sqlite:////var/lib/headrace/headrace.db (four slashes) is an absolute path; sqlite:///headrace.db or "
        "sqlite:///./data/headrace.db (three) is relative to the config file's folder; sqlite:///data/h.db is "
        "refused as ambiguous, naming both.",
    )
    admin_token: tuple[Secret, ...] = Field(
        (),
        description="Bearer token for /api/v1, /metrics and the console (env:NAME recommended), at least "
        f"{MIN_ADMIN_TOKEN} characters and hard to guess (no common words, repeats or runs such as 1234 making up "
        f"most of it); or a list of up to {MAX_ADMIN_TOKENS} while a rotation is under way (each "
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
        description="Most client connections held at once. One more closes a connection of the client address "
        "holding the most: first one that has not finished sending a request's headers, then an idle one; "
        "requests in progress keep a tenth in reserve. Keep it under the open-files limit (headrace raises "
        "its soft limit to fit when it can).",
    )
    max_connections_per_peer: int = Field(
        64,
        ge=1,
        le=1_000_000,
        description="Most connections one client address (an IPv6 /64) holds at once; one more closes that "
        "address's own oldest idle one. Trusted proxies (trusted_proxies) are not limited.",
    )
    header_timeout: Duration = Field(
        "15s",
        description="How long a connection may take to send a request's headers, counted from connecting or "
        "from the previous response (so also how long an idle keep-alive connection stays open). 1s to 5m.",
    )
    body_timeout: Duration = Field(
        "30s",
        description="How long a client may take to send a request body; then 408 and the connection closes. 1s to 10m.",
    )
    session_lifetime: Duration = Field(
        "12h",
        description="How long a console login lasts. Sessions also end at logout, when the admin token they "
        "were opened with is removed from admin_token (a reload), and when headrace restarts (kept in memory). "
        "1s to 30d.",
    )
    retention: str = Field(
        "30d",
        description="Finished events (delivered, cancelled, unrouted; job outcome known) older than this are "
        "deleted with their deliveries and attempts, by `headrace serve` in small batches (or `headrace db "
        "prune`). Pending, in-flight and failed ones are kept. 14d or more (Dodo's dashboard replays up to 14 "
        'days back: a replay of a pruned event would run its workflow again); "off" keeps everything.',
    )
    rejection_retention: str = Field(
        "7d",
        description='Refused-webhook rows older than this are deleted the same way. 1h or more; "off" keeps them.',
    )
    body_limit: int = Field(
        1_048_576, description="Largest accepted webhook body in bytes (1024 to 67108864); larger gets 413."
    )
    wal_limit: int = Field(
        WAL_LIMIT,
        ge=64 * 1024 * 1024,
        le=1024**4,
        description="SQLite only: largest write-ahead log (PATH-wal) in bytes before new webhooks are refused with "
        "503 + Retry-After (nothing stored, Dodo retries). It only grows past 16 MiB while another process holds "
        "a read open (sqlite3, .backup); 67108864 (64 MiB) or more. Read at start.",
    )
    access_log: bool = Field(
        False,
        description="Log one line per request to the API, the console, /metrics and the health probes: method, "
        "path, status, time, client. Never webhooks (logged as events) and never a query string or a header.",
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

    @field_validator(*_BOUNDED_DURATIONS)
    @classmethod
    def _bounded_duration(cls, value: str, info: ValidationInfo) -> str:
        limits, meaning = _BOUNDED_DURATIONS[str(info.field_name)]
        return _within(value, limits, meaning)

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
            which = f"token #{index + 1} is " if len(value) > 1 else ""
            if is_placeholder(token):
                raise ValueError(
                    f"{which or 'is '}an example's placeholder, known to anyone: generate one with: {KEYGEN_COMMAND}"
                )
            if len(token) < MIN_ADMIN_TOKEN or len(set(token)) < 8 or not token.isprintable() or " " in token:
                raise ValueError(
                    f"{which}too short or too plain ({len(token)} characters): use at least {MIN_ADMIN_TOKEN} "
                    f"printable characters, no spaces, at least 8 different ones; generate one with: {KEYGEN_COMMAND}"
                )
            bits = strength_bits(token)
            if bits < MIN_ADMIN_TOKEN_BITS:
                raise ValueError(
                    f"{which}too easy to guess (common words, repeats or runs such as 1234 leave about "
                    f"{bits:.0f} bits; at least {MIN_ADMIN_TOKEN_BITS}): generate one with: {KEYGEN_COMMAND}"
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
        return _within(
            value,
            RETENTION_LIMITS,
            f'how long finished events are kept; default 30d, "off" keeps all. At least 14d: {RETENTION_REASON}',
        )

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
