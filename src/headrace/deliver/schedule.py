"""Retry maths, pure: when is the next attempt, if any."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from headrace.policy import JITTER

MAX_RETRY_AFTER = 24 * 3600.0  # no Retry-After parks a delivery longer, whatever the schedule


def clamp_retry_after(retry_after: float, schedule: Sequence[float]) -> float:
    """A server's Retry-After as this destination's schedule allows: not below 0, not past the schedule's longest
    delay (a retry is on the schedule, however long a server asks), never past MAX_RETRY_AFTER."""
    longest = max(schedule, default=MAX_RETRY_AFTER)
    return max(0.0, min(retry_after, longest, MAX_RETRY_AFTER))


def next_attempt_at(
    attempts_made: int,
    schedule: Sequence[float],
    now: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float | None:
    """When to try again after `attempts_made` attempts, or None when the schedule is used up.

    The delay is the schedule's step for this attempt, raised to a server's Retry-After (clamped to the
    schedule, clamp_retry_after), then jittered. The jitter comes after the floor, so deliveries told the same
    Retry-After do not all come back in the same second; with a Retry-After it only lengthens the delay, so
    none comes back before the server said.
    """
    step = attempts_made - 1
    if step < 0 or step >= len(schedule):
        return None
    delay = schedule[step]
    if retry_after is None:
        return now + delay * (1 - JITTER + 2 * JITTER * rand())
    delay = max(delay, clamp_retry_after(retry_after, schedule))
    return now + delay * (1 + JITTER * rand())
