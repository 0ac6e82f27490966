"""CONTRACT J1-J7: looking a job up (docs/windmill-contract.md)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from headrace.windmill import urls
from headrace.windmill.client import rfc3339
from headrace.windmill.emulator import EmulatorState, Token
from headrace.windmill.emulator_kit import load_kit

from .windmill_contract import Emulator, scenario

UNKNOWN = {"started": None, "success": None, "completed": False, "result": None}


def test_the_emulator_times_its_jobs_by_its_own_clock() -> None:
    """A real Windmill's clock may be off the sender's: `clock_offset` sets the emulator's, and a job's created_at
    (in the list, J7) and the list's time filter both read it."""
    state = EmulatorState(clock_offset=-3.0)
    state.add_target("script", "f/dodo/x", lambda args: 1)

    async def body(emu: Emulator) -> None:
        sent = time.time()
        job = (await emu.run("f/dodo/x")).text
        listed = (await emu.get(urls.COMPLETED_LIST)).json()
        created = datetime.fromisoformat(listed[0]["created_at"]).timestamp()
        assert listed[0]["id"] == job and sent - 3.5 < created < time.time() - 2.5
        after_ours = {"created_or_started_after": rfc3339(sent - 1)}  # by our clock: after Windmill's creation
        assert (await emu.get(urls.COMPLETED_LIST, query=after_ours)).json() == []

    scenario(state, body)


def test_contract_J1_job_lookup_is_per_workspace_and_tagged() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: {"ok": True})
    state.add_target("script", "f/dodo/slow", delay=5.0)

    async def body(emu: Emulator) -> None:
        done, queued = str(uuid.uuid4()), str(uuid.uuid4())
        assert (await emu.run("f/dodo/x", {"a": 1}, job_id=done)).status == 201
        assert (await emu.run("f/dodo/slow", job_id=queued)).status == 201
        completed = await emu.job(done)
        assert completed.status == 200
        job = completed.json()
        assert job["type"] == "CompletedJob" and job["success"] is True and job["canceled"] is False
        assert job["result"] == {"ok": True} and job["args"] == {"a": 1}
        assert isinstance(job["duration_ms"], int) and isinstance(job["logs"], str)
        assert "logs" not in (await emu.job(done, no_logs=True)).json()
        assert (await emu.job(queued)).json()["type"] == "QueuedJob"
        other = await emu.job(done, workspace="other")  # created in acme: another workspace does not see it
        assert other.status == 404
        assert (await emu.job(str(uuid.uuid4()))).status == 404

    scenario(state, body)


def test_contract_J2_get_result_maybe_never_answers_404() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: "r")
    state.add_target("script", "f/dodo/slow", delay=5.0)

    async def body(emu: Emulator) -> None:
        unknown = await emu.result_maybe(str(uuid.uuid4()))
        assert unknown.status == 200 and unknown.json() == UNKNOWN
        done = (await emu.run("f/dodo/x")).text
        elsewhere = await emu.result_maybe(done, workspace="other")
        assert elsewhere.status == 200 and elsewhere.json() == UNKNOWN
        assert (await emu.result_maybe(done)).json() == {
            "started": True,
            "success": True,
            "completed": True,
            "result": "r",
        }
        running = (await emu.run("f/dodo/slow")).text
        # Without ?get_started=true, `started` is not computed: a running job looks like an unknown one.
        assert (await emu.result_maybe(running)).json() == UNKNOWN

    scenario(state, body)


def test_contract_J2_started_is_computed_only_with_get_started() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/slow", delay=5.0)

    async def body(emu: Emulator) -> None:
        running = (await emu.run("f/dodo/slow")).text
        asked = {"get_started": "true"}
        assert (await emu.result_maybe(running, query=asked)).json() == {**UNKNOWN, "started": True}
        assert (await emu.result_maybe(str(uuid.uuid4()), query=asked)).json() == {**UNKNOWN, "started": False}
        assert (await emu.result_maybe(running, workspace="other", query=asked)).json()["started"] is False

    scenario(state, body)


def test_contract_J2_the_result_is_not_size_capped() -> None:
    big = "x" * (2 * 1024 * 1024)
    state = EmulatorState()
    state.add_target("script", "f/dodo/big", lambda args: {"blob": big})

    async def body(emu: Emulator) -> None:
        job_id = (await emu.run("f/dodo/big")).text
        answer = await emu.result_maybe(job_id)
        assert answer.status == 200 and answer.json()["result"]["blob"] == big

    scenario(state, body)


