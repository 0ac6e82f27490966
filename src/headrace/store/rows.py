"""Database rows to models and outcomes to columns, shared by every SQL dialect."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from headrace import models
from headrace.models import (
    AttemptRow,
    Cancelled,
    Claimed,
    Delivered,
    DeliveryRow,
    EventRow,
    EventStatus,
    Failed,
    JobFailures,
    JobUpdate,
    NewEvent,
    OpenJob,
    Rejection,
    Retry,
    Route,
    job_id_for,
)
from headrace.policy import ERROR_EXCERPT, JOB_EXCERPT, RESPONSE_EXCERPT
from headrace.store.base import Finished

Row = Mapping[str, Any]
FIRST_JOB_CHECK = 1.0  # seconds after the job was created, the tracker's first look


def excerpt(text: str, limit: int = RESPONSE_EXCERPT) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more characters)"


def event_params(event: NewEvent) -> dict[str, Any]:
    """Parameters of insert_event (and find_event_id)."""
    return {
        "source": event.source,
        "webhook_id": event.webhook_id,
        "event_type": event.event_type,
        "webhook_timestamp": event.webhook_timestamp,
        "received_at": event.received_at,
        "body": event.body,
        "headers": json.dumps(event.headers),
        "event_key": event.event_key,
        "origin": event.origin,
        "duplicate_of": None,
        "note": event.note,
    }


def duplicate_note(twin_id: int, event_key: str) -> str:
    """The timeline's line for a real event stored as a late copy of a synthesized one."""
    return (
        f"not delivered: a late copy of event {twin_id} (event key {event_key}), which `headrace reconcile` "
        "synthesized and delivered"
    )


def delivery_params(
    deployment_id: str, event_id: int, source: str, webhook_id: str, route: Route, generation: int, now: float
) -> dict[str, Any]:
    """Parameters of insert_delivery: one delivery of one event to one destination, with its job id."""
    return {
        "event_id": event_id,
        "destination": route.destination,
        "generation": generation,
        "job_id": job_id_for(deployment_id, route.target, source, webhook_id, route.destination, generation),
        "now": now,
    }


def rejection_params(rejection: Rejection) -> dict[str, Any]:
    return {
        "source": rejection.source,
        "reason": rejection.reason,
        "status": rejection.status,
        "detail": rejection.detail,
        "remote": rejection.remote,
        "at": rejection.at,
    }


def claimed(row: Row) -> Claimed:
    return Claimed(
        delivery_id=int(row["id"]),
        event_id=int(row["event_id"]),
        destination=str(row["destination"]),
        generation=int(row["generation"]),
        job_id=str(row["job_id"]),
        attempts=int(row["attempts"]),
        source=str(row["source"]),
        webhook_id=str(row["webhook_id"]),
        event_type=str(row["event_type"]),
        body=bytes(row["body"]),
        origin=row["origin"],
    )


