"""Load and validate headrace.toml into frozen settings: at start-up, and again at each reload (SIGHUP),
whose result replaces the running settings only when it is valid (app.py, ops/reload.py).

This is the only package that reads os.environ: `env:NAME` references are resolved here, and nowhere
else; so are `file:PATH` references (a secret kept in a file of its own, read again at every reload).
Every setting carries its default and help text in the model, and docs/configuration.md is generated
from these models (a test fails when it is out of date).

secret.py resolves references into Secret values; limits.py holds the base model, the Duration type and the
ranges settings must lie within; server.py, sources.py and destinations.py hold one table's model each;
settings.py the whole file's model and its cross-checks; loader.py reads the TOML and words the errors.
"""

from headrace.config.destinations import DEFAULT_PAYLOAD_LIMIT, DEFAULT_RETRY_SCHEDULE, DestinationSettings
from headrace.config.limits import (
    BODY_LIMITS,
    CONCURRENCY_LIMITS,
    REJECTION_RETENTION_LIMITS,
    RETENTION_LIMITS,
    RETENTION_OFF,
    RETRY_STEP_LIMITS,
    SHUTDOWN_GRACE_LIMITS,
    TIMEOUT_LIMITS,
    TOLERANCE_LIMITS,
    Duration,
)
from headrace.config.loader import ConfigError, load, parse
from headrace.config.secret import SECRET_FILE_LIMIT, Secret, resolve_reference
from headrace.config.server import KEYGEN_COMMAND, MAX_ADMIN_TOKENS, MIN_ADMIN_TOKEN, ServerSettings
from headrace.config.settings import Settings
from headrace.config.sources import SourceSettings

__all__ = [
    "BODY_LIMITS",
    "CONCURRENCY_LIMITS",
    "DEFAULT_PAYLOAD_LIMIT",
    "DEFAULT_RETRY_SCHEDULE",
    "KEYGEN_COMMAND",
    "MAX_ADMIN_TOKENS",
    "MIN_ADMIN_TOKEN",
    "REJECTION_RETENTION_LIMITS",
    "RETENTION_LIMITS",
    "RETENTION_OFF",
    "RETRY_STEP_LIMITS",
    "SECRET_FILE_LIMIT",
    "SHUTDOWN_GRACE_LIMITS",
    "TIMEOUT_LIMITS",
    "TOLERANCE_LIMITS",
    "ConfigError",
    "DestinationSettings",
    "Duration",
    "Secret",
    "ServerSettings",
    "Settings",
    "SourceSettings",
    "load",
    "parse",
    "resolve_reference",
]
