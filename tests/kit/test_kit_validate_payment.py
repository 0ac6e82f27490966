"""f/dodo/validate_payment on real template output, and the errors it gives."""

from __future__ import annotations

import pytest

from .kitlib import load_script, shape

pytestmark = pytest.mark.node


def test_every_payment_sample_is_valid() -> None:
    validate = load_script("validate_payment").main
    for event_type in ("payment.succeeded", "payment.failed", "payment.processing", "payment.cancelled"):
        assert validate(**shape("payment", event_type, f"msg_{event_type}"))["valid"] is True


def test_zero_and_three_decimal_currencies_are_valid() -> None:
    validate = load_script("validate_payment").main
    jpy = shape("payment", "payment.succeeded", "msg_1", currency="JPY", total_amount=5000, tax=455)
    assert validate(**jpy)["amount"] == "5000"
    kwd = shape("payment", "payment.succeeded", "msg_2", currency="KWD", total_amount=12345, tax=0)
    assert validate(**kwd)["amount"] == "12.345"


def test_all_problems_are_reported_at_once() -> None:
    validate = load_script("validate_payment").main
    payload = shape("payment", "payment.succeeded", "msg_bad", tax=99999)
    payload.update(currency="XYZ", customer_email="nobody", amount="4999", webhook_id="")
    payload["product_cart"] = [{"product_id": "p", "quantity": 0}]
    with pytest.raises(ValueError) as failure:
        validate(**payload)
    message = str(failure.value)
    assert message.startswith("payment pay_0NWiH1kVq6tZ3xCyrR8aG (webhook ?) failed validation, 5 problem(s)")
    for part in (
        "webhook_id is required",
        "currency 'XYZ' is not an ISO 4217 code",
        "customer_email 'nobody'",
        "tax_minor 99999 is larger than amount_minor 4999",
        "product_cart[0] quantity must be a positive integer",
    ):
        assert part in message


def test_wrong_exponent_is_caught() -> None:
    payload = shape("payment", "payment.succeeded", "msg_1", currency="JPY", total_amount=5000, tax=0)
    payload.update(currency_exponent=2, amount="50.00")
    with pytest.raises(ValueError, match=r"currency_exponent 2 is wrong for JPY \(ISO 4217 says 0\)"):
        load_script("validate_payment").main(**payload)


def test_a_zero_succeeded_payment_is_rejected() -> None:
    payload = shape("payment", "payment.succeeded", "msg_1", total_amount=0, tax=0)
    with pytest.raises(ValueError, match="amount_minor is 0 on a succeeded payment"):
        load_script("validate_payment").main(**payload)


def test_an_amount_that_does_not_match_is_caught_and_an_unknown_currency_is_not_checked_by_guess() -> None:
    payload = shape("payment", "payment.succeeded", "msg_1", tax=0)
    payload.update(amount="4999")
    with pytest.raises(ValueError, match=r"amount '4999' does not match amount_minor 4999 in USD \(expected '49.99'\)"):
        load_script("validate_payment").main(**payload)
    # With an unknown currency the decimals are unknown: only the currency is reported, not a guessed amount.
    payload.update(currency="XYZ", currency_exponent=None, amount=None)
    with pytest.raises(ValueError, match=r"1 problem\(s\): currency 'XYZ' is not an ISO 4217 code$"):
        load_script("validate_payment").main(**payload)
