# extra_requirements:
# wmill

# Decrement stock (table dodo_inventory) for a payment's product cart. Each (payment, product) moves
# stock once, however often the event is delivered. Products not in dodo_inventory are not tracked
# and are reported as such.
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


DECREMENT = """
WITH moved AS (
    INSERT INTO dodo_inventory_movements (payment_id, product_id, quantity, webhook_id, occurred_at)
    VALUES (%(payment_id)s, %(product_id)s, %(quantity)s, %(webhook_id)s, %(occurred_at)s::timestamptz)
    ON CONFLICT (payment_id, product_id) DO NOTHING
    RETURNING product_id, quantity
)
UPDATE dodo_inventory AS i
SET on_hand = i.on_hand - moved.quantity, updated_at = now()
FROM moved
WHERE i.product_id = moved.product_id
RETURNING i.on_hand
"""

ON_HAND = "SELECT on_hand FROM dodo_inventory WHERE product_id = %(product_id)s"


def main(
    webhook_id: str,
    payment_id: str,
    product_cart: list[dict],
    occurred_at: str,
    low_stock_threshold: int = 0,
    db: postgresql = "$res:f/dodo/db",
):
    items = []
    with connect(db) as conn:
        for entry in product_cart or []:
            product_id, quantity = entry.get("product_id"), entry.get("quantity", 1)
            if not product_id or not isinstance(quantity, int) or quantity < 1:
                raise ValueError(f"payment {payment_id}: bad product_cart entry {entry!r}")
            params = {
                "payment_id": payment_id,
                "product_id": product_id,
                "quantity": quantity,
                "webhook_id": webhook_id,
                "occurred_at": occurred_at,
            }
            row = conn.execute(DECREMENT, params).fetchone()
            if row is not None:
                items.append({"product_id": product_id, "decremented": quantity, "on_hand": row[0]})
                continue
            current = conn.execute(ON_HAND, params).fetchone()
            items.append(
                {
                    "product_id": product_id,
                    "decremented": 0,
                    "on_hand": None if current is None else current[0],
                    "reason": "not tracked in dodo_inventory" if current is None else "already applied",
                }
            )
    low = [i["product_id"] for i in items if i["on_hand"] is not None and i["on_hand"] <= low_stock_threshold]
    return {"payment_id": payment_id, "items": items, "low_stock": low}