# J2's 403 (`require_job_read_access`, backend/windmill-api/src/jobs.rs:969-1108): a job is read by the user who
# created it, an admin, or a user who reads the job's whole folder (row-level security on v2_job); anyone else
# is refused. Alice reads folder f/dodo; Bob may only run f/dodo/x, shared with him alone; Carol's scoped token
# (run f/dodo/x only) belongs to a user who reads the folder.
ALICE = {"Authorization": "Bearer alice-token"}
BOB = {"Authorization": "Bearer bob-token"}
CAROL = {"Authorization": "Bearer carol-token"}


def readers() -> EmulatorState:
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: {"ok": True})
    state.add_target("script", "f/dodo/slow", delay=5.0)
    state.add_token(Token("alice-token", paths=("f/dodo/",), email="alice@acme.test"))
    state.add_token(Token("bob-token", paths=("f/dodo/x",), email="bob@acme.test"))
    scopes = frozenset({"jobs:run:scripts:f/dodo/x"})
    state.add_token(Token("carol-token", paths=("f/dodo/",), scopes=scopes, email="carol@acme.test"))
    return state


async def lookups(emu: Emulator, job_id: str, headers: dict[str, str]) -> list[int]:
    """The status of each job lookup headrace makes: get_result_maybe (with and without get_started), jobs_u/get,
    get_timing."""
    asked = {"get_started": "true"}
    return [
        (await emu.get(urls.RESULT_MAYBE, headers=headers, job_id=job_id)).status,
        (await emu.get(urls.RESULT_MAYBE, headers=headers, query=asked, job_id=job_id)).status,
        (await emu.get(urls.JOB, headers=headers, job_id=job_id)).status,
        (await emu.get(urls.TIMING, headers=headers, job_id=job_id)).status,
    ]


def test_contract_J2_a_job_is_read_by_its_creator_an_admin_or_a_reader_of_its_folder() -> None:
    async def body(emu: Emulator) -> None:
        alices = (await emu.run("f/dodo/x", headers=ALICE)).text
        bobs = (await emu.run("f/dodo/x", headers=BOB)).text
        assert await lookups(emu, bobs, BOB) == [200] * 4  # the creator, though he cannot read the folder
        assert await lookups(emu, alices, ALICE) == [200] * 4
        assert await lookups(emu, bobs, ALICE) == [200] * 4  # a reader of folder f/dodo reads everyone's jobs there
        assert await lookups(emu, bobs, {}) == [200] * 4  # the session's token: an admin's
        assert (await emu.result_maybe(bobs)).json()["result"] == {"ok": True}

    scenario(readers(), body)


def test_contract_J2_anyone_else_gets_403_from_every_lookup_and_the_list_leaves_the_job_out() -> None:
    async def body(emu: Emulator) -> None:
        alices = (await emu.run("f/dodo/x", headers=ALICE)).text
        bobs = (await emu.run("f/dodo/x", headers=BOB)).text
        # Bob may run f/dodo/x (shared with him alone) but not read the folder: Alice's job is not his to read.
        assert await lookups(emu, alices, BOB) == [403] * 4
        refused = await emu.get(urls.RESULT_MAYBE, headers=BOB, job_id=alices)
        assert refused.text.startswith(f"Permission denied: You do not have access to run {alices}.")
        assert "share a read-only link" in refused.text
        query = {"script_path_exact": "f/dodo/x"}
        listed = (await emu.get(urls.COMPLETED_LIST, headers=BOB, query=query)).json()
        assert [item["id"] for item in listed] == [bobs]  # row-level security: no error, the job is just absent
        assert (await emu.get(urls.RESULT_MAYBE, headers=BOB, job_id=str(uuid.uuid4()))).json() == UNKNOWN  # no 404

    scenario(readers(), body)


def test_contract_J2_with_get_started_a_queued_or_running_job_is_refused_too() -> None:
    async def body(emu: Emulator) -> None:
        running = (await emu.run("f/dodo/slow", headers=ALICE)).text
        assert (await emu.get(urls.RESULT_MAYBE, headers=BOB, job_id=running)).json() == UNKNOWN  # not asked
        asked = {"get_started": "true"}
        refused = await emu.get(urls.RESULT_MAYBE, headers=BOB, query=asked, job_id=running)
        assert refused.status == 403  # jobs.rs: the get_started branch checks the reader too
        assert (await emu.get(urls.RESULT_MAYBE, headers=ALICE, query=asked, job_id=running)).status == 200

    scenario(readers(), body)


