"""CONTRACT W1-W3: `jobs/run_wait_result` (docs/windmill-contract.md)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from headrace.windmill.emulator import EmulatorState, JobFailed
from headrace.windmill.emulator_kit import load_kit

from .windmill_contract import Emulator, scenario


def fail(args: dict[str, Any]) -> None:
    raise JobFailed({"name": "ValueError", "message": "amount must be positive", "stack": "Traceback ..."})


def test_contract_W1_wait_result_is_200_with_the_result_and_422_with_a_failed_job_error() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/ok", lambda args: {"booked": args["amount"]})
    state.add_target("script", "f/dodo/fails", fail)
    state.add_target("flow", "f/dodo/flow_ok", lambda args: [1, 2])

    async def body(emu: Emulator) -> None:
        ok = await emu.run("f/dodo/ok", {"amount": 5}, wait=True)
        assert ok.status == 200 and ok.json() == {"booked": 5}
        assert (await emu.run("f/dodo/flow_ok", kind="flow", wait=True)).json() == [1, 2]
        job_id = str(uuid.uuid4())
        failed = await emu.run("f/dodo/fails", {"amount": -1}, wait=True, job_id=job_id)
        assert failed.status == 422
        assert failed.json() == {
            "error": {"name": "ValueError", "message": "amount must be positive", "stack": "Traceback ..."}
        }
        job = (await emu.job(job_id)).json()
        assert job["type"] == "CompletedJob" and job["success"] is False and job["canceled"] is False

    scenario(state, body)


def test_contract_W1_a_result_may_set_its_own_status_code() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/custom", lambda args: {"windmill_status_code": 202, "result": {"queued": 1}})

    async def body(emu: Emulator) -> None:
        answer = await emu.run("f/dodo/custom", wait=True)
        assert answer.status == 202 and answer.json() == {"queued": 1}

    scenario(state, body)


def test_contract_W2_wait_gives_up_with_500_timeout_and_cancels_the_job() -> None:
    state = EmulatorState(wait_timeout=0.3)
    state.add_target("script", "f/dodo/slow", lambda args: "late", delay=5.0)

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        started = time.monotonic()
        answer = await emu.run("f/dodo/slow", wait=True, job_id=job_id)
        assert answer.status == 500 and "timeout after 0.3s" in answer.text
        assert 0.3 <= time.monotonic() - started < 2.0
        job = (await emu.job(job_id)).json()
        assert job["type"] == "CompletedJob" and job["canceled"] is True and job["success"] is False
        assert job["canceled_reason"] == "http connection broke"

    scenario(state, body)


def test_contract_W2_the_default_wait_limit_is_600_seconds() -> None:
    assert EmulatorState().wait_timeout == 600.0


def test_contract_W3_a_client_hanging_up_cancels_the_job_it_was_waiting_for() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/slow", lambda args: "done", delay=3.0)

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        url = emu.run_url("f/dodo/slow", wait=True) + f"?job_id={job_id}"
        headers = {"Authorization": "Bearer test-token"}
        async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=0.3)) as impatient:
            try:
                async with impatient.post(url, json={}) as response:
                    raise AssertionError(f"expected no answer within 0.3s, got {response.status}")
            except TimeoutError:
                pass
        await emu.until_completed(job_id, timeout=2.0)  # well before the job's own 3 s
        job = (await emu.job(job_id)).json()
        assert job["type"] == "CompletedJob" and job["canceled"] is True, job
        assert job["success"] is False and job["result"]["error"]["name"] == "Canceled"
        assert (await emu.result_maybe(job_id)).json()["success"] is False
        await asyncio.sleep(3.2)  # the job's own end time passes: it stays cancelled, not "done"
        assert emu.state.jobs[job_id].result["error"]["name"] == "Canceled"

    scenario(state, body)


def test_contract_W3_a_job_created_with_run_is_not_cancelled_when_the_client_leaves() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/slow", lambda args: "done", delay=0.5)

    async def body(emu: Emulator) -> None:
        answer = await emu.run("f/dodo/slow")
        assert answer.status == 201
        outcome = await emu.until_completed(answer.text)
        assert outcome["success"] is True and outcome["result"] == "done"

    scenario(state, body)


def test_contract_W3_cancelling_a_kit_job_stops_its_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    folder = tmp_path / "kit" / "f" / "t"
    folder.mkdir(parents=True)
    (folder / "sleeper.py").write_text(
        f"import os, time\ndef main():\n    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n    time.sleep(30)\n"
    )
    (folder / "sleeper.script.yaml").write_text("summary: sleeps\nschema: {}\n")
    state = EmulatorState(wait_timeout=1.5)
    load_kit(state, tmp_path / "kit")

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        answer = await emu.run("f/t/sleeper", wait=True, job_id=job_id)
        assert answer.status == 500 and "timeout after 1.5s" in answer.text
        pid = int(pid_file.read_text())
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the job's process {pid} still runs after the job was cancelled")
        assert emu.state.jobs[job_id].canceled is True

    scenario(state, body)
