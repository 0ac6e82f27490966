# extra_requirements:
# wmill

# Recompute the dodo_daily_metrics rows of one UTC day (one row per currency) from the ledger and
# the subscription events: gross, refunds, dispute losses, adjustments, net, counts, new and churned
# subscriptions. Recomputing makes it idempotent: run it as often as you like (the flows run it for
# the event's day; schedule it daily to catch up).
from datetime import UTC, date, datetime, timedelta
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


# A subscription is new on the day of its first subscription.active event and churned on the day
# of its first cancelled/expired event.
RECOMPUTE = """
WITH money AS (
    SELECT currency, max(currency_exponent) AS currency_exponent,
           COALESCE(sum(amount_minor) FILTER (WHERE event_type = 'payment.succeeded'), 0) AS gross,
           COALESCE(sum(amount_minor) FILTER (WHERE event_type = 'refund.succeeded'), 0) AS refunds,
           COALESCE(sum(amount_minor) FILTER (WHERE event_type = 'dispute.lost'), 0) AS dispute_losses,
           COALESCE(sum(amount_minor) FILTER (WHERE kind = 'adjustment'), 0) AS adjustments,
           count(*) FILTER (WHERE event_type = 'payment.succeeded') AS payments,
           count(*) FILTER (WHERE event_type = 'refund.succeeded') AS refund_count
    FROM dodo_ledger
    WHERE occurred_at >= %(start)s AND occurred_at < %(end)s
    GROUP BY currency
), firsts AS (
    SELECT subscription_id, event_type = 'subscription.active' AS is_start, min(occurred_at) AS first_at,
           max(currency) AS currency, max(currency_exponent) AS currency_exponent
    FROM dodo_subscription_events
    WHERE event_type IN ('subscription.active', 'subscription.cancelled', 'subscription.expired')
    GROUP BY subscription_id, event_type = 'subscription.active'
), subs AS (
    SELECT currency, max(currency_exponent) AS currency_exponent,
           count(*) FILTER (WHERE is_start) AS new_subs,
           count(*) FILTER (WHERE NOT is_start) AS churned
    FROM firsts
    WHERE first_at >= %(start)s AND first_at < %(end)s
    GROUP BY currency
)
INSERT INTO dodo_daily_metrics AS d (
    day, currency, currency_exponent, gross_minor, refunds_minor, dispute_losses_minor, adjustments_minor,
    net_minor, payments_count, refunds_count, new_subscriptions, churned_subscriptions, computed_at)
SELECT %(day)s::date, currency, COALESCE(m.currency_exponent, s.currency_exponent),
       COALESCE(m.gross, 0), COALESCE(m.refunds, 0), COALESCE(m.dispute_losses, 0), COALESCE(m.adjustments, 0),
       COALESCE(m.gross - m.refunds - m.dispute_losses + m.adjustments, 0),
       COALESCE(m.payments, 0), COALESCE(m.refund_count, 0), COALESCE(s.new_subs, 0), COALESCE(s.churned, 0),
       now()
FROM money AS m FULL OUTER JOIN subs AS s USING (currency)
ON CONFLICT (day, currency) DO UPDATE SET
    currency_exponent = EXCLUDED.currency_exponent,
    gross_minor = EXCLUDED.gross_minor,
    refunds_minor = EXCLUDED.refunds_minor,
    dispute_losses_minor = EXCLUDED.dispute_losses_minor,
    adjustments_minor = EXCLUDED.adjustments_minor,
    net_minor = EXCLUDED.net_minor,
    payments_count = EXCLUDED.payments_count,
    refunds_count = EXCLUDED.refunds_count,
    new_subscriptions = EXCLUDED.new_subscriptions,
    churned_subscriptions = EXCLUDED.churned_subscriptions,
    computed_at = EXCLUDED.computed_at
RETURNING currency, currency_exponent, gross_minor, refunds_minor, dispute_losses_minor, adjustments_minor,
          net_minor, payments_count, refunds_count, new_subscriptions, churned_subscriptions
"""

COLUMNS = [
    "currency",
    "currency_exponent",
    "gross_minor",
    "refunds_minor",
    "dispute_losses_minor",
    "adjustments_minor",
    "net_minor",
    "payments_count",
    "refunds_count",
    "new_subscriptions",
    "churned_subscriptions",
]


def main(day: str | None = None, db: postgresql = "$res:f/dodo/db"):
    # day: "YYYY-MM-DD" or any ISO 8601 time (its UTC date is used); empty = today (UTC).
    if not day:
        the_day = datetime.now(UTC).date()
    elif len(day) == 10:
        the_day = date.fromisoformat(day)
    else:
        the_day = datetime.fromisoformat(day.replace("Z", "+00:00")).astimezone(UTC).date()
    start = datetime(the_day.year, the_day.month, the_day.day, tzinfo=UTC)
    params = {"day": the_day.isoformat(), "start": start, "end": start + timedelta(days=1)}
    with connect(db) as conn:
        rows = conn.execute(RECOMPUTE, params).fetchall()
    return {"day": the_day.isoformat(), "rows": [dict(zip(COLUMNS, row, strict=True)) for row in sorted(rows)]}
