"""The kit undoes headrace's reference guard (windmill/references.py, CONTRACT A4): a customer whose text
starts with `$` is stored and sent exactly as typed, never as the guarded form and never resolved."""

from __future__ import annotations

import inspect
import json
from typing import Any

import pymysql
import pytest

from headrace.dodo import samples
from headrace.windmill.references import MARK, guard

from .kitlib import TEMPLATES, load_script, run_kit_tool
from .test_kit_integrations import Receiver

# Every kit script that reads text a customer (or a merchant, through Dodo) typed.
READERS = [
    "analytics_track",
    "calendar_event_ics",
    "email_checkout_recovery",
    "email_dunning_notice",
    "email_license_key",
    "hubspot_upsert_contact",
    "ledger_append",
    "record_credit",
    "record_dispute",
    "record_entitlement_grant",
    "record_payment",
    "record_payout",
    "record_refund",
    "send_email",
    "slack_message",
    "subscription_lifecycle",
    "twilio_sms",
    "upsert_customer_mysql",
    "upsert_customer_postgresql",
    "validate_payment",
]
CASES: list[Any] = [
    "$WM_TOKEN",
    "$var:u/admin/secret",
    MARK + "starts with the mark",
    MARK + MARK + "$",
    "plain text",
    "",
    "$",
    {"a": ["$res:f/x", {"b": "$jsonvar:y", "c": 5}], "d": None},
    None,
    4999,
]


@pytest.mark.parametrize("script", READERS)
def test_each_reader_undoes_the_guard_exactly(script: str) -> None:
    unguard = load_script(script).unguard
    for value in CASES:
        assert unguard(guard(value)) == value, (script, value)
    assert unguard("no mark") == "no mark"


def test_the_helper_is_the_same_in_every_script() -> None:
    sources = {script: inspect.getsource(load_script(script).unguard) for script in READERS}
    assert len(set(sources.values())) == 1, "the unguard helpers differ; keep them identical"


def guarded_payment(webhook_id: str) -> Any:
    """builtin:payment (in Node) on the `dollar_text` sample after headrace's guard: what Windmill receives."""
    body = guard(samples.load("payment.succeeded", "dollar_text"))
    case = {"template": str(TEMPLATES / "payment.js"), "event_type": "payment.succeeded", "body": body}
    [result] = run_kit_tool({"op": "templates", "cases": [{**case, "webhook_id": webhook_id}]})
    assert result["ok"], result["error"]
    return result["webhook"]["payload"]


@pytest.mark.postgres
@pytest.mark.node
def test_a_customer_named_wm_token_is_stored_exactly_by_the_postgresql_path(pg: dict[str, Any], pg_query: Any) -> None:
    payload = guarded_payment("msg_dollar")
    assert payload["customer_name"] == MARK + "$WM_TOKEN"  # what Windmill sees: not a reference
    load_script("record_payment").main(**{**payload, "product_cart": []}, db=pg)
    assert pg_query("SELECT name, email FROM dodo_customers") == [("$WM_TOKEN", "$res:u/admin@example.com")]
    [(metadata,)] = pg_query("SELECT metadata FROM dodo_ledger")
    assert metadata["order_ref"] == "$var:u/admin/stripe_key" and metadata["price"] == "$49.99"
    # The flow's own customer step stores the same.
    upsert = load_script("upsert_customer_postgresql").main
    row = upsert("cus_x", payload["customer_email"], payload["customer_name"], payload["timestamp"], db=pg)
    assert (row["name"], row["email"]) == ("$WM_TOKEN", "$res:u/admin@example.com")


@pytest.mark.mariadb
@pytest.mark.node
def test_the_mysql_upsert_stores_the_exact_text(mysql_db: dict[str, Any]) -> None:
    payload = guarded_payment("msg_dollar_mysql")
    upsert = load_script("upsert_customer_mysql").main
    row = upsert("cus_1", payload["customer_email"], payload["customer_name"], payload["timestamp"], db=mysql_db)
    assert (row["name"], row["email"]) == ("$WM_TOKEN", "$res:u/admin@example.com")
    conn = pymysql.connect(**mysql_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT name FROM dodo_customers WHERE customer_id = 'cus_1'")
            assert cur.fetchone() == ("$WM_TOKEN",)
    finally:
        conn.close()


def test_slack_gets_the_exact_text() -> None:
    receiver = Receiver()
    try:
        receiver.answers.append((200, {"ok": True, "channel": "C1", "ts": "1"}))
        slack = {"token": "xoxb-test", "base_url": receiver.url + "/api"}
        load_script("slack_message").main("#payments", guard("$WM_TOKEN paid"), slack=slack)
        [request] = receiver.requests
        assert json.loads(request["body"])["text"] == "$WM_TOKEN paid"
    finally:
        receiver.close()
