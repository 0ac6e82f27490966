"""One attempt of one delivery, start to outcome: prepare -> schema preflight -> send -> classify -> outcome.

A function of its inputs (the claimed delivery, its destination, the transformation and sandbox, a Windmill
client, a clock and a random source): no store, no scheduling, so a test drives it with a fake client.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from headrace import durations
from headrace.config import DestinationSettings
from headrace.deliver.classify import classify
from headrace.deliver.preflight import SchemaCache, judge
from headrace.deliver.request import Refused, Skipped, build_request
from headrace.deliver.schedule import next_attempt_at
from headrace.models import Attempt, Cancelled, Claimed, Delivered, Failed, Outcome, Retry
from headrace.observe.metrics import Metrics
from headrace.policy import ERROR_EXCERPT, RESPONSE_EXCERPT
from headrace.transform import Sandbox, Script
from headrace.windmill.api import WindmillApi

log = logging.getLogger("headrace.deliver")


@dataclass
class Attempter:
    """What every attempt needs that does not change between deliveries."""

    client: WindmillApi
    schemas: SchemaCache
    metrics: Metrics
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random
    perf: Callable[[], float] = field(default=time.perf_counter)

    async def attempt(
        self, claimed: Claimed, dest: DestinationSettings, script: Script | None, sandbox: Sandbox | None
    ) -> tuple[Attempt, Outcome]:
        """One attempt of one delivery, start to outcome. Never raises: whatever goes wrong on the way (a bug,
        an engine error) ends as Failed with a reason, recorded like any other outcome."""
        started, perf = self.clock(), self.perf()

        def record(
            status: int | None = None, excerpt: str = "", payload: str | None = None, notes: str = ""
        ) -> Attempt:
            return Attempt(started, (self.perf() - perf) * 1000, status, excerpt, payload, notes)

        try:
            return await self._attempt(claimed, dest, script, sandbox, record)
        except Exception as exc:
            log.exception(
                "unexpected error in a delivery attempt",
                extra={"delivery_id": claimed.delivery_id, "destination": claimed.destination},
            )
            detail = f"{type(exc).__name__}: {exc}"[:ERROR_EXCERPT]
            reason = (
                f"headrace could not complete the attempt: unexpected {detail}. This is a bug in headrace or its "
                "environment: see the log, then replay."
            )
            return record(excerpt=detail), Failed(reason)

    async def _attempt(
        self,
        claimed: Claimed,
        dest: DestinationSettings,
        script: Script | None,
        sandbox: Sandbox | None,
        record: Callable[..., Attempt],
    ) -> tuple[Attempt, Outcome]:
        built = await build_request(
            dest.target,
            claimed.event_type,
            claimed.body,
            claimed.webhook_id,
            script,
            sandbox,
            dest.payload_limit,
            origin=claimed.origin,
        )
        if isinstance(built, Skipped):
            return record(payload=built.payload), Cancelled()
        if isinstance(built, Refused):
            if built.transient:
                return record(payload=built.payload), self.retry(claimed, dest, built.reason)
            return record(payload=built.payload), Failed(built.reason)
        verdict = await judge(self.schemas, built, dest.bearer.reveal(), dest.schema_mode)
        if verdict.problems:
            self.metrics.inc("headrace_schema_problems_total", claimed.destination, dest.schema_mode)
        if verdict.refused:
            return record(payload=built.transformed), Failed(verdict.refusal(built.target))
        notes = verdict.attempt_note(built.target)
        target = built.target  # the destination's, or the one the transformation chose in the same workspace
        token = dest.bearer.reveal()
        response = await self.client.run(
            target,
            built.full_url(claimed.job_id),
            built.body,
            built.headers_for(token),
            method=built.method,
            timeout=dest.timeout_seconds,
        )
        self.metrics.observe_attempt(claimed.destination, response.duration_ms / 1000)
        answer = classify(response, claimed.job_id)
        excerpt = response.body[:RESPONSE_EXCERPT] if response.status else (response.error or "")
        attempt = record(response.status, excerpt, built.transformed, "\n".join(filter(None, (*built.notes, notes))))
        outcome: Outcome
        if answer.verdict == "delivered":
            outcome = Delivered(answer.job_id or claimed.job_id)
        elif answer.verdict == "confirm":
            exists = await self.client.job_exists(target, token, claimed.job_id)
            if exists:
                outcome = Delivered(claimed.job_id)
            elif exists is None:
                outcome = self.retry(claimed, dest, f"{answer.reason} (could not confirm whether the job exists)")
            else:
                outcome = Failed(f"{answer.reason}. Fix the payload or the target, then replay.")
        elif answer.verdict == "retry":
            if answer.loud:
                log.warning(
                    "Windmill refused a run for a passing reason; retrying on the schedule: %s",
                    answer.reason,
                    extra={"delivery_id": claimed.delivery_id, "destination": claimed.destination},
                )
            retry_after = durations.retry_after(response.headers.get("Retry-After"), self.clock())
            outcome = self.retry(claimed, dest, answer.reason, retry_after)
        else:
            outcome = Failed(answer.reason + ". Fix the destination, then replay.")
        return attempt, outcome

    def retry(
        self, claimed: Claimed, dest: DestinationSettings, reason: str, retry_after: float | None = None
    ) -> Outcome:
        """Retry on the destination's schedule, or Failed when the schedule is used up."""
        attempts_made = claimed.attempts + 1
        at = next_attempt_at(attempts_made, dest.retry_delays, self.clock(), retry_after, self.rand)
        if at is None:
            return Failed(f"gave up after {attempts_made} attempts; last: {reason}")
        return Retry(at, reason)
