"""The built-in templates, run in Node on the bundled samples: shape, types, currency maths, cancel."""

from __future__ import annotations

import re
import typing
from typing import Any

import pytest

from .kitlib import SAMPLES, TEMPLATES, run_kit_tool, sample

pytestmark = pytest.mark.node

ALL_EVENTS = sorted(p.stem for p in SAMPLES.glob("*.json"))
HANDLED = {
    "payment": [e for e in ALL_EVENTS if e.startswith("payment.")],
    "subscription": [e for e in ALL_EVENTS if e.startswith("subscription.")],
    "dispute": [e for e in ALL_EVENTS if e.startswith("dispute.")],
    "refund": [e for e in ALL_EVENTS if e.startswith("refund.")],
    "license_key": ["license_key.created"],
    "payout": [e for e in ALL_EVENTS if e.startswith("payout.")],
    "credit": [e for e in ALL_EVENTS if e.startswith("credit.")],
    "abandoned_checkout": [e for e in ALL_EVENTS if e.startswith("abandoned_checkout.")],
    "dunning": [e for e in ALL_EVENTS if e.startswith("dunning.")],
    "entitlement_grant": [e for e in ALL_EVENTS if e.startswith("entitlement_grant.")],
}
JSON_TYPES = {"string": str, "integer": int, "boolean": bool, "object": dict, "array": list}


def documented_fields(template: str) -> dict[str, tuple[str, bool]]:
    """The `Output (webhook.payload):` table of the template's header comment: name -> (type, nullable)."""
    header = (TEMPLATES / f"{template}.js").read_text().split("*/", 1)[0]
    table = header.split("Output (webhook.payload):", 1)[1]
    fields = {}
    for line in table.splitlines():
        match = re.match(r"\s*\*\s+(\w+)\s+(string|integer|boolean|object|array)( \| null)?\b", line)
        if match:
            fields[match.group(1)] = (match.group(2), bool(match.group(3)))
    return fields


def run(template: str, event_type: str, body: dict[str, Any] | None = None, webhook_id: str = "msg_test") -> Any:
    case = {
        "template": str(TEMPLATES / f"{template}.js"),
        "event_type": event_type,
        "body": body if body is not None else sample(event_type),
        "webhook_id": webhook_id,
    }
    [result] = run_kit_tool({"op": "templates", "cases": [case]})
    assert result["ok"], result["error"]
    return result["webhook"]


def run_many(cases: list[tuple[str, str]]) -> list[Any]:
    request = [
        {"template": str(TEMPLATES / f"{t}.js"), "event_type": e, "body": sample(e), "webhook_id": f"msg_{e}"}
        for t, e in cases
    ]
    results = run_kit_tool({"op": "templates", "cases": request})
    for (t, e), result in zip(cases, results, strict=True):
        assert result["ok"], f"{t} on {e}: {result['error']}"
    return [r["webhook"] for r in results]


@pytest.mark.parametrize("template", sorted(HANDLED))
def test_every_handled_event_has_the_documented_keys_and_types(template: str) -> None:
    fields = documented_fields(template)
    assert len(fields) >= 10, f"{template}.js header documents too few fields: {fields}"
    outputs = run_many([(template, e) for e in HANDLED[template]])
    for event_type, webhook in zip(HANDLED[template], outputs, strict=True):
        payload = webhook["payload"]
        assert not webhook.get("cancel"), event_type
        assert set(payload) == set(fields), f"{template} on {event_type}: keys differ from the header comment"
        for name, (kind, nullable) in fields.items():
            value = payload[name]
            if value is None:
                assert nullable, f"{template} on {event_type}: {name} is null but documented as {kind}"
                continue
            assert isinstance(value, JSON_TYPES[kind]), f"{template} on {event_type}: {name}={value!r} is not {kind}"
            if kind == "integer":
                assert not isinstance(value, bool)
        assert payload["event_type"] == event_type
        assert payload["webhook_id"] == f"msg_{event_type}"
        assert payload["timestamp"] == sample(event_type)["timestamp"]
        assert webhook["headers"] == {}
        assert webhook["method"] == "POST"


