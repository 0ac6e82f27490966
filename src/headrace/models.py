"""Plain data for the pipeline: events, deliveries, attempts and the named outcomes of an attempt."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

# The namespace of deterministic Windmill job ids. Changing it would re-run every replayed job: never do.
JOB_ID_NAMESPACE = uuid.UUID("6f1c9a52-3d0e-4c8b-9a57-2b7e4d1f0c33")
_NAMESPACE_BYTES = JOB_ID_NAMESPACE.bytes

DeliveryStatus = Literal["pending", "in_flight", "delivered", "failed", "cancelled"]
JobState = Literal["open", "success", "failure", "unknown"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = get_args(DeliveryStatus)
JOB_STATES: tuple[JobState, ...] = get_args(JobState)
# The statuses of an event, the one list: the CLI's choices, the API's enum and the console's list come from
# here (or a test pins them to it). The rule that picks one is `event_status` below.
EventStatus = Literal["unrouted", "pending", "delivered", "failed", "job_failed", "cancelled"]
EVENT_STATUSES: tuple[EventStatus, ...] = get_args(EventStatus)
ID_MAX = 2**63 - 1  # the largest id either database stores


def parse_id(text: str) -> int | None:
    """A stored row id written as text (ASCII digits, 0 to ID_MAX), else None. The length is checked before
    any int is built, so a long string of digits costs nothing."""
    if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= ID_MAX:
        return int(text)
    return None


def no_event(key: str) -> str:
    """The one "no such event" message, for an event id or webhook-id nothing is stored under."""
    shown = repr(key) if len(key) <= 80 else f"{key[:40]!r}... ({len(key)} characters)"
    return f"no event {shown} (give the event id or the webhook-id)"


def event_status(latest: Iterable[tuple[DeliveryStatus, JobState | None]]) -> EventStatus:
    """An event's status from (status, job state) of each destination's newest delivery, first match wins:
    unrouted (no delivery), pending (any pending or in flight), failed (any delivery failed), job_failed (a
    Windmill job failed), delivered (any delivered), else cancelled.

    The store's list_events query computes the same in SQL; a contract test checks every combination.
    """
    pairs = list(latest)
    statuses = {status for status, _ in pairs}
    if not pairs:
        return "unrouted"
    if statuses & {"pending", "in_flight"}:
        return "pending"
    if "failed" in statuses:
        return "failed"
    if any(job_state == "failure" for _, job_state in pairs):
        return "job_failed"
    if "delivered" in statuses:
        return "delivered"
    return "cancelled"


# Statuses an event reaches only with a delivery that is open (pending, in flight) or failed, or whose job
# failed: list_events finds them through a partial index over those deliveries, not through all history.
ATTENTION_STATUSES: tuple[EventStatus, ...] = ("pending", "failed", "job_failed")
# What retention removes once older than [server] retention: finished events. Failed ones (a delivery failed
# and was not replayed, or its Windmill job failed) only with `headrace db prune --include-failed`.
FINISHED_STATUSES: tuple[EventStatus, ...] = ("unrouted", "delivered", "cancelled")
FAILED_STATUSES: tuple[EventStatus, ...] = ("failed", "job_failed")


def prunable(
    latest: Iterable[tuple[DeliveryStatus, JobState | None]],
    every: Iterable[tuple[DeliveryStatus, JobState | None]],
    *,
    include_failed: bool = False,
) -> bool:
    """May retention delete an event? `latest`: each destination's newest delivery (as for `event_status`);
    `every`: all its deliveries, of every generation. Never while any delivery is pending or in flight or its
    Windmill job's outcome is still being tracked; then when its status is finished (or failed, if asked)."""
    if any(status in ("pending", "in_flight") or job == "open" for status, job in every):
        return False
    status = event_status(latest)
    return status in FINISHED_STATUSES or (include_failed and status in FAILED_STATUSES)


def job_id_for(deployment_id: str, target: str, source: str, webhook_id: str, destination: str, generation: int) -> str:
    """The Windmill job id of one new delivery: the same on every retry and restart, new per replay, and
    unique to this deployment (its database's id) and to the Windmill it goes to, because Windmill refuses a
    job id used before in any workspace, by any client. Ids stored before deployment ids existed were
    derived from the last four parts alone; they stay as stored, and retries reuse the stored id."""
    key = "\x1f".join((deployment_id, target, source, webhook_id, destination, str(generation)))
    return _uuid5(key)


