"""The Windmill seam: what headrace asks of Windmill, as a Protocol, and the answers as plain data.

deliver (the attempt, the preflight, the tracker) and check depend on `WindmillApi`, never on the aiohttp
client: `WindmillClient` (windmill/client.py) is the implementation app.py wires in, `FakeWindmill`
(windmill/fake.py) the typed double unit tests drive. Deploying to a workspace (`connect`) is another seam,
kept in its own module (windmill/deploy.py) so a job runner needs nothing of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from headrace.windmill.urls import RunTarget

LOOKUP_TIMEOUT = 10.0  # seconds for one lookup (a definition, a job): the preflight and the confirmation each make one
RESPONSE_LIMIT = 64 * 1024  # bytes of an answer read; a longer result is kept as its start (JobPoll.result_excerpt)


@dataclass(frozen=True)
class RunResponse:
    """What came back from one run request: an HTTP answer, or a transport error and no status."""

    status: int | None
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None  # "timeout after 30s", "connection refused", ...
    duration_ms: float = 0.0


@dataclass(frozen=True)
class JobPoll:
    """One look at a job: `status` None means Windmill could not be asked (see `error`)."""

    status: int | None
    completed: bool = False
    success: bool | None = None
    result: Any = None
    error: str | None = None
    started: bool | None = None  # false or null: queued, or unknown to Windmill in this workspace (J2)
    result_excerpt: str | None = None  # the start of a result too large to read whole (then `result` is None)


@dataclass(frozen=True)
class ListedJob:
    """One completed job as `jobs/completed/list` shows it (J7): the outcome and duration, never the result."""

    id: str
    success: bool  # `status = 'success' OR 'skipped'`: true for a skipped flow (J4)
    duration_ms: float
    is_skipped: bool = False
    canceled: bool = False
    canceled_by: str = ""
    canceled_reason: str = ""
    created_at: float | None = None  # by Windmill's clock (unix seconds); None when the item has none readable


@dataclass(frozen=True)
class TargetInfo:
    """What Windmill says about a script or flow; `status` 404 means it does not exist."""

    status: int | None
    schema: dict[str, Any] | None = None
    archived: bool = False
    draft_only: bool = False
    summary: str = ""
    error: str | None = None
    keeps_undeclared: bool = False  # a flow (A5) or a Python main(**kwargs) (A3): undeclared keys arrive
    lock_pending: bool = False  # the newest script version has no lock yet: it does not run yet (R3, M1)
    lock_error: str = ""  # the newest version's lock failed: Windmill runs the previous version (R3)
    preprocessor: bool = False  # R8: it receives {"event": ...}; its schema says nothing of what runs accept
    steps: tuple[str, ...] = ()  # R9: a flow's `type: script` steps, by script path

    @property
    def found(self) -> bool:
        return self.status == 200


class WindmillApi(Protocol):
    """Runs, job lookups and target definitions (docs/windmill-contract.md has what each answer means)."""

    async def run(
        self,
        target: RunTarget,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        method: str = "POST",
        timeout: float = 30.0,
    ) -> RunResponse:
        """Send one run request as given (the URL carries the job id, the headers the token)."""
        ...

    async def job_exists(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> bool | None:
        """Whether Windmill knows the job in the target's workspace; None when it could not be asked."""
        ...

    async def result_maybe(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> JobPoll:
        """Is the job done, did it succeed (J2, J4), what did it return."""
        ...

    async def job_info(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> dict[str, Any]:
        """The job without logs and code (J6): success, is_skipped, canceled, ...; {} when it cannot be read."""
        ...

    async def job_duration(
        self, target: RunTarget, token: str, job_id: str, timeout: float = LOOKUP_TIMEOUT
    ) -> float | None:
        """How long a completed job ran, in ms (J6: get_timing); None when it cannot be read."""
        ...

    async def completed_jobs(
        self, target: RunTarget, token: str, since: float, page: int, per_page: int, timeout: float = LOOKUP_TIMEOUT
    ) -> list[ListedJob] | None:
        """One page (1-based, newest created first) of the target path's jobs completed and created or started
        at `since` or later (J7: jobs/completed/list); None when the page could not be read."""
        ...

    async def get_target(self, target: RunTarget, token: str, timeout: float = LOOKUP_TIMEOUT) -> TargetInfo:
        """The script's or flow's definition: schema, lock state, preprocessor, steps (M1, R8, R9)."""
        ...
