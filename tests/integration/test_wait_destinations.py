"""A `run_wait_result` destination never has its job cancelled because headrace stopped waiting (CONTRACT W3),
and a job that fails is a delivered request whose job failed (W1: 422 is not "fix the destination")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headrace.windmill.emulator import EmulatorState, EmulatorThread
from tests.integration.test_outcomes import event_json, job_states, run_with, send, settings, until


def wait_url(emu: EmulatorThread) -> str:
    return emu.url().replace("/jobs/run/", "/jobs/run_wait_result/")


def test_a_job_longer_than_the_timeout_is_not_cancelled(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"ok": True}, delay=3.0)  # timeout is 2 s

    async def scenario(emu: EmulatorThread) -> None:
        async with running(tmp_path, wait_url(emu)) as base:
            await send(base, "msg_long")
            data = await until(base, "msg_long", lambda d: job_states(d) == ["success"], timeout=20)
        delivery = data["deliveries"][0]
        assert [a["http_status"] for a in delivery["attempt_log"]] == [201]
        [job] = emu.state.jobs.values()
        assert job.id == delivery["job_id"]  # the job headrace created is the one that ran to the end
        assert job.success and not job.canceled

    run_with(state, scenario)


def test_a_failed_job_is_job_failed_with_its_error_and_rerun(tmp_path: Path) -> None:
    state = EmulatorState()

    def fail(args: dict[str, Any]) -> Any:
        raise ValueError("no such customer")

    state.add_target("script", "f/dodo/on_payment", fail)

    async def scenario(emu: EmulatorThread) -> None:
        async with running(tmp_path, wait_url(emu), "retry_on_job_failure = 1") as base:
            await send(base, "msg_422")
            await until(base, "msg_422", lambda d: job_states(d) == ["failure"] * 2, timeout=20)
            data = await event_json(base, "msg_422")
        assert data["status"] == "job_failed"
        assert [d["status"] for d in data["deliveries"]] == ["delivered", "delivered"]
        assert data["deliveries"][0]["job"]["excerpt"].startswith("ValueError: no such customer")
        assert len(emu.state.jobs) == 2

    run_with(state, scenario)


def running(tmp_path: Path, url: str, extra: str = "") -> Any:
    from tests.helpers import running_server

    return running_server(settings(tmp_path, url, extra))
