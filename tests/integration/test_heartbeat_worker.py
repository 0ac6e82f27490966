"""The worker's side of heartbeats, on a real SQLite store: a worker presumed dead drops what it held, a
worker whose heartbeat cannot be written starts no attempt, and readiness reports both."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any

import aiohttp

from headrace.app import App
from headrace.deliver.heartbeat import Heartbeat
from headrace.deliver.recorder import OutcomeRecorder
from headrace.deliver.tracker import JobTracker
from headrace.deliver.worker import Worker
from headrace.models import NewEvent, Route
from headrace.observe.metrics import Metrics
from headrace.server import run_worker
from headrace.store.base import Beat, WorkerInfo
from headrace.store.core import Store
from headrace.store.sqlite import SQLiteStore
from headrace.windmill.client import RunResponse
from tests.fakes import URL, FakeWindmill, attempter
from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, wait_for

FAST = functools.partial(Heartbeat, interval=0.1, dead_after=0.6)


class SlowWindmill(FakeWindmill):
    def __init__(self, seconds: float) -> None:
        super().__init__(RunResponse(201, ""))
        self.seconds = seconds
        self.cancelled = 0

    async def run(self, *args: Any, **kwargs: Any) -> RunResponse:
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super().run(*args, **kwargs)


class Switchable:
    """The real store, except that heartbeats raise while `broken` and claims hang while `hang` is set."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.broken = False
        self.hang = asyncio.Event()
        self.unhang = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def heartbeat(self, worker_id: str, now: float, dead_before: float, lease_until: float | None = None) -> Beat:
        if self.broken:
            raise OSError("disk I/O error")
        return await self._store.heartbeat(worker_id, now, dead_before, lease_until)

    async def claim(self, *args: Any, **kwargs: Any) -> Any:
        if self.hang.is_set():
            await self.unhang.wait()
        return await self._store.claim(*args, **kwargs)


async def _store_with_events(tmp_path: Path, count: int) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "h.db")
    await store.open()
    for i in range(count):
        event = NewEvent("dodo", f"msg_{i}", "payment.succeeded", int(time.time()), time.time(), dodo_body(), {})
        await store.ingest(event, [Route("payments", "http://windmill.test/api/w/acme")])
    return store


def _worker(tmp_path: Path, store: Any, client: FakeWindmill, **kw: Any) -> Worker:
    settings = settings_for(config_text(tmp_path / "h.db", 1, URL, extra_dest="concurrency = 1"), tmp_path)
    metrics = Metrics()
    tracker = JobTracker(store, settings, client, metrics=metrics)  # type: ignore[arg-type]
    unit = attempter(client, now=time.time())
    unit.clock = time.time
    return Worker(store, settings, unit, OutcomeRecorder(store, metrics), tracker, heartbeat=FAST, **kw)


async def _status(store: Store, webhook_id: str) -> tuple[str, int]:
    event = await store.get_event(webhook_id)
    assert event is not None
    [delivery] = event.deliveries
    return delivery.status, delivery.attempts


async def _true(value: bool) -> bool:
    return value


def test_a_worker_presumed_dead_drops_its_work_and_registers_again(tmp_path: Path) -> None:
    async def main() -> None:
        store = await _store_with_events(tmp_path, 2)
        client = SlowWindmill(30)
        worker = _worker(tmp_path, store, client)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await wait_for(lambda: _true(worker.in_flight == 1), 5)  # msg_0 in flight, msg_1 queued
            first_id = worker.worker_id
            # another worker decides this one is dead (as if it had been silent) and takes msg_0 at once
            other = WorkerInfo("other:1:0001", "other", 1)
            await store.register_worker(other, time.time())
            beat = await store.heartbeat(other.id, time.time(), time.time() + 1)
            assert [r.worker_id for r in beat.reaped] == [first_id]
            taken = await store.claim("payments", 1, f"{other.id}#1", time.time(), time.time() + 60, worker=other.id)
            assert [c.webhook_id for c in taken] == ["msg_0"]
            # its next beat finds its row gone: the attempt in flight is cancelled, it registers as someone new
            await wait_for(lambda: _true(worker.worker_id != first_id and worker.heartbeat.fresh()), 5)
            assert client.cancelled == 1
            assert len(client.runs) == 0
            assert await store.live_workers(time.time() - 1) == 2
            # it never touches msg_0 again (the other worker holds it); msg_1 was released and it claims it anew
            await wait_for(lambda: _true(worker.in_flight == 1), 5)
            assert next(iter(worker._running["payments"].values()))[0].webhook_id == "msg_1"
            assert await _status(store, "msg_0") == ("in_flight", 0)
        finally:
            stop.set()
            await running
            await worker.drain(0.1)
            await store.close()

    asyncio.run(main())


class SlowLookup(FakeWindmill):
    """A Windmill whose schema lookup (the preflight) answers only when the test lets it; the run then succeeds."""

    def __init__(self) -> None:
        super().__init__(RunResponse(201, ""))
        self.looking = asyncio.Event()
        self.answer = asyncio.Event()

    async def get_target(self, *args: Any, **kwargs: Any) -> Any:
        self.looking.set()
        await self.answer.wait()
        return await super().get_target(*args, **kwargs)


