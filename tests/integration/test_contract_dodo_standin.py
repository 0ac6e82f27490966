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
from dodopayments.types.webhooks.header_retrieve_response import HeaderRetrieveResponse  # noqa: E402

from headrace.dodo import samples  # noqa: E402
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

    sdk.webhooks.headers.update(created.id, headers={"X-Team": "billing"})
    sdk.webhooks.headers.update(created.id, headers={"X-Env": "test"})
    raw_headers = sdk.webhooks.headers.with_raw_response.retrieve(created.id).json()
    exactly(HeaderRetrieveResponse, raw_headers)
    assert raw_headers["headers"] == {"X-Team": "billing", "X-Env": "test"}, "PATCH adds, keeps the others"
    sdk.webhooks.delete(created.id)
    with pytest.raises(dodopayments.NotFoundError):
        sdk.webhooks.retrieve(created.id)
    created = sdk.webhooks.create(url="https://hooks.example.com/webhooks/dodo", headers={"X-Team": "billing"})

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


class Receiver:
    """A webhook receiver on loopback that records what it got and answers `status`."""

    def __init__(self, status: int = 204) -> None:
        import http.server
        import threading

        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/dodo"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def test_emit_signs_with_each_endpoints_secret_and_honours_filters(receiver: Receiver) -> None:
    """The SDK's own `unwrap` (Standard Webhooks) verifies what the stand-in sends, with the endpoint's secret."""
    from standardwebhooks import WebhookVerificationError

    state = StandinState()
    with running_standin(state) as standin:
        everything, _ = state.add_endpoint(receiver.url, headers={"X-Team": "billing"})  # no filter_types: all
        payments, _ = state.add_endpoint(receiver.url + "?p", filter_types=["payment.succeeded"])
        state.add_endpoint(receiver.url + "?off", disabled=True)
        state.add_endpoint(receiver.url + "?refunds", filter_types=["refund.succeeded"])
        deliveries = standin.emit("payment.succeeded")
        assert sorted(d.endpoint_id for d in deliveries) == sorted([everything.id, payments.id])
        sent_headers = {d.endpoint_id: h for (h, _), d in zip(receiver.received, deliveries, strict=True)}
        assert sent_headers[everything.id]["x-team"] == "billing" and "x-team" not in sent_headers[payments.id]
        assert all(d.status == 204 for d in deliveries)
        assert len({d.webhook_id for d in deliveries}) == 1, "one message, one webhook-id, as Svix sends"
        sdk = dodopayments.DodoPayments(bearer_token="x", base_url=standin.url)
        secrets = {everything.id: everything.secret, payments.id: payments.secret}
        for (headers, body), delivery in zip(receiver.received, deliveries, strict=True):
            event = sdk.webhooks.unwrap(body.decode(), headers=headers, key=secrets[delivery.endpoint_id])
            assert event.type == "payment.succeeded"
            with pytest.raises(WebhookVerificationError):
                other = payments.secret if delivery.endpoint_id == everything.id else everything.secret
                sdk.webhooks.unwrap(body.decode(), headers=headers, key=other)
        payment_id = json.loads(receiver.received[0][1])["data"]["payment_id"]
        assert state.get("payments", payment_id) is not None, "the emitted payment can be listed and retrieved"
        sdk.close()


def test_emit_about_a_stored_object_sends_its_current_state(receiver: Receiver) -> None:
    state = StandinState()
    with running_standin(state) as standin:
        state.add_endpoint(receiver.url)
        payment = state.seed("payments", {"status": "failed", "total_amount": 1234})
        standin.emit("payment.failed", object_id=payment["payment_id"])
        data = json.loads(receiver.received[0][1])["data"]
        assert data["payload_type"] == "Payment" and data["total_amount"] == 1234 and data["status"] == "failed"
        with pytest.raises(LookupError):
            standin.emit("payment.failed", object_id="pay_missing")
        with pytest.raises(ValueError, match="did you mean"):
            standin.emit("payment.succeded")


