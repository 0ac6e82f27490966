"""How headrace reads Windmill's answers (CONTRACT R6, J2, J4-J6, M1, R8, R9, T1), against the emulator over
loopback HTTP. Each test here has a `test_contract_*` twin that holds the emulator to the same item."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.deliver.tracker import CONFIRM_AFTER, JobTracker
from headrace.models import JobUpdate, OpenJob
from headrace.windmill.client import WindmillClient
from headrace.windmill.emulator import EmulatorState, EmulatorThread, Fault, running_emulator
from tests.helpers import config_text, free_port, running_server, settings_for
from tests.integration.test_outcomes import job_states, send, settings, until


def open_job(job_id: str, checks: int = 0) -> OpenJob:
    return OpenJob(1, 1, "payments", 0, job_id, checks, time.time() - 60, 0, "dodo", "msg_1")


async def look(tmp_path: Path, emu: EmulatorThread, job: OpenJob, url: str | None = None, extra: str = "") -> JobUpdate:
    cfg = settings_for(config_text(tmp_path / "h.db", free_port(), url or emu.url(), extra_dest=extra), tmp_path)
    async with aiohttp.ClientSession() as http:
        tracker = JobTracker(None, cfg, WindmillClient(http))  # type: ignore[arg-type]
        return await tracker.look(job)


async def create(emu: EmulatorThread, url: str, body: Any = None) -> str:
    job_id = str(uuid.uuid4())
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": "Bearer test-token"}
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
