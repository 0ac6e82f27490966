"""Event keys: which business event a Dodo webhook body reports, independent of the message that carried it.

Dodo gives every message its own webhook-id, so the webhook-id only recognises Dodo's own retries of one
message. The event key recognises the same *event* reported twice by different messages — the one `headrace
reconcile` synthesized from Dodo's API and the real message Dodo delivers later (a late retry, "Recover
failed messages" in the dashboard) — so the second is stored but not delivered again.

The key is the event type and the id of the object it is about, plus what makes one event of that type
distinct from another about the same object where that can happen: the dispute's stage (a dispute opens again
at the pre-arbitration stage) and, for `subscription.renewed`, the renewal's payment id (a subscription renews
every period). Examples: `payment.succeeded:pay_X`, `dispute.opened:dis_X:pre_dispute`,
`subscription.renewed:sub_X:pay_Y`. A status change is a new key (the type differs), so it is delivered.

A body with no recognisable object (an unknown type, a missing or hostile id) has no key (None): it is never
taken for a duplicate of anything. This module is the one place the rule is written: ingest keys every
stored event with it, the migration's backfill keys old rows with it, and reconcile keys what it derives.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

KEY_PART_LIMIT = 200  # characters of one id in a key; a longer "id" is not one Dodo makes: no key
SEPARATOR = ":"

# The field naming the object, per event family (the part of the type before the dot) or per type.
OBJECT_ID_FIELDS: dict[str, str] = {
    "credit.balance_low": "subscription_id",
    "payment": "payment_id",
    "refund": "refund_id",
    "dispute": "dispute_id",
    "subscription": "subscription_id",
    "license_key": "id",
    "payout": "payout_id",
    "credit": "id",
    "entitlement_grant": "id",
    "abandoned_checkout": "payment_id",
    "dunning": "subscription_id",
}
# Fields added to the key for some types, beyond the object id (see the module's docstring).
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "dispute.*": ("dispute_stage",),
    "subscription.renewed": ("payment_id",),
    "credit.balance_low": ("credit_entitlement_id", "customer_id"),  # about a subscription's credit balance
    "dunning.started": ("created_at",),  # a subscription can enter dunning more than once
    "dunning.recovered": ("created_at",),
}


def once_per_key(event_type: str) -> bool:
    """Whether an event of this type happens at most once per key: a payment succeeds once, a refund fails
    once, a dispute is won once at a stage, a subscription renews once per payment. A subscription's other
    events are states it can enter again (paused, resumed, paused again): their key repeats over time."""
    return not event_type.startswith("subscription.") or event_type == "subscription.renewed"


def _part(value: Any) -> str | None:
    if not isinstance(value, str) or not value or len(value) > KEY_PART_LIMIT:
        return None
    if not value.isprintable() or " " in value:  # a space is the only printable whitespace
        return None
    return value


def event_key(event_type: str, data: Mapping[str, Any]) -> str | None:
    """The key of the event `event_type` whose body's `data` is `data`, or None when it names no object."""
    family, _, name = event_type.partition(".")
    id_field = OBJECT_ID_FIELDS.get(event_type, OBJECT_ID_FIELDS.get(family))
    if id_field is None or not name:
        return None
    fields = (id_field, *EXTRA_FIELDS.get(event_type, EXTRA_FIELDS.get(f"{family}.*", ())))
    parts = [_part(data.get(name)) for name in fields]
    if None in parts:
        return None
    return SEPARATOR.join([event_type, *(p for p in parts if p is not None)])


def body_key(body: bytes | str | Mapping[str, Any]) -> str | None:
    """The key of a whole webhook body (raw JSON or parsed); None when it is not a Dodo body with an object."""
    parsed: Any = body
    if isinstance(body, bytes | str):
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return None
    if not isinstance(parsed, Mapping):
        return None
    event_type, data = parsed.get("type"), parsed.get("data")
    if not isinstance(event_type, str) or not isinstance(data, Mapping):
        return None
    return event_key(event_type, data)


def parse_time(value: Any) -> float | None:
    """An ISO 8601 time as Dodo writes them (`2025-10-01T14:32:43.560Z`) in unix seconds; None if not one."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def body_time(body: Mapping[str, Any]) -> float | None:
    """When a parsed body says its event happened (its top-level `timestamp`)."""
    return parse_time(body.get("timestamp"))
