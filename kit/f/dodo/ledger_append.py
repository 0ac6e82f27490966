# extra_requirements:
# wmill

# Append one payment, refund, dispute or adjustment event to the dodo_ledger table, idempotent on
# the webhook id: a redelivered or replayed event records nothing and returns duplicate=true. A payment
# is linked to every subscription in subscription_ids (dodo_payment_subscriptions).
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


INSERT_LEDGER = """
INSERT INTO dodo_ledger (webhook_id, event_type, kind, object_id, payment_id, customer_id, status,
                         currency, currency_exponent, amount_minor, occurred_at, metadata)
VALUES (%(webhook_id)s, %(event_type)s, %(kind)s, %(object_id)s, %(payment_id)s, %(customer_id)s, %(status)s,
        %(currency)s, %(currency_exponent)s, %(amount_minor)s, %(occurred_at)s::timestamptz, %(metadata)s::jsonb)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""

LINK_SUBSCRIPTION = """
INSERT INTO dodo_payment_subscriptions (payment_id, subscription_id, webhook_id, linked_at)
VALUES (%(payment_id)s, %(subscription_id)s, %(webhook_id)s, %(occurred_at)s::timestamptz)
ON CONFLICT (payment_id, subscription_id) DO NOTHING
"""

KINDS = ("payment", "refund", "dispute", "adjustment")


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
    webhook_id: str,
    event_type: str,
    kind: str,
    object_id: str,
    currency: str,
    currency_exponent: int,
    amount_minor: int,
    occurred_at: str,
    payment_id: str | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    metadata: dict | None = None,
    subscription_ids: list[str] | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    metadata = unguard(metadata)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if not webhook_id:
        raise ValueError("webhook_id is required: it is what makes the ledger idempotent")
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        raise ValueError(f"amount_minor must be an integer in minor units (got {amount_minor!r})")
    subscriptions = list(dict.fromkeys(subscription_ids or []))
    if any(not isinstance(sub_id, str) or not sub_id for sub_id in subscriptions):
        raise ValueError(f"subscription_ids must be a list of subscription ids (got {subscription_ids!r})")
    if subscriptions and not payment_id:
        raise ValueError("subscription_ids are linked to a payment: pass payment_id too")
    params = {
        "webhook_id": webhook_id,
        "event_type": event_type,
        "kind": kind,
        "object_id": object_id,
        "payment_id": payment_id,
        "customer_id": customer_id,
        "status": status,
        "currency": currency,
        "currency_exponent": currency_exponent,
        "amount_minor": amount_minor,
        "occurred_at": occurred_at,
        "metadata": json.dumps(metadata or {}),
    }
    with connect(db) as conn:
        recorded = conn.execute(INSERT_LEDGER, params).fetchone() is not None
        for sub_id in subscriptions:
            conn.execute(LINK_SUBSCRIPTION, {**params, "subscription_id": sub_id})
    return {
        "recorded": recorded,
        "duplicate": not recorded,
        "webhook_id": webhook_id,
        "subscription_ids": subscriptions,
    }
