"""Windmill jobs after a delivery: leasing the ones due for a look, recording what Windmill said (and queueing a
re-run of a failed one), and a delivery's latest generation."""

from __future__ import annotations

import json

from headrace.models import JobUpdate, OpenJob, Route
from headrace.store import rows
from headrace.store.base import StoreError
from headrace.store.programs.steps import Program, all_rows, one, run


def lease_due_jobs(limit: int, now: float, lease_until: float, owner: str | None = None) -> Program[list[OpenJob]]:
    """Take up to `limit` jobs due for a look, in id order; their next check moves to `lease_until`, so
    another tracker leaves them alone while this one asks Windmill (`owner`: the worker, so its leases are
    released if it dies)."""
    params = {"limit": limit, "now": now, "lease_until": lease_until, "owner": owner}
    leased = yield all_rows("lease_due_jobs", params)
    if not leased:
        return []
    ids = json.dumps(sorted(int(row["id"]) for row in leased))
    return [rows.open_job(row) for row in (yield all_rows("open_jobs", {"ids": ids}))]


def record_job(update: JobUpdate, now: float, deployment_id: str) -> Program[str | None]:
    """Store one look at a job; for a failure with `rerun`, queue a new generation and return its job id."""
    if update.state == "open":
        yield run("job_still_open", {"delivery_id": update.delivery_id, "next_check_at": update.next_check_at})
        return None
    rerun = update.rerun and update.state == "failure"
    # Only a re-run needs the job's row (its event and generation); any other outcome is one UPDATE, which
    # changes nothing when the job was recorded already (by another tracker, or another instance).
    row = (yield one("open_job", {"delivery_id": update.delivery_id})) if rerun else None
    if rerun and row is None:
        return None  # recorded already (another tracker got there first)
    if (yield run("job_done", rows.job_done_params(update, now))) == 0:
        return None  # another instance recorded it between our read and our update
    if row is None:
        return None
    job = rows.open_job(row)
    latest = yield from latest_generation(job.event_id, job.destination)
    if latest is not None and latest != job.generation:
        return None  # replayed meanwhile: that newer generation is the re-run
    if not update.target:
        raise StoreError(f"a re-run of delivery {job.delivery_id} needs its destination's target (JobUpdate.target)")
    route = Route(job.destination, update.target)
    params = rows.delivery_params(
        deployment_id, job.event_id, job.source, job.webhook_id, route, job.generation + 1, now
    )
    yield run("insert_rerun", {**params, "job_reruns": job.reruns + 1})
    return str(params["job_id"])


def latest_generation(event_id: int, destination: str) -> Program[int | None]:
    row = yield one("latest_generation", {"event_id": event_id, "destination": destination})
    return None if row is None or row["generation"] is None else int(row["generation"])
