"""The scheduler (claims, leases, drain) and the outcome recorder, on a real SQLite store with a fake client."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from headrace.deliver.recorder import OutcomeRecorder
from headrace.deliver.tracker import JobTracker
from headrace.deliver.worker import Transformations, Worker
from headrace.models import Attempt, Delivered, NewEvent, Route
from headrace.observe.metrics import Metrics
from headrace.store.base import Finished
from headrace.store.sqlite import SQLiteStore
from headrace.windmill.client import RunResponse
from tests.fakes import URL, FakeWindmill, attempter
from tests.helpers import config_text, dodo_body, settings_for, wait_for


class SlowWindmill(FakeWindmill):
    """Each run takes `seconds` (cancellable, like a real request)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(RunResponse(201, ""))
        self.seconds = seconds

    async def run(self, *args: Any, **kwargs: Any) -> RunResponse:
        await asyncio.sleep(self.seconds)
        return await super().run(*args, **kwargs)


async def _store_with_events(tmp_path: Path, count: int) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "h.db")
    await store.open()
    for i in range(count):
        body = dodo_body()
        event = NewEvent("dodo", f"msg_{i}", "payment.succeeded", int(time.time()), time.time(), body, {})
        await store.ingest(event, [Route("payments", "http://windmill.test/api/w/acme")])
    return store


def _worker(
    tmp_path: Path, store: SQLiteStore, client: FakeWindmill, transformations: Transformations | None = None
) -> Worker:
    text = config_text(tmp_path / "h.db", 1, URL, extra_dest="concurrency = 1")
    settings = settings_for(text, tmp_path)
    metrics = Metrics()
    tracker = JobTracker(store, settings, client, metrics=metrics)  # type: ignore[arg-type]
    unit = attempter(client, now=time.time())
    unit.clock = time.time
    return Worker(store, settings, unit, OutcomeRecorder(store, metrics), tracker, transformations)


async def _statuses(store: SQLiteStore, count: int) -> list[tuple[str, int]]:
    rows = []
    for i in range(count):
        event = await store.get_event(f"msg_{i}")
        assert event is not None
        [delivery] = event.deliveries
        rows.append((delivery.status, delivery.attempts))
    return rows


async def _stopped_with_one_in_flight(worker: Worker) -> None:
    """Run the worker until an attempt is in flight, then stop its loop (what `serve` does before drain)."""
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await wait_for(lambda: _true(worker.in_flight == 1), 5)
    stop.set()
    await running