@pytest.mark.parametrize("template", sorted(HANDLED))
def test_unhandled_events_are_cancelled_and_left_untouched(template: str) -> None:
    others = [e for e in ALL_EVENTS if e not in HANDLED[template]]
    outputs = run_many([(template, e) for e in others])
    for event_type, webhook in zip(others, outputs, strict=True):
        assert webhook["cancel"] is True, f"{template} did not cancel {event_type}"
        assert webhook["payload"] == sample(event_type)


def with_money(event_type: str, currency: str, **data: Any) -> dict[str, Any]:
    body = sample(event_type)
    body["data"] = {**body["data"], "currency": currency, **data}
    return body


@pytest.mark.parametrize(
    ("currency", "minor", "expected_amount", "exponent"),
    [
        ("USD", 4999, "49.99", 2),
        ("JPY", 5000, "5000", 0),
        ("KRW", 15000, "15000", 0),
        ("VND", 250000, "250000", 0),
        ("CLP", 9990, "9990", 0),
        ("KWD", 12345, "12.345", 3),
        ("BHD", 5, "0.005", 3),
        ("OMR", 1000, "1.000", 3),
        ("JOD", 1250, "1.250", 3),
        ("TND", 999, "0.999", 3),
        ("EUR", 7, "0.07", 2),
        ("usd", 100, "1.00", 2),
    ],
)
def test_payment_amounts_use_the_currency_minor_unit(currency: str, minor: int, expected_amount: str, exponent: int):
    payload = run("payment", "payment.succeeded", with_money("payment.succeeded", currency, total_amount=minor, tax=0))[
        "payload"
    ]
    assert payload["amount"] == expected_amount
    assert payload["amount_minor"] == minor
    assert payload["currency_exponent"] == exponent
    assert payload["currency"] == currency.upper()


def test_dispute_amount_strings_are_parsed_exactly() -> None:
    payload = run("dispute", "dispute.opened", with_money("dispute.opened", "JPY", amount="12000"))["payload"]
    assert (payload["amount_minor"], payload["amount"]) == (12000, "12000")
    payload = run("dispute", "dispute.opened", with_money("dispute.opened", "KWD", amount="4999"))["payload"]
    assert (payload["amount_minor"], payload["amount"]) == (4999, "4.999")
    # A string that is not an integer is not coerced: both fields become null and the script refuses it.
    payload = run("dispute", "dispute.opened", with_money("dispute.opened", "USD", amount="49.99"))["payload"]
    assert payload["amount_minor"] is None and payload["amount"] is None


def test_dispute_urgency() -> None:
    assert run("dispute", "dispute.opened")["payload"]["urgent"] is True
    assert run("dispute", "dispute.challenged")["payload"]["urgent"] is False
    escalated = sample("dispute.challenged")
    escalated["data"]["dispute_stage"] = "pre_arbitration"
    assert run("dispute", "dispute.challenged", escalated)["payload"]["urgent"] is True
    assert run("dispute", "dispute.lost")["payload"]["urgent"] is False  # closed, even at pre_arbitration


def test_refund_without_amount_or_currency_keeps_every_key() -> None:
    body = sample("refund.failed")
    body["data"]["amount"] = None
    body["data"]["currency"] = None
    payload = run("refund", "refund.failed", body)["payload"]
    assert set(payload) == set(documented_fields("refund"))
    assert payload["amount_minor"] is None and payload["amount"] is None and payload["currency"] is None


def test_subscription_snapshot() -> None:
    payload = run("subscription", "subscription.cancelled")["payload"]
    data = sample("subscription.cancelled")["data"]
    assert payload["status"] == "cancelled"
    assert payload["cancelled_at"] == data["cancelled_at"]
    assert payload["billing_interval"] == data["payment_frequency_interval"]
    assert payload["amount_minor"] == data["recurring_pre_tax_amount"]
    assert payload["amount"] == "45.82"


