import pytest

from headrace.deliver.classify import classify
from headrace.deliver.schedule import MAX_RETRY_AFTER, clamp_retry_after, next_attempt_at
from headrace.durations import retry_after as parse_retry_after
from headrace.windmill.client import RunResponse

SCHEDULE = (5.0, 300.0, 1800.0)
JOB = "0b8c9a55-3f8e-5a2c-9e3f-6c3a1d2e4f50"


def test_schedule_steps_with_jitter_bounds():
    assert next_attempt_at(1, SCHEDULE, 1000.0, rand=lambda: 0.5) == pytest.approx(1005.0)
    assert next_attempt_at(2, SCHEDULE, 1000.0, rand=lambda: 0.0) == pytest.approx(1000 + 270.0)
    assert next_attempt_at(2, SCHEDULE, 1000.0, rand=lambda: 1.0) == pytest.approx(1000 + 330.0)
    assert next_attempt_at(4, SCHEDULE, 1000.0) is None
    assert next_attempt_at(0, SCHEDULE, 1000.0) is None


def test_retry_after_is_a_floor_then_jittered_upward_only():
    # the floor first, then the jitter: told the same Retry-After, deliveries spread out (never before it)
    told = {next_attempt_at(1, SCHEDULE, 0.0, retry_after=60, rand=lambda r=r: r) for r in (0.0, 0.5, 1.0)}
    assert sorted(told) == pytest.approx([60.0, 63.0, 66.0])
    assert next_attempt_at(1, SCHEDULE, 0.0, retry_after=1, rand=lambda: 0.0) == 5  # below the step: the step
    assert next_attempt_at(1, SCHEDULE, 0.0, retry_after=1, rand=lambda: 1.0) == pytest.approx(5.5)
    assert next_attempt_at(1, SCHEDULE, 0.0, retry_after=0, rand=lambda: 0.0) == 5


def test_retry_after_is_clamped_to_the_schedule():
    # at the schedule's longest delay, and past it
    assert next_attempt_at(1, SCHEDULE, 0.0, retry_after=1800, rand=lambda: 0.0) == 1800
    assert next_attempt_at(1, SCHEDULE, 0.0, retry_after=1801, rand=lambda: 0.0) == 1800
    assert next_attempt_at(1, SCHEDULE, 0.0, retry_after=10**9, rand=lambda: 1.0) == pytest.approx(1980)
    assert clamp_retry_after(-5, SCHEDULE) == 0
    assert clamp_retry_after(30, SCHEDULE) == 30
    assert clamp_retry_after(10**9, (5.0, 10**7)) == MAX_RETRY_AFTER  # a long schedule still stops at a day
    assert clamp_retry_after(10**9, ()) == MAX_RETRY_AFTER


def test_parse_retry_after():
    assert parse_retry_after("120", 0) == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == pytest.approx(10)
    assert parse_retry_after("soon", 0) is None
    assert parse_retry_after(None, 0) is None


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (201, "delivered"),
        (200, "delivered"),
        (400, "confirm"),
        (401, "retry"),  # R5: a token being rotated, or no access to the path
        (403, "failed"),
        (404, "retry"),  # R3: a script whose lock is still being built
        (422, "failed"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
    ],
)
def test_status_classes(status, verdict):
    assert classify(RunResponse(status=status, body=JOB), JOB).verdict == verdict


def test_transport_errors_retry_and_hints_name_the_fix():
    assert classify(RunResponse(status=None, error="no answer within 30s"), JOB).verdict == "retry"
    assert "token" in classify(RunResponse(status=401, body="Unauthorized"), JOB).reason
    assert "deploy it" in classify(RunResponse(status=404, body="not found"), JOB).reason


def test_only_job_exists_is_confirmed_a_database_error_or_quota_400_is_retried_loudly():
    exists = classify(RunResponse(status=400, body=f"Bad request: Job with id {JOB} already exists"), JOB)
    assert exists.verdict == "confirm" and not exists.loud
    for body in ("SqlErr: error returned from database: deadlock detected", "Quota exceeded: 30 jobs running"):
        verdict = classify(RunResponse(status=400, body=body), JOB)
        assert verdict.verdict == "retry" and verdict.loud and body in verdict.reason


def test_retry_after_is_read_one_way_for_windmill_and_dodo():
    """RFC 9110: delay-seconds are digits; anything else that is not an HTTP date is unreadable (None: the
    caller's schedule applies). Dodo's client read "inf" as forever and "-3" as now before it shared this one."""
    for unreadable in ("1.5", "-3", "inf", "nan", "1e3", "٣", "", "   "):
        assert parse_retry_after(unreadable, 0) is None, unreadable
    assert parse_retry_after(" 30 ", 0) == 30
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490.0) == 0.0  # a date past is now
