"""Event keys, origins, late copies and the alive record on every store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from headrace.dodo import samples
from headrace.dodo.keys import body_key
from headrace.models import EventFilter, NewEvent, Rejection, Route
from headrace.ops.outages import RETRY_WINDOW, Outage, find
from headrace.store.core import Store
from headrace.store.queries import migrations
from headrace.store.sqlite import SQLiteStore
from tests.helpers import sqlite_before
from tests.integration import test_store_contract as contract

make_store = contract.make_store  # the contract suite's fixture: SQLite and PostgreSQL
run = contract.run

TARGET = "http://127.0.0.1:8000/api/w/acme"
ROUTES = [Route("payments", TARGET)]


def body(event_type: str, **data: Any) -> bytes:
    parsed = json.loads(samples.path(event_type).read_text("utf-8"))
    parsed["data"].update(data)
    return json.dumps(parsed).encode()


def event(webhook_id: str, raw: bytes, at: float, *, origin: str = "dodo", occurred: float | None = None) -> NewEvent:
    return NewEvent(
        source="dodo",
        webhook_id=webhook_id,
        event_type=json.loads(raw)["type"],
        webhook_timestamp=int(at),
        received_at=at,
        body=raw,
        headers={},
        event_key=body_key(raw),
        occurred_at=at if occurred is None else occurred,
        origin=origin,  # type: ignore[arg-type]
        note="synthesized" if origin == "reconcile" else "",
    )


PAID = body("payment.succeeded", payment_id="pay_1")


def test_a_real_event_after_its_reconciled_twin_is_stored_but_not_delivered(make_store):
    async def scenario(store: Store) -> None:
        recon = await store.ingest(event("hr_recon_1", PAID, 1000.0, origin="reconcile", occurred=500.0), ROUTES)
        assert (recon.duplicate, recon.deliveries) == (False, 1)
        # Dodo's late retry of the message headrace missed: it happened (500) before reconcile stored its copy
        late = await store.ingest(event("msg_late", PAID, 2000.0, occurred=500.0), ROUTES)
        assert (late.duplicate, late.deliveries, late.duplicate_of) == (False, 0, recon.event_id)
        shown = await store.get_event(str(late.event_id))
        assert shown is not None and shown.deliveries == [] and shown.duplicate_of == recon.event_id
        assert f"late copy of event {recon.event_id}" in shown.note and shown.origin == "dodo"
        assert shown.event_key == "payment.succeeded:pay_1"
        synthesized = await store.get_event("hr_recon_1")
        assert synthesized is not None and synthesized.origin == "reconcile" and synthesized.note == "synthesized"
        # the same webhook-id again is still the old duplicate (Dodo's redelivery of one message)
        again = await store.ingest(event("msg_late", PAID, 2001.0, occurred=500.0), ROUTES)
        assert (again.duplicate, again.event_id) == (True, late.event_id)

    run(make_store, scenario)


def test_an_event_that_happens_once_is_a_late_copy_whenever_dodo_made_its_body(make_store):
    """Dodo may build a resent message's body at send time: for a payment's success (once per payment) the
    body's time does not matter; for a subscription's state (which recurs) it does."""

    async def scenario(store: Store) -> None:
        recon = await store.ingest(event("hr_recon_1", PAID, 1000.0, origin="reconcile", occurred=500.0), ROUTES)
        resent = await store.ingest(event("msg_resent", PAID, 5000.0, occurred=4000.0), ROUTES)
        assert (resent.deliveries, resent.duplicate_of) == (0, recon.event_id)

    run(make_store, scenario)


def test_real_events_with_one_key_are_all_delivered_and_a_new_occurrence_too(make_store):
    async def scenario(store: Store) -> None:
        first = await store.ingest(event("msg_a", PAID, 1000.0), ROUTES)
        second = await store.ingest(event("msg_b", PAID, 1001.0), ROUTES)  # two distinct real messages
        assert (first.deliveries, second.deliveries, second.duplicate_of) == (1, 1, None)
        paused = body("subscription.paused", subscription_id="sub_1")
        await store.ingest(event("hr_recon_p", paused, 3000.0, origin="reconcile", occurred=2000.0), ROUTES)
        later = await store.ingest(event("msg_p2", paused, 9000.0, occurred=5000.0), ROUTES)  # paused again later
        assert (later.deliveries, later.duplicate_of) == (1, None)

    run(make_store, scenario)


def test_reconcile_stores_nothing_for_a_key_headrace_has(make_store):
    async def scenario(store: Store) -> None:
        real = await store.ingest(event("msg_a", PAID, 1000.0), ROUTES)
        synthesized = await store.ingest(event("hr_recon_x", PAID, 2000.0, origin="reconcile"), ROUTES)
        assert (synthesized.duplicate, synthesized.event_id, synthesized.deliveries) == (True, real.event_id, 0)
        assert await store.get_event("hr_recon_x") is None
        assert await store.stored_keys("dodo", ["payment.succeeded:pay_1", "payment.failed:pay_1"]) == {
            "payment.succeeded:pay_1"
        }
        assert await store.stored_keys("other", ["payment.succeeded:pay_1"]) == set()

    run(make_store, scenario)


def test_events_are_listed_with_their_origin_and_filtered_by_it(make_store):
    async def scenario(store: Store) -> None:
        await store.ingest(event("msg_a", PAID, 1000.0), ROUTES)
        await store.ingest(event("hr_recon_r", body("refund.succeeded"), 1001.0, origin="reconcile"), ROUTES)
        every = await store.list_events(EventFilter())
        assert [(e.webhook_id, e.origin) for e in every] == [("hr_recon_r", "reconcile"), ("msg_a", "dodo")]
        assert [e.webhook_id for e in await store.list_events(EventFilter(origin="reconcile"))] == ["hr_recon_r"]
        assert [e.webhook_id for e in await store.list_events(EventFilter(origin="dodo", status="pending"))] == [
            "msg_a"
        ]
        found = await store.list_events(EventFilter(origin="reconcile", q="hr_recon_r"))
        assert [e.webhook_id for e in found] in ([], ["hr_recon_r"])  # the search index may not have it yet

    run(make_store, scenario)


def test_alive_spans_refusals_and_reconciled_windows_make_the_outage_report(make_store):
    async def scenario(store: Store) -> None:
        h = 3600.0
        first = await store.start_alive("a:1", 0.0, -1.0)
        await store.beat_alive(first, 10 * h)
        second = await store.start_alive("a:2", 10 * h + RETRY_WINDOW + 60, -1.0)  # down longer than Dodo retries
        assert await store.alive_spans(0.0) == [(0.0, 10 * h), (10 * h + RETRY_WINDOW + 60,) * 2]
        await store.beat_alive(second, 90 * h)
        for i in range(0, 40, 5):  # 401 every 5 h from 50 h to 85 h: a wrong secret
            await store.reject(Rejection("dodo", "bad_signature", 401, "no secret matched", "", (50 + i) * h))
        now = 90 * h
        outages = await find(store, now)
        assert outages == [
            Outage("down", 10 * h, 10 * h + RETRY_WINDOW + 60),
            Outage("refused", 50 * h, 85 * h, "dodo"),
        ]
        await store.record_reconciled("dodo", 10 * h, 20 * h, now)
        assert await find(store, now) == [Outage("refused", 50 * h, 85 * h, "dodo")]
        # With a second source configured, reconciling dodo alone leaves the time headrace was down reported.
        assert Outage("down", 10 * h, 10 * h + RETRY_WINDOW + 60) in await find(store, now, ["dodo", "shop2"])
        await store.record_reconciled("shop2", 10 * h, 20 * h, now)
        assert await find(store, now, ["dodo", "shop2"]) == [Outage("refused", 50 * h, 85 * h, "dodo")]
        await store.ingest(event("msg_ok", PAID, 70 * h), ROUTES)  # something was accepted meanwhile
        assert await find(store, now) == []

    run(make_store, scenario)


def test_the_migration_keys_old_rows_by_the_python_rule(tmp_path: Path):
    path = tmp_path / "old.db"
    conn = sqlite_before(path, "0010")
    rows = [(1, "msg_1", PAID), (2, "msg_2", body("dispute.opened")), (3, "msg_3", b'{"type": "x"}')]
    for event_id, webhook_id, raw in rows:
        conn.execute(
            "INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers)"
            " VALUES (?, 'dodo', ?, 't', 1, 1.0, ?, '{}')",
            (event_id, webhook_id, raw),
        )
    conn.commit()
    conn.close()

    async def scenario() -> list[tuple[Any, ...]]:
        store = SQLiteStore(path)
        await store.open()
        await store.key_backlog(batch=2)
        await store.close()
        with sqlite3.connect(path) as db:
            return db.execute("SELECT id, event_key, origin FROM events ORDER BY id").fetchall()

    assert asyncio.run(scenario()) == [
        (1, "payment.succeeded:pay_1", "dodo"),
        (2, "dispute.opened:dis_0NWiJ8rXe5sVbQ2mP7cKd:dispute", "dodo"),
        (3, None, "dodo"),
    ]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM event_keys_pending").fetchone() == (0,)


@pytest.mark.postgres
def test_the_postgresql_migration_keys_old_rows(pg_dsn: str):
    import psycopg

    from headrace.store.postgres import PostgresStore

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for number, name, sql in migrations("postgresql"):
            if name < "0011":
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name))
        conn.execute(
            "INSERT INTO events (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers)"
            " VALUES ('dodo', 'msg_1', 't', 1, 1.0, %s, '{}')",
            (PAID,),
        )

    async def scenario() -> Any:
        store = PostgresStore(pg_dsn)
        await store.open()
        try:
            await store.key_backlog()
            return await store.get_event("msg_1")
        finally:
            await store.close()

    shown = asyncio.run(scenario())
    assert (shown.event_key, shown.origin) == ("payment.succeeded:pay_1", "dodo")


def test_concurrent_ingests_keep_origin_key_and_late_copies(make_store):
    """On PostgreSQL concurrent ingests go out as one batch (group commit, bulk.sql's insert_event): every
    column of the event must go with it."""

    async def scenario(store: Store) -> None:
        bodies = [body("payment.succeeded", payment_id=f"pay_{i}") for i in range(20)]
        recon = await asyncio.gather(
            *(
                store.ingest(event(f"hr_recon_{i}", raw, 1000.0, origin="reconcile", occurred=500.0), ROUTES)
                for i, raw in enumerate(bodies)
            )
        )
        fresh = [body("payment.succeeded", payment_id=f"pay_new_{i}") for i in range(5)]  # no twin: delivered
        late = await asyncio.gather(
            *(store.ingest(event(f"msg_{i}", raw, 2000.0, occurred=500.0), ROUTES) for i, raw in enumerate(bodies)),
            *(store.ingest(event(f"msg_new_{i}", raw, 2000.0, occurred=500.0), ROUTES) for i, raw in enumerate(fresh)),
        )
        assert [r.deliveries for r in recon] == [1] * 20
        assert [(r.deliveries, r.duplicate_of) for r in late] == [(0, r.event_id) for r in recon] + [(1, None)] * 5
        for i in (0, 19):
            shown = await store.get_event(f"hr_recon_{i}")
            assert shown is not None and (shown.origin, shown.event_key) == ("reconcile", f"payment.succeeded:pay_{i}")
            assert shown.note == "synthesized"
            copy = await store.get_event(f"msg_{i}")
            assert copy is not None and copy.duplicate_of == recon[i].event_id and "late copy" in copy.note
        listed = await store.list_events(EventFilter(origin="reconcile", limit=100))
        assert len(listed) == 20

    run(make_store, scenario)
