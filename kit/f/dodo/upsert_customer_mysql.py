# extra_requirements:
# wmill

# Upsert a Dodo customer into MySQL or MariaDB (table dodo_customers, kit/sql/mysql.sql).
# Same behaviour as f/dodo/upsert_customer_postgresql: an older event never overwrites newer details.
from datetime import UTC, datetime
from typing import TypedDict

import pymysql


class mysql(TypedDict):
    host: str
    port: int
    user: str
    database: str
    password: str


def resolve_resource(value):
    # Windmill passes the resource's value. When the caller (a headrace delivery) sent no value, the
    # default "$res:<path>" arrives as a plain string; fetch that resource here.
    if isinstance(value, str) and value.startswith("$res:"):
        import wmill

        return wmill.get_resource(value.removeprefix("$res:"))
    return value


def utc(value: str) -> datetime:
    # DATETIME(6) holds no zone: store UTC.
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(tzinfo=None)


# MySQL evaluates the SET list left to right with the new values already visible, so the
# "is this event newer?" test must run before last_seen_at is updated: last_seen_at comes last.
UPSERT_CUSTOMER = """
INSERT INTO dodo_customers (customer_id, email, name, phone_number, first_seen_at, last_seen_at)
VALUES (%(customer_id)s, %(email)s, %(name)s, %(phone_number)s, %(seen_at)s, %(seen_at)s)
ON DUPLICATE KEY UPDATE
    email = IF(VALUES(last_seen_at) >= last_seen_at, COALESCE(VALUES(email), email), email),
    name = IF(VALUES(last_seen_at) >= last_seen_at, COALESCE(VALUES(name), name), name),
    phone_number = IF(VALUES(last_seen_at) >= last_seen_at,
                      COALESCE(VALUES(phone_number), phone_number), phone_number),
    first_seen_at = LEAST(first_seen_at, VALUES(first_seen_at)),
    last_seen_at = GREATEST(last_seen_at, VALUES(last_seen_at))
"""

SELECT_CUSTOMER = """
SELECT customer_id, email, name, phone_number FROM dodo_customers WHERE customer_id = %(customer_id)s
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
    db: mysql = "$res:f/dodo/mysql",
):
    email, name, phone_number = unguard(email), unguard(name), unguard(phone_number)
    if not customer_id:
        raise ValueError("customer_id is required to upsert a customer")
    db = resolve_resource(db)
    params = {
        "customer_id": customer_id,
        "email": email,
        "name": name,
        "phone_number": phone_number,
        "seen_at": utc(seen_at),
    }
    conn = pymysql.connect(
        host=db["host"],
        port=int(db.get("port") or 3306),
        user=db["user"],
        password=db.get("password") or "",
        database=db["database"],
        charset="utf8mb4",
        connect_timeout=10,
        cursorclass=pymysql.cursors.DictCursor,
    )
    try:
        with conn.cursor() as cur:
            affected = cur.execute(UPSERT_CUSTOMER, params)
            cur.execute(SELECT_CUSTOMER, params)
            row = cur.fetchone()
        conn.commit()
    finally:
        conn.close()
    # MySQL reports 1 affected row for an insert, 2 for an update, 0 when nothing changed.
    return {"inserted": affected == 1, **row}
