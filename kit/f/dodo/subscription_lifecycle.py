# extra_requirements:
# wmill

# The subscription lifecycle: record every subscription.* event once (dodo_subscription_events) and
# keep the latest state per subscription (dodo_subscriptions). Events may arrive late, twice or out
# of order; a state change is applied only when the event is newer than the stored one (by event
# time, then webhook id). Returns what happened in lifecycle terms, the MRR change and a message.
# Takes exactly the fields of headrace's builtin:subscription template.
from fractions import Fraction
from typing import TypedDict

import psycopg


class postgresql(TypedDict):
    host: str
    port: int
    user: str
    dbname: str
    sslmode: str
    password: str


def resolve_resource(value):
    # Windmill passes the resource's value. When the caller (a headrace delivery) sent no value, the
    # default "$res:<path>" arrives as a plain string; fetch that resource here.
    if isinstance(value, str) and value.startswith("$res:"):
        import wmill

        return wmill.get_resource(value.removeprefix("$res:"))
    return value


def connect(db: postgresql) -> psycopg.Connection:
    db = resolve_resource(db)
    return psycopg.connect(
        host=db["host"],
        port=int(db.get("port") or 5432),
        user=db["user"],
        password=db.get("password") or None,
        dbname=db["dbname"],
        sslmode=db.get("sslmode") or "prefer",
        connect_timeout=10,
    )


TERMINAL = ("cancelled", "expired", "failed")
LIFECYCLE = {
    "subscription.active": "started",
    "subscription.renewed": "renewed",
    "subscription.on_hold": "on_hold",
    "subscription.paused": "paused",
    "subscription.unpaused": "resumed",
    "subscription.plan_changed": "plan_changed",
    "subscription.cancelled": "churned",
    "subscription.expired": "churned",
    "subscription.failed": "failed",
    "subscription.past_due": "past_due",
}
NOTIFY = {"started", "reactivated", "churned", "failed", "on_hold", "plan_changed", "past_due"}
MONTHS_PER_INTERVAL = {"Day": Fraction(12, 365), "Week": Fraction(12, 52), "Month": Fraction(1), "Year": Fraction(12)}

INSERT_EVENT = """
INSERT INTO dodo_subscription_events (webhook_id, subscription_id, event_type, status, currency,
                                      currency_exponent, amount_minor, occurred_at)
VALUES (%(webhook_id)s, %(subscription_id)s, %(event_type)s, %(status)s, %(currency)s,
        %(currency_exponent)s, %(amount_minor)s, %(timestamp)s::timestamptz)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""

CURRENT_STATE = """
SELECT status, amount_minor, billing_interval, billing_interval_count, ended_at IS NOT NULL
FROM dodo_subscriptions WHERE subscription_id = %(subscription_id)s FOR UPDATE
"""

UPSERT_STATE = """
INSERT INTO dodo_subscriptions AS s (
    subscription_id, customer_id, product_id, status, quantity, currency, currency_exponent, amount_minor,
    billing_interval, billing_interval_count, next_billing_date, cancel_at_next_billing_date, cancelled_at,
    started_at, ended_at, last_event_type, last_event_at, last_webhook_id)
VALUES (
    %(subscription_id)s, %(customer_id)s, %(product_id)s, %(status)s, %(quantity)s, %(currency)s,
    %(currency_exponent)s, %(amount_minor)s, %(billing_interval)s, %(billing_interval_count)s,
    %(next_billing_date)s::timestamptz, %(cancel_at_next_billing_date)s, %(cancelled_at)s::timestamptz,
    COALESCE(%(created_at)s::timestamptz, %(timestamp)s::timestamptz),
    CASE WHEN %(status)s IN ('cancelled', 'expired', 'failed')
         THEN COALESCE(%(cancelled_at)s::timestamptz, %(timestamp)s::timestamptz) END,
    %(event_type)s, %(timestamp)s::timestamptz, %(webhook_id)s)
ON CONFLICT (subscription_id) DO UPDATE SET
    customer_id = EXCLUDED.customer_id,
    product_id = EXCLUDED.product_id,
    status = EXCLUDED.status,
    quantity = EXCLUDED.quantity,
    currency = EXCLUDED.currency,
    currency_exponent = EXCLUDED.currency_exponent,
    amount_minor = EXCLUDED.amount_minor,
    billing_interval = EXCLUDED.billing_interval,
    billing_interval_count = EXCLUDED.billing_interval_count,
    next_billing_date = EXCLUDED.next_billing_date,
    cancel_at_next_billing_date = EXCLUDED.cancel_at_next_billing_date,
    cancelled_at = EXCLUDED.cancelled_at,
    started_at = LEAST(s.started_at, EXCLUDED.started_at),
    ended_at = CASE WHEN EXCLUDED.status IN ('cancelled', 'expired', 'failed')
                    THEN COALESCE(s.ended_at, EXCLUDED.ended_at) END,
    last_event_type = EXCLUDED.last_event_type,
    last_event_at = EXCLUDED.last_event_at,
    last_webhook_id = EXCLUDED.last_webhook_id,
    updated_at = now()
