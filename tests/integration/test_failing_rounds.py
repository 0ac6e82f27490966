"""While the store cannot be written, the worker's rounds back off and log one line with a count, not a
traceback per round (~80 a second before)."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from headrace.deliver.rounds import FAILURE_PAUSE_MAX, failure_pause, run_rounds
from headrace.store.base import StoreUnavailable


def test_the_pause_doubles_up_to_its_cap() -> None:
    pauses = [failure_pause(n) for n in range(1, 20)]
    assert pauses[:4] == [0.1, 0.2, 0.4, 0.8]
    assert all(a <= b for a, b in itertools.pairwise(pauses))
    assert pauses[-1] == FAILURE_PAUSE_MAX and failure_pause(10**6) == FAILURE_PAUSE_MAX


def test_failing_rounds_log_one_line_and_wake_ups_do_not_cut_the_pause(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    async def main() -> None:
        stop, wake = asyncio.Event(), asyncio.Event()

        async def round_() -> bool:
            calls.append(1)
            wake.set()  # ingest keeps notifying: it must not turn the back-off into a busy loop
            if len(calls) == 5:
                stop.set()
            raise StoreUnavailable("disk I/O error")

        async def pause_after(_: bool | None) -> float | None:
            return 0.0

        await run_rounds(stop, wake, round_, pause_after, logging.getLogger("headrace.test.rounds"), "claiming")

    with caplog.at_level(logging.INFO, logger="headrace.test.rounds"):
        started = asyncio.run(_timed(main))
    lines = [r for r in caplog.records if r.name == "headrace.test.rounds"]
    assert len(calls) == 5
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert lines[0].exc_info is None and "claiming failed (StoreUnavailable: disk I/O error)" in lines[0].getMessage()
    assert started >= sum(failure_pause(n) for n in range(1, 5))  # 0.1 + 0.2 + 0.4 + 0.8 s waited, at least


async def _timed(body) -> float:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    start = loop.time()
    await body()
    return loop.time() - start
