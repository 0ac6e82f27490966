"""CONTRACT R6, R8, R9, M1 (lock absent) and T1: what Windmill's answers mean (docs/windmill-contract.md)."""

from __future__ import annotations

import uuid

from headrace.windmill.emulator import EmulatorState, Fault
from headrace.windmill.emulator_model import FREE_TIER_CONCURRENT_RUNS

from .windmill_contract import Emulator, scenario


def test_contract_R6_a_database_error_or_a_quota_is_a_400_that_is_not_job_exists() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: args)
    state.inject(Fault.sql_error())
    state.inject(Fault.quota())

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        sql = await emu.run("f/dodo/x", job_id=job_id)
        assert sql.status == 400 and sql.text.startswith("SqlErr: ")
        quota = await emu.run("f/dodo/x", job_id=job_id)
        assert quota.status == 400 and quota.text.startswith("Quota exceeded: ")
        # neither created the job: the same id runs now, and only then is it "already exists"
        assert (await emu.run("f/dodo/x", job_id=job_id)).status == 201
        again = await emu.run("f/dodo/x", job_id=job_id)
        assert again.status == 400 and again.text == f"Bad request: Job with id {job_id} already exists"

    scenario(state, body)


def test_contract_R6_the_free_tier_refuses_the_31st_concurrent_run() -> None:
    state = EmulatorState(concurrent_limit=FREE_TIER_CONCURRENT_RUNS)
    state.add_target("script", "f/dodo/slow", delay=30.0)

    async def body(emu: Emulator) -> None:
        for _ in range(FREE_TIER_CONCURRENT_RUNS):
            assert (await emu.run("f/dodo/slow")).status == 201
        refused = await emu.run("f/dodo/slow")
        assert refused.status == 400 and refused.text.startswith("Quota exceeded: ")
        assert (await emu.run("f/dodo/slow", workspace="other")).status == 201  # counted per workspace

    scenario(state, body)
