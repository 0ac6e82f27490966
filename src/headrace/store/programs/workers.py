"""Worker processes: registering one, its heartbeat (which also reaps the dead), retiring one with its leases, and
counting the live ones."""

from __future__ import annotations

from headrace.store.base import Beat, Reaped, WorkerInfo, lease_prefix
from headrace.store.programs.steps import Program, all_rows, one, run


def register_worker(worker: WorkerInfo, now: float) -> Program[None]:
    yield run("register_worker", {"worker_id": worker.id, "host": worker.host, "pid": worker.pid, "now": now})


def heartbeat(worker_id: str, now: float, dead_before: float, lease_until: float | None = None) -> Program[Beat]:
    """Beat (renewing a live worker's delivery leases to `lease_until`: an attempt may outlast its claim's lease),
    then reap: release the leases of every worker whose last beat is before `dead_before`."""
    alive = (yield run("beat_worker", {"worker_id": worker_id, "now": now})) > 0
    if alive and lease_until is not None:
        yield run("renew_worker_leases", {"prefix": lease_prefix(worker_id), "lease_until": lease_until})
    reaped = []
    for row in (yield all_rows("dead_workers", {"dead_before": dead_before, "worker_id": worker_id})):
        reaped.append((yield from retire_worker(str(row["id"]), now, float(row["heartbeat_at"]))))
    return Beat(alive, reaped)


def retire_worker(worker_id: str, now: float, heartbeat_at: float | None = None) -> Program[Reaped]:
    """Hand back every delivery and job lease `worker_id` holds, due now, and delete its row."""
    deliveries = yield run("release_worker_deliveries", {"prefix": lease_prefix(worker_id), "now": now})
    jobs = yield run("release_worker_jobs", {"worker_id": worker_id, "now": now})
    yield run("delete_worker", {"worker_id": worker_id})
    return Reaped(worker_id, int(deliveries), int(jobs), heartbeat_at)


def live_workers(since: float) -> Program[int]:
    row = yield one("live_workers", {"since": since})
    return 0 if row is None else int(row["n"])
