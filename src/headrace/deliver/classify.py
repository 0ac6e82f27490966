"""What a Windmill answer means for a delivery, pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from headrace.windmill.client import RunResponse

RunVerdict = Literal["delivered", "retry", "failed", "confirm"]


@dataclass(frozen=True)
class Classified:
    verdict: RunVerdict
    reason: str
    job_id: str | None = None


def classify(response: RunResponse, job_id: str) -> Classified:
    """What one answer to `jobs/run/...` (201, the job id as text) means for the delivery."""
    status = response.status
    if status is None:
        return Classified("retry", response.error or "no answer")
    excerpt = response.body[:300].strip()
    if 200 <= status < 300:
        returned = response.body.strip().strip('"')
        try:
            returned = str(uuid.UUID(returned))
        except ValueError:
            returned = job_id
        return Classified("delivered", f"HTTP {status}", job_id=returned)
    if status == 400:
        # Windmill answers 400 when a job with this job_id already exists; confirm before counting it.
        return Classified("confirm", f"HTTP 400: {excerpt}")
    if status == 429 or status >= 500 or status == 408:
        return Classified("retry", f"HTTP {status}: {excerpt}" if excerpt else f"HTTP {status}")
    hints = {
        401: "Windmill refused the token; check the destination's token",
        403: "the token may not run this script or flow; check its permissions in Windmill",
        404: "no such script or flow (or not deployed); check the destination's url",
    }
    hint = hints.get(status, "Windmill refused the request")
    return Classified(
        "failed", f"HTTP {status}: {hint}. Windmill said: {excerpt}" if excerpt else f"HTTP {status}: {hint}"
    )
