"""404 and 401 from a run endpoint are retried on the schedule (CONTRACT R3, R5), loudly: a warning line and
headrace_delivery_retries_total{reason="http_404"}."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from headrace.deliver.recorder import OutcomeRecorder
from headrace.models import Attempt, Claimed, Retry
from headrace.observe.metrics import Metrics
from headrace.store.base import Finished
from headrace.windmill.emulator import EmulatorState, running_emulator
from tests.helpers import config_text, free_port, running_server, settings_for
from tests.integration.test_delivery import send, settled


def test_a_script_whose_lock_is_still_building_is_delivered_after_its_404s(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lock_requests=2)  # just pushed: 404 twice, then it runs
    with running_emulator(state) as emu:
        cfg = settings_for(config_text(tmp_path / "h.db", free_port(), emu.url()), tmp_path)

        async def main() -> None:
            async with running_server(cfg) as base:
                await send(base, "msg_new_script")
                data = await settled(base, "msg_new_script")
            attempts = data["deliveries"][0]["attempt_log"]
            assert [a["http_status"] for a in attempts] == [404, 404, 201]
            assert [a["outcome"] for a in attempts] == ["retry", "retry", "delivered"]
            assert len(state.jobs) == 1

        asyncio.run(main())


def test_a_revoked_token_is_retried_until_the_new_one_works(tmp_path: Path) -> None:
    state = EmulatorState(tokens=set())  # the configured token is not (yet) valid
    state.add_target("script", "f/dodo/on_payment")
    with running_emulator(state) as emu:
        text = config_text(tmp_path / "h.db", free_port(), emu.url(), schedule='["300ms", "300ms", "300ms"]')
        cfg = settings_for(text, tmp_path)

        async def main() -> None:
            async with running_server(cfg) as base:
                await send(base, "msg_rotated")
                await asyncio.sleep(0.15)
                state.tokens.add("test-token")  # the operator fixes the token in Windmill
                data = await settled(base, "msg_rotated")
            statuses = [a["http_status"] for a in data["deliveries"][0]["attempt_log"]]
            assert statuses[0] == 401 and statuses[-1] == 201

        asyncio.run(main())


@pytest.mark.parametrize(("status", "reason"), [(404, "http_404"), (401, "http_401"), (None, "no_answer")])
def test_a_retry_is_counted_by_reason_and_logged(caplog: pytest.LogCaptureFixture, status: int | None, reason: str):
    class Store:
        async def finish(self, finished: Finished, now: float) -> bool:
            return True

    metrics = Metrics()
    claimed = Claimed(1, 1, "payments", 0, "job", 0, "dodo", "msg_1", "payment.succeeded", b"{}")
    finished = Finished(claimed, "t", Attempt(time.time(), 1.0, status), Retry(time.time() + 5, "HTTP 404: no such"))
    with caplog.at_level(logging.WARNING, logger="headrace.deliver"):
        asyncio.run(OutcomeRecorder(Store(), metrics).record(finished))  # type: ignore[arg-type]
    assert metrics.counters["headrace_delivery_retries_total"] == {("payments", reason): 1}
    assert "delivery retry: HTTP 404: no such" in caplog.text
