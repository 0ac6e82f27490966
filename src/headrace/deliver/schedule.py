"""Retry maths, pure: when is the next attempt, if any."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime

JITTER = 0.1  # each delay is stretched or shrunk by up to 10 %
MAX_RETRY_AFTER = 24 * 3600.0


def next_attempt_at(
    attempts_made: int,
    schedule: Sequence[float],
    now: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """When to try again after `attempts_made` attempts, or None when the schedule is used up.

    The delay is the schedule's step for this attempt with jitter; a Retry-After from Windmill is honoured
    as a lower bound (capped at a day, so a bogus header cannot park a delivery for ever).
    """
    step = attempts_made - 1
    if step < 0 or step >= len(schedule):
        return None
    delay = schedule[step] * (1 - JITTER + 2 * JITTER * rand())
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)
