"""`headrace reconcile` against the Dodo API stand-in over loopback HTTP, with a real store (SQLite and
PostgreSQL) and, end to end, a running `serve` delivering to the Windmill emulator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.app import App
from headrace.dodo import reconcile
from headrace.dodo.api import AiohttpTransport, DodoClient
from headrace.dodo.keys import body_key
from headrace.dodo.standin import DEFAULT_API_KEY, Fault, StandinState, StandinThread, running_standin
from headrace.dodo.standin_model import rfc3339
from headrace.models import NewEvent, Route
from headrace.ops.outages import RETRY_WINDOW, find
from headrace.store.core import Store
from headrace.store.sqlite import SQLiteStore
from headrace.windmill.emulator import EmulatorThread, running_emulator
from tests.helpers import (
    SECRET,
    config_text,
    deployed_windmill,
    free_port,
    running_server,
    settings_for,
    wait_for,
)
from tests.integration import test_store_contract as contract

make_store = contract.make_store  # the contract suite's fixture: SQLite and PostgreSQL

DAY = 86400.0
ROUTES = [Route("payments", "http://127.0.0.1:1/api/w/acme")]


@pytest.fixture
def standin() -> Iterator[StandinThread]:
    with running_standin(StandinState()) as running:
        yield running


def seed_outage(state: StandinState, now: float) -> dict[str, Any]:
    """What Dodo holds after two days of headrace being down: objects in every state worth an event, some
    not (a payment still processing), and 101 processing payments newer than the oldest succeeded one, so
    that one is only on the second page."""
    at = lambda days: rfc3339(now - days * DAY)  # noqa: E731
    seeded = {
        "stored": state.seed("payments", {"status": "succeeded", "subscription_id": None, "created_at": at(2.9)}),
        "paid": state.seed(
            "payments",
            {"status": "succeeded", "subscription_id": None, "created_at": at(2.8), "updated_at": at(2.79)},
        ),
        "failed": state.seed("payments", {"status": "failed", "subscription_id": None, "created_at": at(2.0)}),
        "refund": state.seed("refunds", {"status": "succeeded", "created_at": at(1.5)}),
        "pending_refund": state.seed("refunds", {"status": "pending", "created_at": at(1.5)}),
        "dispute": state.seed("disputes", {"dispute_status": "dispute_opened", "created_at": at(1.4)}),
        "license": state.seed("license_keys", {"created_at": at(1.3)}),
        "payout": state.seed("payouts", {"status": "in_progress", "created_at": at(1.2)}),
    }
    sub = state.seed("subscriptions", {"status": "active", "created_at": at(2.7)})
    seeded["subscription"] = sub
    first = {"status": "succeeded", "subscription_id": sub["subscription_id"], "created_at": at(2.7)}
    seeded["first_payment"] = state.seed("payments", first)
    seeded["renewal"] = state.seed("payments", {**first, "created_at": at(0.5)})
    for i in range(101):
        state.seed("payments", {"status": "processing", "subscription_id": None, "created_at": at(1.0 - i / 1000)})
    return seeded


def expected_keys(seeded: dict[str, Any]) -> set[str]:
    sub_id = seeded["subscription"]["subscription_id"]
    return {
        f"payment.succeeded:{seeded['paid']['payment_id']}",
        f"payment.failed:{seeded['failed']['payment_id']}",
        f"payment.succeeded:{seeded['first_payment']['payment_id']}",
        f"payment.succeeded:{seeded['renewal']['payment_id']}",
        f"refund.succeeded:{seeded['refund']['refund_id']}",
        f"dispute.opened:{seeded['dispute']['dispute_id']}:{seeded['dispute']['dispute_stage']}",
        f"license_key.created:{seeded['license']['id']}",
        f"payout.in_progress:{seeded['payout']['payout_id']}",
        f"subscription.active:{sub_id}",
        f"subscription.renewed:{sub_id}:{seeded['renewal']['payment_id']}",
    }


async def plan_for(url: str, store: Store, since: float, until: float) -> reconcile.Plan:
    async with aiohttp.ClientSession() as session:
        client = DodoClient(url, DEFAULT_API_KEY, AiohttpTransport(session))
        return await reconcile.make_plan(client, lambda keys: store.stored_keys("dodo", keys), "dodo", since, until)


def test_the_dry_run_lists_exactly_the_missing_events_and_apply_stores_each_once(standin, make_store):
    now = time.time()
    seeded = seed_outage(standin.state, now)
    stored_body = standin.state.event_body("payment.succeeded", object_id=seeded["stored"]["payment_id"])

    async def main() -> None:
        store = make_store()
        await store.open()
        try:
            raw = json.dumps(stored_body).encode()  # a real event headrace has, stored as Dodo sent it
            await store.ingest(
                NewEvent("dodo", "msg_stored", "payment.succeeded", int(now), now, raw, {}, body_key(raw)), ROUTES
            )
            plan = await plan_for(standin.url, store, now - 3 * DAY, now)
            assert plan.objects["payments"] == 106  # 101 processing ones are newer: the oldest are on page 1
            retrieved = [p for m, p in standin.state.requests if m == "GET" and p.startswith("/payments/")]
            assert len(retrieved) == 5  # a processing payment implies no event: not retrieved
            assert {m.derived.event_key for m in plan.missing} == expected_keys(seeded)
            for m in plan.missing:  # exactly Dodo-shaped: the key read back from the body is the same
                assert body_key(m.derived.body) == m.derived.event_key
                assert m.derived.body["data"]["payload_type"]
            stored, already = await reconcile.apply(store.ingest, lambda t: ROUTES, plan, time.time())
            assert (stored, already) == (len(expected_keys(seeded)), 0)
            again = await plan_for(standin.url, store, now - 3 * DAY, now)
            assert again.missing == []  # a second run finds nothing
            assert await reconcile.apply(store.ingest, lambda t: ROUTES, plan, time.time()) == (0, len(plan.missing))
        finally:
            await store.close()

    asyncio.run(main())


def config(tmp_path: Path, emulator: EmulatorThread, standin: StandinThread) -> Any:
    """serve's config, with the stand-in's endpoint for it registered (its secret is the source's)."""
    port = free_port()
    endpoint, _ = standin.state.add_endpoint(f"http://127.0.0.1:{port}/webhooks/dodo")
    text = config_text(tmp_path / "h.db", port, emulator.url(), events='["*"]').replace(SECRET, endpoint.secret)
    return settings_for(text, tmp_path)


def test_apply_is_delivered_once_by_serve_and_dodos_later_resend_makes_no_second_job(
    tmp_path: Path, standin: StandinThread
):
    now = time.time()
    seeded = seed_outage(standin.state, now)
    with running_emulator(deployed_windmill("f/dodo/on_payment")) as emulator:
        settings = config(tmp_path, emulator, standin)

        async def main() -> None:
            async with running_server(settings) as base:
                app = await App.open(settings, migrate=False)
                try:
                    plan = await plan_for(standin.url, app.store, now - 3 * DAY, now)
                    assert len(plan.missing) == len(expected_keys(seeded)) + 1  # `stored` is missing here too

                    def routes(event_type: str) -> list[Route]:
                        return [settings.route(n) for n in settings.destinations_for("dodo", event_type)]

                    stored, _ = await reconcile.apply(app.store.ingest, routes, plan, time.time())
                    assert stored == len(plan.missing)

                    async def all_jobs() -> bool:
                        return len(emulator.state.jobs) == stored

                    await wait_for(all_jobs, 20)
                    # Dodo sends the payment's event after all ("Recover failed messages"): a new webhook-id, a
                    # body made now. A payment succeeds once: it is a late copy, stored, never delivered.
                    paid = seeded["paid"]["payment_id"]
                    [sent] = await asyncio.to_thread(standin.emit, "payment.succeeded", object_id=paid)
                    assert sent.status == 202
                    async with aiohttp.ClientSession() as http:
                        async with http.get(f"{base}/api/v1/events/{sent.webhook_id}") as response:
                            shown = await response.json()
                        async with http.get(f"{base}/api/v1/events/{shown['duplicate_of']}") as response:
                            twin = await response.json()
                        async with http.get(f"{base}/api/v1/events?origin=reconcile&limit=100") as response:
                            listed = await response.json()
                    assert shown["origin"] == "dodo" and shown["deliveries"] == []
                    assert "late copy" in shown["note"] and shown["status"] == "unrouted"
                    assert twin["origin"] == "reconcile" and twin["webhook_id"].startswith("hr_recon_")
                    assert twin["event_key"] == f"payment.succeeded:{paid}"
                    assert "data.updated_at of payment" in twin["note"]
                    assert len(listed["events"]) == stored
                    assert {e["origin"] for e in listed["events"]} == {"reconcile"}
                    again = await plan_for(standin.url, app.store, now - 3 * DAY, now)
                    assert again.missing == []
                    assert len(emulator.state.jobs) == stored  # no second job
                    # A subscription can be active again later: a real event made after the reconcile is new
                    sub_id = seeded["subscription"]["subscription_id"]
                    [later] = await asyncio.to_thread(standin.emit, "subscription.active", object_id=sub_id)
                    assert later.status == 202
                    await wait_for(lambda: _async(len(emulator.state.jobs) == stored + 1), 20)
                finally:
                    await app.close()

        asyncio.run(main())


async def _async(value: Any) -> Any:
    return value


def test_startup_check_metrics_and_console_report_a_gap_longer_than_dodos_retries(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    from headrace.check import check

    now = time.time()
    settings = settings_for(config_text(tmp_path / "h.db", free_port()), tmp_path)

    async def down_for_days() -> None:
        store = SQLiteStore(tmp_path / "h.db")
        await store.open()
        try:
            span = await store.start_alive("old:1", now - 3 * DAY, now - 40 * DAY)
            await store.beat_alive(span, now - 2.5 * DAY)
        finally:
            await store.close()

    async def main() -> tuple[str, str, Any]:
        await down_for_days()
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/metrics") as response:
                metrics = await response.text()
            async with http.get(f"{base}/") as response:
                page = await response.text()
        store = SQLiteStore(tmp_path / "h.db")
        await store.open(migrate=False)
        try:
            report = await check(settings, store=store)
            reported = await find(store, time.time())
        finally:
            await store.close()
        return metrics, page, (report, reported)

    with caplog.at_level("WARNING", logger="headrace.outages"):
        metrics, page, (report, reported) = asyncio.run(main())
    [outage] = reported
    assert (outage.kind, outage.start) == ("down", now - 2.5 * DAY)
    assert outage.missed_until == pytest.approx(outage.end - RETRY_WINDOW)
    since = outage.message().split("--since ")[1].rstrip("`")
    assert any(f"headrace reconcile --since {since}" in r.getMessage() for r in caplog.records)  # at start-up
    assert f"headrace_unreconciled_outage_start_seconds {now - 2.5 * DAY:.0f}" in metrics
    assert "headrace_unreconciled_outages 1" in metrics
    assert "were not retried by Dodo" in page and f"--since {since}" in page
    [row] = [r for r in report.rows if r.check == "outages"]
    assert row.status == "fail" and f"headrace reconcile --since {since}" in row.detail


def cli_config(tmp_path: Path, *, api_key: bool = True) -> Path:
    text = config_text(tmp_path / "c.db", free_port())
    if api_key:
        text = text.replace(
            "[sources.dodo]\n", '[sources.dodo]\napi_key = "env:DODO_PAYMENTS_API_KEY"\nmode = "test"\n'
        )
    path = tmp_path / "headrace.toml"
    path.write_text(text, encoding="utf-8")
    asyncio.run(SQLiteStore(tmp_path / "c.db").migrate())
    return path


def test_the_command_dry_run_json_apply_and_a_second_apply(
    tmp_path: Path, standin: StandinThread, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    from headrace.cli import main

    monkeypatch.setenv("DODO_PAYMENTS_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("DODO_PAYMENTS_BASE_URL", standin.url)
    now = time.time()
    paid = standin.state.seed(
        "payments",
        {
            "status": "succeeded",
            "subscription_id": None,
            "created_at": rfc3339(now - DAY),
            "updated_at": rfc3339(now - DAY + 60),
        },
    )
    refund = standin.state.seed("refunds", {"status": "succeeded", "created_at": rfc3339(now - DAY)})
    config = str(cli_config(tmp_path))
    expected = [
        {
            "type": "payment.succeeded",
            "object_id": paid["payment_id"],
            "event_key": f"payment.succeeded:{paid['payment_id']}",
        },
        {
            "type": "refund.succeeded",
            "object_id": refund["refund_id"],
            "event_key": f"refund.succeeded:{refund['refund_id']}",
        },
    ]
    standin.state.faults.append(Fault(429, retry_after="0", path_prefix="/payments/"))  # Dodo's rate limit
    assert main(["reconcile", "-c", config, "--since", "2d", "--json"]) == 0
    out = capsys.readouterr()
    assert sorted(json.loads(out.out), key=lambda m: m["type"]) == expected
    assert "retrieving 2 objects" in out.err and "240/min" in out.err  # how long it takes, on stderr
    assert "Dodo's rate limit (429): waiting 0 s as it asks" in out.err
    assert DEFAULT_API_KEY not in out.err + out.out
    assert main(["reconcile", "-c", config, "--since", "2d"]) == 0
    text = capsys.readouterr().out
    assert text.count("MISSING") == 2 and "dry run: nothing stored" in text
    assert "not reconcilable" in text and "abandoned_checkout.*" in text and "dunning.*" in text
    assert main(["reconcile", "-c", config, "--since", "2d", "--apply"]) == 0
    assert "stored 2 event(s)" in capsys.readouterr().out
    assert main(["reconcile", "-c", config, "--since", "2d", "--apply", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # a second run adds nothing
    assert main(["events", "-c", config, "--origin", "reconcile"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("[reconcile]") == 2 and "hr_recon_" in listed
    assert main(["events", "-c", config, "--origin", "dodo"]) == 0
    assert "no events match" in capsys.readouterr().out
    assert main(["event", "-c", config, reconcile.webhook_id("dodo", expected[0]["event_key"])]) == 0
    timeline = capsys.readouterr().out
    assert "[reconcile]" in timeline and "synthesized by `headrace reconcile`" in timeline
    assert f"its timestamp is data.updated_at of payment {paid['payment_id']}" in timeline


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "2d", "--until", "3d"], "--since (2d) must be before --until (3d)"),
        (["--since", "500d"], "longer than 400 days"),
        (["--since", "yesterday"], "--since: 'yesterday' is not a time"),
        (["--since", "2d", "--source", "nope"], "no source named 'nope'"),
    ],
)
def test_the_command_refuses_bad_windows_and_sources(tmp_path, capsys, argv, message):
    from headrace.cli import main

    assert main(["reconcile", "-c", str(cli_config(tmp_path)), *argv]) == 2
    assert message in capsys.readouterr().err


def test_the_command_says_how_to_give_it_an_api_key(tmp_path, capsys):
    from headrace.cli import main

    assert main(["reconcile", "-c", str(cli_config(tmp_path, api_key=False)), "--since", "2d"]) == 2
    assert "has no api_key: run `headrace connect dodo" in capsys.readouterr().err


def test_the_api_refuses_an_unknown_origin_and_names_the_known_ones(tmp_path: Path):
    settings = settings_for(config_text(tmp_path / "o.db", free_port()), tmp_path)

    async def main() -> tuple[int, dict[str, Any], int]:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/v1/events?origin=forged") as response:
                refused = (response.status, await response.json())
            async with http.get(f"{base}/api/v1/events?origin=") as response:  # empty: any
                return refused[0], refused[1], response.status

    status, answer, empty = asyncio.run(main())
    assert (status, empty) == (400, 200)
    assert "origin='forged': use one of dodo, reconcile" in json.dumps(answer)


def test_check_says_when_dodo_disabled_headraces_endpoint_and_how_to_enable_it(
    tmp_path: Path, standin: StandinThread, monkeypatch: pytest.MonkeyPatch
):
    from headrace.check import check
    from headrace.config import load

    monkeypatch.setenv("DODO_PAYMENTS_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("DODO_PAYMENTS_BASE_URL", standin.url)
    settings = load(str(cli_config(tmp_path)))

    def endpoint_rows() -> list[Any]:
        return [r for r in asyncio.run(check(settings)).rows if r.check == "endpoint"]

    [none] = endpoint_rows()
    assert none.status == "warn" and "no webhook endpoint" in none.detail and "connect dodo" in none.fix
    url = "https://hooks.example.com/webhooks/dodo"
    mark = {"managed_by": "headrace", "headrace_source": "dodo"}
    endpoint, _ = standin.state.add_endpoint(url, metadata=mark, disabled=True)  # Svix gave up on it
    [disabled] = endpoint_rows()
    assert disabled.status == "fail" and endpoint.id in disabled.detail and "DISABLED" in disabled.detail
    assert f"headrace connect dodo --source dodo --public-url {url}" in disabled.fix
    standin.state.endpoints[endpoint.id].disabled = False
    [enabled] = endpoint_rows()
    assert enabled.status == "ok"
    monkeypatch.delenv("DODO_PAYMENTS_API_KEY")
    [unknown] = endpoint_rows()
    assert unknown.status == "warn" and "could not ask Dodo" in unknown.detail
    assert DEFAULT_API_KEY not in unknown.detail


def test_reconcile_every_makes_serve_bring_back_what_dodo_did_not_deliver(
    tmp_path: Path, standin: StandinThread, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DODO_PAYMENTS_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("DODO_PAYMENTS_BASE_URL", standin.url)
    now = time.time()
    paid = standin.state.seed(
        "payments", {"status": "succeeded", "subscription_id": None, "created_at": rfc3339(now - 1800)}
    )
    just_now = standin.state.seed(
        "payments", {"status": "succeeded", "subscription_id": None, "created_at": rfc3339(now - 60)}
    )
    with running_emulator(deployed_windmill("f/dodo/on_payment")) as emulator:
        text = config_text(tmp_path / "e.db", free_port(), emulator.url(), events='["*"]').replace(
            "[sources.dodo]\n",
            '[sources.dodo]\napi_key = "env:DODO_PAYMENTS_API_KEY"\nmode = "test"\nreconcile_every = "1h"\n',
        )
        settings = settings_for(text, tmp_path)

        async def main() -> dict[str, Any]:
            async with running_server(settings) as base:

                async def one_job() -> bool:
                    return len(emulator.state.jobs) == 1

                await wait_for(one_job, 20)  # the pass at start
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"{base}/api/v1/events?origin=reconcile") as response,
                ):
                    return await response.json()

        listed = asyncio.run(main())
    [event] = listed["events"]
    assert event["webhook_id"] == reconcile.webhook_id("dodo", f"payment.succeeded:{paid['payment_id']}")
    assert just_now["payment_id"] not in json.dumps(listed)  # newer than 15 minutes: left to Dodo for now


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ('reconcile_every = "59m"', "'59m' is out of range: write from 1h to 7d"),
        ('reconcile_every = "8d"', "'8d' is out of range"),
        ('reconcile_every = "1h"\napi_key = ""', "reference"),
    ],
)
def test_reconcile_every_limits_and_its_api_key(tmp_path: Path, setting: str, error: str):
    from headrace.config import ConfigError

    base = config_text(tmp_path / "x.db", free_port())
    for ok in ('reconcile_every = "1h"\napi_key = "env:K"', 'reconcile_every = "7d"\napi_key = "env:K"'):
        assert settings_for(base.replace("[sources.dodo]\n", f"[sources.dodo]\n{ok}\n"), tmp_path)
    with pytest.raises(ConfigError, match="reconcile_every needs api_key"):
        settings_for(base.replace("[sources.dodo]\n", '[sources.dodo]\nreconcile_every = "1h"\n'), tmp_path)
    with pytest.raises(ConfigError) as info:
        settings_for(base.replace("[sources.dodo]\n", f"[sources.dodo]\n{setting}\n"), tmp_path)
    assert error in str(info.value)
