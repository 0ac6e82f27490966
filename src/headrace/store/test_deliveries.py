"""Store programs for test deliveries (migration 0007): insert one, read them, record a look at a test job.

A table of its own, so nothing that reads or works on deliveries (event statuses, the worker, the tracker,
replays, metrics) ever sees a test. The newest `KEEP` are kept; older ones are deleted on insert.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from headrace.models import JobUpdate, NewTestDelivery, TestDelivery
from headrace.store.programs import Program, all_rows, one, run
from headrace.store.rows import Row, optional_float

KEEP = 500


def insert(test: NewTestDelivery) -> Program[int]:
    params = dataclasses.asdict(test)
    params["job_checked_at"] = test.created_at
    row = yield one("insert_test_delivery", params)
    if row is None:
        raise RuntimeError("inserting a test delivery returned no id")
    yield run("prune_test_deliveries", {"keep": KEEP})
    return int(row["id"])


def get(test_id: int) -> Program[TestDelivery | None]:
    row = yield one("get_test_delivery", {"id": test_id})
    return None if row is None else _test(row)


def listed(event_id: int | None, limit: int) -> Program[list[TestDelivery]]:
    found = yield all_rows("list_test_deliveries", {"event_id": event_id, "limit": limit})
    return [_test(row) for row in found]


def record_job(test_id: int, update: JobUpdate, now: float) -> Program[bool]:
    """One look at a test's job (an open state counts the look); False when the test was no longer open."""
    params: dict[str, Any] = {
        "id": test_id,
        "job_state": update.state,
        "now": now,
        "job_completed_at": update.completed_at,
        "job_duration_ms": update.duration_ms,
        "job_excerpt": update.excerpt,
    }
    return bool((yield run("record_test_job", params)))


def _test(row: Row) -> TestDelivery:
    return TestDelivery(
        id=int(row["id"]),
        destination=str(row["destination"]),
        event_id=None if row["event_id"] is None else int(row["event_id"]),
        input=str(row["input"]),
        event_type=str(row["event_type"]),
        script=str(row["script"]),
        job_id=str(row["job_id"]),
        url=str(row["url"]),
        payload=None if row["payload"] is None else str(row["payload"]),
        http_status=None if row["http_status"] is None else int(row["http_status"]),
        outcome=row["outcome"],
        detail=str(row["detail"]),
        job_state=row["job_state"],
        job_checks=int(row["job_checks"]),
        job_checked_at=optional_float(row["job_checked_at"]),
        job_completed_at=optional_float(row["job_completed_at"]),
        job_duration_ms=optional_float(row["job_duration_ms"]),
        job_excerpt=str(row["job_excerpt"]),
        created_at=float(row["created_at"]),
    )
