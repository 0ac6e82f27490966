"""`headrace reconcile`: find the events Dodo sent while headrace could not take them, from Dodo's API.

1. List payments, refunds, disputes, subscriptions, license keys and payouts created in the window: page by
   page from page 0 (`page_size` 100), the window cut into `SLICE`s (Dodo caps the payments page number; a
   slice that reaches the cap is halved), each object once however the pages shift meanwhile.
2. Retrieve each payment, refund, dispute and subscription whose listed state implies an event, for the full
   model (license keys and payouts are whole in the list), a few at a time; Dodo's 429 and Retry-After are
   honoured by the client.
3. Derive the events their current state implies (derive.py) and compare their event keys (keys.py) with
   the events the source has stored: what is not there is missing.
4. `--apply` stores each missing event as one Dodo would have sent (origin reconcile, webhook-id
   `hr_recon_<hash of source and key>`, no signature), routed to the destinations now configured; a running
   `serve` delivers them like any other. The store refuses a key it already has, so a second run adds
   nothing; a real webhook that arrives later with the key is stored but not delivered (a late copy).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from headrace.dodo.api import DodoApiError, DodoClient
from headrace.dodo.derive import NOT_RECONCILABLE, Derived, derive, dodo_time, implies_event, renewal
from headrace.dodo.kinds import KINDS
from headrace.models import NewEvent, Route

SLICE = 86400.0  # seconds of creation time listed at once
MIN_SLICE = 60.0  # a slice is halved down to this when the page-number cap is reached
RETRIEVE_AT_ONCE = 4  # objects retrieved concurrently (Dodo's lowest tier: 240 requests/min)
RATE_PER_MINUTE = 240  # for the estimate of how long the retrieval takes
RETRIEVED_KINDS = ("payments", "refunds", "disputes", "subscriptions")  # the others' list items are whole
KEYS_AT_ONCE = 500  # keys compared with the store per query
RECON_PREFIX = "hr_recon_"
USER_AGENT = "headrace reconcile"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Missing:
    """An event Dodo would have sent that the source has not stored."""

    derived: Derived
    why: str

    def summary(self) -> dict[str, str]:
        return {
            "type": self.derived.event_type,
            "object_id": self.derived.object_id,
            "event_key": self.derived.event_key,
        }


@dataclass
class Plan:
    source: str
    since: float
    until: float
    objects: dict[str, int] = field(default_factory=dict)  # kind -> objects listed
    derived: int = 0
    missing: list[Missing] = field(default_factory=list)


def webhook_id(source: str, key: str) -> str:
    """The webhook-id of a synthesized event: the same for a source and key on every run."""
    return RECON_PREFIX + hashlib.sha256(f"{source}\x1f{key}".encode()).hexdigest()[:32]


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def estimate(requests: int) -> str:
    """How long `requests` calls take at Dodo's lowest rate limit."""
    minutes = requests / RATE_PER_MINUTE
    return f"about {minutes * 60:.0f} s" if minutes < 2 else f"about {minutes:.0f} min"


async def list_window(
    client: DodoClient, kind: str, since: float, until: float, progress: Progress
) -> list[dict[str, Any]]:
    """Every object of `kind` created in [since, until], each once."""
    found: dict[str, dict[str, Any]] = {}
    id_field = KINDS[kind].id_field
    slices = [(start, min(start + SLICE, until)) for start in _starts(since, until)]
    while slices:
        start, end = slices.pop(0)
        try:
            async for item in client.list_all(kind, created_at_gte=dodo_time(start), created_at_lte=dodo_time(end)):
                object_id = item.get(id_field)
                if isinstance(object_id, str):
                    found.setdefault(object_id, item)
        except DodoApiError as exc:
            if exc.status != 422 or end - start <= MIN_SLICE:
                raise
            middle = (start + end) / 2  # the page-number cap: list the halves (what was found stays found)
            slices[:0] = [(start, middle), (middle, end)]
    progress(f"  {kind}: {len(found)} listed")
    return list(found.values())


def _starts(since: float, until: float) -> list[float]:
    starts, at = [], since
    while at < until:
        starts.append(at)
        at += SLICE
    return starts or [since]


async def _retrieve_all(
    client: DodoClient, kind: str, items: list[dict[str, Any]], progress: Progress
) -> list[dict[str, Any]]:
    if kind not in RETRIEVED_KINDS:
        return items
    id_field = KINDS[kind].id_field
    gate = asyncio.Semaphore(RETRIEVE_AT_ONCE)
    done = 0

    async def one(item: dict[str, Any]) -> dict[str, Any]:
        nonlocal done
        async with gate:
            full = await client.retrieve(kind, str(item[id_field]))
        done += 1
        if done % 100 == 0:
            progress(f"  {kind}: {done} of {len(items)} retrieved")
        return full

    return list(await asyncio.gather(*(one(item) for item in items)))


