"""The kinds of objects Dodo's API lists (`GET /{kind}`) and, for most, retrieves (`GET /{kind}/{id}`): one
place for their paths and id fields, used by the client, the stand-in and reconcile."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectKind:
    name: str  # the path segment: /payments, /license_keys
    id_field: str  # payment_id, id (license keys)
    payload_type: str  # `data.payload_type` of its webhooks
    event_prefix: str  # payment., license_key.
    retrievable: bool = True  # payouts have no GET /payouts/{id} (SDK 1.123.0)


KINDS: dict[str, ObjectKind] = {
    kind.name: kind
    for kind in (
        ObjectKind("payments", "payment_id", "Payment", "payment."),
        ObjectKind("refunds", "refund_id", "Refund", "refund."),
        ObjectKind("disputes", "dispute_id", "Dispute", "dispute."),
        ObjectKind("subscriptions", "subscription_id", "Subscription", "subscription."),
        ObjectKind("license_keys", "id", "LicenseKey", "license_key."),
        ObjectKind("payouts", "payout_id", "Payout", "payout.", retrievable=False),
    )
}


def kind_of(name: str) -> ObjectKind:
    """The kind called `name`, or ValueError listing the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind of Dodo object {name!r}; known: {', '.join(KINDS)}") from None


def kind_for_event(event_type: str) -> ObjectKind | None:
    """The kind of object an event of `event_type` carries in `data`, or None (credits, checkouts, ...)."""
    for kind in KINDS.values():
        if event_type.startswith(kind.event_prefix):
            return kind
    return None
