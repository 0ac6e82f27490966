"""Realistic payload variations end to end under the default `schema = "enforce"`: a signed Dodo body ->
headrace (builtin:payment) -> the emulator checks the kit's schema and runs its Python script against a real
PostgreSQL resource -> what is in the tables."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.dodo import samples
from headrace.windmill.emulator import running_emulator
from tests.helpers import config_text, free_port, post, running_server, settings_for, signed_headers
from tests.integration.test_kit_e2e import job_settled, kit_emulator, pg_resource, query

pytestmark = pytest.mark.postgres
__all__ = ["pg_resource"]  # the fixture, imported so pytest finds it here


def deliver(tmp_path: Path, resource: dict[str, Any], body: dict[str, Any], webhook_id: str) -> dict[str, Any]:
    """POST `body` signed to a headrace whose destination is the kit's f/dodo/record_payment; the delivery."""
    raw = json.dumps(body).encode()

    async def main(url: str) -> dict[str, Any]:
        cfg = config_text(tmp_path / "h.db", free_port(), url, extra_dest='transform = "builtin:payment"')
        async with running_server(settings_for(cfg, tmp_path)) as base:
            async with aiohttp.ClientSession() as http:
                status, answer = await post(http, f"{base}/webhooks/dodo", raw, signed_headers(raw, webhook_id))
            assert status == 202, answer
            return await job_settled(base, webhook_id)

    with running_emulator(kit_emulator(resource)) as emulator:
        return asyncio.run(main(emulator.url("f/dodo/record_payment")))


def test_a_payment_from_a_customer_with_an_empty_name_is_delivered_and_booked(
    tmp_path: Path, pg_resource: dict[str, Any]
) -> None:
    body = samples.load("payment.succeeded")
    body["data"]["customer"]["name"] = ""  # the SDK's required `str` allows it
    delivery = deliver(tmp_path, pg_resource, body, "msg_empty_name")
    assert delivery["status"] == "delivered", delivery.get("last_error")
    assert delivery["job"]["state"] == "success", delivery["job"]
    assert query(pg_resource, "SELECT name, email FROM dodo_customers") == [("", body["data"]["customer"]["email"])]
    assert query(pg_resource, "SELECT webhook_id FROM dodo_ledger") == [("msg_empty_name",)]


def test_a_multi_subscription_payment_is_linked_to_every_subscription(
    tmp_path: Path, pg_resource: dict[str, Any]
) -> None:
    body = samples.load("payment.succeeded")
    subs = ["sub_e2e_a", "sub_e2e_b"]
    body["data"].update(subscription_id=None, subscription_ids=subs, is_multi_subscription=True)
    delivery = deliver(tmp_path, pg_resource, body, "msg_multi_sub")
    assert delivery["status"] == "delivered", delivery.get("last_error")
    assert delivery["job"]["state"] == "success", delivery["job"]
    pay = body["data"]["payment_id"]
    assert query(pg_resource, "SELECT payment_id, subscription_id FROM dodo_payment_subscriptions ORDER BY 2") == [
        (pay, s) for s in subs
    ]


@pytest.mark.parametrize("variant", [v for v in samples.variants("payment.succeeded") if v != "dollar_text"])
def test_every_payment_variant_is_delivered_and_booked(
    tmp_path: Path, pg_resource: dict[str, Any], variant: str
) -> None:
    body = samples.load("payment.succeeded", variant)
    delivery = deliver(tmp_path, pg_resource, body, f"msg_{variant}")
    assert delivery["status"] == "delivered", delivery.get("last_error")
    assert delivery["job"]["state"] == "success", delivery["job"]
    [(currency, amount)] = query(pg_resource, "SELECT currency, amount_minor FROM dodo_ledger")
    assert (currency, amount) == (body["data"]["currency"], body["data"]["total_amount"])
    customer = body["data"]["customer"]
    assert query(pg_resource, "SELECT name, email FROM dodo_customers") == [(customer["name"], customer["email"])]
