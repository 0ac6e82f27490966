# extra_requirements:
# wmill

# Book a manual adjustment (credit note, chargeback fee, correction) in the ledger. amount_minor is
# signed: negative lowers net revenue. Idempotent on adjustment_id.
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
VALUES (%(key)s, 'adjustment', 'adjustment', %(adjustment_id)s, %(payment_id)s, %(customer_id)s, 'booked',
        %(currency)s, %(currency_exponent)s, %(amount_minor)s, %(occurred_at)s::timestamptz, %(metadata)s::jsonb)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""


def main(
    adjustment_id: str,
    currency: str,
    currency_exponent: int,
    amount_minor: int,
    reason: str,
    occurred_at: str,
    payment_id: str | None = None,
    customer_id: str | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    if not adjustment_id or not reason:
        raise ValueError("adjustment_id and reason are required for an adjustment")
    params = {
        "key": f"adjustment:{adjustment_id}",
        "adjustment_id": adjustment_id,
        "payment_id": payment_id,
        "customer_id": customer_id,
        "currency": currency.upper(),
        "currency_exponent": currency_exponent,
        "amount_minor": amount_minor,
        "occurred_at": occurred_at,
        "metadata": json.dumps({"reason": reason}),
    }
    with connect(db) as conn:
        recorded = conn.execute(INSERT_LEDGER, params).fetchone() is not None
    return {"adjustment_id": adjustment_id, "recorded": recorded, "duplicate": not recorded}
