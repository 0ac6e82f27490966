# extra_requirements:
# wmill

# Book a Dodo entitlement grant event: once in dodo_entitlement_grant_events (idempotent on the webhook id)
# and the grant's latest state in dodo_entitlement_grants (an older event is recorded but changes nothing).
# A failed or revoked grant sets `alert` (once per event) with a `message` for the flow
# f/dodo/on_entitlement_grant to post: the customer paid and did not get, or lost, what they bought.
# Takes exactly the fields of headrace's builtin:entitlement_grant template.
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
INSERT INTO dodo_entitlement_grant_events (webhook_id, grant_id, event_type, status, occurred_at)
VALUES (%(webhook_id)s, %(grant_id)s, %(event_type)s, %(status)s, %(timestamp)s::timestamptz)
ON CONFLICT (webhook_id) DO NOTHING
RETURNING webhook_id
"""

UPSERT_GRANT = """
INSERT INTO dodo_entitlement_grants (grant_id, entitlement_id, integration_type, status, customer_id, payment_id,
                                     subscription_id, license_key_id, delivered_at, revoked_at, revocation_reason,
                                     error_code, error_message, created_at, last_event_type, last_event_at,
                                     last_webhook_id)
VALUES (%(grant_id)s, %(entitlement_id)s, %(integration_type)s, %(status)s, %(customer_id)s, %(payment_id)s,
        %(subscription_id)s, %(license_key_id)s, %(delivered_at)s::timestamptz, %(revoked_at)s::timestamptz,
        %(revocation_reason)s, %(error_code)s, %(error_message)s, %(created_at)s::timestamptz, %(event_type)s,
        %(timestamp)s::timestamptz, %(webhook_id)s)
ON CONFLICT (grant_id) DO UPDATE SET
    status = EXCLUDED.status,
    license_key_id = COALESCE(EXCLUDED.license_key_id, dodo_entitlement_grants.license_key_id),
    delivered_at = COALESCE(EXCLUDED.delivered_at, dodo_entitlement_grants.delivered_at),
    revoked_at = EXCLUDED.revoked_at,
    revocation_reason = EXCLUDED.revocation_reason,
    error_code = EXCLUDED.error_code,
    error_message = EXCLUDED.error_message,
    last_event_type = EXCLUDED.last_event_type,
    last_event_at = EXCLUDED.last_event_at,
    last_webhook_id = EXCLUDED.last_webhook_id,
    updated_at = now()
WHERE (dodo_entitlement_grants.last_event_at, dodo_entitlement_grants.last_webhook_id)
    < (EXCLUDED.last_event_at, EXCLUDED.last_webhook_id)
RETURNING status
"""

CURRENT = "SELECT status FROM dodo_entitlement_grants WHERE grant_id = %(grant_id)s"
CUSTOMER = "SELECT email FROM dodo_customers WHERE customer_id = %(customer_id)s"


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
    grant_id: str,
    entitlement_id: str,
    integration_type: str,
    status: str,
    customer_id: str,
    metadata: dict,
    created_at: str,
    payment_id: str | None = None,
    subscription_id: str | None = None,
    license_key_id: str | None = None,
    delivered_at: str | None = None,
    revoked_at: str | None = None,
    revocation_reason: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
    updated_at: str | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    revocation_reason, error_message = unguard(revocation_reason), unguard(error_message)
    if not event_type.startswith("entitlement_grant."):
        raise ValueError(f"{event_type!r} is not an entitlement grant event (webhook {webhook_id})")
    params = {
        "webhook_id": webhook_id,
        "event_type": event_type,
        "timestamp": timestamp,
        "grant_id": grant_id,
        "entitlement_id": entitlement_id,
        "integration_type": integration_type,
        "status": status,
        "customer_id": customer_id,
        "payment_id": payment_id,
        "subscription_id": subscription_id,
        "license_key_id": license_key_id,
        "delivered_at": delivered_at,
        "revoked_at": revoked_at,
        "revocation_reason": revocation_reason,
        "error_code": error_code,
        "error_message": error_message,
        "created_at": created_at,
    }
    with connect(db) as conn:
        recorded = conn.execute(INSERT_EVENT, params).fetchone() is not None
        applied = recorded and conn.execute(UPSERT_GRANT, params).fetchone() is not None
        (state,) = conn.execute(CURRENT, params).fetchone()
        contact = conn.execute(CUSTOMER, params).fetchone()
    who = unguard(contact[0]) if contact and contact[0] else customer_id
    bad = event_type in ("entitlement_grant.failed", "entitlement_grant.revoked")
    if event_type == "entitlement_grant.failed":
        why = f"failed ({error_code or 'no code'}: {error_message or 'no message'})"
    elif event_type == "entitlement_grant.revoked":
        why = f"was revoked ({revocation_reason or 'no reason given'})"
    else:
        why = status
    return {
        "grant_id": grant_id,
        "recorded": recorded,
        "duplicate": not recorded,
        "applied": applied,
        "status": state,
        "alert": bad and recorded,
        "message": f":warning: {integration_type} grant {grant_id} for {who} {why}"
        + (f" (payment {payment_id})" if payment_id else ""),
    }
