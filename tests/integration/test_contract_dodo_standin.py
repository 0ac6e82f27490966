"""The Dodo stand-in against the real `dodopayments` SDK 1.123.0 (base_url = the stand-in, over loopback
HTTP): every route it serves, each answer validated by the SDK's own model, field for field — the SDK is
the oracle, so a shape the stand-in gets wrong fails here, not in a user's `connect` or `reconcile`."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

dodopayments = pytest.importorskip("dodopayments")

from dodopayments.types import (  # noqa: E402
    GetDispute,
    LicenseKey,
    Payment,
    Refund,
    Subscription,
    WebhookDetails,
)
from dodopayments.types.dispute_list_response import DisputeListResponse  # noqa: E402
from dodopayments.types.payment_list_response import PaymentListResponse  # noqa: E402
from dodopayments.types.payout_list_response import PayoutListResponse  # noqa: E402
from dodopayments.types.refund_list_item import RefundListItem  # noqa: E402
from dodopayments.types.subscription_list_response import SubscriptionListResponse  # noqa: E402

from headrace import samples  # noqa: E402
from headrace.dodo.kinds import KINDS  # noqa: E402
from headrace.dodo.standin import DEFAULT_API_KEY, StandinState, StandinThread, running_standin  # noqa: E402

LIST_MODELS: dict[str, Any] = {
    "payments": PaymentListResponse,
    "refunds": RefundListItem,
    "disputes": DisputeListResponse,
    "subscriptions": SubscriptionListResponse,
    "license_keys": LicenseKey,
    "payouts": PayoutListResponse,
}
FULL_MODELS: dict[str, Any] = {
    "payments": Payment,
    "refunds": Refund,
    "disputes": GetDispute,
    "subscriptions": Subscription,
    "license_keys": LicenseKey,
}


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinThread]:
    with running_standin(StandinState()) as running:
        yield running


@pytest.fixture
def sdk(standin: StandinThread) -> Any:
    client = dodopayments.DodoPayments(bearer_token=DEFAULT_API_KEY, base_url=standin.url, max_retries=0)
    yield client
    client.close()


def exactly(model: Any, raw: dict[str, Any]) -> None:
    """`raw` validates against `model` (types checked, not Stainless's lenient construct) and has exactly
    its fields: none missing, none extra."""
    model.model_validate(raw)
    assert set(raw) == set(model.model_fields), (
        f"{model.__name__}: missing {sorted(set(model.model_fields) - set(raw))}, "
        f"extra {sorted(set(raw) - set(model.model_fields))}"
    )


def test_webhook_endpoints_create_list_retrieve_update_secret(sdk: Any, standin: StandinThread) -> None:
    created = sdk.webhooks.create(
        url="https://hooks.example.com/webhooks/dodo",
        description="headrace",
        filter_types=["payment.succeeded", "refund.succeeded"],
        metadata={"managed_by": "headrace"},
        idempotency_key="headrace-contract-1",
    )
    raw = sdk.webhooks.with_raw_response.retrieve(created.id).json()
    exactly(WebhookDetails, raw)
    assert raw["filter_types"] == ["payment.succeeded", "refund.succeeded"]
    assert raw["metadata"] == {"managed_by": "headrace"} and raw["disabled"] is False

    again = sdk.webhooks.create(url="https://other.example/x", idempotency_key="headrace-contract-1")
    assert again.id == created.id, "a repeated idempotency_key answers the endpoint it created"

    listed = [e.id for e in sdk.webhooks.list()]
    assert created.id in listed
    page = sdk.webhooks.with_raw_response.list(limit=1).json()
    assert set(page) == {"data", "iterator", "done"}
    for item in page["data"]:
        exactly(WebhookDetails, item)

    updated = sdk.webhooks.update(created.id, disabled=True, description="changed")
    assert updated.disabled is True and updated.description == "changed"
    assert updated.filter_types == ["payment.succeeded", "refund.succeeded"], "PATCH leaves what it is not given"

    secret = sdk.webhooks.retrieve_secret(created.id)
    assert secret.secret.startswith("whsec_")
    assert standin.state.endpoints[created.id].secret == secret.secret


def test_sdk_walks_every_webhook_page(sdk: Any, standin: StandinThread) -> None:
    ids = {sdk.webhooks.create(url=f"https://hooks.example.com/p/{n}").id for n in range(7)}
    seen = [e.id for e in sdk.webhooks.list(limit=2)]  # the SDK's cursor pagination follows `iterator`
    assert ids <= set(seen) and len(seen) == len(set(seen)) == len(standin.state.endpoints)


def test_webhook_errors(sdk: Any, standin: StandinThread) -> None:
    with pytest.raises(dodopayments.NotFoundError):
        sdk.webhooks.retrieve_secret("ep_missing")
    with pytest.raises(dodopayments.UnprocessableEntityError):
        sdk.webhooks.create(url="https://hooks.example.com/x", filter_types=["payment.nonsense"])  # type: ignore[list-item]
    with pytest.raises(dodopayments.UnprocessableEntityError):
        sdk.webhooks.create(url="ftp://hooks.example.com/x")
    bad = dodopayments.DodoPayments(bearer_token="wrong-key", base_url=standin.url, max_retries=0)
    with pytest.raises(dodopayments.AuthenticationError):
        bad.webhooks.list()
    bad.close()


@pytest.mark.parametrize("kind", list(KINDS))
def test_object_lists_and_retrieve_match_the_sdk_models(sdk: Any, standin: StandinThread, kind: str) -> None:
    # The SDK marks license_keys.list/retrieve deprecated (1.123.0, no replacement): the routes still answer.
    warnings.filterwarnings("ignore", "deprecated", DeprecationWarning)
    record = standin.state.seed(kind)
    object_id = record[KINDS[kind].id_field]
    raw = getattr(sdk, kind).with_raw_response.list(page_size=100).json()
    assert set(raw) == {"items"}
    items = [i for i in raw["items"] if i[KINDS[kind].id_field] == object_id]
    assert len(items) == 1
    exactly(LIST_MODELS[kind], items[0])
    if kind in FULL_MODELS:
        full = getattr(sdk, kind).with_raw_response.retrieve(object_id).json()
        exactly(FULL_MODELS[kind], full)
        with pytest.raises(dodopayments.NotFoundError):
            getattr(sdk, kind).retrieve("nope_0000")


def test_retrieve_returns_the_webhook_data_for_payments_refunds_license_keys(standin: StandinThread, sdk: Any) -> None:
    """DESIGN.md: GET /payments/{id} (and refunds, license keys) returns exactly the webhook's `data`."""
    warnings.filterwarnings("ignore", "deprecated", DeprecationWarning)
    for event_type, kind in (
        ("payment.succeeded", "payments"),
        ("refund.succeeded", "refunds"),
        ("license_key.created", "license_keys"),
    ):
        body = standin.state.event_body(event_type)
        data = dict(body["data"])
        data.pop("payload_type")
        full = getattr(sdk, kind).with_raw_response.retrieve(data[KINDS[kind].id_field]).json()
        assert full == data


def test_event_bodies_match_the_samples_fields(standin: StandinThread) -> None:
    """Emitted bodies have every field of the SDK's webhook model (the samples are those models)."""
    unwrap = dodopayments.DodoPayments(bearer_token="x", base_url=standin.url).webhooks.unsafe_unwrap
    for event_type in samples.EVENT_TYPES:
        body = standin.state.event_body(event_type)
        assert set(body) == set(samples.load(event_type))
        assert set(body["data"]) == set(samples.load(event_type)["data"]), event_type
        assert unwrap(json.dumps(body)).type == event_type


def test_page_numbers_start_at_zero_and_page_size_is_capped(sdk: Any) -> None:
    state = StandinState()
    with running_standin(state) as other:
        client = dodopayments.DodoPayments(bearer_token=DEFAULT_API_KEY, base_url=other.url, max_retries=0)
        made = {state.seed("refunds")["refund_id"] for _ in range(5)}
        pages = [
            [i["refund_id"] for i in client.refunds.with_raw_response.list(page_number=n, page_size=2).json()["items"]]
            for n in range(4)
        ]
        assert [len(p) for p in pages] == [2, 2, 1, 0]
        assert {i for p in pages for i in p} == made
        with pytest.raises(dodopayments.UnprocessableEntityError):
            client.refunds.list(page_size=101)
        client.close()
