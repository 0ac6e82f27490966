"""The policy numbers (headrace/policy.py) hold together, and the modules that apply them read them from there."""

from __future__ import annotations

from headrace import policy
from headrace.deliver import heartbeat, schedule, tracker, worker
from headrace.store import rows


def test_the_heartbeat_fence_and_the_jitter_make_sense():
    # a worker stops starting attempts at DEAD_AFTER - INTERVAL: there must be room for a beat before that
    assert 0 < policy.HEARTBEAT_INTERVAL < policy.DEAD_AFTER / 2
    assert 0 <= policy.JITTER < 1  # a jittered delay is never zero or negative
    assert policy.LEASE_MARGIN > 0
    assert policy.LINE_EXCERPT < policy.ERROR_EXCERPT < policy.JOB_EXCERPT < policy.RESPONSE_EXCERPT


def test_the_modules_apply_the_policy_numbers():
    assert heartbeat.INTERVAL == policy.HEARTBEAT_INTERVAL and heartbeat.DEAD_AFTER == policy.DEAD_AFTER
    assert schedule.JITTER == policy.JITTER and worker.LEASE_MARGIN == policy.LEASE_MARGIN
    assert (
        rows.EXCERPT_LIMIT == policy.RESPONSE_EXCERPT
        and rows.JOB_EXCERPT_LIMIT == tracker.EXCERPT == policy.JOB_EXCERPT
    )
