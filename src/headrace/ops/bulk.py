"""Bulk replay: what a filter would re-send (the plan), and the token that binds a confirmation to it.

A plan is counted from the events a filter matches now (the same `EventFilter` as the event list, so every
field it gains, such as a search text, applies here too), capped at BULK_REPLAY_LIMIT events. Its token
carries the filter (with relative times already resolved), the newest event id counted, and the number of
deliveries per destination. Executing a token counts again under exactly that filter and id bound: events
that arrived after the count are never included, and if the count changed (statuses moved, the
configuration changed, someone replayed meanwhile) nothing is sent and the caller sees the new plan. A
token is used once: its first write transaction claims it (store.replay_counted), so two concurrent
confirmations of one count write one replay.

The token binds, it does not authorize: only an admin can count or execute, and a crafted token can ask
for nothing an admin could not ask for with a filter.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from headrace import search
from headrace.config import Settings
from headrace.models import EVENT_STATUSES, ID_MAX, EventFilter, EventRow
from headrace.views import TEXT_MAX_LENGTH

BULK_REPLAY_LIMIT = 10_000  # events per bulk replay; above it the plan is refused (narrow the filter)
CHUNK = 500  # events per write transaction while executing, so ingest is never held up for long
TOKEN_MAX_CHARS = 8192  # a token is a filter and a few counts: anything longer is not one of ours
_PAGING = ("limit", "before_id")  # fields of EventFilter that the plan sets itself


class TooMany(Exception):
    """The filter matches more than BULK_REPLAY_LIMIT events."""

    def __init__(self, matched_at_least: int, limit: int) -> None:
        self.matched_at_least = matched_at_least
        self.limit = limit
        super().__init__(
            f"the filter matches more than {limit} events; a bulk replay sends at most {limit} at once: "
            "narrow it (a shorter since, an event type, a status) and replay in parts"
        )


class Changed(Exception):
    """What the token counted is not what the same filter matches now: nothing was sent."""

    def __init__(self, now: Plan) -> None:
        self.now = now
        super().__init__(
            f"the events this confirmation counted have changed (now {now.deliveries} deliveries to "
            f"{len(now.destinations)} destinations from {now.events} events): nothing was sent; review the new "
            "count and confirm again"
        )


class BadToken(ValueError):
    """The token is not one a count produced (truncated, edited, or from an incompatible version)."""


@dataclass(frozen=True)
class Plan:
    """What executing would send: per destination, how many new deliveries."""

    flt: EventFilter  # the filter as counted, bounded by before_id = max_event_id + 1
    events: int  # events matched
    max_event_id: int  # the newest event counted (0 when none)
    mark: int  # the newest delivery id when counting began: a newer one for a counted event means replayed since
    destinations: dict[str, int]  # destination -> new deliveries
    unrouted: int  # matched events that no enabled destination subscribes to today: nothing to send
    token: str

    @property
    def deliveries(self) -> int:
        return sum(self.destinations.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "deliveries": self.deliveries,
            "destinations": dict(sorted(self.destinations.items())),
            "unrouted_events": self.unrouted,
            "max_event_id": self.max_event_id,
            "limit": BULK_REPLAY_LIMIT,
            "token": self.token,
        }


def counting_filter(flt: EventFilter, limit: int = BULK_REPLAY_LIMIT) -> EventFilter:
    """The filter to count with: one more than the limit (to see it exceeded), from the newest event."""
    return dataclasses.replace(flt, limit=limit + 1, before_id=None)


def routes_of(events: Sequence[EventRow], settings: Settings) -> list[tuple[int, list[str]]]:
    """Each matched event and the destinations a replay sends it to: those it matches under today's config,
    like `headrace replay`."""
    return [(e.id, settings.destinations_for(e.source, e.event_type)) for e in events]


def plan_of(
    flt: EventFilter, events: Sequence[EventRow], mark: int, settings: Settings, limit: int = BULK_REPLAY_LIMIT
) -> tuple[Plan, list[tuple[int, list[str]]]]:
    """The plan for `events` (newest first, as the store lists them), counted under `flt` after the newest
    delivery id was `mark`."""
    if len(events) > limit:
        raise TooMany(len(events), limit)
    routed = routes_of(events, settings)
    destinations: dict[str, int] = {}
    for _, names in routed:
        for name in names:
            destinations[name] = destinations.get(name, 0) + 1
    max_id = max((e.id for e in events), default=0)
    bounded = dataclasses.replace(flt, limit=limit + 1, before_id=max_id + 1)
    unrouted = sum(1 for _, names in routed if not names)
    token = encode(bounded, max_id, mark, destinations)
    plan = Plan(bounded, len(events), max_id, mark, destinations, unrouted, token)
    return plan, routed


def encode(flt: EventFilter, max_id: int, mark: int, destinations: dict[str, int]) -> str:
    fields = {k: v for k, v in dataclasses.asdict(flt).items() if k not in _PAGING}
    body = {
        "v": 1,
        "filter": fields,
        "max_event_id": max_id,
        "mark": mark,
        "destinations": dict(sorted(destinations.items())),
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def claim_key(token: str) -> str:
    """The store key that marks `token` as executed (a digest: the token itself is never stored)."""
    return "bulk_replay:" + hashlib.sha256(token.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Counted:
    """What a token says was counted."""

    flt: EventFilter  # bounded by before_id = max_event_id + 1
    max_event_id: int
    mark: int
    destinations: dict[str, int]


def decode(token: str, limit: int = BULK_REPLAY_LIMIT) -> Counted:
    """What was counted, from a token; BadToken when it is not one a count gave."""
    if not token or len(token) > TOKEN_MAX_CHARS:
        raise BadToken(f"the token is empty or longer than {TOKEN_MAX_CHARS} characters: count again")
    try:
        body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadToken("the token is not one a bulk replay count gave: count again") from None
    if not isinstance(body, dict) or body.get("v") != 1:
        raise BadToken("the token is not one this headrace's bulk replay count gave: count again")
    fields, destinations = body.get("filter"), body.get("destinations")
    max_id, mark = body.get("max_event_id"), body.get("mark")
    known = {f.name for f in dataclasses.fields(EventFilter)} - set(_PAGING)
    if (
        not isinstance(fields, dict)
        or not set(fields) <= known
        or not all(_plain_field(k, v) for k, v in fields.items())
        or not _count(max_id)
        or not _count(mark)
        or not isinstance(destinations, dict)
        or not all(_count(n) for n in destinations.values())
    ):
        raise BadToken("the token's contents are not a bulk replay count: count again")
    if not all(isinstance(name, str) and len(name) <= TEXT_MAX_LENGTH for name in destinations):
        raise BadToken("the token's destinations are not a bulk replay count: count again")
    try:
        flt = EventFilter(**fields, limit=limit + 1, before_id=max_id + 1)
        if flt.q is not None:
            search.parse(flt.q)  # the same bound (search.MAX_QUERY_CHARS) and syntax as the event list's q
    except (TypeError, ValueError):
        raise BadToken("the token's filter is not one the event list accepts: count again") from None
    return Counted(flt, max_id, mark, destinations)


def _count(value: Any) -> TypeGuard[int]:
    """A count or an id either database can hold (an edited token's 10**30 is refused, not sent to SQL)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < ID_MAX


def _plain_field(name: str, value: Any) -> bool:
    """Times are finite numbers, the status one of the event statuses, every other filter field short text
    (or absent): what the event list's filter can hold."""
    if value is None:
        return True
    if name in ("since", "until"):
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if name == "status":
        return value in EVENT_STATUSES
    return isinstance(value, str) and len(value) <= TEXT_MAX_LENGTH
