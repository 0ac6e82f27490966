"""How headrace reads Windmill's answers (CONTRACT R6, J2 and its 403, J4-J6, M1, R8, R9, T1), against the
emulator over loopback HTTP. Each test here has a `test_contract_*` twin that holds the emulator to the same item."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.deliver.tracker import CONFIRM_AFTER, GIVE_UP, JobTracker, Listed
from headrace.models import JobUpdate, OpenJob
from headrace.policy import JOB_EXCERPT
from headrace.windmill.client import WindmillClient
from headrace.windmill.emulator import EmulatorState, EmulatorThread, Fault, Token, running_emulator
from tests.helpers import config_text, free_port, running_server, settings_for
from tests.integration.test_outcomes import job_states, send, settings, until


def open_job(job_id: str, checks: int = 0) -> OpenJob:
    return OpenJob(1, 1, "payments", 0, job_id, checks, time.time() - 60, 0, "dodo", "msg_1")


async def look(
    tmp_path: Path,
    emu: EmulatorThread,
    job: OpenJob,
    url: str | None = None,
    extra: str = "",
    token: str = "test-token",
) -> JobUpdate:
    text = config_text(tmp_path / "h.db", free_port(), url or emu.url(), extra_dest=extra)
    cfg = settings_for(text.replace('token = "test-token"', f'token = "{token}"'), tmp_path)
    async with aiohttp.ClientSession() as http:
        tracker = JobTracker(None, cfg, WindmillClient(http))  # type: ignore[arg-type]
        return await tracker.look(job)


async def create(emu: EmulatorThread, url: str, body: Any = None, token: str = "test-token") -> str:
    job_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{url}?job_id={job_id}", json=body or {}, headers=headers) as r:
            assert r.status == 201, await r.text()
    return job_id


def test_R6_a_database_error_or_a_quota_400_is_retried_loudly_and_then_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"ok": True})
    state.inject(Fault.sql_error())
    state.inject(Fault.quota())

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server(settings(tmp_path, emu.url())) as base:
            await send(base, "msg_r6")
            data = await until(base, "msg_r6", lambda d: job_states(d) == ["success"])
        attempts = data["deliveries"][0]["attempt_log"]
        assert [a["http_status"] for a in attempts] == [400, 400, 201]
        assert data["status"] != "failed"

    with caplog.at_level(logging.WARNING, logger="headrace.deliver"), running_emulator(state) as emu:
        asyncio.run(scenario(emu))
    loud = [r.getMessage() for r in caplog.records if "passing reason" in r.getMessage()]
    assert len(loud) == 2 and "SqlErr" in loud[0] and "Quota exceeded" in loud[1]


def test_J2_a_running_job_costs_no_existence_lookups_and_an_unknown_one_is_found(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", delay=30.0)

    async def scenario(emu: EmulatorThread) -> None:
        running = await create(emu, emu.url())
        for checks in range(2 * CONFIRM_AFTER):
            assert (await look(tmp_path, emu, open_job(running, checks))).state == "open"
        assert emu.state.calls.get("job", 0) == 0  # started: true, so never asked whether it exists
        unknown = await look(tmp_path, emu, open_job(str(uuid.uuid4()), CONFIRM_AFTER - 1))
        assert unknown.state == "unknown" and "does not know job" in unknown.excerpt

    with running_emulator(state) as emu:
        asyncio.run(scenario(emu))


def test_J2_a_job_the_token_may_not_read_is_unknown_at_once_with_what_the_token_lacks_and_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Alice's token delivered two jobs; then the destination's token was changed to Bob's, who may run the script
    (shared with him alone) but not read folder f/dodo: Windmill answers 403 for Alice's jobs (J2). headrace stops
    tracking them at once, as `unknown`, saying what the token lacks and the fix (not `open` for 24 h, nor a
    failure to re-run), says so once in the log, and follows Bob's own jobs as usual."""
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"ok": True})
    state.add_token(Token("alice-token", paths=("f/dodo/",), email="alice@acme.test"))
    state.add_token(Token("bob-token", paths=("f/dodo/on_payment",), email="bob@acme.test"))

    async def scenario(emu: EmulatorThread) -> None:
        alices = [await create(emu, emu.url(), token="alice-token") for _ in range(2)]
        bobs = await create(emu, emu.url(), token="bob-token")
        text = config_text(tmp_path / "h.db", free_port(), emu.url(), extra_dest="retry_on_job_failure = 2")
        cfg = settings_for(text.replace('token = "test-token"', 'token = "bob-token"'), tmp_path)
        async with aiohttp.ClientSession() as http:
            tracker = JobTracker(None, cfg, WindmillClient(http))  # type: ignore[arg-type]
            # The round's list (J7) leaves Alice's job out, so it counts as running until a look of its own.
            fresh = open_job(alices[0])
            listed = await tracker.listed([fresh], time.time())
            assert fresh.job_id in listed.covered and (await tracker.answer(fresh, listed)).state == "open"
            updates = [
                await tracker.answer(open_job(job, CONFIRM_AFTER - 1), Listed({}, frozenset())) for job in alices
            ]
            own = await tracker.look(open_job(bobs))
        for update in updates:
            assert update.state == "unknown" and not update.rerun, update
            assert "HTTP 403" in update.excerpt and "will not show job" in update.excerpt
            assert "give the token's user read access to folder dodo" in update.excerpt
            assert "token was changed to another Windmill user's" in update.excerpt
            assert "bob-token" not in update.excerpt and len(update.excerpt) <= JOB_EXCERPT
        assert own.state == "success"

    with caplog.at_level(logging.WARNING, logger="headrace.track"), running_emulator(state) as emu:
        asyncio.run(scenario(emu))
    said = [r.getMessage() for r in caplog.records if "will not show job" in r.getMessage()]
    assert len(said) == 1 and "destination payments" in said[0] and "bob-token" not in said[0]


