"""One attempt of one delivery, start to outcome: prepare -> schema preflight -> send -> classify -> outcome.

A function of its inputs (the claimed delivery, its destination, the transformation and sandbox, a Windmill
client, a clock and a random source): no store, no scheduling, so a test drives it with a fake client.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from headrace.config import DestinationSettings
from headrace.deliver.classify import classify
from headrace.deliver.preflight import SchemaCache
from headrace.deliver.request import Refused, Request, Skipped, build_request
from headrace.deliver.schedule import next_attempt_at, parse_retry_after
from headrace.metrics import Metrics
from headrace.models import Attempt, Cancelled, Claimed, Delivered, Failed, Outcome, Retry
from headrace.transform import Sandbox, Script
from headrace.windmill.client import WindmillClient

log = logging.getLogger("headrace.deliver")


@dataclass
class Attempter:
    """What every attempt needs that does not change between deliveries."""

    client: WindmillClient
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
            detail = f"{type(exc).__name__}: {exc}"[:500]
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
        notes = ""
        if dest.schema_mode != "off":
            try:
                refused, notes = await self._preflight(claimed, dest, built)
            except Exception as exc:  # a preflight bug must not hold a payment back
                refused, notes = None, f"schema not checked: {type(exc).__name__}: {exc}"
            if refused is not None:
                return record(payload=built.transformed), Failed(refused)
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
        verdict = classify(response, claimed.job_id)
        excerpt = response.body[:2000] if response.status else (response.error or "")
        attempt = record(response.status, excerpt, built.transformed, "\n".join(filter(None, (*built.notes, notes))))
        outcome: Outcome
        if verdict.verdict == "delivered":
            outcome = Delivered(verdict.job_id or claimed.job_id)
        elif verdict.verdict == "confirm":
            exists = await self.client.job_exists(target, token, claimed.job_id)
            if exists:
                outcome = Delivered(claimed.job_id)
            elif exists is None:
                outcome = self.retry(claimed, dest, f"{verdict.reason} (could not confirm whether the job exists)")
            else:
                outcome = Failed(f"{verdict.reason}. Fix the payload or the target, then replay.")
        elif verdict.verdict == "retry":
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock())
            outcome = self.retry(claimed, dest, verdict.reason, retry_after)
        else:
            outcome = Failed(verdict.reason + ". Fix the destination, then replay.")
        return attempt, outcome

    async def _preflight(self, claimed: Claimed, dest: DestinationSettings, built: Request) -> tuple[str | None, str]:
        """Check the payload against the target's input schema: (reason to refuse or None, attempt notes)."""
        target = built.target
        payload = built.payload
        if payload is None:
            try:
                payload = json.loads(built.body)
            except ValueError:
                return None, ""
        findings = await self.schemas.check(target, dest.bearer.reveal(), payload)
        if not findings.problems:
            return None, findings.note
        self.metrics.inc("headrace_schema_problems_total", claimed.destination, dest.schema_mode)
        where = f"the input schema of {target.kind} {target.path}"
        if dest.schema_mode == "enforce":
            return (
                f'payload does not match {where}: {findings.text}. Not sent (schema = "enforce"): fix the '
                "transformation or the target, then replay.",
                "",
            )
        return None, f'schema warning (sent anyway, schema = "warn"): payload does not match {where}: {findings.text}'

    def retry(
        self, claimed: Claimed, dest: DestinationSettings, reason: str, retry_after: float | None = None
    ) -> Outcome:
        """Retry on the destination's schedule, or Failed when the schedule is used up."""
        attempts_made = claimed.attempts + 1
        at = next_attempt_at(attempts_made, dest.retry_delays, self.clock(), retry_after, self.rand)
        if at is None:
            return Failed(f"gave up after {attempts_made} attempts; last: {reason}")
        return Retry(at, reason)
