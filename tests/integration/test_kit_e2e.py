"""End to end on loopback: a signed Dodo sample -> headrace (builtin:payment) -> the emulator runs the kit's
Python script with Windmill's argument rules and a real PostgreSQL resource -> the row is in the table."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.dodo import samples
from headrace.windmill.emulator import EmulatorState, running_emulator
from headrace.windmill.emulator_kit import load_kit
from tests.helpers import config_text, free_port, post, running_server, settings_for, signed_headers, wait_for

pytestmark = pytest.mark.postgres

KIT = Path(__file__).resolve().parents[2] / "kit"
ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"


@pytest.fixture
def pg_resource() -> Iterator[dict[str, Any]]:
    """A throwaway database with the kit's tables, as a Windmill `postgresql` resource value."""
    psycopg = pytest.importorskip("psycopg")
    name = f"headrace_e2e_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(host="127.0.0.1", user="postgres", dbname=name) as conn:
            conn.execute((KIT / "sql" / "postgresql.sql").read_text())
        yield {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": name, "sslmode": "disable"}
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def query(resource: dict[str, Any], sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=resource["dbname"]) as conn:
        return conn.execute(sql).fetchall()


def kit_emulator(resource: dict[str, Any]) -> EmulatorState:
    state = EmulatorState(any_path=False)
    load_kit(state, KIT)
    state.resources["f/dodo/db"] = resource
    return state


async def send_sample(base: str, webhook_id: str, event_type: str = "payment.succeeded") -> None:
    body = json.dumps(samples.load(event_type)).encode()
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, webhook_id))
    assert status == 202, answer


async def event_json(base: str, key: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/events/{key}") as response:
        assert response.status == 200
        return await response.json()


async def job_settled(base: str, key: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        data = await event_json(base, key)
        delivery = data["deliveries"][0] if data["deliveries"] else None
        if delivery and delivery["status"] == "failed":
            return delivery
        job = delivery and delivery["job"]
        return delivery if job and job["state"] not in ("open",) else None

    result: dict[str, Any] = await wait_for(check, timeout=60, interval=0.1)
    return result


def test_signed_payment_lands_in_the_ledger(tmp_path: Path, pg_resource: dict[str, Any]) -> None:
    sample = samples.load("payment.succeeded")

    async def main(url: str) -> dict[str, Any]:
        cfg = config_text(
            tmp_path / "h.db", free_port(), url, extra_dest='transform = "builtin:payment"\njob_results = true'
        )
        async with running_server(settings_for(cfg, tmp_path)) as base:
            await send_sample(base, "msg_e2e_1")
            return await job_settled(base, "msg_e2e_1")

    with running_emulator(kit_emulator(pg_resource)) as emulator:
        delivery = asyncio.run(main(emulator.url("f/dodo/record_payment")))
        [job] = emulator.state.jobs.values()
    assert delivery["status"] == "delivered", delivery
    assert delivery["job"]["state"] == "success", delivery["job"]
    assert '"recorded": true' in delivery["job"]["excerpt"]
    # The delivery sent no `db`: the script's default "$res:f/dodo/db" was resolved through wmill.
    assert "db" not in job.args
    data = sample["data"]
    assert query(pg_resource, "SELECT webhook_id, kind, payment_id, currency, amount_minor FROM dodo_ledger") == [
        ("msg_e2e_1", "payment", data["payment_id"], data["currency"].upper(), data["total_amount"])
    ]
    assert query(pg_resource, "SELECT email FROM dodo_customers") == [(data["customer"]["email"],)]


RENAMING = """
function handler(webhook) {
  const p = webhook.payload.data;
  webhook.payload = {
    event_type: webhook.eventType, webhook_id: webhook.webhookId, timestamp: webhook.payload.timestamp,
    business_id: webhook.payload.business_id, payment_id: p.payment_id, currency: p.currency,
    currency_exponent: 2, amount_cents: p.total_amount, amount: String(p.total_amount / 100),
    customer_id: p.customer.customer_id, customer_email: p.customer.email, customer_name: p.customer.name,
    product_cart: [], metadata: {}, created_at: p.created_at,
  };
  return webhook;
}
"""


@pytest.mark.parametrize("mode", ["enforce", "off"])
def test_renamed_field_is_caught_before_sending_or_fails_the_job(
    tmp_path: Path, pg_resource: dict[str, Any], mode: str
) -> None:
    """amount_minor renamed to amount_cents: Windmill drops amount_cents and passes None for amount_minor.
    enforce stops it before a job exists; off lets the job fail in the database, visible as the outcome."""
    (tmp_path / "rename.js").write_text(RENAMING)

    async def main(url: str) -> dict[str, Any]:
        extra = f'transform = "rename.js"\nschema = "{mode}"'
        cfg = config_text(tmp_path / "h.db", free_port(), url, extra_dest=extra)
        async with running_server(settings_for(cfg, tmp_path)) as base:
            await send_sample(base, "msg_e2e_rename")
            return await job_settled(base, "msg_e2e_rename")

    with running_emulator(kit_emulator(pg_resource)) as emulator:
        delivery = asyncio.run(main(emulator.url("f/dodo/record_payment")))
        jobs = list(emulator.state.jobs.values())
    if mode == "enforce":
        assert delivery["status"] == "failed" and jobs == []
        assert "missing required argument 'amount_minor' (integer)" in delivery["last_error"]
        assert "not declared by the target (Windmill drops it): 'amount_cents'" in delivery["last_error"]
    else:
        assert delivery["status"] == "delivered" and delivery["job"]["state"] == "failure"
        [job] = jobs
        assert "amount_cents" in job.args  # sent; the script never saw it
        assert "NotNullViolation" in delivery["job"]["excerpt"] and "amount_minor" in delivery["job"]["excerpt"]
    assert query(pg_resource, "SELECT count(*) FROM dodo_ledger") == [(0,)]