def test_J2_a_scoped_token_without_jobs_read_is_told_which_scope_it_lacks(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"ok": True})
    state.add_token(Token("reader-token", scopes=frozenset({"scripts:read"})))

    async def scenario(emu: EmulatorThread) -> None:
        job_id = await create(emu, emu.url())
        update = await look(tmp_path, emu, open_job(job_id), token="reader-token")
        assert update.state == "unknown" and "Required scope: jobs:read" in update.excerpt
        assert "a token with jobs:run (which includes reading jobs)" in update.excerpt

    with running_emulator(state) as emu:
        asyncio.run(scenario(emu))


def test_J4_a_skipped_flow_is_recorded_as_a_success_and_not_rerun(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("flow", "f/dodo/on_payment", lambda args: {"stopped": "not a payment we handle"}, skips=True)

    async def scenario(emu: EmulatorThread) -> None:
        url = emu.url(kind="f")
        job_id = await create(emu, url)
        update = await wait_done(tmp_path, emu, job_id, url, "retry_on_job_failure = 2")
        assert update.state == "success" and not update.rerun
        assert update.excerpt.startswith("skipped: the flow stopped early") and "not a payment" in update.excerpt

    with running_emulator(state) as emu:
        asyncio.run(scenario(emu))


def test_J5_a_canceled_job_is_not_rerun_and_says_who_canceled_it_and_why(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", delay=30.0)

    async def scenario(emu: EmulatorThread) -> None:
        job_id = await create(emu, emu.url())
        async with aiohttp.ClientSession() as http:
            cancel = {"job_id": job_id, "reason": "refunded by hand", "by": "alice"}
            async with http.post(f"http://127.0.0.1:{emu.port}/_emulator/cancel", json=cancel) as r:
                assert r.status == 200
        update = await wait_done(tmp_path, emu, job_id, emu.url(), "retry_on_job_failure = 2")
        assert update.state == "failure" and not update.rerun
        assert update.excerpt.startswith("canceled in Windmill by alice: refunded by hand. Not re-run")

    with running_emulator(state) as emu:
        asyncio.run(scenario(emu))


def test_J6_the_duration_of_a_job_with_a_large_body_comes_from_get_timing(tmp_path: Path) -> None:
    state = EmulatorState()
    code = "# " + "c" * 200_000 + "\ndef main(): ...\n"
    state.add_target("script", "f/dodo/on_payment", lambda args: {"ok": True}, content=code)

    async def scenario(emu: EmulatorThread) -> None:
        job_id = await create(emu, emu.url())
        emu.state.jobs[job_id].logs = "log line\n" * 10_000
        update = await wait_done(tmp_path, emu, job_id, emu.url())
        job = emu.state.jobs[job_id]
        assert update.state == "success" and update.duration_ms == int(job.duration_ms or 0)
        assert emu.state.calls.get("timing") == 1

    with running_emulator(state) as emu:
        asyncio.run(scenario(emu))


async def wait_done(tmp_path: Path, emu: EmulatorThread, job_id: str, url: str, extra: str = "") -> JobUpdate:
    """Look at the job until the tracker records it as finished (the open job was created a minute ago)."""
    for checks in range(200):
        update = await look(tmp_path, emu, open_job(job_id, checks % CONFIRM_AFTER), url, extra)
        if update.state != "open":
            return update
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} still open")


def check_report(tmp_path: Path, emu: EmulatorThread, url: str, extra: str = "", token: str = "test-token") -> Any:
    from headrace.app import make_sandbox
    from headrace.check import check

    text = config_text(tmp_path / "h.db", free_port(), url, extra_dest=extra).replace(
        'token = "test-token"', f'token = "{token}"'
    )
    return asyncio.run(check(settings_for(text, tmp_path), sandbox=make_sandbox(), timeout=3))


def rows(report: Any, name: str) -> list[Any]:
    return [r for r in report.rows if r.check == name]


def test_M1_check_does_not_say_deployed_while_the_lock_key_is_absent(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lock_requests=1000)  # pushed; its lock is building
    with running_emulator(state) as emu:
        report = check_report(tmp_path, emu, emu.url())
    [target] = rows(report, "target")
    assert target.status == "warn" and "still building its lock" in target.detail, report.table()


def test_R9_check_warns_while_a_flow_step_has_no_lock(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/book", lambda args: args)
    state.add_target("script", "f/dodo/notify", lambda args: args, lock_requests=1000)
    state.add_target("flow", "f/dodo/on_payment", steps=("f/dodo/book", "f/dodo/notify", "f/dodo/gone"))
    with running_emulator(state) as emu:
        report = check_report(tmp_path, emu, emu.url(kind="f"))
        state.targets[(None, "script", "f/dodo/notify")][0].lock_requests = 0
        state.add_target("script", "f/dodo/gone", lambda args: args)
        later = check_report(tmp_path, emu, emu.url(kind="f"))
    [steps] = rows(report, "steps")
    assert steps.status == "warn" and "still building its lock: f/dodo/notify" in steps.detail, report.table()
    assert "not deployed: f/dodo/gone" in steps.detail and "fail at that step" in steps.detail
    [fine] = rows(later, "steps")
    assert fine.status == "ok" and "3 script step(s)" in fine.detail, later.table()


def test_T1_check_says_a_run_only_token_runs_but_cannot_read_the_definition(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: args)
    state.add_token(Token("panel-token", scopes=frozenset({"jobs:run:scripts:f/dodo/on_payment"})))
    with running_emulator(state) as emu:
        report = check_report(tmp_path, emu, emu.url(), token="panel-token")
    [token] = rows(report, "token")
    assert token.status == "warn" and "can run script f/dodo/on_payment" in token.detail, report.table()
    assert "scripts:read" in token.fix
    [schema] = rows(report, "schema")
    assert schema.status == "warn" and "schema check is off until" in schema.detail
    assert report.ok and "panel-token" not in report.table()


def test_T1_the_preflight_says_once_that_the_schema_check_is_off_and_delivers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: args, schema={"type": "object", "properties": {}})
    state.add_token(Token("panel-token", scopes=frozenset({"jobs:run:scripts:f/dodo/on_payment"})))

    async def scenario(emu: EmulatorThread) -> None:
        text = config_text(tmp_path / "h.db", free_port(), emu.url()).replace('"test-token"', '"panel-token"')
        async with running_server(settings_for(text, tmp_path)) as base:
            for n in range(3):
                await send(base, f"msg_t1_{n}")
            for n in range(3):
                data = await until(base, f"msg_t1_{n}", lambda d: job_states(d) == ["success"])
                [attempt] = data["deliveries"][0]["attempt_log"]
                assert "schema check is off until the destination has a token with scripts:read" in attempt["notes"]

    with caplog.at_level(logging.WARNING, logger="headrace.deliver"), running_emulator(state) as emu:
        asyncio.run(scenario(emu))
    said = [r.getMessage() for r in caplog.records if "not read its definition" in r.getMessage()]
    assert len(said) == 1 and "panel-token" not in said[0]


PREPROCESSED = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}


