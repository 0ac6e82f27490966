"""PostgreSQL group commit (store/postgres_group.py): concurrent ingests share transactions, a bad one fails
alone, a broken connection fails only its own batch, and two instances racing on the same events agree."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from headrace.models import IngestResult, NewEvent, Route

psycopg = pytest.importorskip("psycopg")
from headrace.store.postgres import PostgresStore  # noqa: E402

pytestmark = pytest.mark.postgres

ROUTES = [Route("a", "http://wm/api/w/acme"), Route("b", "http://wm/api/w/acme")]


def event(webhook_id: str, timestamp: int = 1000) -> NewEvent:
    return NewEvent("dodo", webhook_id, "payment.succeeded", timestamp, 1000.0, b'{"n": 1}', {"webhook-id": webhook_id})


def counts(dsn: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()
        deliveries = conn.execute("SELECT count(*) FROM deliveries").fetchone()
    assert events is not None and deliveries is not None
    return int(events[0]), int(deliveries[0])


def test_concurrent_ingests_share_a_few_commits(pg_dsn: str):
    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=4)
        await store.open()
        try:
            results = await asyncio.gather(*(store.ingest(event(f"msg_{i}"), ROUTES) for i in range(64)))
            described = store.describe()
        finally:
            await store.close()
        assert [r.deliveries for r in results] == [2] * 64 and not any(r.duplicate for r in results)
        assert len({r.event_id for r in results}) == 64
        assert described["group_writes"] == 64
        assert 1 <= described["group_commits"] <= 4, described  # one COMMIT for many, not one each
        assert counts(pg_dsn) == (64, 128)
        with psycopg.connect(pg_dsn) as conn:  # each answer names its own event
            stored = dict(conn.execute("SELECT webhook_id, id FROM events").fetchall())
        assert all(stored[f"msg_{i}"] == r.event_id for i, r in enumerate(results))

    asyncio.run(main())


def test_a_statement_the_server_refuses_fails_only_its_own_ingest(pg_dsn: str):
    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=4)
        await store.open()
        try:
            calls = [store.ingest(event(f"msg_{i}", timestamp=2**70 if i == 13 else 1000), ROUTES) for i in range(40)]
            results: list[Any] = await asyncio.gather(*calls, return_exceptions=True)
            described = store.describe()
            after = await store.ingest(event("msg_after"), ROUTES)  # the store goes on as before
        finally:
            await store.close()
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        assert failed == [13]
        assert isinstance(results[13], psycopg.errors.NumericValueOutOfRange)  # bigint out of range, its own
        assert all(isinstance(r, IngestResult) and r.deliveries == 2 for i, r in enumerate(results) if i != 13)
        assert described["group_commits"] > 1  # the batch was split to find the bad one
        assert not after.duplicate
        assert counts(pg_dsn) == (40, 80)  # 39 from the batch and the one after: nothing of the refused one

    asyncio.run(main())


def test_the_same_event_twice_in_one_batch_is_stored_once(pg_dsn: str):
    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=2)
        await store.open()
        try:
            same = event("msg_x")
            first, second = await asyncio.gather(store.ingest(same, ROUTES), store.ingest(same, ROUTES))
            assert store.describe()["group_commits"] == 1  # really in one transaction
        finally:
            await store.close()
        assert (first.duplicate, second.duplicate) == (False, True)
        assert first.event_id == second.event_id and (first.deliveries, second.deliveries) == (2, 0)
        assert counts(pg_dsn) == (1, 2)

    asyncio.run(main())


def test_a_connection_lost_mid_batch_fails_that_batch_only(pg_dsn: str):
    """The batch waits on a table lock; its connection is killed: each of its ingests fails (nothing of it
    stored, so the sender's retry stores it), and the next ingests work on a new connection."""

    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=3)
        await store.open()
        try:
            admin = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
            async with admin, admin.transaction():
                await admin.execute("LOCK TABLE events IN EXCLUSIVE MODE")
                batch = [asyncio.ensure_future(store.ingest(event(f"msg_{i}"), ROUTES)) for i in range(10)]
                for _ in range(100):  # until the batch's INSERT is waiting for the lock
                    await asyncio.sleep(0.05)
                    waiting = await (
                        await admin.execute(
                            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND application_name = 'headrace' AND wait_event_type = 'Lock'"
                        )
                    ).fetchall()
                    if waiting:
                        break
                assert len(waiting) == 1  # one batch, on one connection
                await admin.execute("SELECT pg_terminate_backend(%s)", [waiting[0][0]])
                results = await asyncio.gather(*batch, return_exceptions=True)
            assert all(isinstance(r, psycopg.OperationalError) for r in results), results
            assert counts(pg_dsn) == (0, 0)
            again = await asyncio.gather(*(store.ingest(event(f"msg_{i}"), ROUTES) for i in range(10)))
            assert not any(r.duplicate for r in again)
            assert counts(pg_dsn) == (10, 20)
        finally:
            await store.close()

    asyncio.run(main())