def finish_params(finished: Finished, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Column values for the delivery update and the attempt insert of one finished attempt."""
    outcome = finished.outcome
    next_attempt_at: float | None = None
    windmill_job_id: str | None = None
    job: dict[str, Any] = {
        "job_state": None,
        "job_created_at": None,
        "job_next_check_at": None,
        "job_completed_at": None,
        "job_duration_ms": None,
        "job_excerpt": None,
    }
    match outcome:
        case Delivered(job_id=job_id):
            status, kind, detail, windmill_job_id = "delivered", "delivered", "", job_id
            job.update(
                job_state="open", job_created_at=finished.attempt.started_at, job_next_check_at=now + FIRST_JOB_CHECK
            )
        case Retry(at=at, reason=reason):
            status, kind, detail, next_attempt_at = "pending", "retry", reason, at
        case Failed(reason=reason):
            status, kind, detail = "failed", "failed", reason
        case Cancelled(reason=reason):
            status, kind, detail = "cancelled", "cancelled", reason
    attempt = finished.attempt
    update = {
        "delivery_id": finished.claimed.delivery_id,
        "token": finished.token,
        "status": status,
        "next_attempt_at": next_attempt_at,
        "last_error": "" if kind == "delivered" else excerpt(detail, ERROR_EXCERPT),
        "windmill_job_id": windmill_job_id,
        "payload": attempt.request_payload,
        "now": now,
        **job,
    }
    insert = {
        "delivery_id": finished.claimed.delivery_id,
        "started_at": attempt.started_at,
        "duration_ms": attempt.duration_ms,
        "http_status": attempt.http_status,
        "outcome": kind,
        "detail": excerpt(detail),
        "response_excerpt": excerpt(attempt.response_excerpt),
        "notes": excerpt(attempt.notes),
    }
    return update, insert


def open_job(row: Row) -> OpenJob:
    return OpenJob(
        delivery_id=int(row["id"]),
        event_id=int(row["event_id"]),
        destination=str(row["destination"]),
        generation=int(row["generation"]),
        job_id=str(row["windmill_job_id"] or row["job_id"]),
        checks=int(row["job_checks"]),
        created_at=float(row["job_created_at"] or 0.0),
        reruns=int(row["job_reruns"]),
        source=str(row["source"]),
        webhook_id=str(row["webhook_id"]),
    )


def job_done_params(update: JobUpdate, now: float) -> dict[str, Any]:
    return {
        "delivery_id": update.delivery_id,
        "state": update.state,
        "completed_at": update.completed_at,
        "duration_ms": update.duration_ms,
        "excerpt": excerpt(update.excerpt, JOB_EXCERPT),
        "now": now,
    }


def event(row: Row) -> EventRow:
    return EventRow(
        id=int(row["id"]),
        source=str(row["source"]),
        webhook_id=str(row["webhook_id"]),
        event_type=str(row["event_type"]),
        webhook_timestamp=int(row["webhook_timestamp"]),
        received_at=float(row["received_at"]),
        status=row["status"],
        origin=row["origin"],
    )


def event_detail(row: Row, deliveries: Sequence[Row], attempts: Sequence[Row]) -> EventRow:
    by_delivery: dict[int, list[AttemptRow]] = {}
    for a in attempts:
        by_delivery.setdefault(int(a["delivery_id"]), []).append(
            AttemptRow(
                number=int(a["number"]),
                started_at=float(a["started_at"]),
                duration_ms=float(a["duration_ms"]),
                http_status=None if a["http_status"] is None else int(a["http_status"]),
                outcome=str(a["outcome"]),
                detail=str(a["detail"]),
                response_excerpt=str(a["response_excerpt"]),
                notes=str(a["notes"]),
            )
        )
    delivery_rows = [
        DeliveryRow(
            id=int(d["id"]),
            destination=str(d["destination"]),
            generation=int(d["generation"]),
            job_id=str(d["job_id"]),
            status=d["status"],
            attempts=int(d["attempts"]),
            next_attempt_at=None if d["next_attempt_at"] is None else float(d["next_attempt_at"]),
            last_error=str(d["last_error"]),
            windmill_job_id=d["windmill_job_id"],
            payload=d["payload"],
            created_at=float(d["created_at"]),
            updated_at=float(d["updated_at"]),
            attempt_rows=by_delivery.get(int(d["id"]), []),
            job_state=d["job_state"],
            job_created_at=optional_float(d["job_created_at"]),
            job_checks=int(d["job_checks"]),
            job_completed_at=optional_float(d["job_completed_at"]),
            job_duration_ms=optional_float(d["job_duration_ms"]),
            job_excerpt=str(d["job_excerpt"]),
            job_reruns=int(d["job_reruns"]),
        )
        for d in deliveries
    ]
    return EventRow(
        id=int(row["id"]),
        source=str(row["source"]),
        webhook_id=str(row["webhook_id"]),
        event_type=str(row["event_type"]),
        webhook_timestamp=int(row["webhook_timestamp"]),
        received_at=float(row["received_at"]),
        status=event_status(delivery_rows),
        body=bytes(row["body"]),
        headers=json.loads(row["headers"]),
        deliveries=delivery_rows,
        origin=row["origin"],
        event_key=row["event_key"],
        duplicate_of=None if row["duplicate_of"] is None else int(row["duplicate_of"]),
        note=str(row["note"]),
    )


def event_status(deliveries: Sequence[DeliveryRow]) -> EventStatus:
    """`models.event_status` over each destination's newest generation."""
    latest: dict[str, DeliveryRow] = {}
    for d in deliveries:
        if d.destination not in latest or d.generation > latest[d.destination].generation:
            latest[d.destination] = d
    return models.event_status((d.status, d.job_state) for d in latest.values())


def rejection(row: Row) -> Rejection:
    return Rejection(
        source=str(row["source"]),
        reason=str(row["reason"]),
        status=int(row["status"]),
        detail=str(row["detail"]),
        remote=str(row["remote"]),
        at=float(row["at"]),
    )


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def job_failures(counts: Row, last: Row) -> JobFailures:
    """One destination's failed jobs (`job_failures_since`) and the latest of them (`delivery_job`)."""
    return JobFailures(
        destination=str(counts["destination"]),
        count=int(counts["n"]),
        last_at=float(counts["last_at"]),
        last_job_id=last["windmill_job_id"],
        last_excerpt=str(last["job_excerpt"]),
        last_event_id=int(last["event_id"]),
        last_webhook_id=str(last["webhook_id"]),
        last_event_type=str(last["event_type"]),
    )
