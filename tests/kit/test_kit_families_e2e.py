"""The new families end to end under the default `schema = "enforce"`: a signed Dodo sample -> headrace with the
family's built-in template -> the emulator checks the kit script's schema and runs it against a real PostgreSQL
(and a loopback SMTP server) -> what is in the tables and the mailbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest

from headrace.dodo import samples
from headrace.windmill.emulator import running_emulator
from tests.helpers import config_text, free_port, post, running_server, settings_for, signed_headers
from tests.integration.test_kit_e2e import job_settled, kit_emulator, pg_resource

from .test_kit_integrations import smtp_server

pytestmark = [pytest.mark.postgres, pytest.mark.node]
__all__ = ["pg_resource", "smtp_server"]  # fixtures, imported so pytest finds them here


def deliver(tmp_path: Path, state: Any, template: str, event_type: str, script: str, webhook_id: str) -> Any:
    raw = json.dumps(samples.load(event_type)).encode()

    async def main(url: str) -> dict[str, Any]:
        family = event_type.split(".")[0]
        cfg = config_text(
            tmp_path / "h.db",
            free_port(),
            url,
            events=f'["{family}.*"]',
            extra_dest=f'transform = "builtin:{template}"',
        )
        async with running_server(settings_for(cfg, tmp_path)) as base:
            async with aiohttp.ClientSession() as http:
                status, answer = await post(http, f"{base}/webhooks/dodo", raw, signed_headers(raw, webhook_id))
            assert status == 202, answer
            return await job_settled(base, webhook_id)

    with running_emulator(state) as emulator:
        return asyncio.run(main(emulator.url(f"f/dodo/{script}")))


def query(resource: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=resource["dbname"]) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize(
    ("template", "event_type", "script", "sql", "expected"),
    [
        (
            "payout",
            "payout.success",
            "record_payout",
            "SELECT status, amount_minor FROM dodo_payouts",
            [("success", 1250000)],
        ),
        (
            "credit",
            "credit.added",
            "record_credit",
            "SELECT event_type, amount::text FROM dodo_credit_events",
            [("credit.added", "10000")],
        ),
        (
            "entitlement_grant",
            "entitlement_grant.delivered",
            "record_entitlement_grant",
            "SELECT status, license_key_id FROM dodo_entitlement_grants",
            [("Delivered", "lic_0NWiL5sDq8fYhT2xV4nCj")],
        ),
    ],
)
def test_a_family_event_is_delivered_and_booked(
    tmp_path: Path, pg_resource: dict[str, Any], template: str, event_type: str, script: str, sql: str, expected: Any
) -> None:
    delivery = deliver(tmp_path, kit_emulator(pg_resource), template, event_type, script, f"msg_e2e_{template}")
    assert delivery["status"] == "delivered", delivery.get("last_error")
    assert delivery["job"]["state"] == "success", delivery["job"]
    assert query(pg_resource, sql) == expected


def test_a_license_key_reaches_the_customer_through_headrace(
    tmp_path: Path, pg_resource: dict[str, Any], smtp_server: Any
) -> None:
    controller, received = smtp_server
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=pg_resource["dbname"]) as conn:
        conn.execute(
            "INSERT INTO dodo_customers (customer_id, email, name, first_seen_at, last_seen_at) "
            "VALUES ('cus_0NWiGvZ2AWoiFA9mKzv8h', 'ada@example.com', 'Ada', now(), now())"
        )
    state = kit_emulator(pg_resource)
    state.resources["f/dodo/smtp"] = {
        "host": "127.0.0.1",
        "port": controller.port,
        "user": "shop",
        "password": "pw",
        "from_address": "hello@shop.example",
    }
    delivery = deliver(tmp_path, state, "license_key", "license_key.created", "email_license_key", "msg_e2e_lic")
    assert delivery["job"]["state"] == "success", delivery["job"]
    [envelope] = received
    assert envelope.rcpt_tos == ["ada@example.com"] and b"DODO-7F3K-9QXA-2MPL-4WZR" in envelope.original_content
