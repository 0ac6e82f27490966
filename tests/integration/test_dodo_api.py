"""headrace's Dodo API client (dodo/api.py) against the stand-in over loopback HTTP: every page walked,
page numbers from 0 (where the SDK's auto-pagination skips page 1), 429 waited out within bounds, and
errors that say what to do without ever holding the API key."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import pytest

from headrace.dodo.api import (
    BASE_URLS,
    RESPONSE_LIMIT,
    AiohttpTransport,
    DodoApiError,
    DodoClient,
    HttpResponse,
    base_url,
    open_client,
)
from headrace.dodo.standin import DEFAULT_API_KEY, Fault, StandinState, StandinThread, running_standin
from headrace.durations import retry_after
from tests.helpers import free_port

T = TypeVar("T")
SECRET_KEY = "sk_test_do_not_print_me_0123456789"


@pytest.fixture
def standin() -> Iterator[StandinThread]:
    with running_standin(StandinState({DEFAULT_API_KEY, SECRET_KEY})) as running:
        yield running


def run(url: str, action: Callable[[DodoClient], Awaitable[T]], key: str = SECRET_KEY, **options: Any) -> T:
    async def main() -> T:
        async with open_client(url, key, **options) as client:
            return await action(client)

    return asyncio.run(main())


def test_base_url_by_mode_and_override() -> None:
    assert base_url("live") == BASE_URLS["live"] == "https://live.dodopayments.com"
    assert base_url("test") == "https://test.dodopayments.com"
    assert base_url("live", "http://127.0.0.1:9/") == "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="mode 'sandbox'"):
        base_url("sandbox")
    with pytest.raises(ValueError, match="http"):
        base_url("live", "127.0.0.1:9")


def test_webhooks_walks_every_page(standin: StandinThread) -> None:
    made = [standin.state.add_endpoint(f"https://hooks.example.com/{n}")[0].id for n in range(7)]
    found = run(standin.url, lambda c: c.webhooks(limit=2))
    assert [e.id for e in found] == made
    assert standin.state.count("GET") == 4  # 2 + 2 + 2 + 1


def test_create_update_and_secret(standin: StandinThread) -> None:
    async def action(client: DodoClient) -> Any:
        created = await client.create_webhook(
            "https://hooks.example.com/webhooks/dodo",
            description="headrace",
            filter_types=["payment.succeeded"],
            metadata={"managed_by": "headrace"},
            idempotency_key="k1",
        )
        patched = await client.update_webhook(created.id, {"disabled": True})
        return created, patched, await client.webhook_secret(created.id)

    created, patched, secret = run(standin.url, action)
    assert created.filter_types == ("payment.succeeded",) and created.metadata == {"managed_by": "headrace"}
    assert patched.disabled and patched.filter_types == ("payment.succeeded",)
    assert secret == standin.state.endpoints[created.id].secret and secret.startswith("whsec_")


def test_list_all_finds_page_one_which_the_sdk_auto_pagination_skips(standin: StandinThread) -> None:
    made = {standin.state.seed("payments")["payment_id"] for _ in range(5)}

    async def collect(client: DodoClient) -> list[str]:
        return [item["payment_id"] async for item in client.list_all("payments", page_size=2)]

    found = run(standin.url, collect)
    assert sorted(found) == sorted(made)
    dodopayments = pytest.importorskip("dodopayments")
    sdk = dodopayments.DodoPayments(bearer_token=DEFAULT_API_KEY, base_url=standin.url, max_retries=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_sdk = [p.payment_id for p in sdk.payments.list(page_size=2)]
    sdk.close()
    assert len(by_sdk) < len(made), "the SDK goes from page 0 to page 2: why this client loops itself"


def test_list_window_and_retrieve(standin: StandinThread) -> None:
    now = datetime.now(UTC)
    old = standin.state.seed("refunds", {"created_at": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")})
    new = standin.state.seed("refunds")

    async def action(client: DodoClient) -> Any:
        window = [i["refund_id"] async for i in client.list_all("refunds", created_at_gte=now - timedelta(hours=1))]
        until = [i["refund_id"] async for i in client.list_all("refunds", created_at_lte=now - timedelta(days=1))]
        return window, until, await client.retrieve("refunds", new["refund_id"])

    window, until, full = run(standin.url, action)
    assert window == [new["refund_id"]] and until == [old["refund_id"]]
    assert full == new
    with pytest.raises(ValueError, match="no GET /payouts"):
        run(standin.url, lambda c: c.retrieve("payouts", "pyt_1"))
    with pytest.raises(ValueError, match="unknown kind"):
        run(standin.url, lambda c: c.list_page("customers", 0))
    with pytest.raises(DodoApiError, match="HTTP 404"):
        run(standin.url, lambda c: c.retrieve("payments", "pay_missing"))


def test_429_is_waited_out_with_retry_after(standin: StandinThread) -> None:
    standin.state.faults.append(Fault(429, count=2, retry_after="3"))
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    found = run(standin.url, lambda c: c.webhooks(), sleep=fake_sleep)
    assert found == [] and waits == [3.0, 3.0]


def test_429_gives_up_past_the_bounds(standin: StandinThread) -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    standin.state.faults.append(Fault(429, retry_after="600"))
    with pytest.raises(DodoApiError, match="rate limit") as raised:
        run(standin.url, lambda c: c.webhooks(), sleep=no_sleep)
    assert raised.value.status == 429
    standin.state.faults.clear()
    standin.state.faults.append(Fault(429, count=50, retry_after="1"))
    with pytest.raises(DodoApiError, match="after 6 tries"):
        run(standin.url, lambda c: c.webhooks(), sleep=no_sleep)


def test_retry_after_forms() -> None:
    now = time.time()
    assert retry_after("7", now) == 7.0
    assert retry_after(None, now) is None and retry_after("soon", now) is None
    date = format_datetime(datetime.fromtimestamp(now + 30, UTC), usegmt=True)
    assert 28 <= (retry_after(date, now) or 0) <= 30


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "key was refused"), (403, "may not do this"), (500, "failed on its side"), (503, "failed on its side")],
)
def test_errors_say_what_to_do_and_never_hold_the_key(standin: StandinThread, status: int, words: str) -> None:
    standin.state.faults.append(Fault(status, body=f'{{"message": "bad key {SECRET_KEY}"}}'))
    with pytest.raises(DodoApiError) as raised:
        run(standin.url, lambda c: c.webhooks())
    assert raised.value.status == status and words in str(raised.value)
    assert SECRET_KEY not in str(raised.value) and "***" in str(raised.value)


def test_a_wrong_key_is_401(standin: StandinThread) -> None:
    with pytest.raises(DodoApiError, match="HTTP 401") as raised:
        run(standin.url, lambda c: c.webhooks(), key="sk_wrong_key_value")
    assert "sk_wrong_key_value" not in str(raised.value)
    assert "sk_wrong" not in repr(DodoClient("http://x", "sk_wrong_key_value", AiohttpTransport(None)))  # type: ignore[arg-type]


def test_unreachable_is_a_clear_error() -> None:
    with pytest.raises(DodoApiError, match="cannot connect"):
        run(f"http://127.0.0.1:{free_port()}", lambda c: c.webhooks())


def test_injected_transport_and_endless_iterators() -> None:
    """The transport is a seam: a server that repeats its iterator cannot keep the walk going forever."""

    async def transport(method: str, url: str, **_: Any) -> HttpResponse:
        return HttpResponse(200, b'{"data": [], "iterator": "same", "done": false}')

    async def main() -> Any:
        return await DodoClient("http://dodo.invalid", "k", transport).webhooks()

    with pytest.raises(DodoApiError, match="same iterator twice"):
        asyncio.run(main())


@pytest.mark.parametrize(("size", "ok"), [(RESPONSE_LIMIT, True), (RESPONSE_LIMIT + 1, False)])
def test_an_answer_past_the_size_limit_is_refused(size: int, ok: bool) -> None:
    from aiohttp import web

    from headrace.loopback import AppThread

    async def huge(request: web.Request) -> web.Response:
        padding = size - len(b'{"data": [], "done": true, "pad": ""}')
        return web.Response(body=b'{"data": [], "done": true, "pad": "' + b"x" * padding + b'"}')

    def build() -> web.Application:
        app = web.Application()
        app.router.add_get("/webhooks", huge)
        return app

    server = AppThread("huge-answers")
    server.serve(build)
    try:
        if ok:
            assert run(f"http://127.0.0.1:{server.port}", lambda c: c.webhooks()) == []
        else:
            with pytest.raises(DodoApiError, match="larger than"):
                run(f"http://127.0.0.1:{server.port}", lambda c: c.webhooks())
    finally:
        server.stop()


def test_page_size_bounds(standin: StandinThread) -> None:
    assert run(standin.url, lambda c: c.list_page("payouts", 0, page_size=100)) == []
    for size in (0, 101):
        with pytest.raises(ValueError, match="between 1 and 100"):
            run(standin.url, lambda c, size=size: c.list_page("payouts", 0, page_size=size))
