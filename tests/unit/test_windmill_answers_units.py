"""The pure readings of Windmill's answers, with the typed fake: the schema verdict (one place for enforce /
warn / off), the cancel message (J5), the tracker's reading of a completed job (J4, J5), a flow's script
steps (R9), and the attempt's handling of a transient 400 (R6)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from headrace.deliver.preflight import OFF_NOTE, SchemaCache, SchemaMode, Verdict, judge
from headrace.deliver.request import Request
from headrace.deliver.tracker import JobTracker, canceled_by
from headrace.models import OpenJob, Retry
from headrace.windmill.api import JobPoll, RunResponse, TargetInfo
from headrace.windmill.client import script_steps
from headrace.windmill.fake import FakeWindmill, as_api
from headrace.windmill.schema import Problem
from headrace.windmill.urls import parse_run_url
from tests.fakes import URL, attempter, claimed, destination
from tests.helpers import config_text, settings_for

TARGET = parse_run_url(URL)[0]
PROBLEM = Problem("amount", "missing", "integer", "nothing")


def test_one_verdict_for_each_mode() -> None:
    assert Verdict("enforce", True, [PROBLEM]).refused
    assert Verdict("enforce", True, [PROBLEM]).outcome == "not sent"
    assert not Verdict("warn", True, [PROBLEM]).refused
    assert Verdict("warn", True, [PROBLEM]).outcome == "sent anyway"
    assert "sent anyway" in Verdict("warn", True, [PROBLEM]).attempt_note(TARGET)
    assert Verdict("enforce", True, []).outcome == "fits" and Verdict("enforce", True, []).attempt_note(TARGET) == ""
    unread = Verdict("enforce", False, [], "schema not checked: why")
    assert unread.outcome == "not checked" and not unread.refused and unread.attempt_note(TARGET) == unread.note
    assert "Not sent" in Verdict("enforce", True, [PROBLEM]).refusal(TARGET)


def test_judge_reads_off_a_preprocessor_and_a_403_without_refusing() -> None:
    schema = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}
    built = Request(TARGET, "POST", {}, b'{"other": 1}', None)

    async def verdict(info: TargetInfo, mode: SchemaMode = "enforce") -> Verdict:
        fake = FakeWindmill()
        fake.target_info = info
        return await judge(SchemaCache(as_api(fake)), built, "t", mode)

    assert asyncio.run(verdict(TargetInfo(200, schema=schema))).refused
    off = asyncio.run(verdict(TargetInfo(200, schema=schema), "off"))
    assert not off.checked and off.note == OFF_NOTE
    pre = asyncio.run(verdict(TargetInfo(200, schema=schema, preprocessor=True)))
    assert not pre.refused and "has a preprocessor" in pre.note
    forbidden = asyncio.run(verdict(TargetInfo(403, error="HTTP 403")))
    assert not forbidden.refused and "scripts:read" in forbidden.note


def test_judge_parses_the_body_only_for_a_target_with_a_schema() -> None:
    """A delivery of the Dodo body as is to a target without a schema (most of them) is not parsed to be
    checked: the body is not JSON here, and the verdict is still the target's own "no schema" note."""
    built = Request(TARGET, "POST", {}, b"not json", None)

    async def verdict(info: TargetInfo) -> Verdict:
        fake = FakeWindmill()
        fake.target_info = info
        return await judge(SchemaCache(as_api(fake)), built, "t", "enforce")

    none = asyncio.run(verdict(TargetInfo(200, schema=None)))
    assert not none.refused and "gives no input schema" in none.note
    schema = {"type": "object", "properties": {}}
    parsed = asyncio.run(verdict(TargetInfo(200, schema=schema)))
    assert not parsed.checked and "JSONDecodeError" in parsed.note


def test_the_cancel_message_says_who_and_why() -> None:
    def error(message: str) -> dict[str, object]:
        return {"error": {"name": "Canceled", "message": message}}

    assert canceled_by(error("Job canceled: duplicate charge by alice")) == ("duplicate charge", "alice")
    assert canceled_by(error("Job canceled: refund by hand by bob")) == ("refund by hand", "bob")
    assert canceled_by(error("Job canceled: http connection broke")) == ("http connection broke", "someone")
    assert canceled_by({"error": {"name": "ValueError", "message": "Job canceled: x by y"}}) is None
    assert canceled_by("Job canceled: x by y") is None


