"""Job ids unique to a deployment and a Windmill target (Windmill's job-id check is global), deterministic
for retries and restarts, and unchanged for deliveries stored before deployment ids existed."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path

import pytest

from headrace.models import JOB_ID_NAMESPACE, Attempt, NewEvent, Retry, Route, job_id_for
from headrace.store.base import Finished
from headrace.store.core import Store
from headrace.store.queries import migrations
from headrace.store.sqlite import SQLiteStore
from headrace.store.sqlite_io import _statements

ACME = "http://127.0.0.1:8000/api/w/acme"


def event(webhook_id: str = "msg_1") -> NewEvent:
    return NewEvent("dodo", webhook_id, "payment.succeeded", 1000, 1000.0, b"{}", {})


def legacy_job_id(source: str, webhook_id: str, destination: str, generation: int) -> str:
    """How job ids were derived before deployment ids (headrace up to schema version 2)."""
    return str(uuid.uuid5(JOB_ID_NAMESPACE, f"{source}\x1f{webhook_id}\x1f{destination}\x1f{generation}"))


async def first_job_id(store: Store, webhook_id: str = "msg_1", target: str = ACME) -> str:
    await store.ingest(event(webhook_id), [Route("payments", target)])
    detail = await store.get_event(webhook_id)
    assert detail is not None
    return detail.deliveries[0].job_id


def test_two_deployments_with_the_same_names_get_different_job_ids(tmp_path: Path):
    async def main() -> None:
        staging, production = SQLiteStore(tmp_path / "staging.db"), SQLiteStore(tmp_path / "production.db")
        await staging.open()
        await production.open()
        try:
            assert staging.deployment_id != production.deployment_id
            one, two = await first_job_id(staging), await first_job_id(production)
            assert one != two
            assert one == job_id_for(str(staging.deployment_id), ACME, "dodo", "msg_1", "payments", 0)
            assert one != legacy_job_id("dodo", "msg_1", "payments", 0)
        finally:
            await staging.close()
            await production.close()

    asyncio.run(main())


def test_the_target_is_part_of_the_job_id():
    args = ("dodo", "msg_1", "payments", 0)
    same = job_id_for("dep", ACME, *args)
    assert same == job_id_for("dep", ACME, *args)  # deterministic
    assert same != job_id_for("dep", "http://127.0.0.1:8000/api/w/other", *args)  # another workspace
    assert same != job_id_for("dep", "http://127.0.0.1:9000/api/w/acme", *args)  # another Windmill
    assert same != job_id_for("dep2", ACME, *args)


def test_one_deployment_keeps_its_job_ids_across_retries_and_restarts(tmp_path: Path):
    path = tmp_path / "h.db"

    async def before() -> tuple[str, str | None]:
        store = SQLiteStore(path)
        await store.open()
        try:
            job = await first_job_id(store)
            [c] = await store.claim("payments", 1, "t1", 1000.0, 1060.0)
            assert c.job_id == job
            attempt = Attempt(started_at=1000.0, duration_ms=1.0, http_status=503)
            await store.finish(Finished(c, "t1", attempt, Retry(at=1001.0, reason="HTTP 503")), 1000.0)
            return job, store.deployment_id
        finally:
            await store.close()

    async def after(job: str, deployment_id: str | None) -> None:
        store = SQLiteStore(path)
        await store.open()
        try:
            assert store.deployment_id == deployment_id
            [c] = await store.claim("payments", 1, "t2", 1002.0, 1060.0)
            assert c.job_id == job  # the retry after the restart reuses the stored id
        finally:
            await store.close()

    job, deployment_id = asyncio.run(before())
    asyncio.run(after(job, deployment_id))


def _v2_sqlite_with_a_delivery(path: Path, job_id: str) -> None:
    conn = sqlite3.connect(path)
    for number, _, sql in migrations("sqlite"):
        if number <= 2:
            for statement in _statements(sql):
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.execute(
        "INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers)"
        " VALUES (1, 'dodo', 'msg_old', 'payment.succeeded', 1000, 1000.0, X'7B7D', '{}')"
    )
    conn.execute(
        "INSERT INTO deliveries (id, event_id, destination, generation, job_id, status, next_attempt_at,"
        " created_at, updated_at) VALUES (1, 1, 'payments', 0, ?, 'pending', 1000.0, 1000.0, 1000.0)",
        (job_id,),
    )
    conn.commit()
    conn.close()


async def _old_row_keeps_its_id(store: Store, legacy: str) -> None:
    await store.open()
    try:
        assert store.deployment_id is not None
        [c] = await store.claim("payments", 1, "t", 2000.0, 2060.0)
        assert c.job_id == legacy  # the id Windmill may already have: never re-derived
        [replayed] = await store.replay(c.event_id, [Route("payments", ACME)], 2001.0)
        assert replayed == job_id_for(store.deployment_id, ACME, "dodo", "msg_old", "payments", 1)
    finally:
        await store.close()


def test_a_delivery_stored_before_migration_0003_keeps_its_job_id(tmp_path: Path):
    legacy = legacy_job_id("dodo", "msg_old", "payments", 0)
    _v2_sqlite_with_a_delivery(tmp_path / "h.db", legacy)
    asyncio.run(_old_row_keeps_its_id(SQLiteStore(tmp_path / "h.db"), legacy))
    first = asyncio.run(SQLiteStore(tmp_path / "h.db").inspect()).deployment_id
    assert first is not None and asyncio.run(SQLiteStore(tmp_path / "h.db").inspect()).deployment_id == first


@pytest.mark.postgres
def test_postgresql_keeps_stored_job_ids_and_scopes_new_ones(pg_dsn: str):
    import psycopg

    from headrace.store.postgres import PostgresStore

    legacy = legacy_job_id("dodo", "msg_old", "payments", 0)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for number, name, sql in migrations("postgresql"):
            if number <= 2:
                conn.execute(sql)
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name))
        conn.execute(
            "INSERT INTO events (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers)"
            " VALUES ('dodo', 'msg_old', 'payment.succeeded', 1000, 1000.0, '\\x7b7d', '{}')"
        )
        conn.execute(
            "INSERT INTO deliveries (event_id, destination, generation, job_id, status, next_attempt_at,"
            " created_at, updated_at) VALUES (1, 'payments', 0, %s, 'pending', 1000.0, 1000.0, 1000.0)",
            (legacy,),
        )
    asyncio.run(_old_row_keeps_its_id(PostgresStore(pg_dsn), legacy))
