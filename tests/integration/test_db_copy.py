"""`headrace db copy`: SQLite -> PostgreSQL -> SQLite with everything kept, and ingest working on the copy."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from headrace.cli import main
from headrace.models import (
    Attempt,
    Cancelled,
    Delivered,
    EventFilter,
    EventRow,
    Failed,
    JobUpdate,
    NewEvent,
    NewTestDelivery,
    Rejection,
    Retry,
    Route,
    TestDelivery,
    job_id_for,
)
from headrace.store.base import Finished
from headrace.store.core import Store
from headrace.store.sqlite import SQLiteStore
from headrace.store.sqlite_file import marker_path
from tests.helpers import config_text, free_port

pytestmark = pytest.mark.postgres
TARGET = "http://127.0.0.1:8000/api/w/acme"


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def config_for(tmp_path: Path, name: str, database: str) -> Path:
    path = tmp_path / f"{name}.toml"
    text = config_text(tmp_path / "x.db", free_port())
    path.write_text(text.replace(f'"sqlite:///{tmp_path / "x.db"}"', f'"{database}"'))
    return path


def event(webhook_id: str, at: float) -> NewEvent:
    body = b'{"type": "payment.succeeded", "data": {"amount": 100}, "bytes": "\\u00e9"}'
    return NewEvent("dodo", webhook_id, "payment.succeeded", 1000, at, body, {"webhook-id": webhook_id})


async def fill(store: Store) -> None:
    """A little of everything: delivered with a job outcome, retried, failed and replayed, cancelled,
    unrouted, a failed job re-run, pending, and rejections."""
    routes = [Route("a", TARGET), Route("b", TARGET)]
    for n in range(6):
        await store.ingest(event(f"msg_{n}", 1000.0 + n), routes)
    await store.ingest(event("msg_unrouted", 1010.0), [])
    ok = Attempt(started_at=1001.0, duration_ms=2.5, http_status=201, response_excerpt="job", request_payload='{"x":1}')
    claimed = await store.claim("a", 6, "t", 1020.0, 1080.0)
    outcomes = [
        Delivered(claimed[0].job_id),
        Delivered(claimed[1].job_id),
        Retry(at=1100.0, reason="HTTP 503"),
        Failed("HTTP 404"),
        Cancelled(),
        Delivered(claimed[5].job_id),
    ]
    for c, outcome in zip(claimed, outcomes, strict=True):
        await store.finish(Finished(c, "t", ok, outcome), 1021.0)
    await store.record_job(JobUpdate(claimed[0].delivery_id, "success", completed_at=1030.0, excerpt="7"), 1030.0)
    await store.record_job(JobUpdate(claimed[1].delivery_id, "success", completed_at=1021.0, excerpt="ok"), 1021.0)
    failure = JobUpdate(claimed[5].delivery_id, "failure", completed_at=1031.0, excerpt="E", rerun=True, target=TARGET)
    await store.record_job(failure, 1031.0)
    await store.replay(claimed[3].event_id, [Route("a", TARGET)], 1040.0)
    for n in range(3):
        await store.reject(Rejection("dodo", "bad_signature", 401, f"detail {n}", "127.0.0.1", 1050.0 + n))
    for n, state in enumerate(["open", None]):  # the console's test deliveries: one of a stored event, one of a sample
        test = NewTestDelivery(
            "a", claimed[0].event_id if n == 0 else None, f"input {n}", "payment.succeeded", "builtin:payment",
            f"test-job-{n}", TARGET, '{"amount": 1}' if n == 0 else None, 201 if n == 0 else None,
            "delivered" if n == 0 else "failed", "" if n == 0 else "HTTP 404", state, 1060.0 + n,
        )  # fmt: skip
        test_id = await store.insert_test_delivery(test)
        if state == "open":
            await store.record_test_job(test_id, JobUpdate(0, "success", completed_at=1070.0, excerpt="42"), 1070.0)


async def snapshot(store: Store) -> tuple[list[EventRow | None], list[Rejection], Any, list[TestDelivery]]:
    listed = await store.list_events(EventFilter(limit=1000))
    details = [await store.get_event(str(e.id)) for e in listed]
    tests = await store.list_test_deliveries(None, 100)
    return details, await store.list_rejections(None, 1000), (await store.stats(), store.deployment_id), tests


async def opened(store: Store, action: Any) -> Any:
    await store.open()
    try:
        return await action(store)
    finally:
        await store.close()


async def searched(store: Store) -> list[str]:
    return [e.webhook_id for e in await store.list_events(EventFilter(q="msg_3"))]


async def ingest_works(store: Store) -> tuple[int, str]:
    """A new event on the copy: no id conflict, a job id of the copied deployment."""
    result = await store.ingest(event("msg_after_copy", 2000.0), [Route("a", TARGET)])
    detail = await store.get_event("msg_after_copy")
    assert detail is not None and store.deployment_id is not None
    assert detail.deliveries[0].job_id == job_id_for(store.deployment_id, TARGET, "dodo", "msg_after_copy", "a", 0)
    await store.reject(Rejection("dodo", "bad_signature", 401, "after", "127.0.0.1", 2001.0))
    [c] = await store.claim("a", 1, "t-after", 2002.0, 2060.0)  # the new delivery, with a fresh attempt id next
    await store.finish(Finished(c, "t-after", Attempt(2002.0, 1.0, 500), Retry(2100.0, "HTTP 500")), 2002.0)
    return result.event_id, detail.deliveries[0].job_id


def test_copy_sqlite_to_postgresql_and_back(tmp_path: Path, pg_dsn: str):
    from headrace.store.postgres import PostgresStore

    source_db = tmp_path / "source.db"
    asyncio.run(opened(SQLiteStore(source_db), fill))
    before = asyncio.run(opened(SQLiteStore(source_db), snapshot))

    code, out, err = run_cli(
        "db", "copy", "--to", pg_dsn, "-c", str(config_for(tmp_path, "s", f"sqlite:///{source_db}"))
    )
    assert code == 0, err
    assert "7 events" in out and "3 rejections" in out and "2 test deliveries" in out and str(before[2][1]) in out
    assert [t.job_state for t in before[3]] == [None, "success"]  # both test deliveries, newest first
    assert asyncio.run(opened(PostgresStore(pg_dsn), snapshot)) == before  # every row, id and deployment id
    assert asyncio.run(opened(PostgresStore(pg_dsn), searched)) == ["msg_3"]  # and indexed for payload search

    # A second copy into the now non-empty target is refused and changes nothing.
    code, _, err = run_cli("db", "copy", "--to", pg_dsn, "-c", str(config_for(tmp_path, "s", f"sqlite:///{source_db}")))
    assert code == 2 and "is not empty" in err
    assert asyncio.run(opened(PostgresStore(pg_dsn), snapshot)) == before

    # And back: PostgreSQL -> a new SQLite file.
    back_db = tmp_path / "back.db"
    code, out, err = run_cli("db", "copy", "--to", f"sqlite:///{back_db}", "-c", str(config_for(tmp_path, "p", pg_dsn)))
    assert code == 0, err
    assert asyncio.run(opened(SQLiteStore(back_db), snapshot)) == before
    assert asyncio.run(opened(SQLiteStore(back_db), searched)) == ["msg_3"]
    assert str(before[2][1]) in marker_path(back_db).read_text()

    # Ingest works on both copies: no `Key (id)=(1) already exists`, ids continue after the copied ones.
    max_id = max(e.id for e in before[0] if e is not None)
    on_pg = asyncio.run(opened(PostgresStore(pg_dsn), ingest_works))
    on_sqlite = asyncio.run(opened(SQLiteStore(back_db), ingest_works))
    assert on_pg == on_sqlite and on_pg[0] == max_id + 1
