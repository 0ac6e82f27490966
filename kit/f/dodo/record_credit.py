# extra_requirements:
# wmill

# Book a Dodo credit event in dodo_credit_events (idempotent on the webhook id) and, for
# credit.balance_low, say so: `alert` is true and `message` names the customer, what is left and the
# threshold, for the flow f/dodo/on_credit to post. Takes exactly the fields of headrace's builtin:credit
# template. Credits are stored as exact decimals (numeric), never floats.
import json
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


INSERT = """
INSERT INTO dodo_credit_events (webhook_id, event_type, customer_id, credit_entitlement_id, entry_id,
                                transaction_type, amount, balance_after, occurred_at, metadata)
VALUES (%(webhook_id)s, %(event_type)s, %(customer_id)s, %(credit_entitlement_id)s, %(entry_id)s,
        %(transaction_type)s, %(amount)s::numeric, %(balance_after)s::numeric, %(timestamp)s::timestamptz,
        %(metadata)s::jsonb)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""

CUSTOMER = "SELECT email, name FROM dodo_customers WHERE customer_id = %(customer_id)s"

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
    customer_id: str,
    credit_entitlement_id: str,
    metadata: dict,
    credit_entitlement_name: str | None = None,
    subscription_id: str | None = None,
    entry_id: str | None = None,
    transaction_type: str | None = None,
    is_credit: bool | None = None,
    amount: str | None = None,
    balance_before: str | None = None,
    balance_after: str | None = None,
    overage_before: str | None = None,
    overage_after: str | None = None,
    available_balance: str | None = None,
    threshold_amount: str | None = None,
    threshold_percent: int | None = None,
    subscription_credits_amount: str | None = None,
    description: str | None = None,
    grant_id: str | None = None,
    reference_id: str | None = None,
    reference_type: str | None = None,
    created_at: str | None = None,
    notes: list[str] | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    credit_entitlement_name, description, metadata = (
        unguard(credit_entitlement_name),
        unguard(description),
        unguard(metadata),
    )
    if not event_type.startswith("credit."):
        raise ValueError(f"{event_type!r} is not a credit event (webhook {webhook_id})")
    low = event_type == "credit.balance_low"
    params = {
        "webhook_id": webhook_id,
        "event_type": event_type,
        "customer_id": customer_id,
        "credit_entitlement_id": credit_entitlement_id,
        "entry_id": entry_id,
        "transaction_type": transaction_type,
        "amount": amount,
        "balance_after": available_balance if low else balance_after,
        "timestamp": timestamp,
        "metadata": json.dumps(
            {
                **(metadata or {}),
                "description": description,
                "grant_id": grant_id,
                "reference_id": reference_id,
                "reference_type": reference_type,
            }
        ),
    }
    with connect(db) as conn:
        recorded = conn.execute(INSERT, params).fetchone() is not None
        contact = conn.execute(CUSTOMER, params).fetchone()
    who = unguard(contact[0]) if contact and contact[0] else customer_id
    what = credit_entitlement_name or credit_entitlement_id
    if low:
        message = (
            f":warning: {who} is low on {what}: {available_balance} left"
            f" (threshold {threshold_amount}, {threshold_percent}% of {subscription_credits_amount} per period;"
            f" subscription {subscription_id})"
        )
    else:
        message = f"{who}: {event_type} {amount} {what}, balance {balance_after}"
    return {"recorded": recorded, "duplicate": not recorded, "alert": low and recorded, "message": message}