def test_drain_lets_in_flight_finish_and_releases_the_rest(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store_with_events(tmp_path, 3)
        client = SlowWindmill(0.3)
        worker = _worker(tmp_path, store, client)
        try:
            # concurrency 1: one attempt in flight, one claimed ahead and queued, one still pending in the store
            await _stopped_with_one_in_flight(worker)
            await worker.drain(2.0)
            assert await _statuses(store, 3) == [("delivered", 1), ("pending", 0), ("pending", 0)]
            assert len(client.runs) == 1
            # released, not left leased: another worker claims the two at once
            again = await store.claim("payments", 10, "other", time.time(), time.time() + 60)
            assert sorted(c.webhook_id for c in again) == ["msg_1", "msg_2"]
        finally:
            await store.close()

    asyncio.run(main())


def test_drain_cancels_what_outlives_the_grace_and_releases_it(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store_with_events(tmp_path, 1)
        client = SlowWindmill(30)
        worker = _worker(tmp_path, store, client)
        try:
            await _stopped_with_one_in_flight(worker)
            started = time.monotonic()
            await worker.drain(0.2)
            assert time.monotonic() - started < 5
            assert await _statuses(store, 1) == [("pending", 0)]
            assert len(await store.claim("payments", 10, "other", time.time(), time.time() + 60)) == 1
        finally:
            await store.close()

    asyncio.run(main())


class FlakyStore:
    """The real store, except that `finish` raises `failures` times first."""

    def __init__(self, store: SQLiteStore, failures: int) -> None:
        self._store = store
        self.failures = failures
        self.finish_calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def finish(self, finished: Finished, now: float) -> bool:
        self.finish_calls += 1
        if self.finish_calls <= self.failures:
            raise OSError("disk I/O error")
        return await self._store.finish(finished, now)


async def _claim_one(store: SQLiteStore) -> Finished:
    [claimed] = await store.claim("payments", 1, "me", time.time(), time.time() + 60)
    return Finished(claimed, "me", Attempt(time.time(), 1.0, 201), Delivered(claimed.job_id))


def test_recorder_retries_a_failing_store_until_the_outcome_is_stored(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store_with_events(tmp_path, 1)
        try:
            flaky = FlakyStore(store, failures=2)
            recorder = OutcomeRecorder(flaky, Metrics(), pauses=(0.01, 0.01, 0.01))  # type: ignore[arg-type]
            assert await recorder.record(await _claim_one(store)) is True
            assert flaky.finish_calls == 3
            assert await _statuses(store, 1) == [("delivered", 1)]
        finally:
            await store.close()

    asyncio.run(main())


def test_recorder_gives_up_and_leaves_the_lease_to_expire(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store_with_events(tmp_path, 1)
        try:
            flaky = FlakyStore(store, failures=99)
            recorder = OutcomeRecorder(flaky, Metrics(), pauses=(0.01, 0.01))  # type: ignore[arg-type]
            assert await recorder.record(await _claim_one(store)) is False
            assert flaky.finish_calls == 3
            assert await _statuses(store, 1) == [("in_flight", 0)]
        finally:
            await store.close()

    asyncio.run(main())


async def _true(value: bool) -> bool:
    return value


async def _delivered_until_settled(worker: Worker, store: SQLiteStore, count: int) -> list[Any]:
    """Run the worker until every delivery has left pending/in_flight; the deliveries as stored."""
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))

    async def settled() -> list[Any] | None:
        rows = []
        for i in range(count):
            event = await store.get_event(f"msg_{i}")
            assert event is not None
            rows.append(event.deliveries[0])
        return rows if all(d.status not in ("pending", "in_flight") for d in rows) else None

    try:
        return await wait_for(settled, 10)
    finally:
        stop.set()
        await running
        await worker.drain(1.0)


def test_a_payload_nested_2000_deep_fails_with_a_reason_instead_of_staying_in_flight(tmp_path: Path) -> None:
    from headrace.app import make_sandbox
    from headrace.transform import Script

    deep = Script(
        "deep.js",
        "function handler(w) { let p = {}; let c = p;"
        " for (let i = 0; i < 2000; i++) { c.a = {}; c = c.a; } w.payload = p; return w; }",
    )

    async def main() -> None:
        store = await _store_with_events(tmp_path, 1)
        client = FakeWindmill()
        worker = _worker(tmp_path, store, client, Transformations({"payments": deep}, make_sandbox()))
        try:
            [delivery] = await _delivered_until_settled(worker, store, 1)
        finally:
            await store.close()
        assert delivery.status == "failed" and delivery.attempts == 1
        assert "nested too deeply" in delivery.last_error
        assert client.runs == []

    asyncio.run(main())


def test_an_unexpected_exception_in_the_attempt_is_a_recorded_failure(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store_with_events(tmp_path, 2)
        client = FakeWindmill(RuntimeError("the client broke"))
        worker = _worker(tmp_path, store, client)
        try:
            deliveries = await _delivered_until_settled(worker, store, 2)
        finally:
            await store.close()
        for delivery in deliveries:
            assert delivery.status == "failed" and delivery.attempts == 1
            assert "unexpected RuntimeError: the client broke" in delivery.last_error
            assert "see the log, then replay" in delivery.last_error
        assert len(client.runs) == 2

    asyncio.run(main())