def test_R8_enforce_does_not_refuse_a_target_with_a_preprocessor_and_check_says_why(tmp_path: Path) -> None:
    state = EmulatorState()

    def pre(event: dict[str, Any]) -> dict[str, Any]:
        return {"amount": event["body"]["data"]["total_amount"]}

    state.add_target("script", "f/dodo/on_payment", lambda args: args, schema=PREPROCESSED, preprocessor=pre)

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server(settings(tmp_path, emu.url(), 'schema = "enforce"\njob_results = true')) as base:
            await send(base, "msg_r8")
            data = await until(base, "msg_r8", lambda d: job_states(d) == ["success"])
        assert data["deliveries"][0]["job"]["excerpt"] == '{"amount": 4999}'
        assert "has a preprocessor" in data["deliveries"][0]["attempt_log"][0]["notes"]

    with running_emulator(state) as emu:
        asyncio.run(scenario(emu))
        report = check_report(tmp_path, emu, emu.url())
    [schema] = rows(report, "schema")
    assert schema.status == "skip" and schema.detail.startswith("does not apply: script f/dodo/on_payment has a")
    assert report.ok and all(r.status != "fail" for r in rows(report, "payment.succeeded")), report.table()


def two_targets(state: EmulatorState) -> None:
    wants_amount = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}
    state.add_target("script", "f/dodo/on_payment", lambda args: args, schema=wants_amount)
    fits_anything = {"type": "object", "properties": {}, "additionalProperties": True}
    state.add_target("script", "f/dodo/other", lambda args: args, schema=fits_anything)


