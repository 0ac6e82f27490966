# extra_requirements:
# wmill

# Book a dispute event in the ledger (idempotent on the webhook id) and say whether it needs urgent
# attention. Takes exactly the fields of headrace's builtin:dispute template. The customer is taken
# from the disputed payment's ledger row when there is one.
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
SELECT %(webhook_id)s, %(event_type)s, 'dispute', %(dispute_id)s, %(payment_id)s,
       (SELECT customer_id FROM dodo_ledger WHERE payment_id = %(payment_id)s AND kind = 'payment'
        AND customer_id IS NOT NULL ORDER BY occurred_at LIMIT 1),
       %(status)s, %(currency)s, %(currency_exponent)s, %(amount_minor)s, %(timestamp)s::timestamptz,
       jsonb_build_object('stage', %(stage)s::text, 'remarks', %(remarks)s::text)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING customer_id
"""


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
    dispute_id: str,
    payment_id: str,
    status: str,
    stage: str,
    urgent: bool,
    created_at: str,
    currency: str | None = None,
    currency_exponent: int | None = None,
    amount_minor: int | None = None,
    amount: str | None = None,
    remarks: str | None = None,
    notes: list[str] | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    remarks = unguard(remarks)
    if not event_type.startswith("dispute."):
        raise ValueError(f"{event_type!r} is not a dispute event (webhook {webhook_id})")
    if amount_minor is None:
        raise ValueError(
            f"dispute {dispute_id} (webhook {webhook_id}): Dodo's amount is not an integer string; "
            "check the event body and book it by hand" + "".join(f"; {note}" for note in notes or [])
        )
    if currency_exponent is None:
        raise ValueError(
            f"dispute {dispute_id} (webhook {webhook_id}): the minor unit of currency {currency!r} is unknown, "
            "so the amount cannot be booked" + "".join(f"; {note}" for note in notes or [])
        )
    params = {
        "webhook_id": webhook_id,
        "event_type": event_type,
        "dispute_id": dispute_id,
        "payment_id": payment_id,
        "status": status,
        "stage": stage,
        "remarks": remarks,
        "currency": currency,
        "currency_exponent": currency_exponent,
        "amount_minor": amount_minor,
        "timestamp": timestamp,
    }
    with connect(db) as conn:
        row = conn.execute(INSERT_LEDGER, params).fetchone()
    what = event_type.split(".", 1)[1]
    return {
        "dispute_id": dispute_id,
        "recorded": row is not None,
        "duplicate": row is None,
        "urgent": bool(urgent) and row is not None,
        "customer_id": row[0] if row else None,
        "message": f"{'URGENT: ' if urgent else ''}Dispute {dispute_id} {what} on payment {payment_id}: "
        f"{amount} {currency}, stage {stage}, status {status}" + (f" ({remarks})" if remarks else ""),
    }