def test_payment_cart_and_customer() -> None:
    payload = run("payment", "payment.failed")["payload"]
    assert payload["error_code"] == "card_declined"
    assert payload["product_cart"] == [{"product_id": "pdt_0NWiFq8sLm2cZKj4vTbR9", "quantity": 1}]
    assert payload["customer_email"] == "ada.lovelace@example.com"
    assert payload["tax"] == "4.17"


@pytest.mark.parametrize("template", sorted(HANDLED))
def test_headrace_sandbox_matches_node(template: str) -> None:
    from headrace.transform import Script, WebhookObject
    from headrace.transform.quickjs_sandbox import QuickJSSandbox

    sandbox = QuickJSSandbox()
    script = Script(name=f"builtin:{template}", source=(TEMPLATES / f"{template}.js").read_text())
    events = [*HANDLED[template], "license_key.created"]
    for event_type, node in zip(events, run_many([(template, e) for e in events]), strict=True):
        webhook = WebhookObject(
            event_type=event_type,
            payload=sample(event_type),
            url="https://windmill.example/api/w/demo/jobs/run/p/f/dodo/target",
            webhook_id=f"msg_{event_type}",
        )
        result = sandbox.run(script, webhook)
        assert result.payload == node["payload"], f"{template} on {event_type}: QuickJS and Node differ"
        assert result.cancel == bool(node.get("cancel")), event_type


def test_docs_list_the_same_fields_as_the_templates() -> None:
    docs = (TEMPLATES.parents[3] / "docs" / "templates.md").read_text()
    for template in HANDLED:
        section = docs.split(f"## builtin:{template}\n", 1)[1].split("\n## ", 1)[0]
        rows = re.findall(r"^\| (\w+) \| (\w+)( \\\| null)? \|", section, flags=re.MULTILINE)
        documented = {name: (kind, bool(null)) for name, kind, null in rows if name != "Field"}
        assert documented == documented_fields(template), f"docs/templates.md is out of date for {template}"


def kit_schema(script: str) -> dict[str, Any]:
    import yaml

    from .kitlib import SCRIPTS

    schema: dict[str, Any] = yaml.safe_load((SCRIPTS / f"{script}.script.yaml").read_text())["schema"]
    return schema


@pytest.mark.parametrize(
    ("template", "event_type", "scripts"),
    [
        ("payment", "payment.succeeded", ["record_payment", "validate_payment"]),
        ("subscription", "subscription.active", ["subscription_lifecycle"]),
        ("refund", "refund.succeeded", ["record_refund"]),
    ],
)
def test_an_empty_customer_name_passes_through_and_fits_the_kit_schema(
    template: str, event_type: str, scripts: list[str]
) -> None:
    from headrace.windmill.schema import validate

    body = sample(event_type)
    body["data"]["customer"]["name"] = ""  # the SDK's required `str` allows it
    payload = run(template, event_type, body)["payload"]
    assert payload["customer_name"] == ""
    for script in scripts:
        assert [p.message for p in validate(payload, kit_schema(script))] == [], script


def test_a_refund_without_currency_gives_no_amount_and_says_why() -> None:
    body = sample("refund.succeeded")
    body["data"].update(currency=None, amount=2500)  # JPY 2500 in truth; 2 decimals would say "25.00"
    payload = run("refund", "refund.succeeded", body)["payload"]
    assert (payload["currency"], payload["currency_exponent"], payload["amount_minor"]) == (None, None, 2500)
    assert payload["amount"] is None
    [note] = payload["notes"]
    assert note.startswith("amount: Dodo sent no currency") and "never guessed" in note


