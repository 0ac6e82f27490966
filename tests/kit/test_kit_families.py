"""The kit's automations for license keys, dunning, abandoned checkouts, payouts and credits, against the real
PostgreSQL and a loopback SMTP server: what is sent, to whom, once; what is booked, in order."""

from __future__ import annotations

import inspect
from email import message_from_bytes, policy
from typing import Any

import pytest

from .kitlib import load_script, shape
from .test_kit_integrations import smtp_server

pytestmark = [pytest.mark.postgres, pytest.mark.node]
__all__ = ["smtp_server"]  # the fixture, imported so pytest finds it here

CUSTOMER = "cus_0NWiGvZ2AWoiFA9mKzv8h"  # the customer of every bundled sample


def smtp_resource(controller: Any, **extra: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": controller.port,
        "user": "shop",
        "password": "pw",
        "from_address": "hello@shop.example",
        **extra,
    }


def known_customer(pg: dict[str, Any], email: str = "ada@example.com", name: str = "Ada") -> None:
    load_script("upsert_customer_postgresql").main(CUSTOMER, email, name, "2025-10-01T14:32:00Z", db=pg)


def mails(received: list[Any]) -> list[Any]:
    return [message_from_bytes(e.original_content, policy=policy.default) for e in received]


def text_of(mail: Any) -> str:
    content: str = mail.get_content()
    return content.replace("\r\n", "\n")


EMAILERS = ["email_license_key", "email_dunning_notice", "email_checkout_recovery"]


def test_the_emailers_share_one_copy_of_their_helpers() -> None:
    """Windmill runs each script on its own, so the three emailers carry the same helpers: pinned identical."""
    modules = [load_script(name) for name in EMAILERS]
    for helper in ("resolve_resource", "connect", "send", "email_once"):
        sources = {inspect.getsource(getattr(m, helper)) for m in modules}
        assert len(sources) == 1, f"{helper} differs between {EMAILERS}; keep the copies identical"
    assert len({(m.CUSTOMER, m.CLAIM) for m in modules}) == 1


def test_a_license_key_is_emailed_once_to_its_customer(pg: dict[str, Any], pg_query: Any, smtp_server: Any) -> None:
    controller, received = smtp_server
    known_customer(pg)
    payload = shape("license_key", "license_key.created", "msg_lic_1", key="\u2060$KEY-7F3K")  # headrace's $ guard
    send = load_script("email_license_key").main
    first = send(**payload, db=pg, smtp=smtp_resource(controller))
    assert (first["sent"], first["to"]) == (True, "ada@example.com")
    [mail] = mails(received)
    assert mail["To"] == "ada@example.com" and mail["Subject"] == "Your license key"
    text = text_of(mail)
    assert "Hello Ada," in text and "    $KEY-7F3K\n" in text and "up to 3 device(s)" in text and "2026-10-01" in text
    # A redelivery, and a second event for the same key, send nothing more.
    assert send(**payload, db=pg, smtp=smtp_resource(controller))["duplicate"] is True
    again = shape("license_key", "license_key.created", "msg_lic_2", key="\u2060$KEY-7F3K")
    assert send(**again, db=pg, smtp=smtp_resource(controller))["sent"] is False
    assert len(received) == 1
    assert pg_query("SELECT dedupe_key, recipient FROM dodo_notifications") == [
        ("license_key:lic_0NWiL5sDq8fYhT2xV4nCj", "ada@example.com")
    ]


def test_an_unknown_customer_or_a_refused_send_leaves_nothing_claimed(
    pg: dict[str, Any], pg_query: Any, smtp_server: Any
) -> None:
    controller, received = smtp_server
    payload = shape("license_key", "license_key.created", "msg_lic_x")
    send = load_script("email_license_key").main
    with pytest.raises(ValueError, match=f"no email address for customer {CUSTOMER} in dodo_customers"):
        send(**payload, db=pg, smtp=smtp_resource(controller))
    known_customer(pg, email="ada@blocked.example")  # the SMTP server refuses this mailbox
    with pytest.raises(Exception, match="550"):
        send(**payload, db=pg, smtp=smtp_resource(controller))
    assert pg_query("SELECT count(*) FROM dodo_notifications") == [(0,)] and received == []
    load_script("upsert_customer_postgresql").main(CUSTOMER, "ada@example.com", "Ada", "2025-10-05T00:00:00Z", db=pg)
    assert send(**payload, db=pg, smtp=smtp_resource(controller))["sent"] is True
    assert len(received) == 1


def test_dunning_notices_say_failed_then_recovered_once_each(pg: dict[str, Any], smtp_server: Any) -> None:
    controller, received = smtp_server
    known_customer(pg, name="")
    send = load_script("email_dunning_notice").main
    started = shape("dunning", "dunning.started", "msg_dun_1")
    recovered = shape("dunning", "dunning.recovered", "msg_dun_2")
    assert send(**started, db=pg, smtp=smtp_resource(controller))["sent"] is True
    assert send(**started, db=pg, smtp=smtp_resource(controller))["duplicate"] is True
    assert send(**recovered, db=pg, smtp=smtp_resource(controller))["sent"] is True
    first, second = mails(received)
    assert first["Subject"] == "Action needed: your subscription payment failed"
    assert text_of(first).startswith("Hello,\n") and "sub_0NWiGy3pRt7YfQ1nB2cLx" in text_of(first)
    assert second["Subject"] == "Your subscription payment went through"