def test_control_endpoints_seed_update_fault_rotate_and_emit(receiver: Receiver) -> None:
    import urllib.error
    import urllib.request

    def call(url: str, body: Any = None, method: str = "POST") -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    state = StandinState()
    with running_standin(state) as standin:
        base = standin.url
        status, record = call(f"{base}/_standin/objects/refunds", {"amount": 500, "created_at": "2026-12-01T10:00:00Z"})
        assert status == 200 and record["amount"] == 500 and record["refund_id"].startswith("ref_")
        status, changed = call(f"{base}/_standin/objects/refunds/{record['refund_id']}", {"status": "failed"}, "PATCH")
        assert status == 200 and changed["status"] == "failed"
        assert call(f"{base}/_standin/objects/refunds/nope", {}, "PATCH")[0] == 404
        assert call(f"{base}/_standin/objects/customers", {})[0] == 400
        assert call(f"{base}/_standin/objects/refunds", ["not an object"])[0] == 400
        assert call(f"{base}/_standin/faults", {"status": "x", "nonsense": 1})[0] == 400
        assert call(f"{base}/_standin/objects/refunds", {"created_at": "yesterday"})[0] == 400
        assert call(f"{base}/_standin/faults", {"status": 503, "method": "GET"})[0] == 200
        client = dodopayments.DodoPayments(bearer_token=DEFAULT_API_KEY, base_url=standin.url, max_retries=0)
        with pytest.raises(dodopayments.InternalServerError):
            client.refunds.list()
        window = client.refunds.list(created_at_gte="2026-11-30T00:00:00Z", created_at_lte="2026-12-02T00:00:00Z")
        assert [r.refund_id for r in window.items] == [record["refund_id"]]
        endpoint = client.webhooks.create(url=receiver.url)
        old = client.webhooks.retrieve_secret(endpoint.id).secret
        assert call(f"{base}/_standin/webhooks/{endpoint.id}/rotate")[0] == 200
        assert client.webhooks.retrieve_secret(endpoint.id).secret != old
        status, answer = call(f"{base}/_standin/emit", {"type": "credit.added"})
        assert status == 200 and [d["status"] for d in answer["deliveries"]] == [204]
        assert call(f"{base}/_standin/emit", {"type": "nope.nope"})[0] == 400
        status, seen = call(f"{base}/_standin/state", method="GET")
        assert [e["id"] for e in seen["endpoints"]] == [endpoint.id] and seen["objects"]["refunds"] == 1
        client.close()


def _api(base: str, method: str, path: str, body: Any = None) -> int:
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}", "Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/webhooks", {"url": "https://h.example/" + "a" * (2048 - 18)}, 200),
        ("POST", "/webhooks", {"url": "https://h.example/" + "a" * (2049 - 18)}, 422),
        ("POST", "/webhooks", {"url": "https://h.example/x", "description": "d" * 1024}, 200),
        ("POST", "/webhooks", {"url": "https://h.example/x", "description": "d" * 1025}, 422),
        ("POST", "/webhooks", {"url": "https://h.example/x", "metadata": {str(n): "v" for n in range(50)}}, 200),
        ("POST", "/webhooks", {"url": "https://h.example/x", "metadata": {str(n): "v" for n in range(51)}}, 422),
        ("POST", "/webhooks", {"url": "https://h.example/x", "metadata": {"n": 1}}, 422),
        ("POST", "/webhooks", {"url": "https://h.example/x", "rate_limit": True}, 422),
        ("POST", "/webhooks", {"url": "https://h.example/x", "disabled": "yes"}, 422),
        ("POST", "/webhooks", ["not", "an", "object"], 422),
        ("POST", "/webhooks", {}, 422),
        ("GET", "/webhooks?limit=250", None, 200),
        ("GET", "/webhooks?limit=251", None, 422),
        ("GET", "/webhooks?limit=0", None, 422),
        ("GET", "/webhooks?iterator=ep_unknown", None, 422),
        ("GET", "/payments?page_size=100", None, 200),
        ("GET", "/payments?page_number=-1", None, 422),
        ("GET", "/payments?page_number=x", None, 422),
        ("GET", "/payments?created_at_gte=yesterday", None, 422),
        ("GET", "/payouts/pyt_1", None, 404),  # Dodo's API has no retrieve for payouts
    ],
)
def test_limits_at_and_past_the_edge(standin: StandinThread, method: str, path: str, body: Any, status: int) -> None:
    assert _api(standin.url, method, path, body) == status


def test_a_body_past_the_size_limit_is_refused(standin: StandinThread) -> None:
    body = {"url": "https://h.example/x", "description": "d" * (5 * 1024 * 1024)}
    assert _api(standin.url, "POST", "/webhooks", body) == 413


def test_the_payments_page_number_cap() -> None:
    with running_standin(StandinState(page_number_cap=3)) as capped:
        assert _api(capped.url, "GET", "/payments?page_number=3") == 200
        assert _api(capped.url, "GET", "/payments?page_number=4") == 422
        assert _api(capped.url, "GET", "/refunds?page_number=4") == 200, "only payments are capped"
