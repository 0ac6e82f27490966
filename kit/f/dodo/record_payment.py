# extra_requirements:
# wmill

# Book a payment event in one transaction: upsert the customer, append the event to the ledger
# (idempotent on the webhook id), link it to every subscription it starts or charges and, for
# payment.succeeded, decrement stock for the product cart.
# The single-script alternative to the f/dodo/on_payment flow; takes exactly the fields of
# headrace's builtin:payment template.
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


UPSERT_CUSTOMER = """
INSERT INTO dodo_customers AS c (customer_id, email, name, phone_number, first_seen_at, last_seen_at)
VALUES (%(customer_id)s, %(customer_email)s, %(customer_name)s, %(customer_phone)s,
        %(timestamp)s::timestamptz, %(timestamp)s::timestamptz)
ON CONFLICT (customer_id) DO UPDATE SET
    email = CASE WHEN EXCLUDED.last_seen_at >= c.last_seen_at
                 THEN COALESCE(EXCLUDED.email, c.email) ELSE c.email END,
    name = CASE WHEN EXCLUDED.last_seen_at >= c.last_seen_at
                THEN COALESCE(EXCLUDED.name, c.name) ELSE c.name END,
    phone_number = CASE WHEN EXCLUDED.last_seen_at >= c.last_seen_at
                        THEN COALESCE(EXCLUDED.phone_number, c.phone_number) ELSE c.phone_number END,
    first_seen_at = LEAST(c.first_seen_at, EXCLUDED.first_seen_at),
    last_seen_at = GREATEST(c.last_seen_at, EXCLUDED.last_seen_at),
    updated_at = now()
"""

INSERT_LEDGER = """
INSERT INTO dodo_ledger (webhook_id, event_type, kind, object_id, payment_id, customer_id, status,
                         currency, currency_exponent, amount_minor, occurred_at, metadata)
VALUES (%(webhook_id)s, %(event_type)s, 'payment', %(payment_id)s, %(payment_id)s, %(customer_id)s, %(status)s,
        %(currency)s, %(currency_exponent)s, %(amount_minor)s, %(timestamp)s::timestamptz, %(metadata_json)s::jsonb)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""

LINK_SUBSCRIPTION = """
INSERT INTO dodo_payment_subscriptions (payment_id, subscription_id, webhook_id, linked_at)
VALUES (%(payment_id)s, %(subscription_id)s, %(webhook_id)s, %(timestamp)s::timestamptz)
ON CONFLICT (payment_id, subscription_id) DO NOTHING
"""

DECREMENT = """
WITH moved AS (
    INSERT INTO dodo_inventory_movements (payment_id, product_id, quantity, webhook_id, occurred_at)
    VALUES (%(payment_id)s, %(product_id)s, %(quantity)s, %(webhook_id)s, %(timestamp)s::timestamptz)
    ON CONFLICT (payment_id, product_id) DO NOTHING
    RETURNING product_id, quantity
)
UPDATE dodo_inventory AS i
SET on_hand = i.on_hand - moved.quantity, updated_at = now()
FROM moved
WHERE i.product_id = moved.product_id
RETURNING i.product_id, i.on_hand
"""


def linked_subscriptions(subscription_ids, subscription_id):
    # Every subscription of the payment: a multi-subscription payment has subscription_id null and
    # all of them in subscription_ids; older payloads carry only subscription_id.
    ids = list(subscription_ids or ([subscription_id] if subscription_id else []))
    for sub_id in ids:
        if not isinstance(sub_id, str) or not sub_id:
            raise ValueError(f"subscription_ids must be a list of subscription ids (got {subscription_ids!r})")
    return list(dict.fromkeys(ids))


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
    payment_id: str,
    amount_minor: int,
    customer_id: str,
    customer_email: str,
    customer_name: str,
    product_cart: list[dict],
    metadata: dict,
    created_at: str,
    status: str | None = None,
    currency: str | None = None,
    currency_exponent: int | None = None,
    amount: str | None = None,
    notes: list[str] | None = None,
    tax_minor: int | None = None,
    tax: str | None = None,
    customer_phone: str | None = None,
    payment_method: str | None = None,
    subscription_id: str | None = None,
    subscription_ids: list[str] | None = None,
    is_multi_subscription: bool = False,
    error_code: str | None = None,
    error_message: str | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    customer_email = unguard(customer_email)
    customer_name = unguard(customer_name)
    customer_phone = unguard(customer_phone)
    metadata = unguard(metadata)
    error_message = unguard(error_message)
    if not event_type.startswith("payment."):
        raise ValueError(f"{event_type!r} is not a payment event (webhook {webhook_id})")
    if not webhook_id or not payment_id:
        raise ValueError(f"webhook_id and payment_id are required (webhook {webhook_id!r}, payment {payment_id!r})")
    if currency_exponent is None:
        raise ValueError(
            f"payment {payment_id} (webhook {webhook_id}): the minor unit of currency {currency!r} is unknown, "
            "so the amount cannot be booked" + "".join(f"; {note}" for note in notes or [])
        )
    params = {
        "event_type": event_type,
        "webhook_id": webhook_id,
        "timestamp": timestamp,
        "payment_id": payment_id,
        "status": status,
        "currency": currency,
        "currency_exponent": currency_exponent,
        "amount_minor": amount_minor,
        "customer_id": customer_id,
        "customer_email": customer_email,
        "customer_name": customer_name,
        "customer_phone": customer_phone,
        "metadata_json": json.dumps(metadata or {}),
    }
    subscriptions = linked_subscriptions(subscription_ids, subscription_id)
    stock = []
    with connect(db) as conn:
        if customer_id:
            conn.execute(UPSERT_CUSTOMER, params)
        recorded = conn.execute(INSERT_LEDGER, params).fetchone() is not None
        for sub_id in subscriptions:
            conn.execute(LINK_SUBSCRIPTION, {**params, "subscription_id": sub_id})
        if event_type == "payment.succeeded":
            for item in product_cart or []:
                row = conn.execute(
                    DECREMENT, {**params, "product_id": item["product_id"], "quantity": item.get("quantity", 1)}
                ).fetchone()
                if row is not None:
                    stock.append({"product_id": row[0], "on_hand": row[1]})
    return {
        "payment_id": payment_id,
        "recorded": recorded,
        "duplicate": not recorded,
        "stock": stock,
        "subscription_ids": subscriptions,
        "message": f"Payment {payment_id} {status or event_type.split('.', 1)[1]}: {amount} {currency} "
        f"from {customer_email or customer_id}",
    }
