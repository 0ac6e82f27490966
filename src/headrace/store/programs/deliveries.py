"""Ingest (an event and its deliveries, or a duplicate found), refused webhooks, and a
delivery's turn at the worker: claimed under a lease, finished with its attempt, or released; and when the next
one is due."""

from __future__ import annotations

from collections.abc import Sequence

from headrace.models import Claimed, IngestResult, NewEvent, Rejection, Route
from headrace.store import rows
from headrace.store.base import Finished, StoreError, lease_prefix
from headrace.store.programs.steps import Program, all_rows, many, one, run

# -- ingest ------------------------------------------------------------------------------------------------


def ingest(event: NewEvent, routes: Sequence[Route], deployment_id: str) -> Program[IngestResult]:
    """The event and its deliveries. Its search terms are not computed here: a trigger queues the new event
    for the search index in this transaction, and the indexer writes its row after the commit."""
    params = rows.event_params(event)
    row = yield one("insert_event", params)
    if row is None:  # a duplicate (PostgreSQL's ON CONFLICT waited for the first one's transaction to end)
        existing = yield one("find_event_id", params)
        if existing is None:
            raise StoreError(f"event {event.source}/{event.webhook_id} conflicted but cannot be found")
        return IngestResult(event_id=int(existing["id"]), duplicate=True, deliveries=0)
    event_id = int(row["id"])
    if routes:
        yield many(
            "insert_delivery",
            [
                rows.delivery_params(deployment_id, event_id, event.source, event.webhook_id, r, 0, event.received_at)
                for r in routes
            ],
        )
    return IngestResult(event_id=event_id, duplicate=False, deliveries=len(routes))


def reject(rejection: Rejection) -> Program[None]:
    yield run("insert_rejection", rows.rejection_params(rejection))


# -- delivery ----------------------------------------------------------------------------------------------


def claim(
    destination: str, limit: int, token: str, now: float, lease_until: float, worker: str | None = None
) -> Program[list[Claimed]]:
    if worker is not None:
        if not token.startswith(lease_prefix(worker)):
            raise StoreError(f"lease token {token!r} does not start with its worker's id {worker!r} and '#'")
        if (yield one("worker_alive", {"worker_id": worker})) is None:
            return []  # presumed dead and reaped: its leases went to others, it takes no more
    params = {"destination": destination, "limit": limit, "token": token, "now": now, "lease_until": lease_until}
    if (yield run("claim_due", params)) == 0:
        return []
    return [rows.claimed(row) for row in (yield all_rows("claimed_by", {"token": token}))]


def finish(finished: Finished, now: float) -> Program[bool]:
    update, attempt = rows.finish_params(finished, now)
    row = yield one("finish_delivery", update)
    if row is None:
        return False  # the lease was lost (expired and taken by another worker)
    yield run("insert_attempt", {**attempt, "number": int(row["attempts"])})
    return True


def release(claimed: Claimed, token: str, now: float) -> Program[None]:
    yield run("release_delivery", {"delivery_id": claimed.delivery_id, "token": token, "now": now})


def earliest(query: str) -> Program[float | None]:
    """next_due and next_job_check: the earliest time in column `due`, or None when nothing waits."""
    row = yield one(query)
    return None if row is None or row["due"] is None else float(row["due"])
