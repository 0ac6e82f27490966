"""No guessed decimals: what the kit does with the templates' null amounts and their notes (real PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from .kitlib import load_script, shape
from .test_kit_templates import kit_schema

pytestmark = [pytest.mark.postgres, pytest.mark.node]


def test_a_refund_without_currency_is_booked_in_the_payment_currency(pg: dict[str, Any], pg_query: Any) -> None:
    from headrace.windmill.schema import validate

    payment = shape("payment", "payment.succeeded", "msg_p", currency="JPY", total_amount=5000, tax=0, product_cart=[])
    load_script("record_payment").main(**payment, db=pg)
    refund = shape("refund", "refund.succeeded", "msg_r", currency=None, amount=2500, is_partial=True)
    assert (refund["currency_exponent"], refund["amount"]) == (None, None)
    assert [p.message for p in validate(refund, kit_schema("record_refund"))] == []  # schema = "enforce" sends it
    result = load_script("record_refund").main(**refund, db=pg)
    assert (result["currency"], result["refunded"], result["remaining_minor"]) == ("JPY", "2500", 2500)
    assert result["message"].startswith(f"Refund {refund['refund_id']} succeeded: 2500 JPY")
    assert pg_query("SELECT currency, currency_exponent, amount_minor FROM dodo_ledger WHERE kind = 'refund'") == [
        ("JPY", 0, 2500)
    ]


def test_an_unknown_currency_is_refused_with_the_templates_note(pg: dict[str, Any], pg_query: Any) -> None:
    payment = shape("payment", "payment.succeeded", "msg_x", currency="XTS", product_cart=[])
    with pytest.raises(ValueError, match=r"minor unit of currency 'XTS' is unknown.*never guessed"):
        load_script("record_payment").main(**payment, db=pg)
    with pytest.raises(ValueError, match=r"currency 'XTS' is not an ISO 4217 code.*note from the template"):
        load_script("validate_payment").main(**payment)
    sub = shape("subscription", "subscription.active", "msg_s", currency="XTS")
    with pytest.raises(ValueError, match=r"minor unit of currency 'XTS' is unknown.*never guessed"):
        load_script("subscription_lifecycle").main(**sub, db=pg)
    dispute = shape("dispute", "dispute.opened", "msg_d", currency="XTS")
    with pytest.raises(ValueError, match=r"minor unit of currency 'XTS' is unknown.*never guessed"):
        load_script("record_dispute").main(**dispute, db=pg)
    refund = shape("refund", "refund.succeeded", "msg_r", currency="XTS")
    with pytest.raises(ValueError, match=r"minor unit of currency 'XTS' is unknown.*never guessed"):
        load_script("record_refund").main(**refund, db=pg)
    assert pg_query("SELECT count(*) FROM dodo_ledger") == [(0,)]
    assert pg_query("SELECT count(*) FROM dodo_subscription_events") == [(0,)]
