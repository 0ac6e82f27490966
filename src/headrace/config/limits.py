"""What the settings models share: the strict, frozen base model, the Duration type, and the ranges that
settings whose absurd values would misbehave quietly must lie within (with the error that says so)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from headrace.durations import parse_duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]

# Limits of the settings whose absurd values would misbehave quietly: (lowest, highest) in seconds.
TIMEOUT_LIMITS = (1.0, 3600.0)
RETRY_STEP_LIMITS = (0.01, 7 * 86400.0)
TOLERANCE_LIMITS = (1.0, 3600.0)
SHUTDOWN_GRACE_LIMITS = (0.0, 600.0)
# Slow-client protection: past these a client holding a connection open is no longer cut off in useful time;
# under them a real sender (a body on a slow link) is cut off, and the timers fire faster than they are kept.
HEADER_TIMEOUT_LIMITS = (1.0, 300.0)
BODY_TIMEOUT_LIMITS = (1.0, 600.0)
# A console login: at most 30 days (a longer one overflowed the cookie's expiry: login answered 500).
SESSION_LIFETIME_LIMITS = (1.0, 30 * 86400.0)
# Retention: at least 14 days for events — a pruned event's webhook-id and event key are forgotten, and Dodo's
# dashboard can replay a message up to 14 days back (its retries end after 27 h 35 min): a replay of an event
# pruned sooner would be taken for a new one and run its workflow again. At least an hour for rejection rows;
# at most about ten years for either.
RETENTION_LIMITS = (14 * 86400.0, 3650 * 86400.0)
RETENTION_REASON = (
    "Dodo's dashboard can replay a message up to 14 days back; an event pruned sooner would come back as new "
    "and run its workflow again"
)
REJECTION_RETENTION_LIMITS = (3600.0, 3650 * 86400.0)
RETENTION_OFF = ("off", "0")
RECONCILE_EVERY_LIMITS = (3600.0, 7 * 86400.0)  # [sources.NAME] reconcile_every: Dodo's rate limit is shared
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
