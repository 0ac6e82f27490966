# extra_requirements:
# wmill

# Export the ledger of a period [start, end) as CSV: one line per event, amounts both as exact
# decimals and integer minor units, and the event's effect on net revenue. Returns the CSV text,
# per-currency totals, and a `file` object the Windmill UI offers as a download.
import base64
import csv
import io
from datetime import UTC, datetime
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


LEDGER = """
SELECT occurred_at, webhook_id, event_type, kind, object_id, payment_id, customer_id, status,
       currency, currency_exponent, amount_minor,
       CASE WHEN event_type = 'payment.succeeded' THEN amount_minor
            WHEN event_type IN ('refund.succeeded', 'dispute.lost') THEN -amount_minor
            WHEN kind = 'adjustment' THEN amount_minor
            ELSE 0 END AS net_effect_minor
FROM dodo_ledger
WHERE occurred_at >= %(start)s AND occurred_at < %(end)s
ORDER BY occurred_at, webhook_id
"""

HEADER = [
    "occurred_at",
    "webhook_id",
    "event_type",
    "kind",
    "object_id",
    "payment_id",
    "customer_id",
    "status",
    "currency",
    "amount",
    "amount_minor",
    "net_effect",
    "net_effect_minor",
]


def format_minor(minor: int, exponent: int) -> str:
    sign, digits = ("-" if minor < 0 else ""), str(abs(minor))
    if exponent == 0:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(start: str, end: str, db: postgresql = "$res:f/dodo/db"):
    period = {"start": parse_time(start), "end": parse_time(end)}
    if period["end"] <= period["start"]:
        raise ValueError(f"end ({end}) must be after start ({start})")
    with connect(db) as conn:
        rows = conn.execute(LEDGER, period).fetchall()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    totals: dict[str, dict] = {}
    for occurred, webhook_id, event_type, kind, object_id, payment_id, customer_id, status, cur, exp, amt, net in rows:
        writer.writerow(
            [
                occurred.astimezone(UTC).isoformat(),
                webhook_id,
                event_type,
                kind,
                object_id,
                payment_id or "",
                customer_id or "",
                status or "",
                cur,
                format_minor(amt, exp),
                amt,
                format_minor(net, exp),
                net,
            ]
        )
        total = totals.setdefault(cur, {"currency_exponent": exp, "events": 0, "net_minor": 0})
        total["events"] += 1
        total["net_minor"] += net
    for total in totals.values():
        total["net"] = format_minor(total["net_minor"], total["currency_exponent"])
    text = out.getvalue()
    filename = f"dodo_ledger_{period['start'].date()}_{period['end'].date()}.csv"
    return {
        "rows": len(rows),
        "totals": totals,
        "csv": text,
        "file": {"filename": filename, "content": base64.b64encode(text.encode()).decode()},
    }
