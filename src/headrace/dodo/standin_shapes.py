"""The shapes of Dodo's objects as the `dodopayments` SDK 1.123.0 models them, for the stand-in.

The stand-in keeps one record per object holding every field any view of it has; each view is a
projection of that record:

- the webhook's `data` (with `payload_type`): the bundled sample's fields (samples are the SDK's webhook
  models, field for field);
- `GET /{kind}/{id}`: the full model (Payment, Refund, GetDispute, Subscription, LicenseKey);
- `GET /{kind}` items: the reduced list models (PaymentListResponse, RefundListItem, ...).

tests/contract/test_dodo_standin.py holds every projection to the SDK's model fields, so a field the SDK
adds or drops shows up there, not in a user's reconcile.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headrace.dodo import samples


@dataclass(frozen=True)
class Shape:
    sample: str  # the event type whose sample gives the defaults
    list_fields: tuple[str, ...]
    extras: dict[str, Any] = field(default_factory=dict)  # fields the webhook has not; their defaults
    not_in_webhook: frozenset[str] = frozenset()
    not_in_retrieve: frozenset[str] = frozenset()


_PAYMENT_LIST = (
    "brand_id created_at currency customer digital_products_delivered has_license_key includes_usage "
    "is_multi_subscription metadata payment_id payment_provider retry_attempt service_periods subscription_ids "
    "total_amount card_exp_month card_exp_year card_last_four card_network card_type charge_type "
    "checkout_session_id dispute_status invoice_id invoice_url payment_method payment_method_type refund_status "
    "status subscription_id three_ds_flow three_ds_status three_ds_version"
)
_REFUND_LIST = (
    "business_id created_at is_partial payment_id refund_id status amount currency network_reference "
    "network_reference_type network_reference_updated_at reason"
)
_DISPUTE_LIST = (
    "amount business_id created_at currency dispute_id dispute_stage dispute_status payment_id payment_provider "
    "is_resolved_by_rdr"
)
_SUBSCRIPTION_LIST = (
    "billing cancel_at_next_billing_date created_at currency customer discounts has_payment_method metadata "
    "next_billing_date on_demand payment_frequency_count payment_frequency_interval previous_billing_date "
    "product_id quantity recurring_pre_tax_amount status subscription_id subscription_period_count "
    "subscription_period_interval tax_inclusive trial_period_days cancelled_at cancelled_by customer_business_name "
    "discount_cycles_remaining discount_id paused_at payment_method_id product_name scheduled_change tax_id "
    "trial_amount"
)

# Fields only the list shows are derived from other objects (`derived_list_fields`), not stored.
_PAYMENT_DERIVED = frozenset({"dispute_status", "has_license_key"})

SHAPES: dict[str, Shape] = {
    "payments": Shape("payment.succeeded", tuple(_PAYMENT_LIST.split())),
    "refunds": Shape("refund.succeeded", tuple(_REFUND_LIST.split())),
    "disputes": Shape(
        "dispute.opened",
        tuple(_DISPUTE_LIST.split()),
        extras={"brand_id": None, "customer": None, "payment_provider": "dodo", "reason": None},
        not_in_webhook=frozenset({"brand_id", "customer", "payment_provider", "reason"}),
    ),
    "subscriptions": Shape(
        "subscription.active",
        tuple(_SUBSCRIPTION_LIST.split()),
        extras={"product_name": "Pro plan"},
        not_in_webhook=frozenset({"product_name"}),
        not_in_retrieve=frozenset({"product_name", "past_due_ends_at", "payment_id"}),
    ),
    "license_keys": Shape("license_key.created", ()),  # the list items are the full LicenseKey
    "payouts": Shape("payout.created", ()),  # the list items are the whole payout; there is no retrieve
}


def default_record(kind: str, event_type: str | None = None) -> dict[str, Any]:
    """A record of `kind` from the sample of `event_type` (default: the kind's own), extras filled in."""
    shape = SHAPES[kind]
    data: dict[str, Any] = samples.load(event_type or shape.sample)["data"]
    data.pop("payload_type", None)
    for key, value in shape.extras.items():
        data.setdefault(key, value)
    if kind == "disputes":  # GetDispute names the payment's customer and brand
        payment = samples.load("payment.succeeded")["data"]
        data["customer"] = data["customer"] or payment["customer"]
        data["brand_id"] = data["brand_id"] or payment["brand_id"]
    return data


def webhook_data(kind: str, record: dict[str, Any], payload_type: str) -> dict[str, Any]:
    shape = SHAPES[kind]
    data = {"payload_type": payload_type}
    data.update({k: v for k, v in record.items() if k not in shape.not_in_webhook})
    return data


def retrieved(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    shape = SHAPES[kind]
    return {k: v for k, v in record.items() if k not in shape.not_in_retrieve}


def list_item(kind: str, record: dict[str, Any], derived: dict[str, Any]) -> dict[str, Any]:
    shape = SHAPES[kind]
    if not shape.list_fields:
        return {k: v for k, v in record.items() if k not in shape.not_in_webhook}
    merged = {**record, **derived}
    return {name: merged.get(name) for name in shape.list_fields}


def derived_list_fields(
    kind: str, record: dict[str, Any], objects: dict[str, dict[str, dict[str, Any]]]
) -> dict[str, Any]:
    """A payment's `dispute_status` (its newest dispute's) and `has_license_key`, from the other objects."""
    if kind != "payments":
        return {}
    payment_id = record.get("payment_id")
    disputes = sorted(
        (d for d in objects.get("disputes", {}).values() if d.get("payment_id") == payment_id),
        key=lambda d: str(d.get("created_at")),
    )
    keys = any(k.get("payment_id") == payment_id for k in objects.get("license_keys", {}).values())
    return {
        "dispute_status": disputes[-1]["dispute_status"] if disputes else None,
        "has_license_key": keys,
    } | {k: record[k] for k in _PAYMENT_DERIVED if k in record}