async def derive_window(
    client: DodoClient, since: float, until: float, progress: Progress, plan: Plan
) -> list[Derived]:
    """The events the objects created in the window imply, from their current state."""
    listed = {}
    for kind in KINDS:
        found = await list_window(client, kind, since, until, progress)
        plan.objects[kind] = len(found)
        listed[kind] = [item for item in found if implies_event(kind, item)]  # a processing payment: none
    to_retrieve = sum(len(listed[k]) for k in RETRIEVED_KINDS)
    progress(f"retrieving {to_retrieve} objects: {estimate(to_retrieve)} at Dodo's lowest rate limit (240/min)")
    full = {kind: await _retrieve_all(client, kind, items, progress) for kind, items in listed.items()}
    derived = [d for kind, objects in full.items() for d in (derive(kind, obj) for obj in objects) if d is not None]
    subscriptions: dict[str, dict[str, Any] | None] = {str(s.get("subscription_id")): s for s in full["subscriptions"]}
    for payment in full["payments"]:
        sub_id = payment.get("subscription_id")
        if not isinstance(sub_id, str) or payment.get("status") != "succeeded":
            continue
        if sub_id not in subscriptions:  # created before the window: its current state is needed all the same
            try:
                subscriptions[sub_id] = await client.retrieve("subscriptions", sub_id)
            except DodoApiError as exc:
                if exc.status != 404:
                    raise
                subscriptions[sub_id] = None  # said once, not for each of its payments
                progress(f"  subscription {sub_id} (of payment {payment.get('payment_id')}) is not in Dodo's API")
        subscription = subscriptions[sub_id]
        if subscription is None:
            continue
        renewed = renewal(subscription, payment)
        if renewed is not None:
            derived.append(renewed)
    return derived


async def make_plan(
    client: DodoClient,
    stored_keys: Callable[[Sequence[str]], Awaitable[set[str]]],
    source: str,
    since: float,
    until: float,
    progress: Progress = lambda line: None,
) -> Plan:
    """What is missing from `source` for the objects Dodo created in [since, until]."""
    plan = Plan(source, since, until)
    derived = await derive_window(client, since, until, progress, plan)
    plan.derived = len(derived)
    unique = list({d.event_key: d for d in derived}.values())
    have: set[str] = set()
    for start in range(0, len(unique), KEYS_AT_ONCE):
        have |= await stored_keys([d.event_key for d in unique[start : start + KEYS_AT_ONCE]])
    for d in sorted(unique, key=lambda d: (d.occurred_at, d.event_key)):
        if d.event_key not in have:
            why = f"the current state of {d.object_id} in Dodo's API implies it; no stored event has its key"
            plan.missing.append(Missing(d, why))
    return plan


def new_event(source: str, missing: Missing, now: float) -> NewEvent:
    """The synthesized event as stored: Dodo's body, no signature, origin reconcile, the timeline's note."""
    d = missing.derived
    ident = webhook_id(source, d.event_key)
    return NewEvent(
        source=source,
        webhook_id=ident,
        event_type=d.event_type,
        webhook_timestamp=int(d.occurred_at),
        received_at=now,
        body=json.dumps(d.body, separators=(",", ":"), ensure_ascii=False).encode(),
        headers={"webhook-id": ident, "webhook-timestamp": str(int(d.occurred_at)), "user-agent": USER_AGENT},
        event_key=d.event_key,
        occurred_at=d.occurred_at,
        origin="reconcile",
        note=(f"synthesized by `headrace reconcile` from Dodo's API ({missing.why}); its timestamp is {d.time_field}"),
    )


def not_reconcilable() -> list[str]:
    """The event types reconcile cannot bring back, each with the reason, for the output."""
    return [f"{name}: {why}" for name, why in NOT_RECONCILABLE.items()]


async def apply(
    ingest: Callable[[NewEvent, Sequence[Route]], Awaitable[Any]],
    routes: Callable[[str], Sequence[Route]],
    plan: Plan,
    now: float,
) -> tuple[int, int]:
    """Store each missing event (routed as now configured); returns (stored, already there)."""
    stored = already = 0
    for missing in plan.missing:
        result = await ingest(new_event(plan.source, missing, now), routes(missing.derived.event_type))
        if result.duplicate:
            already += 1
        else:
            stored += 1
    return stored, already
