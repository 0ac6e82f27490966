"""Every PostgreSQL script of the kit against the real server: idempotence, ordering, the numbers."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from .kitlib import load_script, shape

pytestmark = [pytest.mark.postgres, pytest.mark.node]


def test_customer_upsert_tolerates_replays_and_out_of_order_events(pg: dict[str, Any], pg_query: Any) -> None:
    upsert = load_script("upsert_customer_postgresql").main
    first = upsert("cus_1", "new@example.com", "Ada", "2025-10-02T00:00:00Z", "+1555", db=pg)
    assert first["inserted"] is True
    assert upsert("cus_1", "new@example.com", "Ada", "2025-10-02T00:00:00Z", "+1555", db=pg)["inserted"] is False
    # An older event arrives late: it must not overwrite the newer email, but it moves first_seen back.
    late = upsert("cus_1", "old@example.com", "Ada Old", "2025-09-01T00:00:00Z", db=pg)
    assert (late["email"], late["name"], late["phone_number"]) == ("new@example.com", "Ada", "+1555")
    newer = upsert("cus_1", "newest@example.com", "Ada L.", "2025-10-03T00:00:00Z", db=pg)
    assert (newer["email"], newer["phone_number"]) == ("newest@example.com", "+1555")  # missing phone keeps the old
    [(first_seen, last_seen)] = pg_query(
        "SELECT first_seen_at::text, last_seen_at::text FROM dodo_customers WHERE customer_id = 'cus_1'"
    )
    assert first_seen.startswith("2025-09-01") and last_seen.startswith("2025-10-03")


def test_ledger_append_is_idempotent_on_webhook_id(pg: dict[str, Any], pg_query: Any) -> None:
    append = load_script("ledger_append").main
    args = dict(
        webhook_id="msg_1",
        event_type="payment.succeeded",
        kind="payment",
        object_id="pay_1",
        currency="USD",
        currency_exponent=2,
        amount_minor=4999,
        occurred_at="2025-10-01T00:00:00Z",
        payment_id="pay_1",
        metadata={"a": 1},
        db=pg,
    )
    assert append(**args) == {"recorded": True, "duplicate": False, "webhook_id": "msg_1", "subscription_ids": []}
    assert append(**args)["duplicate"] is True
    assert pg_query("SELECT count(*), sum(amount_minor) FROM dodo_ledger") == [(1, 4999)]
    with pytest.raises(ValueError, match="kind must be one of"):
        append(**{**args, "kind": "gift"})
    with pytest.raises(ValueError, match="amount_minor must be an integer"):
        append(**{**args, "webhook_id": "msg_2", "amount_minor": "49.99"})


def test_record_payment_books_once_and_decrements_stock_once(pg: dict[str, Any], pg_query: Any) -> None:
    pg_query("INSERT INTO dodo_inventory (product_id, on_hand) VALUES ('pdt_0NWiFq8sLm2cZKj4vTbR9', 10)")
    record = load_script("record_payment").main
    payload = shape(
        "payment",
        "payment.succeeded",
        "msg_pay_1",
        product_cart=[{"product_id": "pdt_0NWiFq8sLm2cZKj4vTbR9", "quantity": 3}],
    )
    first = record(**payload, db=pg)
    assert first["recorded"] is True and first["stock"] == [{"product_id": "pdt_0NWiFq8sLm2cZKj4vTbR9", "on_hand": 7}]
    assert "49.99 USD" in first["message"]
    replay = record(**payload, db=pg)
    assert replay["duplicate"] is True and replay["stock"] == []
    assert pg_query("SELECT on_hand FROM dodo_inventory") == [(7,)]
    assert pg_query("SELECT count(*) FROM dodo_ledger") == [(1,)]
    assert pg_query("SELECT email FROM dodo_customers") == [("ada.lovelace@example.com",)]
    # A failed payment is booked but moves no stock.
    failed = shape("payment", "payment.failed", "msg_pay_2", payment_id="pay_failed")
    assert record(**failed, db=pg)["stock"] == []
    assert pg_query("SELECT on_hand FROM dodo_inventory") == [(7,)]


def test_inventory_decrement(pg: dict[str, Any], pg_query: Any) -> None:
    pg_query("INSERT INTO dodo_inventory (product_id, on_hand) VALUES ('pdt_a', 5), ('pdt_b', 2)")
    decrement = load_script("inventory_decrement").main
    cart = [{"product_id": "pdt_a", "quantity": 1}, {"product_id": "pdt_b", "quantity": 2}, {"product_id": "pdt_x"}]
    result = decrement("msg_1", "pay_1", cart, "2025-10-01T00:00:00Z", low_stock_threshold=1, db=pg)
    assert [i["on_hand"] for i in result["items"]] == [4, 0, None]
    assert result["items"][2]["reason"] == "not tracked in dodo_inventory"
    assert result["low_stock"] == ["pdt_b"]
    again = decrement("msg_1_redelivered", "pay_1", cart, "2025-10-01T00:00:00Z", db=pg)
    assert [i["decremented"] for i in again["items"]] == [0, 0, 0]
    assert pg_query("SELECT product_id, on_hand FROM dodo_inventory ORDER BY 1") == [("pdt_a", 4), ("pdt_b", 0)]
    with pytest.raises(ValueError, match="bad product_cart entry"):
        decrement("msg_2", "pay_2", [{"product_id": "pdt_a", "quantity": 0}], "2025-10-01T00:00:00Z", db=pg)


def sub_event(event_type: str, webhook_id: str, timestamp: str, **data: Any) -> Any:
    return shape("subscription", event_type, webhook_id, timestamp=timestamp, **data)


def test_subscription_state_survives_out_of_order_and_repeated_events(pg: dict[str, Any], pg_query: Any) -> None:
    lifecycle = load_script("subscription_lifecycle").main
    active = sub_event("subscription.active", "msg_a", "2025-10-01T10:00:00Z", status="active")
    renewed = sub_event("subscription.renewed", "msg_r", "2025-11-01T10:00:00Z", status="active")
    cancelled = sub_event(
        "subscription.cancelled",
        "msg_c",
        "2025-11-15T10:00:00Z",
        status="cancelled",
        cancelled_at="2025-11-15T09:59:00Z",
    )
    # Arrival order: cancelled, active, renewed (the reverse of what happened), then cancelled again.
    first = lifecycle(**cancelled, db=pg)
    assert (first["lifecycle"], first["status"], first["notify"]) == ("churned", "cancelled", True)
    assert lifecycle(**active, db=pg)["lifecycle"] == "stale"
    assert lifecycle(**renewed, db=pg)["lifecycle"] == "stale"
    repeated = lifecycle(**cancelled, db=pg)
    assert repeated["duplicate"] is True and repeated["applied"] is False
    [(status, event, ended)] = pg_query(
        "SELECT status, last_event_type, ended_at::text FROM dodo_subscriptions WHERE subscription_id = %s",
        (cancelled["subscription_id"],),
    )
    assert (status, event) == ("cancelled", "subscription.cancelled") and ended.startswith("2025-11-15 09:59")
    assert pg_query("SELECT count(*) FROM dodo_subscription_events") == [(3,)]
    # It comes back later: reactivated, MRR goes up by the monthly amount.
    back = lifecycle(**sub_event("subscription.active", "msg_a2", "2025-12-01T10:00:00Z", status="active"), db=pg)
    assert (back["lifecycle"], back["mrr_delta_minor"], back["status"]) == ("reactivated", 4582, "active")
    assert pg_query("SELECT ended_at FROM dodo_subscriptions") == [(None,)]


def test_subscription_plan_change_and_in_order_lifecycle(pg: dict[str, Any]) -> None:
    lifecycle = load_script("subscription_lifecycle").main
    started = lifecycle(**sub_event("subscription.active", "m1", "2025-10-01T00:00:00Z", status="active"), db=pg)
    assert (started["lifecycle"], started["mrr_delta_minor"]) == ("started", 4582)
    changed = lifecycle(
        **sub_event(
            "subscription.plan_changed",
            "m2",
            "2025-10-05T00:00:00Z",
            status="active",
            recurring_pre_tax_amount=120000,
            payment_frequency_interval="Year",
        ),
        db=pg,
    )
    assert (changed["lifecycle"], changed["mrr_delta_minor"]) == ("plan_changed", 10000 - 4582)
    paused = lifecycle(**sub_event("subscription.paused", "m3", "2025-10-06T00:00:00Z", status="paused"), db=pg)
    assert (paused["lifecycle"], paused["mrr_delta_minor"], paused["notify"]) == ("paused", -10000, False)
    resumed = lifecycle(**sub_event("subscription.unpaused", "m4", "2025-10-07T00:00:00Z", status="active"), db=pg)
    assert resumed["lifecycle"] == "resumed"
    with pytest.raises(ValueError, match="not a subscription event"):
        lifecycle(
            **{**sub_event("subscription.active", "m5", "2025-10-08T00:00:00Z"), "event_type": "payment.succeeded"},
            db=pg,
        )


def build_known_ledger(pg: dict[str, Any]) -> None:
    """USD, JPY and KWD activity in October 2025 (the figures the metric tests expect)."""
    lifecycle = load_script("subscription_lifecycle").main
    record = load_script("record_payment").main
    refund = load_script("record_refund").main
    dispute = load_script("record_dispute").main
    adjust = load_script("record_adjustment").main
    subs = [
        # id, currency, amount, interval, count, created, events [(type, status, time)]
        ("sub_usd_m", "USD", 4582, "Month", 1, [("subscription.active", "active", "2025-09-01T00:00:00Z")]),
        ("sub_usd_y", "USD", 120000, "Year", 1, [("subscription.active", "active", "2025-10-10T00:00:00Z")]),
        ("sub_jpy", "JPY", 5000, "Month", 1, [("subscription.active", "active", "2025-09-15T00:00:00Z")]),
        ("sub_kwd", "KWD", 1000, "Week", 1, [("subscription.active", "active", "2025-10-10T12:00:00Z")]),
        (
            "sub_usd_gone",
            "USD",
            2000,
            "Month",
            1,
            [
                ("subscription.active", "active", "2025-09-01T00:00:00Z"),
                ("subscription.cancelled", "cancelled", "2025-10-10T08:00:00Z"),
                ("subscription.expired", "expired", "2025-10-11T08:00:00Z"),
            ],
        ),
    ]
    for sub_id, currency, amount, interval, count, events in subs:
        for n, (event_type, status, at) in enumerate(events):
            payload = sub_event(
                event_type,
                f"msg_{sub_id}_{n}",
                at,
                subscription_id=sub_id,
                status=status,
                currency=currency,
                recurring_pre_tax_amount=amount,
                payment_frequency_interval=interval,
                payment_frequency_count=count,
                created_at=events[0][2],
                cancelled_at=at if status != "active" else None,
            )
            lifecycle(**payload, db=pg)
    payments = [
        ("pay_1", "USD", 4999, "2025-10-10T09:00:00Z"),
        ("pay_2", "USD", 10000, "2025-10-10T10:00:00Z"),
        ("pay_3", "JPY", 5000, "2025-10-10T11:00:00Z"),
        ("pay_4", "KWD", 1000, "2025-10-10T12:00:00Z"),
    ]
    for payment_id, currency, amount, at in payments:
        payload = shape(
            "payment",
            "payment.succeeded",
            f"msg_{payment_id}",
            timestamp=at,
            payment_id=payment_id,
            currency=currency,
            total_amount=amount,
            tax=0,
            product_cart=[],
        )
        record(**payload, db=pg)
    # A failed payment does not count.
    record(
        **shape("payment", "payment.failed", "msg_fail", timestamp="2025-10-10T13:00:00Z", payment_id="pay_x"), db=pg
    )
    ref = shape(
        "refund",
        "refund.succeeded",
        "msg_ref_1",
        timestamp="2025-10-10T14:00:00Z",
        payment_id="pay_2",
        amount=2000,
        is_partial=True,
    )
    refund(**ref, db=pg)
    refund(**ref, db=pg)  # delivered twice
    lost = shape(
        "dispute", "dispute.lost", "msg_dis_1", timestamp="2025-10-10T15:00:00Z", payment_id="pay_1", amount="4999"
    )
    dispute(**lost, db=pg)
    adjust("adj_1", "USD", 2, -100, "goodwill credit", "2025-10-10T16:00:00Z", db=pg)
    adjust("adj_1", "USD", 2, -100, "goodwill credit", "2025-10-10T16:00:00Z", db=pg)  # idempotent


def test_revenue_metrics_on_a_known_ledger(pg: dict[str, Any]) -> None:
    build_known_ledger(pg)
    result = load_script("revenue_metrics").main(as_of="2025-11-01T00:00:00Z", period_days=30, db=pg)
    usd, jpy, kwd = (result["currencies"][c] for c in ("USD", "JPY", "KWD"))
    # MRR: 4582 monthly + 120000 yearly / 12 = 14582 cents; the cancelled subscription does not count.
    assert (usd["mrr_minor"], usd["mrr"], usd["arr_minor"], usd["arr"]) == (14582, "145.82", 174984, "1749.84")
    assert (jpy["mrr"], jpy["arr"]) == ("5000", "60000")
    # 1.000 KWD weekly = 1000 * 52 / 12 fils a month = 4333.33 -> 4.333; ARR exactly 52.000.
    assert (kwd["mrr_minor"], kwd["mrr"], kwd["arr"]) == (4333, "4.333", "52.000")
    # Net after refunds (counted once), the lost dispute (a string amount in Dodo's body) and the adjustment.
    assert (usd["gross"], usd["refunds"], usd["dispute_losses"], usd["adjustments"]) == (
        "149.99",
        "20.00",
        "49.99",
        "-1.00",
    )
    assert (usd["net_minor"], usd["net"]) == (7900, "79.00")
    assert (jpy["net"], kwd["net"]) == ("5000", "1.000")
    # Churn: of the 2 USD subscriptions alive on 2025-10-02, one cancelled (then expired: counted once).
    assert (usd["subscriptions_at_start"], usd["churned_subscriptions"], usd["churn_rate"]) == (2, 1, 0.5)
    assert usd["active_subscriptions"] == 2
    assert jpy["churn_rate"] == 0.0 and kwd["churn_rate"] is None  # KWD started within the period


def test_daily_metrics_recompute_is_idempotent(pg: dict[str, Any], pg_query: Any) -> None:
    build_known_ledger(pg)
    daily = load_script("daily_metrics").main
    first = daily(day="2025-10-10T23:00:00+00:00", db=pg)
    assert first == daily(day="2025-10-10", db=pg)
    rows = {r["currency"]: r for r in first["rows"]}
    assert rows["USD"]["gross_minor"] == 14999 and rows["USD"]["net_minor"] == 7900
    assert (rows["USD"]["payments_count"], rows["USD"]["refunds_count"]) == (2, 1)
    assert (rows["USD"]["new_subscriptions"], rows["USD"]["churned_subscriptions"]) == (1, 1)
    assert (rows["KWD"]["currency_exponent"], rows["KWD"]["new_subscriptions"]) == (3, 1)
    assert rows["JPY"]["new_subscriptions"] == 0  # started in September
    assert pg_query("SELECT count(*) FROM dodo_daily_metrics") == [(3,)]
    # The expiry a day later is not a second churn.
    assert [r for r in daily(day="2025-10-11", db=pg)["rows"] if r["churned_subscriptions"]] == []


def test_period_report_csv(pg: dict[str, Any]) -> None:
    build_known_ledger(pg)
    report = load_script("period_report_csv").main("2025-10-01", "2025-11-01", db=pg)
    rows = list(csv.DictReader(io.StringIO(report["csv"])))
    assert report["rows"] == len(rows) == 8  # 4 paid, 1 failed, 1 refund (once), 1 dispute, 1 adjustment
    assert report["totals"]["USD"]["net"] == "79.00"
    assert report["totals"]["KWD"]["net"] == "1.000"
    lost = next(r for r in rows if r["event_type"] == "dispute.lost")
    assert (lost["amount"], lost["net_effect"], lost["net_effect_minor"]) == ("49.99", "-49.99", "-4999")
    assert report["file"]["filename"] == "dodo_ledger_2025-10-01_2025-11-01.csv"
    with pytest.raises(ValueError, match="must be after"):
        load_script("period_report_csv").main("2025-11-01", "2025-10-01", db=pg)


def test_refunds_report_what_is_left_and_use_the_payment_currency(pg: dict[str, Any]) -> None:
    load_script("record_payment").main(**shape("payment", "payment.succeeded", "msg_p", product_cart=[]), db=pg)
    refund = load_script("record_refund").main
    partial = shape("refund", "refund.succeeded", "msg_r1", refund_id="ref_1", amount=999, currency=None)
    result = refund(**partial, db=pg)
    assert (result["currency"], result["refunded"], result["remaining_minor"]) == ("USD", "9.99", 4000)
    over = refund(**shape("refund", "refund.succeeded", "msg_r2", refund_id="ref_2", amount=5000), db=pg)
    assert over["over_refunded"] is True
    failed = refund(**shape("refund", "refund.failed", "msg_r3", refund_id="ref_3", amount=None), db=pg)
    assert failed["recorded"] is True and failed["refunded_minor"] == 5999
    orphan = shape("refund", "refund.succeeded", "msg_r4", payment_id="pay_unknown", currency=None)
    with pytest.raises(ValueError, match="has no currency"):
        refund(**orphan, db=pg)


def test_disputes(pg: dict[str, Any]) -> None:
    load_script("record_payment").main(**shape("payment", "payment.succeeded", "msg_p", product_cart=[]), db=pg)
    record = load_script("record_dispute").main
    opened = record(**shape("dispute", "dispute.opened", "msg_d1"), db=pg)
    assert opened["urgent"] is True and opened["customer_id"] == "cus_0NWiGvZ2AWoiFA9mKzv8h"
    assert opened["message"].startswith("URGENT: Dispute dis_0NWiJ8rXe5sVbQ2mP7cKd opened")
    again = record(**shape("dispute", "dispute.opened", "msg_d1"), db=pg)
    assert again["duplicate"] is True and again["urgent"] is False  # no second page for a redelivery
    with pytest.raises(ValueError, match="not an integer string"):
        record(**shape("dispute", "dispute.won", "msg_d2", amount="49.99"), db=pg)
