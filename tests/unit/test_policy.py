"""The policy numbers (headrace/policy.py) hold together, and the modules that apply them read them from there."""

from __future__ import annotations

import re
from pathlib import Path

from headrace import policy
from headrace.deliver import heartbeat, schedule, worker


def test_the_heartbeat_fence_and_the_jitter_make_sense():
    # a worker stops starting attempts at DEAD_AFTER - INTERVAL: there must be room for a beat before that
    assert 0 < policy.HEARTBEAT_INTERVAL < policy.DEAD_AFTER / 2
    assert 0 <= policy.JITTER < 1  # a jittered delay is never zero or negative
    assert policy.LEASE_MARGIN > 0
    assert policy.LINE_EXCERPT < policy.ERROR_EXCERPT < policy.JOB_EXCERPT < policy.RESPONSE_EXCERPT


def test_the_modules_apply_the_policy_numbers():
    assert heartbeat.DEAD_AFTER == policy.DEAD_AFTER
    assert schedule.JITTER == policy.JITTER and worker.LEASE_MARGIN == policy.LEASE_MARGIN


SLICE = re.compile(r"\[:(\d{3,})\]|\[-(\d{3,}):\]")
NAMES = "RESPONSE_EXCERPT|JOB_EXCERPT|ERROR_EXCERPT|QUOTE_EXCERPT|LINE_EXCERPT|HEARTBEAT_INTERVAL"
ALIAS = re.compile(rf"^[A-Z_]+ = ({NAMES})\b", re.M)
# Literal cuts that are not excerpts of an answer, each with what it is.
NOT_EXCERPTS = {
    "config/server.py": "the config value echoed in its own error",
    "console/auth.py": "the Origin header echoed in a refusal",
    "console/bulk.py": "the size bound of a form's query text",
    "server.py": "one line of an aiohttp error in the access log",
    "windmill/schema.py": "how many items of an array are checked",
    "windmill/emulator_kit.py": "the emulator's own log tail, as Windmill cuts it",
}


def test_no_module_cuts_text_at_a_number_of_its_own_or_renames_a_policy_number():
    """An excerpt's length is a policy number (policy.py), not a literal `[:300]` in a module, and a module uses
    the policy's name for it rather than an alias of its own that a test must keep in step."""
    src = Path(policy.__file__).parent
    found = []
    for path in sorted(src.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if str(path.relative_to(src)) not in NOT_EXCERPTS:
            found += [f"{path.relative_to(src)}: [{m.group(0)}]" for m in SLICE.finditer(text)]
        found += [f"{path.relative_to(src)}: {m.group(0)}" for m in ALIAS.finditer(text)]
    assert found == []
