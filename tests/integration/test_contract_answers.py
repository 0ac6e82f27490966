"""CONTRACT R6, R8, R9, M1 (lock absent) and T1: what Windmill's answers mean (docs/windmill-contract.md)."""

from __future__ import annotations

import uuid
from typing import Any

from headrace.windmill import urls
from headrace.windmill.emulator import EmulatorState, Fault, Token
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


def test_contract_M1_lock_is_absent_not_null_while_a_script_lock_builds() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/new", lambda args: args, lock_requests=1)
    state.add_target("script", "f/dodo/built", lambda args: args)

    async def body(emu: Emulator) -> None:
        building = (await emu.get(urls.SCRIPT, path="f/dodo/new")).json()
        assert "lock" not in building  # skip_serializing_if = Option::is_none
        assert (await emu.run("f/dodo/new")).status == 404  # R3: it does not run yet
        built = (await emu.get(urls.SCRIPT, path="f/dodo/built")).json()
        assert built["lock"] == ""  # a built lock is a string, possibly empty

    scenario(state, body)


def test_contract_R8_a_preprocessor_receives_the_event_not_the_body_keys() -> None:
    state = EmulatorState()
    schema = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}

    def pre(event: dict[str, Any]) -> dict[str, Any]:
        return {"amount": event["body"]["data"]["total"], "kind": event["kind"]}

    state.add_target("script", "f/dodo/pre", lambda args: args, schema=schema, preprocessor=pre)
    state.add_target("flow", "f/dodo/pre_flow", lambda args: args, schema=schema, preprocessor=pre)
    state.add_target("script", "f/dodo/plain", lambda args: args, schema=schema)

    async def body(emu: Emulator) -> None:
        script = (await emu.get(urls.SCRIPT, path="f/dodo/pre")).json()
        assert script["has_preprocessor"] is True
        assert (await emu.get(urls.SCRIPT, path="f/dodo/plain")).json()["has_preprocessor"] is False
        flow = (await emu.get(urls.FLOW, path="f/dodo/pre_flow")).json()
        assert "preprocessor_module" in flow["value"]
        for kind, path in (("script", "f/dodo/pre"), ("flow", "f/dodo/pre_flow")):
            job_id = str(uuid.uuid4())
            answer = await emu.run(
                path, {"type": "payment.succeeded", "data": {"total": 4999}}, kind=kind, job_id=job_id
            )
            assert answer.status == 201
            done = await emu.until_completed(job_id)
            assert done["result"] == {"amount": 4999, "kind": "webhook"}  # main got what the preprocessor returned
            args = emu.state.jobs[job_id].args
            assert set(args) == {"event"} and args["event"]["body"]["data"] == {"total": 4999}
            assert set(args["event"]) == {"kind", "body", "raw_string", "headers", "query"}
            assert "authorization" not in args["event"]["headers"]

    scenario(state, body)


def test_contract_R9_a_flow_runs_before_its_steps_can_and_fails_at_the_unlocked_step() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/step_ok", lambda args: args)
    step = state.add_target("script", "f/dodo/step_new", lambda args: args, lock_seconds=3600)
    state.add_target("flow", "f/dodo/flow", steps=("f/dodo/step_ok", "f/dodo/step_new"))

    async def body(emu: Emulator) -> None:
        flow = (await emu.get(urls.FLOW, path="f/dodo/flow")).json()
        steps = [m["value"] for m in flow["value"]["modules"]]
        assert steps == [{"type": "script", "path": "f/dodo/step_ok"}, {"type": "script", "path": "f/dodo/step_new"}]
        job_id = str(uuid.uuid4())
        assert (await emu.run("f/dodo/flow", kind="flow", job_id=job_id)).status == 201  # no lock gate for flows
        failed = await emu.until_completed(job_id)
        assert failed["success"] is False and "f/dodo/step_new" in failed["result"]["error"]["message"]
        step.lock_seconds = 0  # the step's lock is built: the same flow now runs
        again = str(uuid.uuid4())
        assert (await emu.run("f/dodo/flow", kind="flow", job_id=again)).status == 201
        assert (await emu.until_completed(again))["success"] is True

    scenario(state, body)


def test_contract_T1_a_run_only_token_runs_its_path_and_reads_jobs_but_not_the_definition() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: args)
    state.add_target("script", "f/dodo/other", lambda args: args)
    state.add_target("flow", "f/dodo/flow", lambda args: args)
    state.add_token(Token("run-only", scopes=frozenset({"jobs:run:scripts:f/dodo/x"})))
    state.add_token(Token("flow-run", scopes=frozenset({"jobs:run:flows:f/dodo/flow"})))
    run_only = {"Authorization": "Bearer run-only"}

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        assert (await emu.run("f/dodo/x", job_id=job_id, headers=run_only)).status == 201
        assert (await emu.get(urls.JOB, headers=run_only, job_id=job_id)).status == 200  # run includes read
        assert (await emu.get(urls.RESULT_MAYBE, headers=run_only, job_id=job_id)).status == 200
        # the completed-jobs list (J7) too: a GET in the jobs domain needs jobs:read, which run includes, and
        # scope_grants_access checks no path (scopes.rs:639-685); the tracker's batched look works with this token
        listed = await emu.get(urls.COMPLETED_LIST, headers=run_only, query={"script_path_exact": "f/dodo/x"})
        assert listed.status == 200 and [item["id"] for item in listed.json()] == [job_id]
        definition = await emu.get(urls.SCRIPT, headers=run_only, path="f/dodo/x")
        assert definition.status == 403 and "scripts:read" in definition.text
        assert (await emu.run("f/dodo/other", headers=run_only)).status == 403  # another path
        assert (await emu.run("f/dodo/flow", kind="flow", headers=run_only)).status == 403  # another kind
        flow_run = {"Authorization": "Bearer flow-run"}
        assert (await emu.run("f/dodo/flow", kind="flow", headers=flow_run)).status == 201
        denied = await emu.get(urls.FLOW, headers=flow_run, path="f/dodo/flow")
        assert denied.status == 403 and "flows:read" in denied.text

    scenario(state, body)