def tracker(tmp_path: Path, fake: FakeWindmill) -> JobTracker:
    text = config_text(tmp_path / "h.db", 1, URL, extra_dest="retry_on_job_failure = 3")
    return JobTracker(None, settings_for(text, tmp_path), as_api(fake))  # type: ignore[arg-type]


def job() -> OpenJob:
    return OpenJob(1, 1, "payments", 0, "0b8c9a55-3f8e-5a2c-9e3f-6c3a1d2e4f50", 3, time.time() - 5, 0, "dodo", "m")


def test_the_tracker_reads_skipped_canceled_and_failed_jobs(tmp_path: Path) -> None:
    fake = FakeWindmill()
    fake.duration = 1234.0
    fake.poll = JobPoll(200, completed=True, success=False, result={"stopped": True})
    fake.info = {"success": True, "is_skipped": True}
    skipped = asyncio.run(tracker(tmp_path, fake).look(job()))
    assert skipped.state == "success" and skipped.duration_ms == 1234.0 and skipped.excerpt.startswith("skipped")
    fake.poll = JobPoll(
        200,
        completed=True,
        success=False,
        result={"error": {"name": "Canceled", "message": "Job canceled: x by alice"}},
    )
    canceled = asyncio.run(tracker(tmp_path, fake).look(job()))
    assert canceled.state == "failure" and not canceled.rerun and "by alice: x" in canceled.excerpt
    fake.poll = JobPoll(200, completed=True, success=False, result={"error": {"name": "ValueError", "message": "bad"}})
    fake.info = {"success": False, "is_skipped": False}
    failed = asyncio.run(tracker(tmp_path, fake).look(job()))
    assert failed.state == "failure" and failed.rerun and failed.excerpt == "ValueError: bad"


def test_a_flows_script_steps_are_found_in_branches_and_loops() -> None:
    def script(path: str) -> dict[str, object]:
        return {"value": {"type": "script", "path": path}}

    modules = [
        script("f/a/one"),
        {"value": {"type": "rawscript", "content": "..."}},
        {"value": {"type": "forloopflow", "modules": [script("f/a/two"), script("f/a/one")]}},
        {
            "value": {
                "type": "branchone",
                "branches": [{"modules": [script("f/a/three")]}],
                "default": [script("f/a/four")],
            }
        },
        "not a module",
    ]
    assert script_steps(modules) == ("f/a/one", "f/a/two", "f/a/three", "f/a/four")
    assert script_steps(None) == () and script_steps({"modules": []}) == ()


def test_a_transient_400_is_retried_without_a_lookup(tmp_path: Path) -> None:
    fake = FakeWindmill(RunResponse(400, "Quota exceeded: 30 jobs are already running"))
    _, outcome = asyncio.run(attempter(fake).attempt(claimed(), destination(tmp_path), None, None))
    assert isinstance(outcome, Retry) and "Quota exceeded" in outcome.reason and fake.lookups == []


def test_a_flows_script_steps_are_bounded_in_number_and_depth() -> None:
    from headrace.windmill.client import MAX_STEP_DEPTH, MAX_STEPS

    many = [{"value": {"type": "script", "path": f"f/a/s{n}"}} for n in range(MAX_STEPS + 1)]
    assert len(script_steps(many)) == MAX_STEPS and len(script_steps(many[:MAX_STEPS])) == MAX_STEPS

    def nested(depth: int) -> list[object]:
        modules: list[object] = [{"value": {"type": "script", "path": "f/a/deep"}}]
        for _ in range(depth):
            modules = [{"value": {"type": "forloopflow", "modules": modules}}]
        return modules

    assert script_steps(nested(MAX_STEP_DEPTH)) == ("f/a/deep",)
    assert script_steps(nested(MAX_STEP_DEPTH + 1)) == ()
