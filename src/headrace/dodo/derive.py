"""Which webhooks Dodo would have sent about an object, derived from its current state in Dodo's API.

Dodo's API lists objects, not messages, so reconcile can only know the event an object's *current* state
implies: `payment.<status>` (not `processing`, which comes before every outcome), `refund.<status>`,
`dispute.<dispute_status>`, `subscription.<status>` and one `subscription.renewed` per renewal payment,
`license_key.created`, `payout.<status>` (a payout not initiated yet is `payout.created`). An intermediate
state the object has left (a subscription that was on hold and is active again) is not derived.

Each derived event has the body Dodo sends (`business_id`, `type`, `timestamp`, `data` with `payload_type`):
`data` is the retrieved object projected onto the webhook's fields (the bundled sample's, which are the SDK
model's field for field): a dispute's extra fields are dropped, a subscription's `past_due_ends_at` and
`payment_id` (not in `GET /subscriptions/{id}`) are filled in. `timestamp` is the object's best time for that
event, and `time_field` says which (Dodo's own event time is not in its API).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from headrace.dodo import samples
from headrace.dodo.keys import event_key, parse_time
from headrace.dodo.kinds import KINDS, ObjectKind

# Event types that no listed object implies: they are named in reconcile's output as not reconcilable.
NOT_RECONCILABLE: dict[str, str] = {
    "abandoned_checkout.*": "abandoned checkouts are not listed by Dodo's API",
    "dunning.*": "dunning attempts are not listed by Dodo's API",
    "credit.*": "credit ledger entries and balance alerts are not listed by Dodo's API",
    "entitlement_grant.*": "entitlement grants are not listed by Dodo's API",
    "payment.processing": "a payment's state before its outcome; the outcome's event is derived instead",
    "subscription.updated": "a change of fields, not of state: nothing in the object says it happened",
    "subscription.plan_changed": "a past change, not a state: nothing in the object says it happened",
    "subscription.update_payment_method": "a past change, not a state: nothing in the object says it happened",
    "subscription.renewed (before the window)": "derived only from payments created in the window",
}
# A state without a webhook of its own (a payment waiting for the customer, a pending refund): no event.
_STATUS_TYPES: dict[str, dict[str, str]] = {
    "payments": {s: f"payment.{s}" for s in ("succeeded", "failed", "cancelled")},
    "refunds": {s: f"refund.{s}" for s in ("succeeded", "failed")},
    "disputes": {
        f"dispute_{s}": f"dispute.{s}"
        for s in ("opened", "expired", "accepted", "cancelled", "challenged", "won", "lost")
    },
    "subscriptions": {
        s: f"subscription.{s}"
        for s in ("active", "on_hold", "cancelled", "failed", "expired", "paused", "past_due")
        if f"subscription.{s}" in samples.EVENT_TYPES
    },
    "payouts": {
        "not_initiated": "payout.created",
        **{s: f"payout.{s}" for s in ("in_progress", "on_hold", "failed", "success")},
    },
}
_STATUS_FIELD = {"disputes": "dispute_status"}
# The object's best time for an event about its current state, first present wins.
_TIME_FIELDS: dict[str, tuple[str, ...]] = {
    "payments": ("updated_at", "created_at"),
    "refunds": ("created_at",),
    "disputes": ("created_at",),
    "subscription.cancelled": ("cancelled_at", "created_at"),
    "subscription.paused": ("paused_at", "created_at"),
    "subscriptions": ("created_at",),
    "license_keys": ("created_at",),
    "payouts": ("updated_at", "created_at"),
}
RENEWAL_AFTER = 3600.0  # seconds: a subscription's payment this long after its creation is a renewal


@dataclass(frozen=True)
class Derived:
    """One event Dodo would have sent: its type, object, key, Dodo-shaped body and where its time came from."""

    event_type: str
    object_id: str
    event_key: str
    body: dict[str, Any]
    occurred_at: float
    time_field: str  # e.g. "data.updated_at of payment pay_X"


def dodo_time(at: float) -> str:
    """A time as Dodo writes `timestamp`: `2025-10-01T14:32:43.560Z`."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(at * 1000) % 1000:03d}Z"


def webhook_data(event_type: str, payload_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` on the webhook's fields for `event_type` (the sample's, in its order), with `payload_type`."""
    fields = [k for k in samples.load(event_type)["data"] if k != "payload_type"]
    return {"payload_type": payload_type, **{k: obj.get(k) for k in fields}}


def _best_time(obj: dict[str, Any], fields: tuple[str, ...]) -> tuple[float, str] | None:
    """The first of `fields` present, but never before the object's creation (then `created_at`)."""
    created = parse_time(obj.get("created_at"))
    for name in fields:
        at = parse_time(obj.get(name))
        if at is not None:
            return (created, "created_at") if created is not None and created > at else (at, name)
    return None


def _event(
    kind: ObjectKind,
    event_type: str,
    obj: dict[str, Any],
    time_fields: tuple[str, ...],
    when: tuple[float, str] | None = None,
) -> Derived | None:
    """The event about `obj`, timed by its first present field of `time_fields` (or `when`: time, label)."""
    object_id = obj.get(kind.id_field)
    best = _best_time(obj, time_fields)
    if not isinstance(object_id, str) or best is None:
        return None
    data = webhook_data(event_type, kind.payload_type, obj)
    key = event_key(event_type, data)
    if key is None:
        return None
    at, label = best if when is None else when
    body = {
        "business_id": obj.get("business_id") or obj.get("brand_id"),
        "type": event_type,
        "timestamp": dodo_time(at),
        "data": data,
    }
    if when is None:
        label = f"data.{label} of {kind.name.rstrip('s')} {object_id}"
    return Derived(event_type, object_id, key, body, at, label)


def implies_event(kind_name: str, item: dict[str, Any]) -> bool:
    """Whether a listed object's state implies an event (so it is worth retrieving); list items carry it."""
    if kind_name not in _STATUS_TYPES:
        return True
    status = item.get(_STATUS_FIELD.get(kind_name, "status"))
    return isinstance(status, str) and status in _STATUS_TYPES[kind_name]


def derive(kind_name: str, obj: dict[str, Any]) -> Derived | None:
    """The event the current state of `obj` (a retrieved object of `kind_name`) implies, if any."""
    kind = KINDS[kind_name]
    if kind_name == "license_keys":
        return _event(kind, "license_key.created", obj, _TIME_FIELDS["license_keys"])
    status = obj.get(_STATUS_FIELD.get(kind_name, "status"))
    event_type = _STATUS_TYPES[kind_name].get(status) if isinstance(status, str) else None
    if event_type is None:
        return None
    if kind_name == "subscriptions":
        obj = {"past_due_ends_at": None, "payment_id": None, **obj}
    return _event(kind, event_type, obj, _TIME_FIELDS.get(event_type, _TIME_FIELDS[kind_name]))


def renewal(subscription: dict[str, Any], payment: dict[str, Any]) -> Derived | None:
    """`subscription.renewed` for a succeeded payment of `subscription` made after its first period began
    (not its first payment): the subscription's current state, `payment_id` the renewal's, its time the
    payment's."""
    created = parse_time(subscription.get("created_at"))
    paid = parse_time(payment.get("created_at"))
    if payment.get("status") != "succeeded" or created is None or paid is None or paid - created < RENEWAL_AFTER:
        return None
    merged = {"past_due_ends_at": None, **subscription, "payment_id": payment.get("payment_id")}
    label = f"created_at of payment {payment.get('payment_id')} (the renewal's payment)"
    return _event(KINDS["subscriptions"], "subscription.renewed", merged, ("created_at",), (paid, label))
