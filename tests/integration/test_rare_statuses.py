"""`events --status unrouted|cancelled` reads the few events that can have the status (migration 0011 SQLite,
0012 PostgreSQL), not all history: an unrouted event is marked when stored with no route and unmarked when a
replay routes it; a cancelled one has a cancelled delivery. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from headrace.models import EventFilter
from headrace.store.core import Store
from headrace.store.sqlite import SQLiteStore
from tests.helpers import sqlite_before
from tests.integration import test_store_contract as contract

make_store = contract.make_store  # the contract suite's fixture: SQLite and PostgreSQL
event, routes, run = contract.event, contract.routes, contract.run


async def listed(store: Store, status: Any) -> list[str]:
    return [e.webhook_id for e in await store.list_events(EventFilter(status=status, limit=100))]


def test_an_unrouted_event_is_listed_until_a_replay_routes_it(make_store):
    async def scenario(store: Store) -> None:
        alone = await store.ingest(event("msg_alone"), [])
        await store.ingest(event("msg_routed"), routes("a"))
        assert await listed(store, "unrouted") == ["msg_alone"]
        await store.replay(alone.event_id, [], 2000.0)  # still nothing routes it: still unrouted
        assert await listed(store, "unrouted") == ["msg_alone"]
        await store.replay(alone.event_id, routes("a"), 2000.0)  # the config now routes its type
        assert await listed(store, "unrouted") == []
        assert await listed(store, "pending") == ["msg_routed", "msg_alone"]
        again = await store.ingest(event("msg_alone"), [])  # Dodo sends it again: a duplicate changes nothing
        assert again.duplicate and await listed(store, "unrouted") == []

    run(make_store, scenario)


def test_a_cancelled_event_is_found_through_its_cancelled_delivery(make_store):
    async def scenario(store: Store) -> None:
        await store.ingest(event("msg_cancel"), routes("a1", "b1"))
        await store.ingest(event("msg_half"), routes("a2", "b2"))
        for name, state in (("a1", "cancelled"), ("b1", "cancelled"), ("a2", "cancelled"), ("b2", "open")):
            await contract.put_in_state(store, name, state, 1001.0)
        assert await listed(store, "cancelled") == ["msg_cancel"]
        assert await listed(store, "delivered") == ["msg_half"]

    run(make_store, scenario)


def test_the_migration_marks_the_old_unrouted_events(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = sqlite_before(path, "0011")
    for event_id in (1, 2, 3):
        conn.execute(
            "INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers)"
            " VALUES (?, 'dodo', ?, 'payment.succeeded', 1, 1.0, x'7b7d', '{}')",
            (event_id, f"msg_{event_id}"),
        )
    conn.execute(
        "INSERT INTO deliveries (event_id, destination, generation, job_id, status, next_attempt_at, created_at,"
        " updated_at) VALUES (2, 'a', 0, 'j', 'delivered', 1, 1, 1)"
    )
    conn.commit()
    conn.close()

    async def scenario() -> list[str]:
        store = SQLiteStore(path)
        await store.open()
        try:
            return await listed(store, "unrouted")
        finally:
            await store.close()

    assert asyncio.run(scenario()) == ["msg_3", "msg_1"]
