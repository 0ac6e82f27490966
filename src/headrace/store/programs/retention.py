"""Retention: deleting old finished events (with their deliveries and attempts, as `models.prunable` allows) and
old refused-webhook rows, in small batches."""

from __future__ import annotations

import json
from typing import Any

from headrace.models import prunable
from headrace.store.base import PruneBatch
from headrace.store.programs.steps import Program, all_rows, run


def prune_events(
    cutoff: float, after: tuple[float, int] | None, limit: int, include_failed: bool
) -> Program[PruneBatch]:
    """Delete the events received before `cutoff` that `models.prunable` allows, from the next `limit` such
    events after `after` (oldest first), with their deliveries and attempts. An event some delivery of which
    changed at or after `cutoff` (a recent replay, a late job outcome) is kept until that is old too."""
    start_at, start_id = after if after is not None else (float("-inf"), 0)
    found = yield all_rows(
        "prune_candidates", {"cutoff": cutoff, "after_at": start_at, "after_id": start_id, "limit": limit}
    )
    if not found:
        return PruneBatch(0, 0, None)
    ids = [int(r["id"]) for r in found]
    by_event: dict[int, list[Any]] = {event_id: [] for event_id in ids}
    for d in (yield all_rows("prune_candidate_deliveries", {"ids": json.dumps(ids)})):
        by_event[int(d["event_id"])].append(d)
    doomed = [event_id for event_id, ds in by_event.items() if _prunable(ds, cutoff, include_failed)]
    if doomed:
        doomed_ids = {"ids": json.dumps(doomed)}
        yield run("prune_attempts", doomed_ids)
        yield run("prune_deliveries", doomed_ids)
        yield run("prune_events", doomed_ids)
    last = found[-1]
    done = len(found) < limit
    return PruneBatch(len(found), len(doomed), None if done else (float(last["received_at"]), int(last["id"])))


def _prunable(deliveries: list[Any], cutoff: float, include_failed: bool) -> bool:
    if any(float(d["updated_at"]) >= cutoff for d in deliveries):
        return False
    newest: dict[str, Any] = {}
    for d in deliveries:
        if d["destination"] not in newest or int(d["generation"]) > int(newest[d["destination"]]["generation"]):
            newest[d["destination"]] = d
    return prunable(
        [(d["status"], d["job_state"]) for d in newest.values()],
        [(d["status"], d["job_state"]) for d in deliveries],
        include_failed=include_failed,
    )


def prune_rejections(cutoff: float, limit: int) -> Program[int]:
    """Delete up to `limit` of the oldest rejection rows recorded before `cutoff`; returns how many."""
    return int((yield run("prune_rejections", {"cutoff": cutoff, "limit": limit})))