def test_check_reports_warn_mismatches_as_warnings_not_failures(tmp_path: Path) -> None:
    state = EmulatorState()
    two_targets(state)
    with running_emulator(state) as emu:
        warned = check_report(tmp_path, emu, emu.url(), 'schema = "warn"')
    events = rows(warned, "payment.succeeded")
    assert events and all(r.status == "warn" for r in events) and warned.ok, warned.table()
    assert "sent anyway" in events[0].fix


def test_check_validates_against_the_target_the_transformation_chose(tmp_path: Path) -> None:
    state = EmulatorState()
    two_targets(state)
    (tmp_path / "elsewhere.js").write_text(
        "function handler(w) { w.url = w.url.replace('/on_payment', '/other'); return w; }"
    )
    with running_emulator(state) as emu:
        chosen = check_report(tmp_path, emu, emu.url(), 'transform = "elsewhere.js"')
    assert all(r.status == "ok" for r in rows(chosen, "payment.succeeded")), chosen.table()
    assert "f/dodo/other" in rows(chosen, "payment.succeeded")[0].detail and chosen.ok


def test_a_token_refused_on_lookups_keeps_its_jobs_open_says_so_once_and_names_it_at_the_give_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The destination's token was revoked after its jobs were created: every lookup answers 401. The jobs stay
    open (a token Windmill accepts reads their outcomes), the log says what is wrong and the fix once, not at every
    look, and a job past the 24 h limit is stopped with the 401 named, not as "not completed". Before, nothing
    was said, and the limit's note blamed the job."""
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"ok": True})
    state.auth_cache_seconds = 0  # the revocation counts at once (T1's cache is not what this is about)

    async def scenario(emu: EmulatorThread) -> None:
        jobs = [await create(emu, emu.url()) for _ in range(2)]
        state.revoke("test-token")
        cfg = settings_for(config_text(tmp_path / "h.db", free_port(), emu.url()), tmp_path)
        async with aiohttp.ClientSession() as http:
            tracker = JobTracker(None, cfg, WindmillClient(http))  # type: ignore[arg-type]
            fresh = [await tracker.look(open_job(job)) for job in jobs]
            old = open_job(jobs[0])
            old = dataclasses.replace(old, created_at=time.time() - GIVE_UP - 60)
            given_up = await tracker.look(old)
            state.add_token(Token("test-token"))  # a token Windmill accepts again: the outcome is read
            recovered = await tracker.look(open_job(jobs[1]))
        assert [u.state for u in fresh] == ["open", "open"] and all(u.next_check_at for u in fresh)
        assert given_up.state == "unknown" and "refused the destination's token" in given_up.excerpt
        assert "HTTP 401" in given_up.excerpt and "not completed" not in given_up.excerpt
        assert "test-token" not in given_up.excerpt and len(given_up.excerpt) <= JOB_EXCERPT
        assert recovered.state == "success"

    with caplog.at_level(logging.WARNING, logger="headrace.track"), running_emulator(state) as emu:
        asyncio.run(scenario(emu))
    said = [r.getMessage() for r in caplog.records if "refused the destination's token" in r.getMessage()]
    assert len(said) == 1 and "destination payments" in said[0] and "headrace reload" in said[0], said
    assert "test-token" not in said[0]
