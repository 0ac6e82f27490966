"""The event-key rule (headrace/dodo/keys.py) over Dodo's sample bodies (one per event type), and its refusals."""

from __future__ import annotations

import json

import pytest

from headrace.dodo import samples
from headrace.dodo.keys import KEY_PART_LIMIT, body_key, body_time, event_key, once_per_key


def sample(event_type: str) -> dict:
    return json.loads(samples.path(event_type).read_text("utf-8"))


def test_every_sample_has_a_key_starting_with_its_type_and_naming_its_object():
    assert samples.EVENT_TYPES  # every event type (test_samples pins the list to the SDK's)
    for event_type in samples.EVENT_TYPES:
        body = sample(event_type)
        key = body_key(json.dumps(body).encode())
        assert key is not None, event_type
        assert key.startswith(event_type + ":"), key
        assert body_key(body) == key  # parsed or raw, the same key


def test_keys_are_type_and_object_id_plus_stage_or_renewal_payment():
    assert body_key(sample("payment.succeeded")) == "payment.succeeded:pay_0NWiH1kVq6tZ3xCyrR8aG"
    assert body_key(sample("refund.failed")) == "refund.failed:ref_0NWiK2pLs9dUeR4wX1bNm"
    assert body_key(sample("dispute.opened")) == "dispute.opened:dis_0NWiJ8rXe5sVbQ2mP7cKd:dispute"
    assert body_key(sample("license_key.created")) == "license_key.created:lic_0NWiL5sDq8fYhT2xV4nCj"
    assert body_key(sample("payout.success")) == "payout.success:pyt_0NWiM9wEr3gZjU5yB6pDk"
    assert body_key(sample("subscription.active")) == "subscription.active:sub_0NWiGy3pRt7YfQ1nB2cLx"
    renewed = sample("subscription.renewed")
    assert body_key(renewed) == "subscription.renewed:sub_0NWiGy3pRt7YfQ1nB2cLx:pay_0NX2aB7cD9eF1gH3iJ5kL"


def test_a_status_change_is_a_new_key_and_the_same_event_sent_twice_is_not():
    failed, succeeded = sample("payment.failed"), sample("payment.succeeded")
    assert failed["data"]["payment_id"] == succeeded["data"]["payment_id"]
    assert body_key(failed) != body_key(succeeded)
    later = sample("payment.succeeded")
    later["data"]["total_amount"] = 1  # Dodo sends the object's latest state: the key does not depend on it
    later["timestamp"] = "2030-01-01T00:00:00Z"
    assert body_key(later) == body_key(succeeded)


def test_each_renewal_and_each_dispute_stage_is_its_own_event():
    first, second = sample("subscription.renewed"), sample("subscription.renewed")
    second["data"]["payment_id"] = "pay_next_period"
    assert body_key(first) != body_key(second)
    pre, arbitration = sample("dispute.opened"), sample("dispute.opened")
    pre["data"]["dispute_stage"] = "pre_dispute"
    arbitration["data"]["dispute_stage"] = "pre_arbitration"
    assert body_key(pre) != body_key(arbitration)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        12,
        ["pay_1"],
        {"id": "pay_1"},
        "pay 1",
        "pay_\n1",
        "pay\u00a01",
        "pay\u20281",
        "pay\x001",
        "x" * (KEY_PART_LIMIT + 1),
    ],
)
def test_a_missing_or_hostile_id_gives_no_key(value):
    body = sample("payment.succeeded")
    body["data"]["payment_id"] = value
    assert body_key(body) is None


def test_an_id_at_the_limit_is_kept():
    body = sample("payment.succeeded")
    body["data"]["payment_id"] = "p" * KEY_PART_LIMIT
    assert body_key(body) == "payment.succeeded:" + "p" * KEY_PART_LIMIT


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"type": 1, "data": {}}',
        b'{"type": "payment.succeeded", "data": []}',
        b'{"type": "unknown.thing", "data": {"id": "x"}}',
        b'{"type": "payment", "data": {"payment_id": "p"}}',
    ],
)
def test_bodies_that_name_no_object_have_no_key(body):
    assert body_key(body) is None


def test_event_key_is_the_one_rule_for_synthesized_bodies_too():
    assert event_key("payment.succeeded", {"payment_id": "pay_1"}) == "payment.succeeded:pay_1"


def test_body_time_reads_dodo_timestamps():
    assert body_time({"timestamp": "2025-10-01T14:32:43.560Z"}) == pytest.approx(1759329163.56)
    assert body_time({"timestamp": "2025-10-01T14:32:43+00:00"}) == pytest.approx(1759329163.0)
    for bad in (None, 5, "yesterday", "x" * 100):
        assert body_time({"timestamp": bad}) is None


def test_which_events_happen_once_per_key():
    assert [t for t in samples.EVENT_TYPES if not once_per_key(t)] == [
        t for t in samples.EVENT_TYPES if t.startswith("subscription.") and t != "subscription.renewed"
    ]
    assert once_per_key("payment.succeeded") and once_per_key("subscription.renewed")
    assert not once_per_key("subscription.paused")


def test_a_derived_event_is_timed_by_its_best_field_never_before_the_object_was_created():
    from headrace.dodo.derive import derive

    payment = sample("payment.succeeded")["data"]
    payment.update(created_at="2026-12-01T10:00:00Z", updated_at="2026-12-01T10:05:00Z")
    found = derive("payments", payment)
    assert found is not None and found.body["timestamp"] == "2026-12-01T10:05:00.000Z"
    assert found.time_field.startswith("data.updated_at of payment")
    payment["updated_at"] = "2026-11-30T00:00:00Z"  # inconsistent: not before its creation
    found = derive("payments", payment)
    assert found is not None and found.body["timestamp"] == "2026-12-01T10:00:00.000Z"
    assert found.time_field.startswith("data.created_at of payment")
    payment["status"] = "processing"
    assert derive("payments", payment) is None
