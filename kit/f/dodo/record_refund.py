# extra_requirements:
# wmill

# Book a refund event in the ledger (idempotent on the webhook id) and report what is left of the
# refunded payment. Takes exactly the fields of headrace's builtin:refund template. When Dodo omits
# the refund's currency, the payment's currency from the ledger is used.
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


PAYMENT = """
SELECT currency, currency_exponent, amount_minor FROM dodo_ledger
WHERE payment_id = %(payment_id)s AND event_type = 'payment.succeeded'
ORDER BY occurred_at LIMIT 1
"""

INSERT_LEDGER = """
INSERT INTO dodo_ledger (webhook_id, event_type, kind, object_id, payment_id, customer_id, status,
                         currency, currency_exponent, amount_minor, occurred_at, metadata)
VALUES (%(webhook_id)s, %(event_type)s, 'refund', %(refund_id)s, %(payment_id)s, %(customer_id)s, %(status)s,
        %(currency)s, %(currency_exponent)s, %(amount_minor)s, %(timestamp)s::timestamptz, %(metadata)s::jsonb)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""

# Each refund counts once even if Dodo sent refund.succeeded for it more than once.
REFUNDED = """
SELECT COALESCE(sum(amount_minor), 0) FROM (
    SELECT DISTINCT ON (object_id) amount_minor FROM dodo_ledger
    WHERE payment_id = %(payment_id)s AND event_type = 'refund.succeeded'
    ORDER BY object_id, occurred_at
) AS refunds
"""


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
    refund_id: str,
    payment_id: str,
    status: str,
    is_partial: bool,
    customer_id: str,
    customer_email: str,
    customer_name: str,
    created_at: str,
    metadata: dict,
    currency: str | None = None,
    currency_exponent: int | None = None,
    amount_minor: int | None = None,
    amount: str | None = None,
    reason: str | None = None,
    notes: list[str] | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    customer_email = unguard(customer_email)
    customer_name = unguard(customer_name)
    reason = unguard(reason)
    metadata = unguard(metadata)
    if event_type not in ("refund.succeeded", "refund.failed"):
        raise ValueError(f"{event_type!r} is not a refund event (webhook {webhook_id})")
    with connect(db) as conn:
        payment = conn.execute(PAYMENT, {"payment_id": payment_id}).fetchone()
        if currency is None:
            if payment is None:
                raise ValueError(
                    f"refund {refund_id} (webhook {webhook_id}) has no currency and payment {payment_id} "
                    "is not in dodo_ledger; book the payment first or add the currency"
                )
            currency, currency_exponent = payment[0], payment[1]
        elif currency_exponent is None:
            raise ValueError(
                f"refund {refund_id} (webhook {webhook_id}): the minor unit of currency {currency!r} is unknown, "
                "so the amount cannot be booked" + "".join(f"; {note}" for note in notes or [])
            )
        if amount_minor is None:
            if event_type == "refund.succeeded":
                raise ValueError(f"refund {refund_id} (webhook {webhook_id}) succeeded but carries no amount")
            amount_minor = 0
        params = {
            "webhook_id": webhook_id,
            "event_type": event_type,
            "refund_id": refund_id,
            "payment_id": payment_id,
            "customer_id": customer_id,
            "status": status,
            "currency": currency,
            "currency_exponent": currency_exponent,
            "amount_minor": amount_minor,
            "timestamp": timestamp,
            "metadata": json.dumps({**(metadata or {}), "reason": reason, "is_partial": is_partial}),
        }
        recorded = conn.execute(INSERT_LEDGER, params).fetchone() is not None
        refunded = conn.execute(REFUNDED, params).fetchone()[0]
    paid = payment[2] if payment is not None else None
    remaining = None if paid is None else paid - refunded
    return {
        "refund_id": refund_id,
        "payment_id": payment_id,
        "recorded": recorded,
        "duplicate": not recorded,
        "currency": currency,
        "refunded_minor": refunded,
        "refunded": format_minor(refunded, currency_exponent),
        "payment_amount_minor": paid,
        "remaining_minor": remaining,
        "over_refunded": remaining is not None and remaining < 0,
        "message": f"Refund {refund_id} {status}: {format_minor(amount_minor, currency_exponent)} {currency} "
        f"of payment {payment_id} for {customer_email or customer_id}",
    }
