# extra_requirements:
# wmill

# Book a Dodo payout event: its history in dodo_payout_events (idempotent on the webhook id) and the
# payout's latest state in dodo_payouts (an event older than the stored state is recorded but changes
# nothing, so out-of-order and repeated deliveries are safe). Takes exactly the fields of headrace's
# builtin:payout template. Amounts are integers in the payout currency's minor unit.
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


INSERT_EVENT = """
INSERT INTO dodo_payout_events (webhook_id, payout_id, event_type, status, amount_minor, currency, occurred_at)
VALUES (%(webhook_id)s, %(payout_id)s, %(event_type)s, %(status)s, %(amount_minor)s, %(currency)s,
        %(timestamp)s::timestamptz)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""

UPSERT_PAYOUT = """
INSERT INTO dodo_payouts (payout_id, status, name, currency, currency_exponent, amount_minor, fee_minor, tax_minor,
                          refunds_minor, chargebacks_minor, payment_method, payout_document_url, remarks, created_at,
                          paid_at, last_event_type, last_event_at, last_webhook_id)
VALUES (%(payout_id)s, %(status)s, %(name)s, %(currency)s, %(currency_exponent)s, %(amount_minor)s, %(fee_minor)s,
        %(tax_minor)s, %(refunds_minor)s, %(chargebacks_minor)s, %(payment_method)s, %(payout_document_url)s,
        %(remarks)s, %(created_at)s::timestamptz, %(paid_at)s::timestamptz, %(event_type)s,
        %(timestamp)s::timestamptz, %(webhook_id)s)
ON CONFLICT (payout_id) DO UPDATE SET
    status = EXCLUDED.status,
    name = EXCLUDED.name,
    currency = EXCLUDED.currency,
    currency_exponent = EXCLUDED.currency_exponent,
    amount_minor = EXCLUDED.amount_minor,
    fee_minor = EXCLUDED.fee_minor,
    tax_minor = EXCLUDED.tax_minor,
    refunds_minor = EXCLUDED.refunds_minor,
    chargebacks_minor = EXCLUDED.chargebacks_minor,
    payment_method = EXCLUDED.payment_method,
    payout_document_url = EXCLUDED.payout_document_url,
    remarks = EXCLUDED.remarks,
    paid_at = COALESCE(EXCLUDED.paid_at, dodo_payouts.paid_at),
    last_event_type = EXCLUDED.last_event_type,
    last_event_at = EXCLUDED.last_event_at,
    last_webhook_id = EXCLUDED.last_webhook_id,
    updated_at = now()
WHERE (dodo_payouts.last_event_at, dodo_payouts.last_webhook_id) < (EXCLUDED.last_event_at, EXCLUDED.last_webhook_id)
RETURNING status
"""

CURRENT = "SELECT status, paid_at IS NOT NULL FROM dodo_payouts WHERE payout_id = %(payout_id)s"


def format_minor(minor: int, exponent: int) -> str:
    sign, digits = ("-" if minor < 0 else ""), str(abs(minor))
    if exponent == 0:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


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
    payout_id: str,
    status: str,
    created_at: str,
    name: str | None = None,
    currency: str | None = None,
    currency_exponent: int | None = None,
    amount_minor: int | None = None,
    amount: str | None = None,
    fee_minor: int | None = None,
    tax_minor: int | None = None,
    refunds_minor: int | None = None,
    chargebacks_minor: int | None = None,
    payment_method: str | None = None,
    payout_document_url: str | None = None,
    remarks: str | None = None,
    updated_at: str | None = None,
    notes: list[str] | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    name, remarks = unguard(name), unguard(remarks)
    if not event_type.startswith("payout."):
        raise ValueError(f"{event_type!r} is not a payout event (webhook {webhook_id})")
    if currency is None or currency_exponent is None or amount_minor is None:
        raise ValueError(
            f"payout {payout_id} (webhook {webhook_id}): no amount in a known currency, so it cannot be booked"
            + "".join(f"; {note}" for note in notes or [])
        )
    params = {
        "webhook_id": webhook_id,
        "event_type": event_type,
        "timestamp": timestamp,
        "payout_id": payout_id,
        "status": status,
        "name": name,
        "currency": currency,
        "currency_exponent": currency_exponent,
        "amount_minor": amount_minor,
        "fee_minor": fee_minor,
        "tax_minor": tax_minor,
        "refunds_minor": refunds_minor,
        "chargebacks_minor": chargebacks_minor,
        "payment_method": payment_method,
        "payout_document_url": payout_document_url,
        "remarks": remarks,
        "created_at": created_at,
        "paid_at": timestamp if event_type == "payout.success" else None,
    }
    with connect(db) as conn:
        recorded = conn.execute(INSERT_EVENT, params).fetchone() is not None
        applied = recorded and conn.execute(UPSERT_PAYOUT, params).fetchone() is not None
        state, paid = conn.execute(CURRENT, params).fetchone()
    money = f"{format_minor(amount_minor, currency_exponent)} {currency}"
    return {
        "payout_id": payout_id,
        "recorded": recorded,
        "duplicate": not recorded,
        "applied": applied,
        "status": state,
        "paid": paid,
        "alert": recorded and status in ("failed", "on_hold"),
        "message": f"Payout {payout_id} ({name or 'unnamed'}) {status}: {money}" + (f" — {remarks}" if remarks else ""),
    }
