"""`headrace check` against emulator set-ups that reproduce each item of Dodo's troubleshooting list."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from headrace.app import make_sandbox
from headrace.check import Report, check
from headrace.cli import main as cli_main
from headrace.dodo import samples
from headrace.store.sqlite import SQLiteStore
from headrace.windmill.emulator import EmulatorState, EmulatorThread, running_emulator
from headrace.windmill.emulator_kit import load_kit
from tests.helpers import SECRET, config_text, dodo_body, free_port, post, running_server, settings_for, signed_headers
from tests.helpers import wait_for as wait_until

KIT = Path(__file__).resolve().parents[2] / "kit"


def kit_state() -> EmulatorState:
    state = EmulatorState(any_path=False)
    load_kit(state, KIT)
    return state


def config(tmp_path: Path, url: str, extra: str = "", events: str = '["payment.*"]') -> str:
    return config_text(tmp_path / "h.db", free_port(), url, events=events, extra_dest=extra)


def run_check(tmp_path: Path, text: str, store: bool = False) -> Report:
    settings = settings_for(text, tmp_path)

    async def main() -> Report:
        opened = None
        if store:
            opened = SQLiteStore(tmp_path / "h.db")
            await opened.open()
        try:
            return await check(settings, sandbox=make_sandbox(), store=opened, timeout=3)
        finally:
            if opened is not None:
                await opened.close()

    return asyncio.run(main())


def rows(report: Report, check_name: str) -> list[Any]:
    return [r for r in report.rows if r.check == check_name]


@pytest.fixture
def kit_emulator() -> Any:
    with running_emulator(kit_state()) as emu:
        yield emu


def test_a_fitting_pair_passes_every_check(tmp_path: Path, kit_emulator: EmulatorThread) -> None:
    text = config(tmp_path, kit_emulator.url("f/dodo/record_payment"), 'transform = "builtin:payment"')
    report = run_check(tmp_path, text)
    assert report.ok, report.table()
    checks = [r.check for r in report.rows if r.subject == "destination payments"]
    assert checks[:6] == ["url", "dns", "tcp", "token", "target", "schema"]
    assert sorted(checks[6:]) == ["payment.cancelled", "payment.failed", "payment.processing", "payment.succeeded"]
    assert all(r.status == "ok" for r in report.rows), report.table()
    for row in report.rows:
        if row.check in samples.EVENT_TYPES:  # the plain sample and every variant, in one row
            assert row.variant.split(",") == ["sample", *samples.variants(row.check)]
    assert "[plain sample and all 8 variants]" in report.table()
    assert rows(report, "dns")[0].ms is not None and rows(report, "tcp")[0].ms is not None
    assert rows(report, "secrets")[0].subject == "source dodo"


def test_inactive_url_host_not_listening(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/w/acme/jobs/run/p/f/dodo/record_payment"
    report = run_check(tmp_path, config(tmp_path, url))
    [tcp] = rows(report, "tcp")
    assert not report.ok and tcp.status == "fail" and "cannot connect" in tcp.detail
    assert rows(report, "token") == []  # later steps are skipped


def test_wrong_url_path_is_not_found(tmp_path: Path, kit_emulator: EmulatorThread) -> None:
    report = run_check(tmp_path, config(tmp_path, kit_emulator.url("f/dodo/record_paymnet")))
    [target] = rows(report, "target")
    assert target.status == "fail" and "no script f/dodo/record_paymnet" in target.detail
    assert "wmill sync push" in target.fix


def test_wrong_token(tmp_path: Path, kit_emulator: EmulatorThread) -> None:
    text = config(tmp_path, kit_emulator.url("f/dodo/record_payment")).replace(
        'token = "test-token"', 'token = "not-the-token-xyz"'
    )
    report = run_check(tmp_path, text)
    [token] = rows(report, "token")
    assert token.status == "fail" and "401" in token.detail
    assert "not-the-token-xyz" not in json.dumps(report.to_json()) + report.table()


@pytest.mark.parametrize(("flag", "word"), [("archived", "archived"), ("draft_only", "only a draft")])
def test_archived_or_draft_only_is_a_warning_because_it_still_runs_by_path(
    tmp_path: Path, flag: str, word: str
) -> None:
    state = kit_state()
    setattr(state.newest("acme", "script", "f/dodo/record_payment"), flag, True)
    with running_emulator(state) as emu:
        report = run_check(
            tmp_path, config(tmp_path, emu.url("f/dodo/record_payment"), 'transform = "builtin:payment"')
        )
    [target] = rows(report, "target")
    assert target.status == "warn" and word in target.detail and "still runs it by path" in target.fix
    assert report.ok, report.table()  # R4: a warning, not a failure; the later steps still ran
    assert [r.status for r in rows(report, "payment.succeeded")] == ["ok"]


STRUCTURE = """function handler(webhook) {
  const p = webhook.payload.data;
  webhook.payload = {event_type: webhook.eventType, webhook_id: webhook.webhookId, payment_id: p.payment_id,
                     total: p.total_amount};
  return webhook;
}"""

TYPES = """function handler(webhook) {
  const p = webhook.payload.data;
  webhook.payload = {
    webhook_id: webhook.webhookId, event_type: webhook.eventType, kind: "payment", object_id: p.payment_id,
    currency: p.currency, currency_exponent: 2, amount_minor: (p.total_amount / 100).toFixed(2),
    occurred_at: webhook.payload.timestamp,
  };
  return webhook;
}"""


def test_payload_structure_mismatch(tmp_path: Path, kit_emulator: EmulatorThread) -> None:
    (tmp_path / "structure.js").write_text(STRUCTURE)
    text = config(tmp_path, kit_emulator.url("f/dodo/record_payment"), 'transform = "structure.js"')
    report = run_check(tmp_path, text)
    messages = [r.detail for r in rows(report, "payment.succeeded")]
    assert "argument 'amount_minor' (integer) is required but was not sent" in messages
    assert any("argument 'total' is not declared by the target, so Windmill drops it" in m for m in messages)
    assert all(r.status == "fail" and "structure.js" in r.fix for r in rows(report, "payment.succeeded"))
    assert not report.ok


def test_data_type_mismatch(tmp_path: Path, kit_emulator: EmulatorThread) -> None:
    (tmp_path / "types.js").write_text(TYPES)
    text = config(tmp_path, kit_emulator.url("f/dodo/ledger_append"), 'transform = "types.js"')
    report = run_check(tmp_path, text)
    problems = rows(report, "payment.succeeded")
    assert all(p.status == "fail" for p in problems)
    assert all(p.detail.startswith("argument 'amount_minor': expected integer, sent string \"") for p in problems)
    # The sent string differs with the amount, so each distinct message is a row naming its samples; together
    # they name the plain sample and every variant once.
    named = [name for p in problems for name in p.variant.split(",")]
    assert sorted(named) == sorted(["sample", *samples.variants("payment.succeeded")])


# Right for the plain sample, wrong for one variant: an empty customer name becomes null.
EMPTY_NAME = """function handler(webhook) {
  const p = webhook.payload.data;
  webhook.payload = {
    event_type: webhook.eventType, webhook_id: webhook.webhookId, timestamp: webhook.payload.timestamp,
    business_id: webhook.payload.business_id, payment_id: p.payment_id, amount_minor: Number(p.total_amount),
    customer_id: p.customer.customer_id, customer_email: p.customer.email, customer_name: p.customer.name || null,
    product_cart: p.product_cart || [], metadata: p.metadata || {}, created_at: p.created_at,
  };
  return webhook;
}"""


def test_every_variant_runs_and_the_one_that_breaks_is_named(tmp_path: Path, kit_emulator: EmulatorThread) -> None:
    (tmp_path / "empty.js").write_text(EMPTY_NAME)
    text = config(tmp_path, kit_emulator.url("f/dodo/record_payment"), 'transform = "empty.js"')
    report = run_check(tmp_path, text)
    for event_type in ("payment.succeeded", "payment.failed"):
        found = rows(report, event_type)
        failed = [r for r in found if r.status == "fail"]
        assert failed and all(r.variant == "empty_name" for r in failed), report.table()
        assert any("customer_name" in r.detail for r in failed)
        [passed] = [r for r in found if r.status == "ok"]
        assert "sample" in passed.variant.split(",") and "empty_name" not in passed.variant.split(",")
        assert len(passed.variant.split(",")) == len(samples.variants(event_type))  # all the others
    table = report.table()
    assert "[variant empty_name] argument 'customer_name'" in table
    assert not report.ok


def test_cancelled_event_types_are_warnings(tmp_path: Path, kit_emulator: EmulatorThread) -> None:
    text = config(
        tmp_path,
        kit_emulator.url("f/dodo/record_payment"),
        'transform = "builtin:payment"',
        '["payment.*", "refund.*"]',
    )
    report = run_check(tmp_path, text)
    [refund] = rows(report, "refund.succeeded")
    assert refund.status == "warn" and "cancels" in refund.detail and report.ok


def test_failing_jobs_are_visible_via_outcomes(tmp_path: Path) -> None:
    state = EmulatorState(any_path=False)
    state.add_target("script", "f/dodo/on_payment", error="relation dodo_ledger does not exist")
    with running_emulator(state) as emu:
        text = config(tmp_path, emu.url())
        settings = settings_for(text, tmp_path)

        async def deliver() -> None:
            import aiohttp

            body = dodo_body()
            async with running_server(settings) as base, aiohttp.ClientSession() as http:
                status, _ = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_fail"))
                assert status == 202

                async def failed() -> bool:
                    async with http.get(f"{base}/api/v1/events/msg_fail") as response:
                        job = (await response.json())["deliveries"][0]["job"]
                        return bool(job and job["state"] == "failure")

                await wait_until(failed, timeout=15)

        asyncio.run(deliver())
        report = run_check(tmp_path, text, store=True)
    [jobs] = rows(report, "jobs")
    assert jobs.status == "fail" and "1 job(s) failed" in jobs.detail
    assert "relation dodo_ledger does not exist" in jobs.detail
    assert f"/run/{next(iter(state.jobs))}?workspace=acme" in jobs.fix and "headrace replay" in jobs.fix


def test_cli_exit_codes_and_json(
    tmp_path: Path, kit_emulator: EmulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(config(tmp_path, kit_emulator.url("f/dodo/record_payment"), 'transform = "builtin:payment"'))
    assert cli_main(["check", "-c", str(good)]) == 0
    table = capsys.readouterr().out
    assert "all checks passed" in table and "payment.succeeded" in table and SECRET not in table
    bad = tmp_path / "bad.toml"
    bad.write_text(config(tmp_path, kit_emulator.url("f/dodo/missing")))
    assert cli_main(["check", "-c", str(bad), "--json", "payments"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and any(r["check"] == "target" and r["status"] == "fail" for r in data["rows"])
    assert cli_main(["check", "-c", str(bad), "nope"]) == 2
    assert "no destination named nope" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "words"),
    [({"lock_seconds": 60.0}, "still building its lock"), ({"lock_error": "pip: no such package"}, "failed to build")],
)
def test_a_script_whose_lock_is_not_built_is_a_warning(tmp_path: Path, options: dict[str, Any], words: str) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", **options)  # R3: runs answer 404 meanwhile
    with running_emulator(state) as emu:
        report = run_check(tmp_path, config(tmp_path, emu.url()))
    [target] = rows(report, "target")
    assert target.status == "warn" and words in target.detail, report.table()


THROWS_ON_EMPTY_NAME = """function handler(webhook) {
  if (webhook.payload.data.customer.name === "") throw new Error("no customer name");
  return webhook;
}"""


def test_a_variant_the_transformation_throws_on_is_named_with_the_command_to_try(
    tmp_path: Path, kit_emulator: EmulatorThread
) -> None:
    (tmp_path / "throws.js").write_text(THROWS_ON_EMPTY_NAME)
    text = config(tmp_path, kit_emulator.url("f/dodo/record_payment"), 'transform = "throws.js"')
    report = run_check(tmp_path, text)
    refused = [r for r in rows(report, "payment.succeeded") if "no customer name" in r.detail]
    assert [r.variant for r in refused] == ["empty_name"], report.table()
    assert "--event payment.succeeded --variant empty_name" in refused[0].fix