def _uuid5(name: str) -> str:
    """`str(uuid.uuid5(JOB_ID_NAMESPACE, name))` without building the UUID object (a third of its cost, once per
    ingested delivery); tests/unit/test_job_id_form.py holds it equal to uuid5."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def target_key(base_url: str, workspace: str) -> str:
    """A Windmill instance and workspace, as one string for job ids: `https://wm.example/api/w/acme`."""
    return f"{base_url}/w/{workspace}"


@dataclass(frozen=True)
class Route:
    """One destination an event goes to, with the Windmill (`target_key`) where its jobs are created."""

    destination: str
    target: str


# Where a stored event came from: a webhook Dodo sent, or one `headrace reconcile` synthesized from Dodo's API.
Origin = Literal["dodo", "reconcile"]
ORIGINS: tuple[Origin, ...] = get_args(Origin)


@dataclass(frozen=True)
class NewEvent:
    """A verified webhook (or a synthesized one), before it is stored."""

    source: str
    webhook_id: str
    event_type: str
    webhook_timestamp: int
    received_at: float
    body: bytes
    headers: dict[str, str]
    event_key: str | None = None  # headrace.dodo.keys: the business event the body reports
    occurred_at: float | None = None  # the body's own `timestamp` (when Dodo says the event happened)
    origin: Origin = "dodo"
    note: str = ""  # for the timeline: how the event came to be


def may_be_late_copy(event: NewEvent) -> bool:
    """Whether to look for a stored event that makes this one a duplicate (stored, never delivered): the
    store's find_reconciled_twin query (store.programs.ingest gives it the time from which a twin counts).

    Only a real event is ever a late copy, and only of a *synthesized* one (origin reconcile) with its key:
    Dodo's late retry or dashboard replay of a message headrace missed, which reconcile already delivered.
    For a key that names an event happening once (headrace.dodo.keys.once_per_key: a payment's success, a
    renewal) any such twin makes it a copy. For a state a subscription can enter again, only a twin stored at
    or after the time the real one happened (its body's timestamp, else its webhook timestamp; `event_time`):
    a subscription paused again later is a new event. Two real messages with one key are both delivered —
    Dodo's redelivery of one message reuses its webhook-id and is refused by that; distinct messages with one
    key are distinct occurrences. A synthesized event is never stored for a key headrace already has.
    """
    return event.origin == "dodo" and event.event_key is not None


def event_time(event: NewEvent) -> float:
    """When the event happened, as Dodo says: the body's timestamp, else the webhook-timestamp header."""
    return event.occurred_at if event.occurred_at is not None else float(event.webhook_timestamp)


@dataclass(frozen=True)
class IngestResult:
    event_id: int
    duplicate: bool
    deliveries: int
    duplicate_of: int | None = None  # stored as a late copy of this (synthesized) event: no delivery


@dataclass(frozen=True)
class Rejection:
    source: str
    reason: str
    status: int
    detail: str
    remote: str
    at: float


@dataclass(frozen=True)
class Claimed:
    """A delivery leased to one worker, with what is needed to send it."""

    delivery_id: int
    event_id: int
    destination: str
    generation: int
    job_id: str
    attempts: int  # attempts made before this one
    source: str
    webhook_id: str
    event_type: str
    body: bytes
    origin: Origin = "dodo"


# ---- outcomes of one attempt: the worker records exactly one of these per attempt -------------------


@dataclass(frozen=True)
class Delivered:
    job_id: str


@dataclass(frozen=True)
class Retry:
    at: float
    reason: str


@dataclass(frozen=True)
class Failed:
    reason: str


@dataclass(frozen=True)
class Cancelled:
    reason: str = "the transformation set cancel = true"


Outcome = Delivered | Retry | Failed | Cancelled


@dataclass(frozen=True)
class Attempt:
    """What one try looked like on the wire, recorded with its outcome."""

    started_at: float
    duration_ms: float
    http_status: int | None
    response_excerpt: str = ""
    request_payload: str | None = None  # the transformed JSON sent, for the timeline
    notes: str = ""  # what the timeline should show beside the outcome: schema warnings, an unchecked schema


@dataclass(frozen=True)
class AttemptRow:
    number: int
    started_at: float
    duration_ms: float
    http_status: int | None
    outcome: str
    detail: str
    response_excerpt: str
    notes: str = ""


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    destination: str
    generation: int
    job_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float | None
    last_error: str
    windmill_job_id: str | None
    payload: str | None
    created_at: float
    updated_at: float
    attempt_rows: list[AttemptRow] = field(default_factory=list)
    job_state: JobState | None = None
    job_created_at: float | None = None
    job_checks: int = 0
    job_completed_at: float | None = None
    job_duration_ms: float | None = None
    job_excerpt: str = ""
    job_reruns: int = 0


@dataclass(frozen=True)
class EventRow:
    id: int
    source: str
    webhook_id: str
    event_type: str
    webhook_timestamp: int
    received_at: float
    status: EventStatus
    body: bytes | None = None
    headers: dict[str, str] | None = None
    deliveries: list[DeliveryRow] = field(default_factory=list)
    origin: Origin = "dodo"
    event_key: str | None = None  # only read with the whole event (get_event)
    duplicate_of: int | None = None  # the event this one repeats: stored, never delivered
    note: str = ""


@dataclass(frozen=True)
class EventFilter:
    status: EventStatus | None = None
    event_type: str | None = None  # exact or "prefix.*"
    source: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50
    before_id: int | None = None  # keyset pagination: events with id < before_id
    q: str | None = None  # payload search (headrace.search: ids, emails, words)
    origin: Origin | None = None


# ---- Windmill job outcomes: the tracker polls open jobs and records one JobUpdate per look ------------


@dataclass(frozen=True)
class OpenJob:
    """A delivered job whose outcome is not known yet."""

    delivery_id: int
    event_id: int
    destination: str
    generation: int
    job_id: str  # the Windmill job id (as Windmill answered it)
    checks: int  # looks taken so far
    created_at: float
    reruns: int  # how many re-runs after failed jobs led to this delivery
    source: str
    webhook_id: str


@dataclass(frozen=True)
class JobUpdate:
    """The result of one look at a job: still open (next look at `next_check_at`), or finished."""

    delivery_id: int
    state: JobState
    next_check_at: float | None = None
    completed_at: float | None = None
    duration_ms: float | None = None
    excerpt: str = ""
    rerun: bool = False  # finished as failure and retry_on_job_failure allows another run
    target: str = ""  # with rerun: the destination's `target_key` now, for the re-run's job id


# The queue of events waiting for the search index is counted up to this (twice the alert's 1,000). Counting reads
# the queue's rows, scattered over the file among the events stored with them: 100,000 made a cold /metrics read
# ~200 random pages (0.2-1.4 s on a cold cache here); 2,000 reads a few (bench/metrics.py --stored).
SEARCH_PENDING_CAP = 2_000


@dataclass(frozen=True)
class QueueStats:
    """Cheap gauges for /metrics: only rows still open are counted."""

    depth: dict[tuple[str, str], int]  # (destination, pending|in_flight) -> count
    oldest_open_at: float | None
    open_jobs: int
    search_pending: int = 0  # stored events not in the search index yet, counted up to SEARCH_PENDING_CAP


@dataclass(frozen=True)
class JobFailures:
    """Failed Windmill jobs of one destination since some time, and the latest of them."""

    destination: str
    count: int
    last_at: float
    last_job_id: str | None
    last_excerpt: str
    last_event_id: int
    last_webhook_id: str
    last_event_type: str


# ---- test deliveries (the console's "Try a transformation" page): never an event's delivery --------------

TestOutcome = Literal["delivered", "failed", "cancelled"]


@dataclass(frozen=True)
class NewTestDelivery:
    """One test sent from the preview page, as it is stored: what was tried, where, and what came back."""

    __test__ = False  # not a pytest test class

    destination: str
    event_id: int | None  # the stored event tried, or None for a bundled sample
    input: str  # what was tried, for people: "event 12 (msg_…)", "sample payment.succeeded (variant jpy)"
    event_type: str
    script: str  # "builtin:payment", "transforms/pay.js", "edited in the console", or "" (the body as is)
    job_id: str  # a test job id (deliver/testsend.py): never one a real delivery gets
    url: str  # the run URL (no token, no job id)
    payload: str | None
    http_status: int | None
    outcome: TestOutcome
    detail: str
    job_state: JobState | None  # "open" when Windmill created the job, else None
    created_at: float


@dataclass(frozen=True)
class TestDelivery(NewTestDelivery):
    __test__ = False  # not a pytest test class
    id: int = 0
    job_checks: int = 0
    job_checked_at: float | None = None
    job_completed_at: float | None = None
    job_duration_ms: float | None = None
    job_excerpt: str = ""


# ---- the console's charts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """One time window cut into equal buckets (bucket i covers since + i*step up to since + (i+1)*step):
    events received by status, delivery latency and failed Windmill jobs, per bucket. Absent bucket = none."""

    since: float
    step: float
    buckets: int
    outcomes: dict[int, dict[str, int]]  # bucket -> event status -> events received
    latency: dict[int, tuple[float, float, int]]  # bucket -> (p50 seconds, p99 seconds, delivered deliveries)
    job_failures: dict[int, int]  # bucket -> Windmill jobs that finished failed

    @property
    def until(self) -> float:
        return self.since + self.step * self.buckets


@dataclass(frozen=True)
class DeliveryError:
    """One of a destination's recent errors: a failed delivery, a retry's reason, or a failed job's excerpt."""

    at: float
    event_id: int
    webhook_id: str
    event_type: str
    generation: int
    status: str  # failed | pending (retrying) | job_failed
    error: str
