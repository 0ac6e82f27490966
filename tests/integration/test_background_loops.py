"""The serving process's background loops under one supervisor (headrace/ops/periodic.py): a loop that raises is
logged with its traceback and started again, a loop that ends is not, and shutdown waits for every loop's last
round even when one of them raises then."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from headrace.ingest.endpoint import Ingestor
from headrace.ops import periodic
from tests.helpers import config_text, free_port, running_server, settings_for, wait_for


def test_a_loop_that_raises_is_logged_and_started_again_until_the_stop(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        runs = {"broken": 0, "fine": 0}

        async def broken() -> None:
            runs["broken"] += 1
            raise RuntimeError(f"bug number {runs['broken']}")

        async def fine() -> None:
            runs["fine"] += 1
            await stop.wait()

        loops = periodic.Supervisor(stop, first=0.01, longest=0.04)
        loops.start("broken", broken)
        loops.start("fine", fine)
        with pytest.raises(ValueError, match="runs already"):
            loops.start("fine", fine)

        async def restarted() -> bool:
            return loops.restarts["broken"] >= 4

        await wait_for(restarted, 10)
        assert runs["fine"] == 1 and loops.restarts["fine"] == 0  # the others run on, untouched
        stop.set()
        await asyncio.wait_for(loops.wait(), 5)
        assert runs["broken"] - loops.restarts["broken"] in (0, 1)  # the last run may have raised while stopping

    with caplog.at_level(logging.ERROR, logger="headrace.server"):
        asyncio.run(main())
    failures = [r for r in caplog.records if "background loop broken failed" in r.getMessage()]
    assert failures and all(r.exc_info is not None for r in failures)  # with the traceback
    assert "starting it again in 0.01s" in failures[0].getMessage()
    assert any("again in 0.04s" in r.getMessage() for r in failures)  # doubled, up to the longest
    assert not any("again in 0.08s" in r.getMessage() for r in failures)


def test_a_loop_that_ends_is_not_started_again() -> None:
    async def main() -> None:
        stop = asyncio.Event()
        runs = []

        async def nothing_to_do() -> None:  # retention without a retention period returns at once
            runs.append(1)

        loops = periodic.Supervisor(stop, first=0.01)
        loops.start("idle", nothing_to_do)
        await asyncio.sleep(0)  # let it run
        stop.set()
        await loops.wait()
        assert runs == [1] and loops.restarts == {"idle": 0}

    asyncio.run(main())


def test_serve_shuts_down_whole_when_a_loop_raises_on_its_last_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The refusal flusher's last flush raises: it is logged and the rest of the shutdown still happens (before,
    `await flusher` raised out of serve, skipping the other loops' last rounds and the worker's drain)."""

    async def broken_flush(self: Any, *, final: bool = False) -> None:
        if final:
            raise RuntimeError("the last flush broke")

    monkeypatch.setattr(Ingestor, "flush_refusals", broken_flush)
    settings = settings_for(
        config_text(tmp_path / "h.db", free_port(), "http://127.0.0.1:9/api/w/acme/jobs/run/p/f/dodo/x"), tmp_path
    )

    async def main() -> None:
        async with running_server(settings):
            pass

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert "background loop refusal flusher failed while stopping" in messages


def test_a_loop_started_with_cancel_at_stop_is_cancelled_not_awaited() -> None:
    async def main() -> None:
        stop = asyncio.Event()
        cancelled = asyncio.Event()

        async def long_pass() -> None:  # a scheduled reconcile in the middle of a pass: it does not look at stop
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        loops = periodic.Supervisor(stop)
        loops.start("reconcile", long_pass, cancel_at_stop=True)
        await asyncio.sleep(0)  # let it start
        stop.set()
        await asyncio.wait_for(loops.wait(), 5)
        assert cancelled.is_set() and loops.restarts == {"reconcile": 0}

    asyncio.run(main())
