"""The emulator's own control endpoints (/_emulator/...), which are not Windmill's."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from headrace.windmill.emulator import EmulatorState

from .windmill_contract import Emulator, scenario


def test_the_job_list_is_every_job_and_count_true_says_only_how_many() -> None:
    """A benchmark polls `?count=true`: listing every job with its arguments is the emulator's costliest route."""
    state = EmulatorState()
    state.add_target("script", "f/dodo/x")

    async def body(emu: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
        for n in range(3):
            assert (await emu.run("f/dodo/x", {"n": n, "nested": {"list": [n, "$text"]}})).status == 201
        control = emu.base.removesuffix("/api") + "/_emulator/jobs"
        async with emu.http.get(control, params={"count": "true"}) as response:
            counted = await response.json()
        async with emu.http.get(control) as response:
            listed = await response.json()
        return counted, listed

    counted, listed = scenario(state, body)
    assert counted == {"count": 3, "requests": 3, "duplicate_rejections": 0}
    assert listed["jobs"] == [json.loads(json.dumps(asdict(job))) for job in state.jobs.values()]
    assert (listed["requests"], listed["duplicate_rejections"]) == (3, 0)
