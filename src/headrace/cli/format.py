"""Human-readable output of the `headrace` commands: plain functions from serialized data to lines.

The commands fetch and serialize (the same dictionaries `--json` prints); these functions only lay
them out, so a command is a few lines and the layout can be tested without a store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from headrace.policy import QUOTE_EXCERPT

SHOWN_RESULT = 600  # characters of a job's stored result or error shown under a delivery
SHOWN_PAYLOAD = 1000  # characters of the transformed payload shown

_JOB_LABELS = {"open": "running or queued (headrace is polling)", "unknown": "outcome unknown"}


def event_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no events match"]
    lines = [f"{'ID':>7}  {'RECEIVED':24}  {'STATUS':9}  {'TYPE':32}  WEBHOOK-ID"]
    for r in rows:
        lines.append(
            f"{r['id']:>7}  {r['received_at']:24}  {r['status']:9}  {r['type'] or '(no type)':32}  {r['webhook_id']}"
            + _origin_mark(r)
        )
    return lines


def _origin_mark(row: dict[str, Any]) -> str:
    """Beside an event synthesized by `headrace reconcile` (not sent by Dodo): a mark, like the console's badge."""
    return "  [reconcile]" if row.get("origin") == "reconcile" else ""


def rejection_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["no rejections"]
    return [
        f"{r['at']}  {r['status']}  {r['source']:12}  {r['reason']:28}  {r['remote']:15}  {r['detail']}" for r in rows
    ]


def event_timeline(data: dict[str, Any]) -> list[str]:
    """One event's story: its deliveries, each with its job and its attempts."""
    lines = [
        f"event {data['id']}  {data['type'] or '(no type)'}  [{data['status']}]",
        f"  source {data['source']}  webhook-id {data['webhook_id']}  received {data['received_at']}"
        + _origin_mark(data),
    ]
    if data.get("note"):
        lines.append(f"  {data['note']}")
    if data.get("duplicate_of") is not None:
        lines.append(f"  duplicate of event {data['duplicate_of']}: stored, not delivered")
    elif not data["deliveries"]:
        lines.append("  unrouted: no enabled destination subscribes to this event type")
    for d in data["deliveries"]:
        lines.extend(_delivery(d))
    return lines


def _delivery(d: dict[str, Any]) -> Iterable[str]:
    yield ""
    yield f"  -> {d['destination']} (generation {d['generation']})  [{d['status']}]  job_id {d['job_id']}"
    if d["windmill_url"]:
        yield f"     Windmill: {d['windmill_url']}"
    job = d.get("job")
    if job:
        took = f" in {job['duration_ms'] / 1000:.2f} s" if job["duration_ms"] is not None else ""
        rerun = f" (re-run #{job['rerun_number']} after a failed job)" if job["rerun_number"] else ""
        yield f"     job: {_JOB_LABELS.get(job['state'], job['state'])}{took}{rerun}"
        if job["excerpt"]:
            prefix = "error" if job["state"] == "failure" else "result"
            yield f"        {prefix}: " + job["excerpt"][:SHOWN_RESULT].replace("\n", "\n        ")
    if d["status"] == "pending" and d["next_attempt_at"]:
        yield f"     next attempt at {d['next_attempt_at']}"
    for a in d["attempt_log"]:
        status = a["http_status"] if a["http_status"] is not None else "---"
        line = f"     #{a['number']} {a['started_at']}  HTTP {status}  {a['duration_ms']:>8.1f} ms  {a['outcome']}"
        yield line + (f": {a['detail']}" if a["detail"] else "")
        if a.get("notes"):
            yield f"        note: {a['notes']}"
        if a["response_excerpt"] and a["outcome"] != "delivered":
            yield f"        response: {a['response_excerpt'][:QUOTE_EXCERPT]}"
    if d["payload"] is not None:
        yield "     transformed payload: " + json.dumps(d["payload"], ensure_ascii=False)[:SHOWN_PAYLOAD]


def replay_summary(results: list[dict[str, Any]]) -> list[str]:
    total = sum(len(r["job_ids"]) for r in results)
    lines = [f"replayed {len(results)} event(s) as {total} new deliveries (new job ids); a running server sends them"]
    lines.extend(f"  event {r['event_id']}: no enabled destination matches it now" for r in results if not r["job_ids"])
    return lines
