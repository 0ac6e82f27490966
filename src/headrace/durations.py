"""Durations as people write them in config: "5s", "5m", "2h", "1d", "250ms"."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in `text`, or ValueError naming the accepted forms."""
    match = _PATTERN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; write a number and a unit: 250ms, 5s, 5m, 2h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_since(text: str, now: float) -> float:
    """A point in time: "2h" (that long ago), an ISO 8601 date/time (UTC unless it says), or unix seconds."""
    from datetime import UTC, datetime

    text = text.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    if text.replace(".", "", 1).isdigit():
        return float(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time; write 2h (ago), 2026-11-26T10:00:00Z or unix seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