def test_a_live_workers_slow_attempt_outlasts_its_lease_and_is_not_claimed_twice(tmp_path: Path) -> None:
    """The claim's lease covers a bounded attempt; the worker's beats renew it while the attempt runs longer
    (here its schema lookup hangs past the lease), so no other worker claims the delivery meanwhile."""

    async def main() -> None:
        store = await _store_with_events(tmp_path, 1)
        client = SlowLookup()
        skew = [0.0]
        worker = _worker(tmp_path, store, client, clock=lambda: time.time() + skew[0])
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await asyncio.wait_for(client.looking.wait(), 5)  # msg_0's attempt waits for its schema lookup
            lease = worker._lease
            skew[0] = lease + 60  # the lookup outlasts the claim's lease by a minute
            later = time.time() + skew[0]
            await wait_for(lambda: _true((worker.heartbeat.last_ok or 0) >= later), 5)  # a beat since then
            other = WorkerInfo("other:1:0001", "other", 1)
            now = time.time() + skew[0]
            await store.register_worker(other, now)
            assert await store.claim("payments", 1, f"{other.id}#1", now, now + 60, worker=other.id) == []
            client.answer.set()

            async def delivered() -> bool:
                return (await _status(store, "msg_0"))[0] == "delivered"

            await wait_for(delivered, 5)
            assert len(client.runs) == 1
        finally:
            stop.set()
            await running
            await worker.drain(0.1)
            await store.close()

    asyncio.run(main())


def test_a_worker_that_cannot_beat_starts_no_attempt_and_is_not_ready(tmp_path: Path) -> None:
    async def main() -> None:
        real = await _store_with_events(tmp_path, 0)
        store = Switchable(real)
        client = SlowWindmill(0)
        worker = _worker(tmp_path, store, client)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await wait_for(lambda: _true(worker.heartbeat.fresh() and worker.last_round is not None), 5)
            assert worker.health() == (True, "ok")
            store.broken = True
            await wait_for(lambda: _true(not worker.heartbeat.fresh()), 5)
            ok, detail = worker.health()
            assert not ok and "heartbeat cannot be written: OSError: disk I/O error" in detail
            body = dodo_body()
            await real.ingest(
                NewEvent("dodo", "msg_late", "payment.succeeded", 1, time.time(), body, {}),
                [Route("payments", "http://windmill.test/api/w/acme")],
            )
            worker.notify()
            await asyncio.sleep(1.0)  # ten beats' worth: nothing may start meanwhile
            assert client.runs == []
            assert await _status(real, "msg_late") == ("pending", 0)
            store.broken = False
            await wait_for(lambda: _delivered(real), 5)
            assert worker.health() == (True, "ok")
        finally:
            stop.set()
            await running
            await worker.drain(0.1)
            await real.close()

    asyncio.run(main())


async def _delivered(store: Store) -> bool:
    return await _status(store, "msg_late") == ("delivered", 1)


def test_readiness_fails_while_the_claim_loop_is_stuck(tmp_path: Path) -> None:
    async def main() -> None:
        real = await _store_with_events(tmp_path, 0)
        store = Switchable(real)
        worker = _worker(tmp_path, store, SlowWindmill(0), stalled_after=0.5)
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            await wait_for(lambda: _true(worker.heartbeat.fresh() and worker.last_round is not None), 5)
            assert worker.health() == (True, "ok")
            store.hang.set()  # the next claim never returns
            await wait_for(lambda: _true(not worker.health()[0]), 5)
            assert "loop has not completed a round for" in worker.health()[1]
            assert worker.heartbeat.health() == (True, "ok")  # the heartbeat itself is fine
            store.hang.clear()
            store.unhang.set()
            await wait_for(lambda: _true(worker.health() == (True, "ok")), 5)
        finally:
            stop.set()
            await running
            await worker.drain(0.1)
            await real.close()

    asyncio.run(main())


def test_readiness_of_serve_without_a_worker_reports_the_live_workers(tmp_path: Path) -> None:
    async def main() -> None:
        text = config_text(tmp_path / "h.db", 1, URL, extra_server="worker = false")
        app = await App.open(settings_for(text, tmp_path))
        try:
            ok, detail = await app.ready()
            assert ok and "no live delivery worker registered" in detail
            await app.store.register_worker(WorkerInfo("w:1:1", "w", 1), time.time())
            assert await app.ready() == (True, "ok; 1 live delivery worker registered")
            await app.store.retire_worker("w:1:1", time.time())
            assert "no live delivery worker" in (await app.ready())[1]
        finally:
            await app.close()

    asyncio.run(main())


async def _readyz(base: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/readyz") as response:
        return response.status, (await response.json())["detail"]


def test_readyz_of_serve_follows_the_workers_it_runs_or_sees(tmp_path: Path) -> None:
    """Over HTTP: `serve` with its worker is ready once the worker runs; `serve` without one stays ready and
    says whether a `headrace worker` (here one in this process, on the same database) is registered."""

    async def main() -> None:
        with_worker = settings_for(config_text(tmp_path / "a.db", free_port(), URL), tmp_path)
        async with running_server(with_worker) as base:
            await wait_for(lambda: _is(_readyz(base), (200, "ok")), 10)
        apart = settings_for(config_text(tmp_path / "b.db", free_port(), URL, extra_server="worker = false"), tmp_path)
        async with running_server(apart) as base:
            status, detail = await _readyz(base)
            assert status == 200 and "no live delivery worker registered" in detail
            stop = asyncio.Event()
            worker = asyncio.create_task(run_worker(apart, stop=stop))
            await wait_for(lambda: _is(_readyz(base), (200, "ok; 1 live delivery worker registered")), 10)
            stop.set()
            await worker
            status, detail = await _readyz(base)  # it deregistered as it stopped
            assert status == 200 and "no live delivery worker registered" in detail

    asyncio.run(main())


async def _is(value: Any, expected: Any) -> bool:
    return await value == expected
