"""PostgreSQL only: several instances on one queue, migrations racing at start-up, and `headrace serve`
end to end with a postgresql:// database."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from headrace.models import Attempt, Delivered, NewEvent, Route
from headrace.store.base import Finished, StoreError
from headrace.store.queries import migrations
from headrace.windmill.emulator import EmulatorThread, running_emulator
from tests.helpers import (
    config_text,
    deployed_windmill,
    dodo_body,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)

psycopg = pytest.importorskip("psycopg")
from headrace.store.postgres import PostgresStore, redact  # noqa: E402

pytestmark = pytest.mark.postgres


ROUTES = [Route("a", "http://wm/api/w/acme")]


def event(webhook_id: str) -> NewEvent:
    return NewEvent("dodo", webhook_id, "payment.succeeded", 1000, 1000.0, b"{}", {})


async def opened(*stores: PostgresStore) -> None:
    await asyncio.gather(*(store.open() for store in stores))


def test_two_instances_never_claim_the_same_delivery(pg_dsn: str):
    """Two stores (two instances, each with its own pool) and several workers each drain one queue at once."""
    total = 300

    async def main() -> None:
        one, two = PostgresStore(pg_dsn, pool_size=4), PostgresStore(pg_dsn, pool_size=4)
        await opened(one, two)
        try:
            for i in range(total):
                await one.ingest(event(f"msg_{i}"), ROUTES)
            claims: dict[str, list[int]] = {}
            tokens = itertools.count()

            async def worker(store: PostgresStore, name: str) -> None:
                mine = claims.setdefault(name, [])
                while True:
                    token = f"{name}#{next(tokens)}"
                    batch = await store.claim("a", 7, token, now=1000.0, lease_until=5000.0)
                    if not batch:
                        return
                    mine.extend(c.delivery_id for c in batch)
                    for c in batch:
                        attempt = Attempt(started_at=1000.0, duration_ms=1.0, http_status=201)
                        assert await store.finish(Finished(c, token, attempt, Delivered(c.job_id)), 1000.0)

            await asyncio.gather(
                *(worker(store, f"{label}{n}") for store, label in ((one, "one-"), (two, "two-")) for n in range(4))
            )
            claimed = [d for ids in claims.values() for d in ids]
            assert len(claimed) == len(set(claimed)) == total  # each delivery once, none left behind
            by_instance = {
                label: sum(len(ids) for name, ids in claims.items() if name.startswith(label))
                for label in ("one-", "two-")
            }
            assert all(by_instance.values()), by_instance  # both instances did share the work
            assert (await two.queue_stats()).depth == {}
            assert (await one.stats()).deliveries == {}  # nothing pending, in flight or failed
            assert (await one.table_counts())["deliveries"] == total
        finally:
            await asyncio.gather(one.close(), two.close())

    asyncio.run(main())


def test_a_claim_skips_rows_another_instance_holds(pg_dsn: str):
    """While one instance's claim transaction holds rows, another claims the rest without waiting for it."""

    async def main() -> None:
        store = PostgresStore(pg_dsn)
        await store.open()
        try:
            for i in range(4):
                await store.ingest(event(f"msg_{i}"), ROUTES)
            async with await psycopg.AsyncConnection.connect(pg_dsn) as other, other.transaction():
                cur = await other.execute(
                    "SELECT id FROM deliveries ORDER BY id LIMIT 2 FOR UPDATE"  # as a claim in progress would
                )
                held = {row[0] for row in await cur.fetchall()}
                got = await asyncio.wait_for(store.claim("a", 10, "t", 1000.0, 1060.0), 5)
                assert len(got) == 2 and not held & {c.delivery_id for c in got}
        finally:
            await store.close()

    asyncio.run(main())


def test_instances_starting_together_migrate_once(pg_dsn: str):
    async def main() -> None:
        stores = [PostgresStore(pg_dsn, pool_size=1) for _ in range(4)]
        await opened(*stores)
        await asyncio.gather(*(store.close() for store in stores))

    asyncio.run(main())
    with psycopg.connect(pg_dsn) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [number for number, _, _ in migrations("postgresql")]


