# extra_requirements:
# wmill

# Revenue metrics per currency, in exact minor units (never floats for money):
#   MRR / ARR     from the current state of active subscriptions (dodo_subscriptions), each
#                 recurring amount normalised to a month (Year / 12, Week * 52 / 12, Day * 365 / 12)
#   churn         subscriptions whose first cancelled/expired event falls in the period, divided by
#                 the subscriptions active at the period start
#   net revenue   gross payments - refunds - lost disputes + adjustments in the period (dodo_ledger)
# The period is [as_of - period_days, as_of); as_of defaults to now.
from datetime import UTC, datetime, timedelta
from fractions import Fraction
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


MONTHS_PER_INTERVAL = {"Day": Fraction(12, 365), "Week": Fraction(12, 52), "Month": Fraction(1), "Year": Fraction(12)}

ACTIVE_SUBSCRIPTIONS = """
SELECT currency, currency_exponent, amount_minor, billing_interval, billing_interval_count
FROM dodo_subscriptions WHERE status = 'active'
"""

SUBSCRIPTIONS_AT_START = """
SELECT currency, max(currency_exponent), count(*) FROM dodo_subscriptions
WHERE started_at < %(start)s AND (ended_at IS NULL OR ended_at >= %(start)s)
GROUP BY currency
"""

CHURNED = """
SELECT currency, max(currency_exponent), count(*) FROM (
    SELECT subscription_id, max(currency) AS currency, max(currency_exponent) AS currency_exponent,
           min(occurred_at) AS churned_at
    FROM dodo_subscription_events
    WHERE event_type IN ('subscription.cancelled', 'subscription.expired')
    GROUP BY subscription_id
) AS firsts
WHERE churned_at >= %(start)s AND churned_at < %(end)s
GROUP BY currency
"""

REVENUE = """
SELECT currency, max(currency_exponent),
       COALESCE(sum(amount_minor) FILTER (WHERE event_type = 'payment.succeeded'), 0),
       COALESCE(sum(amount_minor) FILTER (WHERE event_type = 'refund.succeeded'), 0),
       COALESCE(sum(amount_minor) FILTER (WHERE event_type = 'dispute.lost'), 0),
       COALESCE(sum(amount_minor) FILTER (WHERE kind = 'adjustment'), 0)
FROM dodo_ledger
WHERE occurred_at >= %(start)s AND occurred_at < %(end)s
GROUP BY currency
"""


def format_minor(minor: int, exponent: int) -> str:
    sign, digits = ("-" if minor < 0 else ""), str(abs(minor))
    if exponent == 0:
        return sign + digits
    digits = digits.rjust(exponent + 1, "0")
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"


def round_half_up(value: Fraction) -> int:
    return int(value + Fraction(1, 2)) if value >= 0 else -int(-value + Fraction(1, 2))


def main(as_of: str | None = None, period_days: int = 30, db: postgresql = "$res:f/dodo/db"):
    end = datetime.fromisoformat(as_of.replace("Z", "+00:00")) if as_of else datetime.now(UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    start = end - timedelta(days=period_days)
    params = {"start": start, "end": end}
    per: dict[str, dict] = {}

    def entry(currency: str, exponent: int) -> dict:
        return per.setdefault(
            currency,
            {
                "exponent": exponent,
                "mrr": Fraction(0),
                "active": 0,
                "at_start": 0,
                "churned": 0,
                "gross": 0,
                "refunds": 0,
                "dispute_losses": 0,
                "adjustments": 0,
            },
        )

    with connect(db) as conn:
        for currency, exponent, amount, interval, count in conn.execute(ACTIVE_SUBSCRIPTIONS).fetchall():
            e = entry(currency, exponent)
            e["mrr"] += Fraction(amount) / (MONTHS_PER_INTERVAL.get(interval, Fraction(1)) * max(count or 1, 1))
            e["active"] += 1
        for currency, exponent, count in conn.execute(SUBSCRIPTIONS_AT_START, params).fetchall():
            entry(currency, exponent)["at_start"] = count
        for currency, exponent, count in conn.execute(CHURNED, params).fetchall():
            entry(currency, exponent)["churned"] = count
        for currency, exponent, gross, refunds, losses, adjustments in conn.execute(REVENUE, params).fetchall():
            e = entry(currency, exponent)
            e.update(gross=gross, refunds=refunds, dispute_losses=losses, adjustments=adjustments)

    currencies = {}
    for currency, e in sorted(per.items()):
        exp = e["exponent"]
        mrr, arr = round_half_up(e["mrr"]), round_half_up(e["mrr"] * 12)
        net = e["gross"] - e["refunds"] - e["dispute_losses"] + e["adjustments"]
        currencies[currency] = {
            "currency_exponent": exp,
            "mrr_minor": mrr,
            "mrr": format_minor(mrr, exp),
            "arr_minor": arr,
            "arr": format_minor(arr, exp),
            "active_subscriptions": e["active"],
            "subscriptions_at_start": e["at_start"],
            "churned_subscriptions": e["churned"],
            "churn_rate": round(e["churned"] / e["at_start"], 4) if e["at_start"] else None,
            "gross_minor": e["gross"],
            "gross": format_minor(e["gross"], exp),
            "refunds_minor": e["refunds"],
            "refunds": format_minor(e["refunds"], exp),
            "dispute_losses_minor": e["dispute_losses"],
            "dispute_losses": format_minor(e["dispute_losses"], exp),
            "adjustments_minor": e["adjustments"],
            "adjustments": format_minor(e["adjustments"], exp),
            "net_minor": net,
            "net": format_minor(net, exp),
        }
    return {"period_start": start.isoformat(), "period_end": end.isoformat(), "currencies": currencies}
