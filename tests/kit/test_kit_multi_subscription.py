"""Multi-subscription payments (dodopayments SDK 1.123: `subscription_id` null, `subscription_ids`,
`is_multi_subscription`): builtin:payment carries both, the kit links the payment to every subscription."""

from __future__ import annotations

from typing import Any

import pytest

from .kitlib import load_script, shape

pytestmark = [pytest.mark.postgres, pytest.mark.node]

SUBS = ["sub_multi_a", "sub_multi_b", "sub_multi_c"]


def multi(webhook_id: str, **data: Any) -> Any:
    fields = {"subscription_id": None, "subscription_ids": SUBS, "is_multi_subscription": True, "product_cart": []}
    return shape("payment", "payment.succeeded", webhook_id, **{**fields, **data})


def links(pg_query: Any) -> list[tuple[Any, ...]]:
    return pg_query("SELECT payment_id, subscription_id, webhook_id FROM dodo_payment_subscriptions ORDER BY 2")


def test_the_template_carries_every_subscription() -> None:
    payload = multi("msg_m")
    assert (payload["subscription_id"], payload["subscription_ids"], payload["is_multi_subscription"]) == (
        None,
        SUBS,
        True,
    )
    single = shape("payment", "payment.succeeded", "msg_s")
    assert single["subscription_ids"] == [single["subscription_id"]] and single["is_multi_subscription"] is False
    # A payload from before SDK 1.123 has only subscription_id: it is still linked.
    older = shape("payment", "payment.succeeded", "msg_o", subscription_ids=None, is_multi_subscription=None)
    assert older["subscription_ids"] == [older["subscription_id"]] and older["is_multi_subscription"] is False
    one_time = shape("payment", "payment.succeeded", "msg_t", subscription_id=None, subscription_ids=[])
    assert one_time["subscription_ids"] == []
    assert load_script("validate_payment").main(**multi("msg_v"))["valid"] is True


def test_record_payment_links_every_subscription_once(pg: dict[str, Any], pg_query: Any) -> None:
    record = load_script("record_payment").main
    payload = multi("msg_multi_1")
    result = record(**payload, db=pg)
    assert result["recorded"] is True and result["subscription_ids"] == SUBS
    assert record(**payload, db=pg)["duplicate"] is True  # a redelivery links nothing twice
    pay = payload["payment_id"]
    assert links(pg_query) == [(pay, s, "msg_multi_1") for s in SUBS]
    # A later event of the same payment (say payment.failed then succeeded) keeps the first link.
    record(**multi("msg_multi_2"), db=pg)
    assert links(pg_query) == [(pay, s, "msg_multi_1") for s in SUBS]
    assert pg_query("SELECT count(*) FROM dodo_ledger") == [(2,)]


def test_record_payment_links_a_single_subscription_payment(pg: dict[str, Any], pg_query: Any) -> None:
    payload = shape("payment", "payment.succeeded", "msg_single", product_cart=[])
    load_script("record_payment").main(**payload, db=pg)
    assert links(pg_query) == [(payload["payment_id"], payload["subscription_id"], "msg_single")]


def test_ledger_append_links_every_subscription(pg: dict[str, Any], pg_query: Any) -> None:
    append = load_script("ledger_append").main
    args = dict(
        webhook_id="msg_l1",
        event_type="payment.succeeded",
        kind="payment",
        object_id="pay_l1",
        currency="USD",
        currency_exponent=2,
        amount_minor=4999,
        occurred_at="2025-10-01T00:00:00Z",
        payment_id="pay_l1",
        subscription_ids=SUBS,
        db=pg,
    )
    assert append(**args)["subscription_ids"] == SUBS
    assert append(**args)["duplicate"] is True
    assert links(pg_query) == [("pay_l1", s, "msg_l1") for s in SUBS]
    with pytest.raises(ValueError, match="pass payment_id too"):
        append(**{**args, "webhook_id": "msg_l2", "payment_id": None})
    with pytest.raises(ValueError, match="must be a list of subscription ids"):
        append(**{**args, "webhook_id": "msg_l3", "subscription_ids": [""]})