def test_unreachable_server_is_a_clear_error_without_the_password():
    dsn = f"postgresql://headrace:s3cret-pw@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"

    async def main() -> None:
        with pytest.raises(StoreError) as caught:
            await PostgresStore(dsn).open()
        message = str(caught.value)
        assert "cannot open PostgreSQL database headrace@127.0.0.1" in message and "s3cret-pw" not in message

    asyncio.run(main())
    assert "s3cret" not in redact(dsn)


@pytest.fixture
def emulator():
    with running_emulator(deployed_windmill()) as emu:
        yield emu


def test_serve_with_postgresql_delivers_to_windmill(tmp_path: Path, pg_dsn: str, emulator: EmulatorThread):
    """`headrace serve` with a postgresql:// database: a signed event in, one Windmill job out, state in PG."""
    text = config_text(tmp_path / "unused.db", free_port(), emulator.url())
    text = text.replace(f'database = "sqlite:///{tmp_path / "unused.db"}"', f'database = "{pg_dsn}"')
    assert pg_dsn in text
    settings = settings_for(text, tmp_path)

    async def main() -> dict[str, Any]:
        import aiohttp

        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            body = dodo_body("payment.succeeded")
            status, answer = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_pg"))
            assert status == 202, answer
            status, again = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_pg"))
            assert (status, again["status"], again["event_id"]) == (200, "duplicate", answer["event_id"])
            for _ in range(200):
                async with http.get(f"{base}/api/v1/events/msg_pg") as response:
                    data: dict[str, Any] = await response.json()
                if data["status"] == "delivered":
                    return data
                await asyncio.sleep(0.05)
            raise AssertionError(f"not delivered: {data}")

    data = asyncio.run(main())
    [delivery] = data["deliveries"]
    assert delivery["windmill_job_id"] == delivery["job_id"]
    assert list(emulator.state.jobs) == [delivery["job_id"]]
    assert not (tmp_path / "unused.db").exists()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT status FROM deliveries").fetchall() == [("delivered",)]


def test_connections_lost_to_a_server_restart_are_replaced(pg_dsn: str):
    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=4)
        await store.open()
        try:
            await asyncio.gather(*(store.get_event(str(i)) for i in range(8)))  # several pooled connections
            with psycopg.connect(pg_dsn, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            with pytest.raises(psycopg.OperationalError):
                await store.next_due()  # the operation under way when the connection broke fails ...
            assert not (await store.ingest(event("msg_after"), ROUTES)).duplicate  # ... and the next one works
            assert store.describe()["connections"] == 1
        finally:
            await store.close()

    asyncio.run(main())


def test_an_operation_cancelled_mid_query_leaves_the_store_usable(pg_dsn: str):
    async def main() -> None:
        store = PostgresStore(pg_dsn, pool_size=2)
        await store.open()
        try:
            await store.ingest(event("msg_c"), ROUTES)
            [claimed] = await store.claim("a", 1, "t", 1000.0, 1060.0)
            attempt = Attempt(started_at=1000.0, duration_ms=1.0, http_status=201)
            async with await psycopg.AsyncConnection.connect(pg_dsn) as other, other.transaction():
                await other.execute("SELECT id FROM deliveries FOR UPDATE")  # the finish below waits on this
                finish = asyncio.create_task(store.finish(Finished(claimed, "t", attempt, Delivered("j")), 1001.0))

                async def finish_waits_on_the_lock() -> bool:
                    found = await (await other.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")).fetchone()
                    return found is not None and found[0] > 0

                await wait_for(finish_waits_on_the_lock, 10)
                finish.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await finish
            assert await store.finish(Finished(claimed, "t", attempt, Delivered("j")), 1002.0)
            detail = await store.get_event("msg_c")
            assert detail is not None and [a.number for a in detail.deliveries[0].attempt_rows] == [1]
        finally:
            await store.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://headrace:s3cret-pw@[::1/nowhere",  # unparsable: libpq quotes the whole URL
        "postgresql://headrace:s3cret-pw@127.0.0.1/nowhere?bogus=1",
    ],
)
def test_a_bad_url_is_a_clear_error_without_the_password(dsn: str):
    async def main() -> None:
        with pytest.raises(StoreError, match=r"\[server\] database: not a PostgreSQL URL") as caught:
            await PostgresStore(dsn).open()
        assert "s3cret" not in str(caught.value)

    asyncio.run(main())
