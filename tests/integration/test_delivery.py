"""Delivery to the Windmill emulator over real HTTP on loopback: retries, duplicates, faults, replays."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.app import App
from headrace.windmill.emulator import EmulatorState, EmulatorThread, Fault, running_emulator
from tests.helpers import (
    config_text,
    deployed_windmill,
    dodo_body,
    expected_job_id,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)


@pytest.fixture
def emulator():
    with running_emulator(deployed_windmill("f/dodo/on_payment", "f/dodo/all")) as emu:
        yield emu


def settings(tmp_path: Path, url: str, **kw: Any):
    return settings_for(config_text(tmp_path / "h.db", free_port(), url, **kw), tmp_path)


async def send(base: str, webhook_id: str, event_type: str = "payment.succeeded") -> dict[str, Any]:
    body = dodo_body(event_type)
    async with aiohttp.ClientSession() as http:
        status, answer = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, webhook_id))
    assert status in (200, 202), answer
    return answer


async def event_json(base: str, key: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/api/v1/events/{key}") as response:
        assert response.status == 200
        return await response.json()


async def settled(base: str, key: str, status: str = "delivered", timeout: float = 10.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        data = await event_json(base, key)
        return data if data["status"] == status else None

    return await wait_for(check, timeout)


def test_500_500_201_is_delivered_once_with_one_job_id(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("status", count=2, status=500))

    cfg = settings(tmp_path, emulator.url())

    async def main() -> None:
        async with running_server(cfg) as base:
            await send(base, "msg_retry")
            data = await settled(base, "msg_retry")
        [delivery] = data["deliveries"]
        assert [a["http_status"] for a in delivery["attempt_log"]] == [500, 500, 201]
        assert [a["outcome"] for a in delivery["attempt_log"]] == ["retry", "retry", "delivered"]
        expected = expected_job_id(cfg, "msg_retry", "payments", 0)
        assert delivery["job_id"] == delivery["windmill_job_id"] == expected
        assert list(emulator.state.jobs) == [expected]

    asyncio.run(main())


def test_job_created_but_answer_lost_gives_exactly_one_job(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("drop"))

    async def main() -> None:
        async with running_server(settings(tmp_path, emulator.url())) as base:
            await send(base, "msg_drop")
            data = await settled(base, "msg_drop")
        attempts = data["deliveries"][0]["attempt_log"]
        assert [a["http_status"] for a in attempts] == [None, 400]  # lost answer, then "already exists"
        assert attempts[-1]["outcome"] == "delivered"
        assert len(emulator.state.jobs) == 1 and emulator.state.duplicate_rejections == 1

    asyncio.run(main())


def test_hang_times_out_and_retries(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("hang", seconds=5))

    async def main() -> None:
        text_settings = settings(tmp_path, emulator.url(), extra_dest="")
        async with running_server(text_settings) as base:
            await send(base, "msg_hang")
            data = await settled(base, "msg_hang", timeout=15)
        attempts = data["deliveries"][0]["attempt_log"]
        assert attempts[0]["http_status"] is None and "no answer within 2s" in attempts[0]["detail"]
        assert len(emulator.state.jobs) == 1

    asyncio.run(main())


def test_retry_after_is_honoured_up_to_the_schedules_longest_step(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("status", status=429, retry_after="1"))
    emulator.state.inject(Fault("status", status=429, retry_after="3600"))
    schedule = '["10ms", "10ms", "1s"]'

    async def main() -> None:
        async with running_server(settings(tmp_path, emulator.url(), schedule=schedule)) as base:
            await send(base, "msg_429")
            data = await settled(base, "msg_429")
        first, second, third = data["deliveries"][0]["attempt_log"]
        assert (first["http_status"], second["http_status"], third["http_status"]) == (429, 429, 201)
        assert _ts(second["started_at"]) - _ts(first["started_at"]) >= 0.95  # the step says 10 ms; Retry-After 1 s
        # Retry-After says an hour: clamped to the schedule's longest step (1 s), so the delivery settled here
        assert _ts(third["started_at"]) - _ts(second["started_at"]) >= 0.95

    asyncio.run(main())


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_403_fails_at_once(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("status", status=403, body="nope"))

    async def main() -> None:
        async with running_server(settings(tmp_path, emulator.url())) as base:
            await send(base, "msg_403")
            data = await settled(base, "msg_403", status="failed")
        [attempt] = data["deliveries"][0]["attempt_log"]
        assert attempt["http_status"] == 403 and "scoped token missing a scope" in attempt["detail"]
        assert emulator.state.jobs == {}

    asyncio.run(main())


@pytest.mark.parametrize(("status", "hint"), [(401, "refused the token"), (404, "lock is built")])
def test_persistent_401_and_404_are_retried_on_the_schedule_then_fail(
    tmp_path: Path, emulator: EmulatorThread, status: int, hint: str
):
    if status == 401:
        url = emulator.url()
        text = config_text(tmp_path / "h.db", free_port(), url).replace('token = "test-token"', 'token = "wrong"')
        cfg = settings_for(text, tmp_path)
    else:
        cfg = settings(tmp_path, emulator.url("f/dodo/never_deployed"))

    async def main() -> None:
        async with running_server(cfg) as base:
            await send(base, f"msg_{status}")
            data = await settled(base, f"msg_{status}", status="failed")
        delivery = data["deliveries"][0]
        assert [a["http_status"] for a in delivery["attempt_log"]] == [status] * 4  # 1 + 3 scheduled retries
        assert all(hint in a["detail"] for a in delivery["attempt_log"])
        assert "gave up after 4 attempts" in delivery["last_error"]
        assert "wrong" not in json.dumps(data)  # the token never shows
        assert emulator.state.jobs == {}

    asyncio.run(main())


def test_schedule_exhausted_is_failed_not_dropped_then_replayed(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("status", count=4, status=503))

    async def main() -> None:
        cfg = settings(tmp_path, emulator.url(), schedule='["10ms", "10ms"]')
        async with running_server(cfg) as base:
            await send(base, "msg_gone")
            data = await settled(base, "msg_gone", status="failed")
            delivery = data["deliveries"][0]
            assert [a["http_status"] for a in delivery["attempt_log"]] == [503, 503, 503]
            assert "gave up after 3 attempts" in delivery["last_error"]
            async with aiohttp.ClientSession() as http, http.post(f"{base}/api/v1/events/msg_gone/replay") as r:
                replayed = await r.json()
            new_job = expected_job_id(cfg, "msg_gone", "payments", 1)
            assert replayed["replayed"][0]["job_ids"] == [new_job]
            # One more 503 left in the fault queue, then success under the new job id.
            data = await settled(base, "msg_gone")
            assert [d["generation"] for d in data["deliveries"]] == [0, 1]
        assert list(emulator.state.jobs) == [new_job]

    asyncio.run(main())


def test_fan_out_routing_and_unrouted(tmp_path: Path, emulator: EmulatorThread):
    extra = f"""