@pytest.mark.parametrize(
    ("template", "event_type", "amount_field"),
    [
        ("payment", "payment.succeeded", "total_amount"),
        ("subscription", "subscription.renewed", "recurring_pre_tax_amount"),
        ("dispute", "dispute.opened", "amount"),
        ("refund", "refund.succeeded", "amount"),
    ],
)
def test_an_unknown_currency_gives_no_amount_and_says_why(template: str, event_type: str, amount_field: str) -> None:
    body = with_money(event_type, "XTS", **{amount_field: "1234" if template == "dispute" else 1234})
    payload = run(template, event_type, body)["payload"]
    assert (payload["currency"], payload["currency_exponent"]) == ("XTS", None)
    assert (payload["amount_minor"], payload["amount"]) == (1234, None)
    assert any(n.startswith('amount: currency "XTS" is not an ISO 4217 code') for n in payload["notes"])
    if template == "payment":
        assert payload["tax"] is None and payload["tax_minor"] == 417


@pytest.mark.parametrize("template", sorted(HANDLED))
def test_ordinary_payloads_have_no_notes(template: str) -> None:
    if "notes" not in documented_fields(template):
        return  # no amounts to explain (license keys, dunning, abandoned checkouts, entitlement grants)
    for webhook in run_many([(template, e) for e in HANDLED[template]]):
        assert webhook["payload"]["notes"] == []


def test_every_dodo_currency_has_the_kit_exponent() -> None:
    """Every code in the SDK's Currency literal and the kit's ISO 4217 table gets the exponent the kit's
    validate_payment expects (one table in the templates, one in the kit, pinned to each other)."""
    from dodopayments.types.currency import Currency

    from .kitlib import load_script

    validate = load_script("validate_payment")
    codes = sorted(set(typing.get_args(Currency)) | validate.ISO_4217)
    request = [
        {
            "template": str(TEMPLATES / "payment.js"),
            "event_type": "payment.succeeded",
            "body": with_money("payment.succeeded", code, total_amount=123456, tax=0),
            "webhook_id": "msg",
        }
        for code in codes
    ]
    for code, result in zip(codes, run_kit_tool({"op": "templates", "cases": request}), strict=True):
        payload = result["webhook"]["payload"]
        expected = validate.EXPONENTS.get(code, 2)
        assert payload["currency_exponent"] == expected, code
        assert payload["notes"] == [], code
        assert validate.main(**payload)["valid"] is True


def test_dispute_amount_that_is_not_an_integer_is_noted() -> None:
    payload = run("dispute", "dispute.opened", with_money("dispute.opened", "USD", amount="49.99"))["payload"]
    assert payload["notes"] == ['amount_minor: Dodo sent "49.99", not an integer number of minor units; left null']


# --- Every sample variant (headrace.dodo.samples.variants) through every template -------------------------

PAIRED_SCRIPTS = {
    "payment": ["record_payment", "validate_payment"],
    "subscription": ["subscription_lifecycle"],
    "dispute": ["record_dispute"],
    "refund": ["record_refund"],
    "license_key": ["email_license_key"],
    "payout": ["record_payout"],
    "credit": ["record_credit"],
    "abandoned_checkout": ["email_checkout_recovery"],
    "dunning": ["email_dunning_notice"],
    "entitlement_grant": ["record_entitlement_grant"],
}


def samples_variants(event_type: str) -> list[str]:
    from headrace.dodo import samples

    return list(samples.variants(event_type))


def variant_cases(template: str) -> list[tuple[str, str]]:
    from headrace.dodo import samples

    return [(e, v) for e in HANDLED[template] for v in samples.variants(e)]


def run_variants(template: str) -> list[Any]:
    from headrace.dodo import samples

    cases = variant_cases(template)
    request = [
        {
            "template": str(TEMPLATES / f"{template}.js"),
            "event_type": e,
            "body": samples.load(e, v),
            "webhook_id": f"msg_{e}_{v}",
        }
        for e, v in cases
    ]
    results = run_kit_tool({"op": "templates", "cases": request})
    for (e, v), result in zip(cases, results, strict=True):
        assert result["ok"], f"{template} on {e} variant {v}: {result['error']}"
    return [r["webhook"] for r in results]


