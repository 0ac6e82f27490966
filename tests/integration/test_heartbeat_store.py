"""Worker registration, heartbeats and reaping in the store, on real SQLite and PostgreSQL (marked `postgres`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from headrace.models import Attempt, Delivered, NewEvent, Route
from headrace.store.base import Finished, Reaped, WorkerInfo
from headrace.store.core import Store
from headrace.store.sqlite import SQLiteStore

TARGET = "http://127.0.0.1:8000/api/w/acme"
A = WorkerInfo("host-a:1:aaaa", "host-a", 1)
B = WorkerInfo("host-b:2:bbbb", "host-b", 2)


def _sqlite(request: pytest.FixtureRequest, tmp: Path) -> Store:
    return SQLiteStore(tmp / "hb.db")


def _postgres(request: pytest.FixtureRequest, tmp: Path) -> Store:
    from headrace.store.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("pg_dsn"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres])])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    factory = _sqlite if request.param == "sqlite" else _postgres
    return lambda: factory(request, tmp_path)


def run(make: Callable[[], Store], scenario: Callable[[Store], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = make()
        await store.open()
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def _events(store: Store, count: int) -> None:
    for i in range(count):
        event = NewEvent("dodo", f"msg_{i}", "payment.succeeded", 1000, 1000.0, b"{}", {})
        await store.ingest(event, [Route("payments", TARGET)])


def _delivered(claimed: Any, token: str, at: float) -> Finished:
    return Finished(claimed, token, Attempt(at, 1.0, 201), Delivered(claimed.job_id))


def test_a_dead_workers_deliveries_and_job_looks_go_to_a_live_worker_at_once(make_store: Callable[[], Store]) -> None:
    async def scenario(store: Store) -> None:
        await _events(store, 3)
        await store.register_worker(A, 1000.0)
        await store.register_worker(B, 1000.0)
        assert await store.live_workers(999.0) == 2
        # A claims two (lease: 65 s), delivers one, and its tracker leases that job's look for a minute
        claimed = await store.claim("payments", 2, f"{A.id}#1", 1000.0, 1065.0, worker=A.id)
        assert len(claimed) == 2
        assert await store.finish(_delivered(claimed[0], f"{A.id}#1", 1000.0), 1000.5) is True
        [job] = await store.lease_due_jobs(10, 1002.0, 1062.0, A.id)
        # B beats; A is silent. 3 s later A is not dead yet, 6 s later it is
        assert (await store.heartbeat(B.id, 1003.0, 1003.0 - 5)).reaped == []
        assert await store.claim("payments", 10, f"{B.id}#1", 1003.0, 1068.0, worker=B.id) != []  # the 3rd
        beat = await store.heartbeat(B.id, 1006.0, 1006.0 - 5)
        assert beat.alive
        assert beat.reaped == [Reaped(A.id, deliveries=1, jobs=1, heartbeat_at=1000.0)]
        assert await store.live_workers(1001.0) == 1
        # the held delivery is due now, not at 1065; the job's look is due now, not at 1062
        [taken] = await store.claim("payments", 10, f"{B.id}#2", 1006.0, 1071.0, worker=B.id)
        assert taken.delivery_id == claimed[1].delivery_id
        [looked] = await store.lease_due_jobs(10, 1006.0, 1066.0, B.id)
        assert looked.delivery_id == job.delivery_id
        # a second reaper finds nothing left to do
        assert (await store.heartbeat(B.id, 1007.0, 1002.0)).reaped == []

    run(make_store, scenario)


def test_a_worker_presumed_dead_comes_back_and_can_neither_claim_nor_record(make_store: Callable[[], Store]) -> None:
    async def scenario(store: Store) -> None:
        await _events(store, 1)
        await store.register_worker(A, 1000.0)
        await store.register_worker(B, 1000.0)
        [mine] = await store.claim("payments", 1, f"{A.id}#1", 1000.0, 1065.0, worker=A.id)
        assert (await store.heartbeat(B.id, 1010.0, 1005.0)).reaped[0].deliveries == 1
        [theirs] = await store.claim("payments", 1, f"{B.id}#1", 1010.0, 1075.0, worker=B.id)
        assert theirs.delivery_id == mine.delivery_id
        # A wakes up: its outcome is refused, it can claim nothing, and its beat tells it it was reaped
        assert await store.finish(_delivered(mine, f"{A.id}#1", 1011.0), 1011.0) is False
        assert await store.claim("payments", 10, f"{A.id}#2", 1011.0, 1076.0, worker=A.id) == []
        assert (await store.heartbeat(A.id, 1011.0, 1006.0)).alive is False
        assert await store.finish(_delivered(theirs, f"{B.id}#1", 1012.0), 1012.0) is True
        event = await store.get_event("msg_0")
        assert event is not None
        assert [(d.status, d.attempts) for d in event.deliveries] == [("delivered", 1)]
        # B's lease survived A's late write: one attempt, B's
        assert [len(d.attempt_rows) for d in event.deliveries] == [1]

    run(make_store, scenario)


def test_a_clean_stop_hands_back_its_work_and_deregisters(make_store: Callable[[], Store]) -> None:
    async def scenario(store: Store) -> None:
        await _events(store, 1)
        await store.register_worker(A, 1000.0)
        await store.claim("payments", 1, f"{A.id}#1", 1000.0, 1065.0, worker=A.id)
        assert await store.retire_worker(A.id, 1001.0) == Reaped(A.id, 1, 0)
        assert await store.live_workers(0.0) == 0
        assert len(await store.claim("payments", 1, "someone", 1001.0, 1066.0)) == 1

    run(make_store, scenario)


def test_a_claim_token_must_carry_its_workers_id(make_store: Callable[[], Store]) -> None:
    async def scenario(store: Store) -> None:
        await store.register_worker(A, 1000.0)
        with pytest.raises(Exception, match="does not start with its worker's id"):
            await store.claim("payments", 1, "other#1", 1000.0, 1065.0, worker=A.id)

    run(make_store, scenario)


def test_a_beat_renews_only_its_own_workers_leases_and_never_shortens_one(make_store: Callable[[], Store]) -> None:
    async def scenario(store: Store) -> None:
        await _events(store, 3)
        for worker in (A, B):
            await store.register_worker(worker, 1000.0)
        held_a = await store.claim("payments", 2, f"{A.id}#1", 1000.0, 1060.0, worker=A.id)
        held_b = await store.claim("payments", 1, f"{B.id}#1", 1000.0, 1060.0, worker=B.id)
        assert len(held_a) == 2 and len(held_b) == 1
        beat = await store.heartbeat(A.id, 1050.0, 900.0, lease_until=1200.0)
        assert beat.alive and beat.reaped == []
        # past the claims' leases: A's deliveries are still held (renewed), B's (not renewed) can be taken
        taken = await store.claim("payments", 3, "thief#1", 1100.0, 5000.0)
        assert [c.delivery_id for c in taken] == [c.delivery_id for c in held_b]
        # a beat asking for less than the lease held does not shorten it
        await store.heartbeat(A.id, 1101.0, 900.0, lease_until=1150.0)
        assert await store.claim("payments", 3, "thief#2", 1170.0, 1230.0) == []
        # without lease_until a beat renews nothing
        await store.heartbeat(A.id, 1102.0, 900.0)
        assert len(await store.claim("payments", 3, "thief#3", 1201.0, 1260.0)) == 2

    run(make_store, scenario)