def test_two_instances_ingesting_the_same_events_at_once_store_each_once(pg_dsn: str):
    """Two stores (two `serve` processes) get the same 60 events in opposite orders, as Dodo's retries and a
    load balancer can make happen: their batches wait on each other (and may deadlock, which the server
    breaks and the split retries), yet each event is stored once and both answers name the same row."""
    total = 60

    async def main() -> None:
        one, two = PostgresStore(pg_dsn, pool_size=3), PostgresStore(pg_dsn, pool_size=3)
        await asyncio.gather(one.open(), two.open())
        try:

            async def send(store: PostgresStore, order: list[int]) -> dict[int, IngestResult]:
                results: dict[int, IngestResult] = {}

                async def client(ids: list[int]) -> None:
                    for i in ids:
                        results[i] = await store.ingest(event(f"msg_{i}"), ROUTES)

                await asyncio.gather(*(client(order[k::6]) for k in range(6)))  # 6 concurrent senders each
                return results

            forward = list(range(total))
            a, b = await asyncio.gather(send(one, forward), send(two, forward[::-1]))
        finally:
            await asyncio.gather(one.close(), two.close())
        for i in range(total):
            assert a[i].event_id == b[i].event_id
            assert sorted([a[i].duplicate, b[i].duplicate]) == [False, True]
        assert counts(pg_dsn) == (total, 2 * total)

    asyncio.run(main())


def test_a_commit_the_server_refuses_fails_its_batch_and_nothing_is_answered_before_the_commit(pg_dsn: str):
    """The COMMIT goes out in the same flight as the batch's last statements. A deferred trigger refuses one
    event at COMMIT (after a pause, so an answer given before the COMMIT ended would find nothing stored):
    that event fails alone, every other one is answered only once it is stored."""

    def refuse_at_commit() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " PERFORM pg_sleep(0.05);"
                " IF NEW.webhook_id = 'msg_13' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NULL; END $$"
            )
            conn.execute(
                "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON events DEFERRABLE INITIALLY DEFERRED"
                " FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()"
            )

    stored_when_answered: dict[int, bool] = {}

    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=4)
        await store.open()
        refuse_at_commit()
        watcher = psycopg.connect(pg_dsn, autocommit=True)  # looks at once, from the done-callback

        def seen(i: int, future: asyncio.Future[IngestResult]) -> None:
            if not future.exception():
                found = watcher.execute("SELECT 1 FROM events WHERE webhook_id = %s", [f"msg_{i}"]).fetchone()
                stored_when_answered[i] = found is not None

        try:
            calls = [asyncio.ensure_future(store.ingest(event(f"msg_{i}"), ROUTES)) for i in range(20)]
            for i, call in enumerate(calls):
                call.add_done_callback(lambda f, i=i: seen(i, f))
            results: list[Any] = await asyncio.gather(*calls, return_exceptions=True)
            described = store.describe()
        finally:
            watcher.close()
            await store.close()
        failed = [i for i, r in enumerate(results) if isinstance(r, BaseException)]
        assert failed == [13]
        assert isinstance(results[13], psycopg.errors.RaiseException) and "refused at commit" in str(results[13])
        assert described["group_commits"] > 1  # the batch failed whole, then was split
        assert stored_when_answered == {i: True for i in range(20) if i != 13}
        assert counts(pg_dsn) == (19, 38)

    asyncio.run(main())


def test_a_refused_statement_sent_with_the_commit_fails_only_its_own_ingest(pg_dsn: str):
    """The deliveries' INSERT has no result to wait for, so it goes out with the COMMIT: when the server
    refuses it, nothing of the batch is committed, and the split finds the one ingest it belongs to."""

    def refuse_bad_deliveries() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION refuse_delivery() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " RAISE EXCEPTION 'no such destination'; END $$"
            )
            conn.execute(
                "CREATE TRIGGER refuse_delivery BEFORE INSERT ON deliveries FOR EACH ROW"
                " WHEN (NEW.destination = 'bad') EXECUTE FUNCTION refuse_delivery()"
            )

    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=4)
        await store.open()
        refuse_bad_deliveries()
        try:
            bad = [Route("bad", "http://wm/api/w/acme")]
            calls = [store.ingest(event(f"msg_{i}"), bad if i == 7 else ROUTES) for i in range(16)]
            results: list[Any] = await asyncio.gather(*calls, return_exceptions=True)
            after = await store.ingest(event("msg_after"), ROUTES)  # the lane's connection goes on
        finally:
            await store.close()
        assert [i for i, r in enumerate(results) if isinstance(r, BaseException)] == [7]
        assert isinstance(results[7], psycopg.errors.RaiseException)
        assert not after.duplicate
        assert counts(pg_dsn) == (16, 32)  # 15 of the batch and the one after, nothing of the refused one

    asyncio.run(main())


def test_a_program_that_raises_mid_transaction_leaves_nothing_committed(pg_dsn: str):
    """Only the COMMIT stores anything: a program that raises after its statements ran is rolled back (no
    sync may end the transaction as a commit), and the connection, pipeline still open, serves the next."""
    from headrace.store.postgres_group import run_programs
    from headrace.store.programs import Program, run

    queries = {"add": "INSERT INTO t (v) VALUES (%(v)s)"}

    def add_then_fail(v: int) -> Program[None]:
        yield run("add", {"v": v})
        raise RuntimeError("the program gave up")

    def add(v: int) -> Program[int]:
        return (yield run("add", {"v": v}))

    async def main() -> None:
        conn = await psycopg.AsyncConnection.connect(pg_dsn, autocommit=True)
        async with conn:
            await conn.execute("CREATE TABLE t (v integer)")
            async with conn.pipeline() as pipeline:
                with pytest.raises(RuntimeError, match="gave up"):
                    await run_programs(conn, queries, [add(1), add_then_fail(2)], pipeline=pipeline)
                assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                assert await run_programs(conn, queries, [add(3)], pipeline=pipeline) == [1]
            stored = await (await conn.execute("SELECT v FROM t")).fetchall()
        assert stored == [(3,)]

    asyncio.run(main())
