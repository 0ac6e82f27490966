"""What a Windmill answer means for a delivery, pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from headrace.policy import QUOTE_EXCERPT
from headrace.windmill.api import RunResponse

RunVerdict = Literal["delivered", "retry", "failed", "confirm"]


# Refusals that are retried on the schedule, because they are often over in minutes (CONTRACT.md):
# R3, a script just pushed answers 404 until its lock is built; R5, a token revoked before the new one is
# loaded answers 401, and so does a token without access to the path. Each retry is logged and counted
# (headrace_delivery_retries_total{reason="http_404"}); `headrace check` names a persistent one.
RETRIED_REFUSALS = {
    404: "no such script or flow yet (a new script answers 404 until its lock is built); retrying. If it "
    "persists, deploy it or fix the destination's url (headrace check shows which)",
    401: "Windmill refused the token (revoked, expired, or no access to this path); retrying. If it persists, "
    "set the destination's token (headrace check shows which)",
}


# CONTRACT.md R6: Windmill answers 400 for more than "job id exists". A database error (`SqlErr: ...`: a pool
# timeout, a deadlock, the duplicate-id race on the primary key) and a Windmill Cloud quota (`Quota exceeded:
# ...`: the free tier refuses the 31st concurrent run) pass; they are retried on the schedule, and logged loudly.
# ("Sql error: " is how other releases of error.rs display the same variant.)
TRANSIENT_400_PREFIXES = ("SqlErr", "Sql error", "Quota exceeded")


@dataclass(frozen=True)
class Classified:
    verdict: RunVerdict
    reason: str
    job_id: str | None = None
    loud: bool = False  # a retry worth a warning in the log of its own (a transient 400: R6)


def classify(response: RunResponse, job_id: str) -> Classified:
    """What one answer to `jobs/run/...` (201, the job id as text) means for the delivery."""
    status = response.status
    if status is None:
        return Classified("retry", response.error or "no answer")
    excerpt = response.body[:QUOTE_EXCERPT].strip()
    if 200 <= status < 300:
        returned = response.body.strip().strip('"')
        if returned != job_id:  # the usual answer is the id asked for, already in its canonical form
            try:
                returned = str(uuid.UUID(returned))
            except ValueError:
                returned = job_id
        return Classified("delivered", f"HTTP {status}", job_id=returned)
    if status == 400:
        if excerpt.startswith(TRANSIENT_400_PREFIXES):
            reason = f"HTTP 400: Windmill could not take the job just now (a database error or a quota): {excerpt}"
            return Classified("retry", reason, loud=True)
        # Only "Job with id X already exists" says the job exists (R6); a job id is global to the Windmill
        # instance (R2), so it is confirmed in this workspace before it counts. Any other 400 is confirmed too:
        # a job that is not there makes it a failure.
        return Classified("confirm", f"HTTP 400: {excerpt}")
    if status == 429 or status >= 500 or status == 408:
        return Classified("retry", f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}")
    said = f". Windmill said: {excerpt}" if excerpt else ""
    if status in RETRIED_REFUSALS:
        return Classified("retry", f"HTTP {status}: {RETRIED_REFUSALS[status]}{said}")
    hints = {
        403: "the token may not run this script or flow (a scoped token missing a scope); check it in Windmill",
    }
    hint = hints.get(status, "Windmill refused the request")
    return Classified("failed", f"HTTP {status}: {hint}{said}")
