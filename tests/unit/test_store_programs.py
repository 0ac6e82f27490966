"""The store's decisions, once for every dialect: each program run against scripted query answers.

These are the cases the two backends used to decide differently (issue 8): a conflicting insert whose row
cannot be found, a job recorded by another instance between our read and our update, a failed job whose
latest row went away, and the order of leased jobs. The contract suite runs the same programs on real
SQLite and PostgreSQL; here the answers a real database gives only under a race are given by hand.
"""

from __future__ import annotations

from typing import Any

import pytest

from headrace.models import JobUpdate, NewEvent, Route, job_id_for
from headrace.store import programs
from headrace.store.base import StoreError
from headrace.store.programs import Program, Step, drive
from headrace.store.queries import load


class Script:
    """Answers each named query from a list (one answer per call) and records the steps run."""

    def __init__(self, **answers: list[Any]) -> None:
        self.answers = {name: list(values) for name, values in answers.items()}
        self.steps: list[Step] = []

    def __call__(self, step: Step) -> Any:
        assert step.query in load("sqlite"), f"{step.query} is not a named query"
        self.steps.append(step)
        return self.answers[step.query].pop(0)

    @property
    def queries(self) -> list[str]:
        return [s.query for s in self.steps]


def run(program: Program[Any], script: Script) -> Any:
    return drive(program, script)


OPEN_JOB = {
    "id": 7,
    "event_id": 3,
    "destination": "a",
    "generation": 0,
    "windmill_job_id": "j",
    "job_id": "j",
    "job_checks": 1,
    "job_created_at": 1.0,
    "job_reruns": 0,
    "source": "dodo",
    "webhook_id": "msg_1",
}


def test_a_duplicate_whose_row_cannot_be_found_is_a_store_error():
    script = Script(insert_event=[None], find_event_id=[None])
    event = NewEvent("dodo", "msg_1", "payment.succeeded", 1, 1.0, b"{}", {})
    with pytest.raises(StoreError, match="dodo/msg_1 conflicted but cannot be found"):
        run(programs.ingest(event, [Route("a", "t")], "dep"), script)
    assert script.queries == ["insert_event", "find_event_id"]


def test_a_job_recorded_meanwhile_by_another_instance_is_not_re_run():
    script = Script(open_job=[OPEN_JOB], job_done=[0])
    failure = JobUpdate(7, "failure", completed_at=2.0, rerun=True)
    assert run(programs.record_job(failure, 2.0, "dep"), script) is None
    assert script.queries == ["open_job", "job_done"]  # no insert_rerun


def test_an_outcome_without_a_re_run_is_one_update_and_reads_no_row():
    """The job's row serves only a re-run; a success (or a recorded-already job) costs the UPDATE alone."""
    for done in (1, 0):
        script = Script(job_done=[done])
        success = JobUpdate(7, "success", completed_at=2.0, duration_ms=5)
        assert run(programs.record_job(success, 2.0, "dep"), script) is None
        assert script.queries == ["job_done"]


def test_a_failed_job_is_re_run_once_when_it_is_the_latest_generation():
    script = Script(open_job=[OPEN_JOB], job_done=[1], latest_generation=[{"generation": 0}], insert_rerun=[1])
    job_id = run(programs.record_job(JobUpdate(7, "failure", rerun=True, target="t"), 2.0, "dep"), script)
    assert script.queries[-1] == "insert_rerun" and script.steps[-1].params["job_id"] == job_id
    assert job_id == job_id_for("dep", "t", "dodo", "msg_1", "a", 1)


def test_a_re_run_without_the_destination_target_is_refused():
    script = Script(open_job=[OPEN_JOB], job_done=[1], latest_generation=[{"generation": 0}])
    with pytest.raises(StoreError, match="needs its destination's target"):
        run(programs.record_job(JobUpdate(7, "failure", rerun=True), 2.0, "dep"), script)


def test_job_failures_skip_a_latest_failure_that_went_away():
    counts = {"destination": "a", "n": 2, "last_at": 5.0, "last_id": 9}
    script = Script(job_failures_since=[[counts]], delivery_job=[None])
    assert run(programs.job_failures(0.0), script) == []


def test_leased_jobs_are_read_in_one_statement_in_id_order_whatever_order_the_lease_returns():
    script = Script(
        lease_due_jobs=[[{"id": 9}, {"id": 2}, {"id": 5}]],
        open_jobs=[[{**OPEN_JOB, "id": 2}, {**OPEN_JOB, "id": 9}]],  # 5 closed meanwhile: not open, not read
    )
    leased = run(programs.lease_due_jobs(10, 1.0, 2.0), script)
    assert script.queries == ["lease_due_jobs", "open_jobs"]  # one read for the round, not one per job
    assert script.steps[1].params == {"ids": "[2, 5, 9]"}
    assert [j.delivery_id for j in leased] == [2, 9]


def test_nothing_leased_reads_nothing_more():
    script = Script(lease_due_jobs=[[]])
    assert run(programs.lease_due_jobs(10, 1.0, 2.0), script) == []
    assert script.queries == ["lease_due_jobs"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (None, (None, None)),
        ("", (None, None)),
        ("*", (None, "")),
        ("payment.*", (None, "payment.")),
        ("payment.succeeded", ("payment.succeeded", None)),
        ("a*c", ("a*c", None)),
        ("a%_?[", ("a%_?[", None)),
    ],
)
def test_type_filter_parameters(pattern: str | None, expected: tuple[str | None, str | None]):
    params = programs.type_filter(pattern)
    assert (params["type_exact"], params["type_prefix"]) == expected
