"""Test deliveries in the store (migration 0007), on SQLite and PostgreSQL: stored apart from events, so no
status, count, claim, replay or job look ever sees one; only the newest KEEP are kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.models import EventFilter, JobUpdate, NewTestDelivery
from headrace.store import test_deliveries
from headrace.store.core import Store
from tests.integration.test_store_contract import FACTORIES, MARKS, event, routes, run


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(FACTORIES)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return lambda: FACTORIES[request.param](request, tmp_path)


def new_test(job_id: str, event_id: int | None = 1, state: str | None = "open") -> NewTestDelivery:
    return NewTestDelivery(
        destination="payments",
        event_id=event_id,
        input="event 1 (msg_1)",
        event_type="payment.succeeded",
        script="edited script",
        job_id=job_id,
        url="http://127.0.0.1:8000/api/w/acme/jobs/run/p/f/dodo/on_payment",
        payload='{"amount": 1}',
        http_status=201 if state else 400,
        outcome="delivered" if state else "failed",
        detail="" if state else "refused",
        job_state=state,  # type: ignore[arg-type]
        created_at=1000.0,
    )


def test_a_test_delivery_is_stored_apart_and_its_job_recorded_once(make_store: Callable[[], Store]) -> None:
    async def scenario(store: Store) -> None:
        await store.ingest(event("msg_1"), routes("payments"))
        before = await store.stats()
        test_id = await store.insert_test_delivery(new_test("job-a"))
        other = await store.insert_test_delivery(new_test("job-b", None, None))
        found = await store.get_test_delivery(test_id)
        assert found is not None and found.job_state == "open" and found.job_checked_at == 1000.0
        assert found.payload == '{"amount": 1}' and found.event_id == 1 and found.job_checks == 0
        assert (await store.stats()).deliveries == before.deliveries  # not a delivery
        [listed] = await store.list_events(EventFilter())
        assert listed.status == "pending"  # the event's own delivery, untouched by the test
        assert [t.id for t in await store.list_test_deliveries(None, 10)] == [other, test_id]
        assert [t.id for t in await store.list_test_deliveries(1, 10)] == [test_id]
        assert await store.record_test_job(test_id, JobUpdate(test_id, "open"), 1001.0)
        done = JobUpdate(test_id, "success", completed_at=1002.0, duration_ms=12.5, excerpt='{"ok": true}')
        assert await store.record_test_job(test_id, done, 1002.0)
        late = JobUpdate(test_id, "failure", excerpt="late")
        assert not await store.record_test_job(test_id, late, 1003.0)  # an outcome is never overwritten
        found = await store.get_test_delivery(test_id)
        assert found is not None and found.job_state == "success" and found.job_checks == 2
        assert found.job_duration_ms == 12.5 and found.job_excerpt == '{"ok": true}'
        assert await store.get_test_delivery(999) is None
        claimed = await store.claim("payments", 10, "t", 2000.0, 2100.0)
        assert [c.webhook_id for c in claimed] == ["msg_1"]  # the event's own delivery, never a test
        assert await store.lease_due_jobs(10, 10**10, 10**10 + 60) == []  # the tracker never sees a test

    run(make_store, scenario)


def test_only_the_newest_tests_are_kept(make_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(test_deliveries, "KEEP", 3)

    async def scenario(store: Store) -> None:
        ids = [await store.insert_test_delivery(new_test(f"job-{n}")) for n in range(5)]
        assert [t.id for t in await store.list_test_deliveries(None, 10)] == ids[:1:-1]

    run(make_store, scenario)