def test_an_abandoned_checkout_gets_one_reminder_and_a_recovered_one_none(pg: dict[str, Any], smtp_server: Any) -> None:
    controller, received = smtp_server
    known_customer(pg)
    send = load_script("email_checkout_recovery").main
    smtp = smtp_resource(controller, store_url="https://shop.example/cart")
    detected = shape("abandoned_checkout", "abandoned_checkout.detected", "msg_ab_1")
    assert send(**detected, db=pg, smtp=smtp)["sent"] is True
    again = shape("abandoned_checkout", "abandoned_checkout.detected", "msg_ab_2")  # the same checkout
    assert send(**again, db=pg, smtp=smtp)["sent"] is False
    recovered = shape("abandoned_checkout", "abandoned_checkout.recovered", "msg_ab_3")
    assert send(**recovered, db=pg, smtp=smtp) == {
        "sent": False,
        "duplicate": False,
        "reason": f"checkout {recovered['payment_id']} is recovered: nothing to send",
    }
    [mail] = mails(received)
    assert "your payment did not go through" in text_of(mail)
    assert "finish it at https://shop.example/cart" in text_of(mail)


def test_payouts_are_booked_in_order_and_failures_alert(pg: dict[str, Any], pg_query: Any) -> None:
    record = load_script("record_payout").main
    pid = "pyt_0NWiM9wEr3gZjU5yB6pDk"
    progress = shape("payout", "payout.in_progress", "msg_po_1", "2025-10-07T01:00:00Z", payout_id=pid)
    success = shape("payout", "payout.success", "msg_po_2", "2025-10-07T06:30:01Z", payout_id=pid)
    late = shape("payout", "payout.in_progress", "msg_po_3", "2025-10-07T02:00:00Z", payout_id=pid)
    assert record(**progress, db=pg)["applied"] is True
    done = record(**success, db=pg)
    assert (done["status"], done["paid"], done["alert"]) == ("success", True, False)
    assert "12500.00 USD" in done["message"]
    stale = record(**late, db=pg)  # arrives last but happened before the success: recorded, not applied
    assert (stale["recorded"], stale["applied"], stale["status"]) == (True, False, "success")
    assert record(**success, db=pg)["duplicate"] is True
    assert pg_query("SELECT status, amount_minor, fee_minor, paid_at IS NOT NULL FROM dodo_payouts") == [
        ("success", 1250000, 2500, True)
    ]
    assert pg_query("SELECT count(*) FROM dodo_payout_events") == [(3,)]
    failed = shape(
        "payout", "payout.failed", "msg_po_4", "2025-10-14T06:30:00Z", payout_id="pyt_2", currency="JPY", amount=500000
    )
    result = record(**failed, db=pg)
    assert result["alert"] is True and "500000 JPY" in result["message"]


def test_credit_events_are_booked_exactly_and_a_low_balance_alerts_once(pg: dict[str, Any], pg_query: Any) -> None:
    known_customer(pg)
    record = load_script("record_credit").main
    added = shape("credit", "credit.added", "msg_cr_1", amount="12.5", balance_after="12.5")
    assert record(**added, db=pg) | {"message": ""} == {
        "recorded": True,
        "duplicate": False,
        "alert": False,
        "message": "",
    }
    low = shape("credit", "credit.balance_low", "msg_cr_2")
    alert = record(**low, db=pg)
    assert alert["alert"] is True
    assert alert["message"].startswith(":warning: ada@example.com is low on API credits: 900 left (threshold 1000")
    assert record(**low, db=pg)["alert"] is False  # a redelivery does not alert again
    assert pg_query("SELECT event_type, amount::text, balance_after::text FROM dodo_credit_events ORDER BY 1") == [
        ("credit.added", "12.5", "12.5"),
        ("credit.balance_low", None, "900"),
    ]


def test_entitlement_grants_keep_their_latest_state_and_alert_on_failure(pg: dict[str, Any], pg_query: Any) -> None:
    known_customer(pg)
    record = load_script("record_entitlement_grant").main
    created = shape("entitlement_grant", "entitlement_grant.created", "msg_eg_1", "2025-10-01T14:32:50Z")
    failed = shape("entitlement_grant", "entitlement_grant.failed", "msg_eg_2", "2025-10-01T14:33:10Z")
    assert record(**created, db=pg)["alert"] is False
    result = record(**failed, db=pg)
    assert result["alert"] is True and result["status"] == failed["status"]
    assert result["message"].startswith(
        ":warning: github grant egr_0NWiQ3cHu2kCmX9bE4sGn for ada@example.com failed (github_invite_failed: GitHub"
    )
    late = shape("entitlement_grant", "entitlement_grant.delivered", "msg_eg_3", "2025-10-01T14:33:05Z")
    assert record(**late, db=pg)["applied"] is False  # older than the failure: recorded, not applied
    assert record(**failed, db=pg)["alert"] is False  # a redelivery does not alert again
    assert pg_query("SELECT status, last_webhook_id FROM dodo_entitlement_grants") == [(failed["status"], "msg_eg_2")]
    assert pg_query("SELECT count(*) FROM dodo_entitlement_grant_events") == [(3,)]
