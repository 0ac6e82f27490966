"""Durations as people write them in config: "5s", "5m", "2h", "1d", "250ms"."""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in `text`, or ValueError naming the accepted forms."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit: 250ms, 5s, 5m, 2h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110: delay-seconds, or an HTTP date, never less than 0);
    None when absent or unreadable, so the caller's own schedule applies. Windmill's and Dodo's alike."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


# The grammar of a point in time, one place: parse_since enforces it and the OpenAPI document publishes it.
TIME_MAX_LENGTH = 64
TIME_PATTERNS = {
    "duration": r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)$",
    "unix": r"^[0-9]+(\.[0-9]+)?$",
}
_DURATION = re.compile(TIME_PATTERNS["duration"])
_UNIX = re.compile(TIME_PATTERNS["unix"])
# RFC 3339 date-time (an offset is required; T/Z in either case) or a date alone (UTC midnight).
_DATE_TIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?P<frac>\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2}))?$"
)
_TIME_HELP = "write 2h (ago), 2026-11-26T10:00:00Z, 2026-11-26 or unix seconds"


def parse_since(text: str, now: float) -> float:
    """A point in time: "2h" (that long ago), an RFC 3339 date-time (with its offset), a date (UTC midnight) or
    unix seconds; anything else (spaces too) is a ValueError naming the accepted forms."""
    from datetime import UTC, datetime

    if len(text) > TIME_MAX_LENGTH:
        raise ValueError(f"{text[:20]!r}... is longer than {TIME_MAX_LENGTH} characters; {_TIME_HELP}")
    if _DURATION.match(text):
        return now - parse_duration(text)
    if _UNIX.match(text):
        return float(text)
    match = _DATE_TIME.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time; {_TIME_HELP}")
    iso = text.upper().replace("Z", "+00:00")
    frac = match.group("frac")
    if frac is not None and len(frac) > 7:  # Python reads at most microseconds; finer digits do not matter here
        iso = iso.replace(frac, frac[:7], 1)
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a real date or time ({exc}); {_TIME_HELP}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