[destinations.everything]
source = "dodo"
events = ["*"]
url = "{emulator.url("f/dodo/all")}"
token = "test-token"
"""
    cfg = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url()) + extra, tmp_path)
    cfg_only_payments = settings_for(config_text(tmp_path / "h2.db", free_port(), emulator.url()), tmp_path)

    async def main() -> None:
        async with running_server(cfg) as base:
            await send(base, "msg_pay", "payment.succeeded")
            await send(base, "msg_sub", "subscription.active")
            pay = await settled(base, "msg_pay")
            sub = await settled(base, "msg_sub")
        assert sorted(d["destination"] for d in pay["deliveries"]) == ["everything", "payments"]
        assert [d["destination"] for d in sub["deliveries"]] == ["everything"]
        paths = sorted(job.path for job in emulator.state.jobs.values())
        assert paths == ["f/dodo/all", "f/dodo/all", "f/dodo/on_payment"]
        async with running_server(cfg_only_payments) as base:
            await send(base, "msg_lonely", "dispute.opened")
            data = await event_json(base, "msg_lonely")
        assert data["status"] == "unrouted" and data["deliveries"] == []

    asyncio.run(main())


def test_transformation_runs_in_the_delivery_path(tmp_path: Path, emulator: EmulatorThread):
    script = tmp_path / "t.js"
    script.write_text(
        "function handler(w) { if (w.payload.type === 'payment.failed') { w.cancel = true; return w; }\n"
        "  w.payload = {payment_id: w.payload.data.payment_id, cents: w.payload.data.total_amount, id: w.webhookId};\n"
        "  w.headers['x-from'] = 'headrace'; return w; }"
    )
    cfg = settings(tmp_path, emulator.url(), extra_dest='transform = "t.js"')

    async def main() -> None:
        async with running_server(cfg) as base:
            await send(base, "msg_t1", "payment.succeeded")
            await send(base, "msg_t2", "payment.failed")
            ok = await settled(base, "msg_t1")
            cancelled = await settled(base, "msg_t2", status="cancelled")
        assert ok["deliveries"][0]["payload"] == {"payment_id": "pay_1", "cents": 4999, "id": "msg_t1"}
        [job] = emulator.state.jobs.values()
        assert job.args == {"payment_id": "pay_1", "cents": 4999, "id": "msg_t1"}
        assert cancelled["deliveries"][0]["attempt_log"][0]["outcome"] == "cancelled"

    asyncio.run(main())


def test_transformation_errors_fail_without_retry_and_bad_urls_are_refused(tmp_path: Path, emulator: EmulatorThread):
    script = tmp_path / "t.js"
    script.write_text(
        "function handler(w) {\n"
        "  if (w.payload.type === 'payment.failed') {\n"
        "    w.url = 'https://evil.example/api/w/x/jobs/run/p/f/a/b'; return w; }\n"
        "  return w.payload.data.nothing.here;\n"
        "}"
    )
    cfg = settings(tmp_path, emulator.url(), extra_dest='transform = "t.js"')

    async def main() -> None:
        async with running_server(cfg) as base:
            await send(base, "msg_e1", "payment.succeeded")
            await send(base, "msg_e2", "payment.failed")
            broken = await settled(base, "msg_e1", status="failed")
            forged = await settled(base, "msg_e2", status="failed")
        [attempt] = broken["deliveries"][0]["attempt_log"]
        assert "transformation t.js failed" in attempt["detail"] and "line 4" in attempt["detail"]
        assert "evil.example" in forged["deliveries"][0]["last_error"]
        assert emulator.state.jobs == {}

    asyncio.run(main())


def test_graceful_shutdown_releases_unfinished_work(tmp_path: Path, emulator: EmulatorThread):
    emulator.state.inject(Fault("hang", seconds=1.5))

    async def main() -> None:
        cfg = settings(tmp_path, emulator.url())
        async with running_server(cfg) as base:
            await send(base, "msg_slow")

            async def in_flight() -> bool:  # the run has reached Windmill (the hang took it) when the stop comes
                return not emulator.state.faults

            await wait_for(in_flight, 10)  # the 2 s grace lets it finish
        app = await App.open(cfg)
        try:
            event = await app.store.get_event("msg_slow")
        finally:
            await app.close()
        assert event is not None and event.deliveries[0].status == "delivered"

    asyncio.run(main())


def test_replay_failed_since(tmp_path: Path):
    state = EmulatorState(any_path=False)  # no script exists: every delivery is a 404
    with running_emulator(state) as emu:
        cfg = settings(tmp_path, emu.url())

        async def main() -> None:
            async with running_server(cfg) as base:
                for i in range(3):
                    await send(base, f"msg_f{i}")
                for i in range(3):
                    await settled(base, f"msg_f{i}", status="failed")
                state.add_target("script", "f/dodo/on_payment")  # "deploy" the script, then replay
                app = await App.open(cfg)
                try:
                    results = await app.replays.failed(time.time() - 60)
                finally:
                    await app.close()
                assert sorted(len(r.job_ids) for r in results) == [1, 1, 1]
                for i in range(3):
                    await settled(base, f"msg_f{i}")
            assert len(state.jobs) == 3

        asyncio.run(main())
