# extra_requirements:
# wmill

# Upsert a Dodo customer into PostgreSQL (table dodo_customers, kit/sql/postgresql.sql).
# Tolerates out-of-order events: contact details from an older event never overwrite newer ones.
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
VALUES (%(customer_id)s, %(email)s, %(name)s, %(phone_number)s, %(seen_at)s::timestamptz, %(seen_at)s::timestamptz)
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
RETURNING (xmax = 0) AS inserted, customer_id, email, name, phone_number
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
    customer_id: str,
    email: str,
    name: str,
    seen_at: str,
    phone_number: str | None = None,
    db: postgresql = "$res:f/dodo/db",
):
    email, name, phone_number = unguard(email), unguard(name), unguard(phone_number)
    if not customer_id:
        raise ValueError("customer_id is required to upsert a customer")
    params = {
        "customer_id": customer_id,
        "email": email,
        "name": name,
        "phone_number": phone_number,
        "seen_at": seen_at,
    }
    with connect(db) as conn:
        inserted, *row = conn.execute(UPSERT_CUSTOMER, params).fetchone()
    return {"inserted": inserted, **dict(zip(["customer_id", "email", "name", "phone_number"], row, strict=True))}
