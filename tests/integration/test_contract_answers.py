"""CONTRACT R6, R8, R9, M1 (lock absent) and T1 (scopes, the auth cache): what Windmill's answers mean
(docs/windmill-contract.md)."""

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


def test_contract_T1_a_revoked_token_works_until_its_cached_entry_expires() -> None:
    """auth.rs:133-140, 451-457: a token the database accepted is cached per (workspace, token) for 120 s from that
    moment; a hit does not extend it. Deleting a token (users/tokens/delete) does not drop the entry, so the token
    keeps working, by Windmill's clock, until the entry expires."""
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: args)
    state.add_token(Token("old-token", email="alice@acme.test"))
    old = {"Authorization": "Bearer old-token"}

    async def body(emu: Emulator) -> None:
        assert state.auth_cache_seconds == 120
        assert (await emu.run("f/dodo/x", headers=old)).status == 201  # checked now: cached until +120 s
        state.clock_offset += 100
        assert (await emu.run("f/dodo/x", headers=old)).status == 201  # a hit: the entry still ends at +120 s
        state.revoke("old-token")
        assert (await emu.run("f/dodo/x", headers=old)).status == 201  # revoked, still accepted
        assert (await emu.get(urls.COMPLETED_LIST, headers=old)).status == 200
        assert (await emu.run("f/dodo/x", headers=old, workspace="other")).status == 401  # never cached there
        state.clock_offset += 19
        assert (await emu.run("f/dodo/x", headers=old)).status == 201  # 119 s after it was checked
        state.clock_offset += 2
        refused = await emu.run("f/dodo/x", headers=old)
        assert refused.status == 401 and "Could not authenticate" in refused.text

    scenario(state, body)


def test_contract_T1_a_token_revoked_before_it_was_cached_fails_at_once_and_a_refusal_is_not_cached() -> None:
    state = EmulatorState(auth_cache_seconds=5.0)  # configurable, for tests
    state.add_target("script", "f/dodo/x", lambda args: args)
    state.add_token(Token("unused-token"))
    late = {"Authorization": "Bearer late-token"}

    async def body(emu: Emulator) -> None:
        state.revoke("unused-token")
        assert (await emu.run("f/dodo/x", headers={"Authorization": "Bearer unused-token"})).status == 401
        assert (await emu.run("f/dodo/x", headers=late)).status == 401
        state.add_token(Token("late-token"))
        assert (await emu.run("f/dodo/x", headers=late)).status == 201  # the 401 was not cached
        state.revoke("late-token")
        state.clock_offset += 5.0
        assert (await emu.run("f/dodo/x", headers=late)).status == 401  # auth_cache_seconds later

    scenario(state, body)


def test_contract_T1_changing_a_tokens_scopes_drops_its_cached_entry_at_once() -> None:
    """migrations/20260428122300: a scope update notifies `notify_token_invalidation`, which empties the token's
    cache entries (main.rs, `invalidate_token_from_cache`): the new scopes apply at once."""
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: args)
    state.add_token(Token("panel-token", scopes=frozenset({"jobs:run:scripts:f/dodo/x"})))
    panel = {"Authorization": "Bearer panel-token"}

    async def body(emu: Emulator) -> None:
        assert (await emu.run("f/dodo/x", headers=panel)).status == 201
        state.add_token(Token("panel-token", scopes=frozenset({"jobs:read"})))
        assert (await emu.run("f/dodo/x", headers=panel)).status == 403

    scenario(state, body)


def test_contract_T1_the_emulator_revokes_a_token_over_http() -> None:
    state = EmulatorState(tokens={"test-token", "old-token"}, auth_cache_seconds=30.0)
    state.add_target("script", "f/dodo/x", lambda args: args)
    old = {"Authorization": "Bearer old-token"}

    async def body(emu: Emulator) -> None:
        assert (await emu.run("f/dodo/x", headers=old)).status == 201
        async with emu.http.post(emu.base.removesuffix("/api") + "/_emulator/revoke", json={"token": "old-token"}) as r:
            assert r.status == 200 and (await r.json())["cached_for_seconds"] == 30.0
        assert (await emu.run("f/dodo/x", headers=old)).status == 201
        state.clock_offset += 30.0
        assert (await emu.run("f/dodo/x", headers=old)).status == 401

    scenario(state, body)