@pytest.mark.parametrize("template", sorted(HANDLED))
def test_every_variant_gives_the_documented_keys_and_fits_the_kit(template: str) -> None:
    from headrace.windmill.schema import validate

    fields = documented_fields(template)
    schemas = {script: kit_schema(script) for script in PAIRED_SCRIPTS[template]}
    cases = variant_cases(template)
    with_variants = [e for e in HANDLED[template] if samples_variants(e)]
    assert with_variants and len(cases) >= len(with_variants)
    for (event_type, variant), webhook in zip(cases, run_variants(template), strict=True):
        where = f"{template} on {event_type} variant {variant}"
        payload = webhook["payload"]
        assert not webhook.get("cancel"), where
        assert set(payload) == set(fields), where
        for name, (kind, nullable) in fields.items():
            if payload[name] is None:
                assert nullable, f"{where}: {name} is null but documented as {kind}"
            else:
                assert isinstance(payload[name], JSON_TYPES[kind]), f"{where}: {name}={payload[name]!r} is not {kind}"
        for script, schema in schemas.items():
            assert [p.message for p in validate(payload, schema)] == [], f"{where} does not fit {script}"


@pytest.mark.parametrize("template", sorted(HANDLED))
def test_headrace_sandbox_matches_node_on_every_variant(template: str) -> None:
    from headrace.dodo import samples
    from headrace.transform import Script, WebhookObject
    from headrace.transform.quickjs_sandbox import QuickJSSandbox

    sandbox = QuickJSSandbox()
    script = Script(name=f"builtin:{template}", source=(TEMPLATES / f"{template}.js").read_text())
    for (event_type, variant), node in zip(variant_cases(template), run_variants(template), strict=True):
        webhook = WebhookObject(
            event_type=event_type,
            payload=samples.load(event_type, variant),
            url="https://windmill.example/api/w/demo/jobs/run/p/f/dodo/target",
            webhook_id=f"msg_{event_type}_{variant}",
        )
        result = sandbox.run(script, webhook)
        assert result.payload == node["payload"], (
            f"{template} on {event_type} variant {variant}: QuickJS and Node differ"
        )


def test_variants_give_the_right_amounts() -> None:
    from headrace.dodo import samples

    def out(template: str, event_type: str, variant: str) -> Any:
        return run(template, event_type, samples.load(event_type, variant))["payload"]

    assert out("payment", "payment.succeeded", "zero_decimal_jpy")["amount"] == "5000"
    assert out("payment", "payment.succeeded", "three_decimal_kwd")["amount"] == "12.345"
    assert out("subscription", "subscription.renewed", "three_decimal_kwd")["amount"] == "12.345"
    assert out("dispute", "dispute.opened", "zero_decimal_jpy")["amount"] == "5000"
    refund = out("refund", "refund.succeeded", "no_currency")
    assert (refund["amount_minor"], refund["amount"], len(refund["notes"])) == (2500, None, 1)
    assert out("dispute", "dispute.won", "amount_decimal_string")["amount_minor"] is None
    multi = out("payment", "payment.processing", "multi_subscription")
    assert multi["is_multi_subscription"] is True and len(multi["subscription_ids"]) == 3
    assert out("payment", "payment.failed", "non_latin")["customer_name"] == "山田 太郎"


def test_every_dodo_event_type_has_exactly_one_builtin_template() -> None:
    from headrace.dodo import samples
    from headrace.transform.scripts import list_builtins

    assert sorted(HANDLED) == list_builtins()
    assert sorted(samples.EVENT_TYPES) == ALL_EVENTS
    handled = [e for events in HANDLED.values() for e in events]
    assert sorted(handled) == ALL_EVENTS, "an event type has no template, or two"