WHERE (s.last_event_at, s.last_webhook_id) < (EXCLUDED.last_event_at, EXCLUDED.last_webhook_id)
RETURNING subscription_id
"""


def monthly_minor(amount_minor, interval, count) -> Fraction:
    # Recurring amount normalised to one month, exact (rounded only when reported).
    return Fraction(amount_minor or 0) / (MONTHS_PER_INTERVAL.get(interval, Fraction(1)) * max(count or 1, 1))


GUARD = "\u2060"


def unguard(value):
    # headrace puts one invisible U+2060 in front of every Dodo text that starts with "$" (or with U+2060),
    # so Windmill never resolves a customer's text as a $var:/$res:/$WM_TOKEN reference. Take one off to
    # get the exact text back, at any depth of a dict or list (kit/README.md, "Text that starts with $").
    if isinstance(value, str):
        return value[1:] if value.startswith(GUARD) else value
    if isinstance(value, dict):
        return {key: unguard(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unguard(item) for item in value]
    return value


def main(
    event_type: str,
    webhook_id: str,
    timestamp: str,
    business_id: str,
    subscription_id: str,
    status: str,
    product_id: str,
    quantity: int,
    customer_id: str,
    customer_email: str,
    customer_name: str,
    amount_minor: int,
    billing_interval: str,
    billing_interval_count: int,
    cancel_at_next_billing_date: bool,
    created_at: str,
    metadata: dict,
    currency: str | None = None,
    currency_exponent: int | None = None,
    amount: str | None = None,
    notes: list[str] | None = None,
    next_billing_date: str | None = None,
    previous_billing_date: str | None = None,
    cancelled_at: str | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    customer_email, customer_name, metadata = unguard(customer_email), unguard(customer_name), unguard(metadata)
    if not event_type.startswith("subscription."):
        raise ValueError(f"{event_type!r} is not a subscription event (webhook {webhook_id})")
    if not subscription_id or not webhook_id:
        raise ValueError(f"subscription_id and webhook_id are required (webhook {webhook_id!r})")
    if currency_exponent is None:
        raise ValueError(
            f"subscription {subscription_id} (webhook {webhook_id}): the minor unit of currency {currency!r} is "
            "unknown, so its amount cannot be recorded" + "".join(f"; {note}" for note in notes or [])
        )
    params = dict(locals())
    params.pop("db")
    with connect(db) as conn:
        duplicate = conn.execute(INSERT_EVENT, params).fetchone() is None
        before = conn.execute(CURRENT_STATE, params).fetchone()
        applied = conn.execute(UPSERT_STATE, params).fetchone() is not None

    active_now = status == "active"
    mrr_after = monthly_minor(amount_minor, billing_interval, billing_interval_count) if active_now else Fraction(0)
    if before is None:
        mrr_before, previous_status, was_ended = Fraction(0), None, False
    else:
        previous_status, old_amount, old_interval, old_count, was_ended = before
        mrr_before = monthly_minor(old_amount, old_interval, old_count) if previous_status == "active" else Fraction(0)

    lifecycle = LIFECYCLE.get(event_type, "updated")
    if lifecycle == "started" and was_ended:
        lifecycle = "reactivated"
    if duplicate:
        lifecycle = "duplicate"
    elif not applied:
        lifecycle = "stale"  # an older event than the state we hold: recorded in history only
    mrr_delta = round(mrr_after - mrr_before) if applied and not duplicate else 0
    who = customer_email or customer_id
    return {
        "subscription_id": subscription_id,
        "lifecycle": lifecycle,
        "applied": applied and not duplicate,
        "duplicate": duplicate,
        "previous_status": previous_status,
        "status": status if applied else previous_status,
        "mrr_delta_minor": mrr_delta,
        "currency": currency,
        "notify": lifecycle in NOTIFY,
        "message": f"Subscription {subscription_id} ({who}) {lifecycle.replace('_', ' ')}: "
        f"{amount} {currency} every {billing_interval_count} {billing_interval}",
    }
