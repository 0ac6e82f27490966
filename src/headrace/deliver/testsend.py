"""Send a test: deliver a previewed request to Windmill once, as a test delivery, and follow its job.

One attempt through the worker's own `Attempter` (build_request -> schema preflight -> send -> classify), so a
test meets the same rules as a delivery, with three differences that keep it apart from real events:

- its job id is `job_id_for_test`: a UUID derived from a "test" marker and a random nonce, so it is never the id
  a delivery of that event gets (those are derived from deployment, target, source, webhook-id, destination
  and generation, models.job_id_for), and two tests never share one;
- it is stored in its own table (migration 0007), so no event status, count, metric, replay or worker sees it;
- it is tried once: what would be retried is reported as failed, with the reason.

Its job's outcome is looked up when someone asks (`look`), with the tracker's own reading of Windmill's
answer (JobTracker.look), at most once per LOOK_EVERY seconds however many pages poll.
"""

from __future__ import annotations

import secrets
import uuid

from headrace.config import DestinationSettings
from headrace.deliver.attempt import Attempter
from headrace.deliver.preview import Input
from headrace.deliver.tracker import JobTracker
from headrace.models import (
    JOB_ID_NAMESPACE,
    Cancelled,
    Claimed,
    Delivered,
    Failed,
    JobState,
    NewTestDelivery,
    OpenJob,
    Retry,
    TestDelivery,
    TestOutcome,
)
from headrace.policy import ERROR_EXCERPT
from headrace.store.base import TestDeliveryLog
from headrace.transform import Sandbox, Script

LOOK_EVERY = 1.0  # seconds between two looks at one test job


def job_id_for_test(
    deployment_id: str, target: str, destination: str, webhook_id: str, nonce: str | None = None
) -> str:
    """A test delivery's Windmill job id: derived with a "test" marker and a random nonce (a delivery's key
    starts with the deployment id instead, models.job_id_for), so it never equals a real delivery's."""
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    key = "\x1f".join(("test", deployment_id, target, destination, webhook_id, nonce))
    return str(uuid.uuid5(JOB_ID_NAMESPACE, key))


async def send_test(
    attempter: Attempter,
    store: TestDeliveryLog,
    name: str,
    dest: DestinationSettings,
    script: Script | None,
    sandbox: Sandbox | None,
    given: Input,
    now: float,
) -> TestDelivery:
    """One attempt of `given` to destination `name`, stored as a test delivery; returns it as stored."""
    job_id = job_id_for_test(store.deployment_id or "", dest.job_target, name, given.webhook_id)
    claimed = Claimed(
        delivery_id=0,
        event_id=given.event_id or 0,
        destination=name,
        generation=0,
        job_id=job_id,
        attempts=0,
        source=given.source or dest.source,
        webhook_id=given.webhook_id,
        event_type=given.event_type,
        body=given.body,
    )
    attempt, outcome = await attempter.attempt(claimed, dest, script, sandbox)
    stored: TestOutcome
    state: JobState | None = None
    if isinstance(outcome, Delivered):
        stored, state, job_id, detail = "delivered", "open", outcome.job_id, ""
    elif isinstance(outcome, Cancelled):
        stored, detail = "cancelled", outcome.reason
    elif isinstance(outcome, Retry):
        stored, detail = "failed", f"not sent (a delivery would retry it): {outcome.reason}"
    else:
        assert isinstance(outcome, Failed)
        stored, detail = "failed", outcome.reason
    if attempt.notes:
        detail = "\n".join(filter(None, (detail, attempt.notes)))
    if attempt.http_status is not None and stored != "delivered":
        detail = f"{detail}\nWindmill answered HTTP {attempt.http_status}: {attempt.response_excerpt[:ERROR_EXCERPT]}"
    test = NewTestDelivery(
        destination=name,
        event_id=given.event_id,
        input=given.label,
        event_type=given.event_type,
        script=script.name if script is not None else "",
        job_id=job_id,
        url=dest.target.run_url,
        payload=attempt.request_payload,
        http_status=attempt.http_status,
        outcome=stored,
        detail=detail,
        job_state=state,
        created_at=now,
    )
    test_id = await store.insert_test_delivery(test)
    found = await store.get_test_delivery(test_id)
    assert found is not None
    return found


async def look(tracker: JobTracker, store: TestDeliveryLog, test: TestDelivery, now: float) -> TestDelivery:
    """The test as it stands, after one look at its job when it is open and was not looked at just now."""
    if test.job_state != "open" or (test.job_checked_at is not None and now - test.job_checked_at < LOOK_EVERY):
        return test
    job = OpenJob(
        delivery_id=test.id,
        event_id=test.event_id or 0,
        destination=test.destination,
        generation=0,
        job_id=test.job_id,
        checks=test.job_checks,
        created_at=test.created_at,
        reruns=0,
        source="",
        webhook_id="",
    )
    update = await tracker.look(job)
    await store.record_test_job(test.id, update, now)
    found = await store.get_test_delivery(test.id)
    return found if found is not None else test