def test_contract_J2_a_scope_does_not_limit_which_jobs_a_token_reads() -> None:
    """`jobs:run:scripts:f/dodo/x` gives jobs:read with no path (scopes.rs `scope_grants_access`): what its user
    may read decides, so Carol's run-only token reads a job of another script in a folder she reads."""

    async def body(emu: Emulator) -> None:
        other = (await emu.run("f/dodo/slow", headers=ALICE)).text
        assert (await emu.run("f/dodo/slow", headers=CAROL)).status == 403  # may not run it...
        assert (await emu.get(urls.RESULT_MAYBE, headers=CAROL, job_id=other)).status == 200  # ...but reads its jobs
        assert (await emu.get(urls.SCRIPT, headers=CAROL, path="f/dodo/slow")).status == 403  # not the definition

    scenario(readers(), body)


def test_contract_J2_a_job_in_a_users_own_space_is_read_by_that_user() -> None:
    state = EmulatorState()
    state.add_target("script", "u/alice/mine", lambda args: 1)
    state.add_token(Token("alice-token", paths=("u/alice/",), email="alice@acme.test"))
    state.add_token(Token("bob-token", paths=("f/",), email="bob@acme.test"))

    async def body(emu: Emulator) -> None:
        job_id = (await emu.run("u/alice/mine")).text  # an admin ran it
        assert (await emu.get(urls.RESULT_MAYBE, headers=ALICE, job_id=job_id)).status == 200  # under u/alice/
        assert (await emu.get(urls.RESULT_MAYBE, headers=BOB, job_id=job_id)).status == 403

    scenario(state, body)


