"""Job lookups as Windmill does them (CONTRACT J1, J2): per workspace, get_result_maybe never 404, results of
any size. Against the emulator over loopback HTTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from headrace.deliver.tracker import CONFIRM_AFTER, JobTracker
from headrace.models import OpenJob
from headrace.windmill.client import WindmillClient, leading_fields
from headrace.windmill.emulator import EmulatorState, EmulatorThread
from tests.helpers import config_text, deployed_windmill, free_port, settings_for
from tests.integration.test_outcomes import job_states, run_with, send, settings, until


def open_job(job_id: str, checks: int) -> OpenJob:
    return OpenJob(1, 1, "payments", 0, job_id, checks, time.time() - 60, 0, "dodo", "msg_1")


async def look(tmp_path: Path, emu: EmulatorThread, job: OpenJob) -> Any:
    cfg = settings_for(config_text(tmp_path / "h.db", free_port(), emu.url()), tmp_path)
    async with aiohttp.ClientSession() as http:
        tracker = JobTracker(None, cfg, WindmillClient(http))  # type: ignore[arg-type]
        return await tracker.look(job)


def test_a_job_windmill_does_not_know_stops_being_tracked_after_a_few_looks(tmp_path: Path) -> None:
    state = deployed_windmill()
    state.add_target("script", "f/dodo/slow", delay=30.0)

    async def scenario(emu: EmulatorThread) -> None:
        unknown = str(uuid.uuid4())
        assert (await look(tmp_path, emu, open_job(unknown, 0))).state == "open"  # J2: looks like a job not started
        update = await look(tmp_path, emu, open_job(unknown, CONFIRM_AFTER - 1))
        assert (
            update.state == "unknown" and "does not know job" in update.excerpt and "workspace acme" in update.excerpt
        )
        # a job that exists and is still running is not given up on
        async with aiohttp.ClientSession() as http:
            slow = str(uuid.uuid4())
            url = emu.url("f/dodo/slow") + f"?job_id={slow}"
            async with http.post(url, json={}, headers={"Authorization": "Bearer test-token"}) as r:
                assert r.status == 201
        for checks in (CONFIRM_AFTER - 1, 2 * CONFIRM_AFTER - 1):
            assert (await look(tmp_path, emu, open_job(slow, checks))).state == "open"

    with_emulator(state, scenario)


def with_emulator(state: EmulatorState, scenario: Any) -> None:
    from headrace.windmill.emulator import running_emulator

    with running_emulator(state) as emu:
        asyncio.run(scenario(emu))


def test_a_result_larger_than_the_body_cap_is_recorded_as_an_excerpt(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"blob": "x" * 200_000, "n": 1})

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server_for(tmp_path, emu.url(), "job_results = true") as base:
            await send(base, "msg_big")
            data = await until(base, "msg_big", lambda d: job_states(d) == ["success"], timeout=10)
        excerpt = data["deliveries"][0]["job"]["excerpt"]
        assert excerpt.startswith('(result larger than 64 KiB; its start) {"blob":')
        assert "xxxxxxxxxx" in excerpt and len(excerpt) < 1200

    run_with(state, scenario)


def test_a_failed_job_with_a_large_error_is_a_failure(tmp_path: Path) -> None:
    def fail(args: dict[str, Any]) -> Any:
        raise ValueError("y" * 100_000)

    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", fail)

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server_for(tmp_path, emu.url()) as base:
            await send(base, "msg_big_error")
            data = await until(base, "msg_big_error", lambda d: job_states(d) == ["failure"], timeout=10)
        assert data["status"] == "job_failed"

    run_with(state, scenario)


def test_leading_fields_reads_the_outcome_before_a_cut_result() -> None:
    text = '{"started":true, "success":false,"completed":true,"result":{"error":{"message":"yyyy'
    fields, at = leading_fields(text)
    assert fields == {"started": True, "success": False, "completed": True}
    assert at is not None and text[at:].startswith('{"error"')
    assert leading_fields('{"started":true,"succ') == ({"started": True}, None)
    assert leading_fields("not json") == ({}, None)


def test_a_transformation_may_not_send_a_job_to_another_workspace(tmp_path: Path) -> None:
    (tmp_path / "t.js").write_text("function handler(w) { w.url = w.url.replace('/w/acme/', '/w/other/'); return w; }")
    state = deployed_windmill()  # deployed in every workspace: the old code delivered, then looked in acme

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server_for(tmp_path, emu.url(), 'transform = "t.js"') as base:
            await send(base, "msg_elsewhere")
            data = await until(base, "msg_elsewhere", lambda d: d["status"] in ("failed", "delivered"), timeout=10)
        assert data["status"] == "failed"
        assert "workspace other; only acme" in data["deliveries"][0]["last_error"]
        assert emu.state.jobs == {}

    run_with(state, scenario)


def running_server_for(tmp_path: Path, url: str, extra: str = "") -> Any:
    from tests.helpers import running_server

    return running_server(settings(tmp_path, url, extra))
