"""Ingest (an event and its deliveries, or a duplicate found), refused webhooks, and a
delivery's turn at the worker: claimed under a lease, finished with its attempt, or released; and when the next
one is due."""

from __future__ import annotations

from collections.abc import Sequence

from headrace.dodo.keys import once_per_key
from headrace.models import Claimed, IngestResult, NewEvent, Rejection, Route, event_time, may_be_late_copy
from headrace.store import rows
from headrace.store.base import Finished, StoreError, lease_prefix
from headrace.store.programs.steps import Program, all_rows, many, one, run

# -- ingest ------------------------------------------------------------------------------------------------


def ingest(event: NewEvent, routes: Sequence[Route], deployment_id: str) -> Program[IngestResult]:
    """The event and its deliveries. Its search terms are not computed here: a trigger queues the new event
    for the search index in this transaction, and the indexer writes its row after the commit.

    By event key (headrace.dodo.keys): a synthesized event (origin reconcile) for a key the source already has
    is not stored (the answer names the stored one, as for a duplicate webhook-id); a real event that is a late
    copy of a synthesized one (models.may_be_late_copy) is stored with `duplicate_of` and no delivery."""
    params = rows.event_params(event)
    key = {"source": event.source, "event_key": event.event_key}
    if event.origin == "reconcile" and event.event_key is not None:
        twin = yield one("find_key_twin", key)
        if twin is not None:
            return IngestResult(event_id=int(twin["id"]), duplicate=True, deliveries=0)
    if may_be_late_copy(event):
        since = 0.0 if once_per_key(event.event_type) else event_time(event)
        twin = yield one("find_reconciled_twin", {**key, "occurred_at": since})
        if twin is not None:
            routes = []
            params["duplicate_of"] = int(twin["id"])
            params["note"] = rows.duplicate_note(int(twin["id"]), str(event.event_key))
    row = yield one("insert_event", params)
    if row is None:  # a duplicate (PostgreSQL's ON CONFLICT waited for the first one's transaction to end)
        existing = yield one("find_event_id", params)
        if existing is None:
            raise StoreError(f"event {event.source}/{event.webhook_id} conflicted but cannot be found")
        return IngestResult(event_id=int(existing["id"]), duplicate=True, deliveries=0)
    event_id = int(row["id"])
    if not routes:  # unrouted: found by `--status unrouted` through its own index
        yield run("mark_unrouted", {"event_id": event_id})
    else:
        yield many(
            "insert_delivery",
            [
                rows.delivery_params(deployment_id, event_id, event.source, event.webhook_id, r, 0, event.received_at)
                for r in routes
            ],
        )
    return IngestResult(event_id=event_id, duplicate=False, deliveries=len(routes), duplicate_of=params["duplicate_of"])


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
    if (yield run("finish_delivery", update)) == 0:
        return False  # the lease was lost (expired and taken by another worker)
    yield run("insert_attempt", attempt)
    return True


def release(claimed: Claimed, token: str, now: float) -> Program[None]:
    yield run("release_delivery", {"delivery_id": claimed.delivery_id, "token": token, "now": now})


def earliest(query: str) -> Program[float | None]:
    """next_due and next_job_check: the earliest time in column `due`, or None when nothing waits."""
    row = yield one(query)
    return None if row is None or row["due"] is None else float(row["due"])