def test_contract_J1_a_kit_job_has_its_output_as_logs(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    folder = tmp_path / "f" / "t"
    folder.mkdir(parents=True)
    (folder / "talk.py").write_text("def main():\n    print('hello from the job')\n    return 1\n")
    (folder / "talk.script.yaml").write_text("summary: talks\nschema: {}\n")
    state = EmulatorState()
    load_kit(state, tmp_path)

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        assert (await emu.run("f/t/talk", wait=True, job_id=job_id)).status == 200
        assert "hello from the job" in (await emu.job(job_id)).json()["logs"]
        assert "logs" not in (await emu.job(job_id, no_logs=True)).json()

    scenario(state, body)


def test_contract_J3_get_result_maybe_writes_the_outcome_before_the_result() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/big", lambda args: {"rows": ["x" * 100] * 50})

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        assert (await emu.run("f/dodo/big", job_id=job_id)).status == 201
        await emu.until_completed(job_id)
        text = (await emu.result_maybe(job_id)).text
        # The keys in the order Windmill serializes them: a body cut short still carries the outcome.
        order = [text.index(f'"{key}"') for key in ("started", "success", "completed", "result")]
        assert order == sorted(order), text[:120]

    scenario(state, body)


def test_contract_J4_a_skipped_flow_is_success_in_jobs_u_get_but_not_in_get_result_maybe() -> None:
    state = EmulatorState()
    state.add_target("flow", "f/dodo/stops_early", lambda args: None, skips=True)

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        assert (await emu.run("f/dodo/stops_early", kind="flow", job_id=job_id)).status == 201
        assert (await emu.until_completed(job_id))["success"] is False  # status = 'success' only
        job = (await emu.job(job_id)).json()
        assert job["success"] is True and job["is_skipped"] is True and job["canceled"] is False

    scenario(state, body)


def test_contract_J5_a_canceled_job_says_who_and_why() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/slow", delay=30.0)

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        assert (await emu.run("f/dodo/slow", job_id=job_id)).status == 201
        await emu.cancel(job_id, "duplicate charge", "alice")
        done = await emu.until_completed(job_id)
        assert done["success"] is False
        error = done["result"]["error"]
        assert error["name"] == "Canceled" and error["message"] == "Job canceled: duplicate charge by alice"
        job = (await emu.job(job_id)).json()
        assert job["canceled"] is True and job["success"] is False and job["canceled_by"] == "alice"

    scenario(state, body)


def test_contract_J6_job_bodies_are_large_unless_asked_small_and_get_timing_is_small() -> None:
    state = EmulatorState()
    code = "# " + "c" * 100_000 + "\ndef main(): ...\n"

    def chatty(args: dict[str, Any]) -> Any:
        return {"rows": "r" * 95_000}

    state.add_target("script", "f/dodo/chatty", chatty, content=code)

    async def body(emu: Emulator) -> None:
        job_id = str(uuid.uuid4())
        assert (await emu.run("f/dodo/chatty", {"note": "n" * 95_000}, job_id=job_id)).status == 201
        emu.state.jobs[job_id].logs = "x" * 30_000 + "the end"
        full = (await emu.job(job_id)).json()
        assert full["raw_code"] == code and "raw_lock" in full
        assert len(full["logs"]) == 20_000 and full["logs"].endswith("the end")
        assert full["result"] == "WINDMILL_TOO_BIG" and full["args"] == "WINDMILL_TOO_BIG"
        small = await emu.get(urls.JOB, query={"no_logs": "true", "no_code": "true"}, job_id=job_id)
        assert "logs" not in small.json() and "raw_code" not in small.json() and len(small.text) < 2000
        timing = (await emu.get(urls.TIMING, job_id=job_id)).json()
        assert set(timing) == {"created_at", "started_at", "duration_ms"} and isinstance(timing["duration_ms"], int)
        assert (await emu.result_maybe(job_id)).json()["result"] == {"rows": "r" * 95_000}  # J2: not capped

    scenario(state, body)


def test_contract_J7_the_completed_list_shows_outcomes_and_durations_by_path_and_time_without_results() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: {"big": "r" * 1000})
    state.add_target("script", "f/dodo/other", lambda args: 1)
    state.add_target("script", "f/dodo/slow", delay=5.0)
    state.add_target("flow", "f/dodo/skips", skips=True)

    async def body(emu: Emulator) -> None:
        before = time.time() - 1
        done = [(await emu.run("f/dodo/x")).text for _ in range(5)]
        other = (await emu.run("f/dodo/other")).text
        running = (await emu.run("f/dodo/slow")).text
        skipped = (await emu.run("f/dodo/skips", kind="flow")).text
        every = (await emu.get(urls.COMPLETED_LIST)).json()
        assert {item["id"] for item in every} == {*done, other, skipped}  # completed only: not the running job
        assert running not in {item["id"] for item in every}
        query = {"script_path_exact": "f/dodo/x", "created_or_started_after": rfc3339(before)}
        listed = (await emu.get(urls.COMPLETED_LIST, query=query)).json()
        assert [item["id"] for item in listed] == done[::-1]  # newest created first
        item = listed[0]
        assert item["type"] == "CompletedJob" and item["success"] is True and item["canceled"] is False
        assert isinstance(item["duration_ms"], int) and item["is_skipped"] is False
        assert "result" not in item and "args" not in item and "logs" not in item  # no result: J2 reads it
        created = datetime.fromisoformat(item["created_at"])  # RFC 3339, UTC: what the tracker times the list by
        assert created.tzinfo is not None and before < created.timestamp() <= time.time()
        later = {**query, "created_or_started_after": rfc3339(time.time() + 60)}
        assert (await emu.get(urls.COMPLETED_LIST, query=later)).json() == []
        pages = [
            [i["id"] for i in (await emu.get(urls.COMPLETED_LIST, query={**query, "per_page": "2", "page": p})).json()]
            for p in ("1", "2", "3")
        ]
        assert pages == [done[:2:-1], done[2:0:-1], done[:1]]
        oldest_first = {**query, "order_desc": "false", "per_page": "2"}  # query.rs: order_by(created_at, desc)
        assert [i["id"] for i in (await emu.get(urls.COMPLETED_LIST, query=oldest_first)).json()] == done[:2]
        flow = (await emu.get(urls.COMPLETED_LIST, query={"script_path_exact": "f/dodo/skips"})).json()[0]
        assert flow["success"] is True and flow["is_skipped"] is True  # J4: success OR skipped
        assert (await emu.get(urls.COMPLETED_LIST, workspace="other")).json() == []  # per workspace (J1)
        bad = await emu.get(urls.COMPLETED_LIST, query={"created_or_started_after": "yesterday"})
        assert bad.status == 400

    scenario(state, body)
