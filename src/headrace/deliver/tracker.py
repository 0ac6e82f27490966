"""Job outcome tracking: one task per worker process asks Windmill what became of the jobs it created.

The work list is in the store (deliveries whose `job_state` is open, each with its next look time), so
tracking survives restarts and several processes share it: a round leases at most `BATCH` due jobs (their
next look moves a minute ahead, so another tracker skips them), asks `get_result_maybe` for them with at
most `CONCURRENCY` requests at once, and records each answer. Looks back off per job, 1 s doubling up to
`MAX_DELAY`; so thousands of open jobs cost at most BATCH / ROUND_PAUSE requests a second, and a slow
job a few requests an hour. A job not started after `CONFIRM_AFTER` looks is confirmed with `jobs_u/get`
(a job Windmill does not know is `unknown` within a minute); one still open after `GIVE_UP` is `unknown`.

Batches (J7): a round first asks `jobs/completed/list` once per destination target for the jobs completed
since its oldest leased job was created (at most LIST_PAGES pages of LIST_PAGE), and takes each leased job's
outcome and duration from it; a job the list covers and does not show is still running, and costs nothing
more. A job older than LIST_WINDOW, every CONFIRM_AFTER-th look at a job, and any job a list did not cover
(it failed, or its pages ran out) are looked at one by one as before, so no outcome is lost. The list has
no results: a completed job's result (or error) is read with one `get_result_maybe`, unless the
destination's `job_results` is off, when a successful job is recorded without it.

A job Windmill will not show the destination's token (403, J2: its user neither created the job nor is an admin nor
reads the job's folder; in practice the token was changed to another user's after the job was created) is
recorded `unknown` at once, with what the token lacks and the fix, and said once per destination in the log: the
answer does not change by itself, and the job did run (its outcome is on its run page in Windmill).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import Any

from headrace.config import DestinationSettings, Settings
from headrace.deliver.rounds import idle_timeout, run_rounds
from headrace.models import JobUpdate, OpenJob
from headrace.observe.metrics import Metrics
from headrace.policy import JOB_EXCERPT, LINE_EXCERPT
from headrace.store.base import JobBoard
from headrace.windmill.api import RESPONSE_LIMIT, JobPoll, ListedJob, WindmillApi
from headrace.windmill.urls import RunTarget

log = logging.getLogger("headrace.track")

BATCH = 25  # jobs a round leases; again after any round that had to look at a job one by one
LIST_BATCH = 400  # the most a round leases: it doubles from BATCH while the list answers every job of full rounds
CONCURRENCY = 4  # requests to Windmill in flight at once (one-by-one looks, result reads, list pages)
ROUND_PAUSE = 0.25  # between rounds while jobs are due
BUSY_PAUSE = 1.0  # between rounds while the worker has deliveries in flight: delivering comes first
LEASE = 60.0
FIRST_DELAY = 1.0
MAX_DELAY = 60.0
GIVE_UP = 24 * 3600.0
NOT_FOUND_LIMIT = 5  # looks answered 404 before the job is recorded as unknown
CONFIRM_AFTER = 5  # every 5th look at a job not started (the first after ~30 s) asks jobs_u/get whether it exists
LIST_LOOKUPS = True  # look outcomes up in jobs/completed/list (J7); False: one by one (the bench's baseline)
LIST_WINDOW = 300.0  # seconds: jobs created this recently are looked up in the list, older ones one by one
LIST_SKEW = 5.0  # seconds the list's window opens before the oldest job while Windmill's clock is not known: it may be
# behind (a job it places earlier is still found by its start time, or looked at alone once older than LIST_WINDOW:
# later, not lost)
LIST_MARGIN = 1.0  # the same once the lists have shown how far Windmill's clock is from ours (`_skew`)
LIST_PAGE = 1000  # jobs per list page (Windmill's default; at most 10,000; an item is under 1 KiB)
LIST_PAGES = 4  # pages per target per round; jobs the pages did not reach are looked at one by one


@dataclass(frozen=True)
class Listed:
    """What one round's lists said: the jobs they showed completed, and the ids they covered (a covered job
    they did not show is not completed yet)."""

    completed: dict[str, ListedJob]
    covered: frozenset[str]


def confirms(job: OpenJob) -> bool:
    """This look at `job` is one that confirms it exists (every CONFIRM_AFTER-th): it is made one by one."""
    return (job.checks + 1) % CONFIRM_AFTER == 0


def next_delay(checks: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds until the next look after `checks` looks: 1, 2, 4, ... 60, with 10 % jitter."""
    base = min(MAX_DELAY, FIRST_DELAY * float(2 ** min(checks, 16)))
    return base * (0.9 + 0.2 * rand())


def error_excerpt(result: Any) -> str:
    """Windmill's error object ({"error": {"name", "message", "stack"}}) as `name: message` + stack."""
    error = result.get("error") if isinstance(result, dict) else None
    if isinstance(error, dict):
        head = f"{error.get('name') or 'Error'}: {error.get('message') or ''}".strip()
        stack = error.get("stack")
        return f"{head}\n{stack}" if isinstance(stack, str) and stack else head
    return json.dumps(result, default=str, ensure_ascii=False)


_CANCELED = re.compile(r"^Job canceled: (?P<reason>.*) by (?P<by>[^ ]+)$", re.DOTALL)


def canceled_by(result: Any) -> tuple[str, str] | None:
    """(reason, who) when a job's result is Windmill's cancel error (J5): `{"error": {"name": "Canceled",
    "message": "Job canceled: {reason} by {user}"}}`; None for any other result."""
    error = result.get("error") if isinstance(result, dict) else None
    if not isinstance(error, dict) or error.get("name") != "Canceled":
        return None
    message = str(error.get("message") or "")
    match = _CANCELED.match(message)
    if match is None:
        return message.removeprefix("Job canceled:").strip(), "someone"
    return match.group("reason").strip(), match.group("by")


def unreadable(job_id: str, target: RunTarget, said: str) -> str:
    """J2: why Windmill answered 403 to a lookup of a job headrace created, what the token lacks and the fix.
    `said` is Windmill's answer (`HTTP 403: ...`)."""
    done = "Stopped tracking and not re-run: the job is in Windmill, whose run page has its outcome."
    if "Required scope" in said:  # a scoped token without jobs:read (scopes.rs `check_route_access`)
        return (
            f"Windmill will not show job {job_id} to the destination's token ({said[:LINE_EXCERPT]}): the token is "
            "scoped and has neither jobs:read nor jobs:run. Fix: give the destination a token with jobs:run (which "
            f"includes reading jobs) on this workspace. {done}"
        )
    space, _, rest = target.path.partition("/")
    owner = rest.partition("/")[0]
    where = f"folder {owner}" if space == "f" else f"{space}/{owner}/"
    return (
        f"Windmill will not show job {job_id} to the destination's token ({said.split('. ')[0][:LINE_EXCERPT]}). "
        "A token reads the jobs its own user created; another user's only if its user is a workspace admin or "
        f"may read the job's whole folder ({where}; a script shared alone, or a scope, is not enough). Most likely "
        "the destination's token was changed to another Windmill user's after this job was created. Fix: give the "
        f"token's user read access to {where}, or use a token of the user who created the job. {done} Jobs "
        "created from now on are the token's own, and are followed as usual."
    )


def refused_token(job_id: str, said: str) -> str:
    """Windmill answered 401 to a lookup of a job headrace created: the token itself is refused (revoked, expired,
    replaced). Unlike a 403 (J2) this changes with the token: the job stays open, and a token Windmill accepts
    reads its outcome. `said` is Windmill's answer (`HTTP 401: ...`)."""
    return (
        f"Windmill refused the destination's token when asked for job {job_id} ({said.split('. ')[0][:LINE_EXCERPT]}):"
        " revoked, expired, of a user outside this workspace, or not this Windmill's (CONTRACT R5, T1). The job "
        "itself may well have run. Fix: give the destination a "
        'token Windmill accepts and `headrace reload` (docs/operations.md, "Runbook: the Windmill token"); the '
        "outcomes still open are read then."
    )


def _warn_once(told: set[str], job: OpenJob, text: str, how_often: str) -> None:
    """Log `text` as a warning for the job's destination unless `told` holds it already (then add it)."""
    if job.destination in told:
        return
    told.add(job.destination)
    log.warning(
        "destination %s: %s (%s)",
        job.destination,
        text,
        how_often,
        extra={"delivery_id": job.delivery_id, "job_id": job.job_id},
    )


def _nothing() -> None:
    return None


def _never() -> bool:
    return False


@dataclass
class JobTracker:
    store: JobBoard
    settings: Settings
    client: WindmillApi
    _: KW_ONLY
    metrics: Metrics | None = None
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random
    on_rerun: Callable[[], None] = _nothing  # a failed job was queued to run again
    busy: Callable[[], bool] = _never  # deliveries are in flight: look at jobs at a slower pace
    owner: str | None = None  # the worker whose leases these are (released at once if it dies)

    def __post_init__(self) -> None:
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(CONCURRENCY)
        self._batch = BATCH
        self._offsets: dict[str, float] = {}  # a Windmill's base URL -> its clock minus ours, as its lists showed
        self._told: set[str] = set()  # destinations whose 403 on a job lookup was logged (once each)
        self._refused: set[str] = set()  # destinations whose token got 401 on a lookup, logged until one succeeds

    def notify(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        await run_rounds(stop, self._wake, self.round, self._pause_after, log, "tracking job outcomes")

    async def _pause_after(self, looked: int | None) -> float:
        if looked:
            return BUSY_PAUSE if self.busy() else ROUND_PAUSE
        return await idle_timeout(self.store.next_job_check, self.clock, ROUND_PAUSE)

    async def round(self) -> int:
        """Look at up to `_batch` due jobs; returns how many were looked at. The batch is BATCH, and doubles (up
        to LIST_BATCH) after a full round whose every job the list answered: those cost Windmill no request of
        their own, so outcomes keep up with a busy destination. A round with a job the list could not answer
        (looked at one by one) brings it back to BATCH, which bounds the one-by-one looks as before."""
        now = self.clock()
        due = await self.store.next_job_check()
        if due is None or due > now:
            return 0
        jobs = await self.store.lease_due_jobs(self._batch, now, now + LEASE, self.owner)
        listed = await self.listed(jobs, now) if LIST_LOOKUPS else Listed({}, frozenset())
        await asyncio.gather(*(self._look(job, listed) for job in jobs))
        answered = all(job.job_id in listed.completed or job.job_id in listed.covered for job in jobs)
        full = bool(jobs) and len(jobs) == self._batch
        self._batch = min(2 * self._batch, LIST_BATCH) if full and answered else BATCH
        return len(jobs)

    async def listed(self, jobs: list[OpenJob], now: float) -> Listed:
        """One `jobs/completed/list` per destination target for the jobs a list may answer: created within
        LIST_WINDOW, and not at a look that confirms the job exists (every CONFIRM_AFTER-th)."""
        groups: dict[tuple[RunTarget, str], list[OpenJob]] = {}
        for job in jobs:
            dest = self.settings.destinations.get(job.destination)
            if dest is None or now - job.created_at > LIST_WINDOW or confirms(job):
                continue
            target = dest.target
            groups.setdefault((target, dest.bearer.reveal()), []).append(job)
        completed: dict[str, ListedJob] = {}
        covered: set[str] = set()
        for (target, token), group in groups.items():
            async with self._limit:
                found, whole = await self._list(target, token, group)
            self._learn(target, group, found, whole)
            completed.update(found)
            covered.update(job.job_id for job in group if whole or job.job_id in found)
        return Listed(completed, frozenset(covered))

    async def _list(self, target: RunTarget, token: str, jobs: list[OpenJob]) -> tuple[dict[str, ListedJob], bool]:
        """The jobs of `jobs` the target's list shows completed, and whether the list was read to its end."""
        wanted = {job.job_id for job in jobs}
        since = min(job.created_at for job in jobs) - self._skew(target)
        found: dict[str, ListedJob] = {}
        for page in range(1, LIST_PAGES + 1):
            try:
                items = await self.client.completed_jobs(target, token, since, page, LIST_PAGE)
            except Exception as exc:  # the jobs are looked at one by one instead
                log.warning("listing completed jobs in %s failed: %s", target.workspace, exc)
                items = None
            if items is None:
                return found, False
            found.update((item.id, item) for item in items if item.id in wanted)
            if len(items) < LIST_PAGE or len(found) == len(wanted):
                return found, True
        return found, False

    def _skew(self, target: RunTarget) -> float:
        """How long before the oldest job the list's window opens. At a few hundred jobs a second, LIST_SKEW's
        5 s held more completed jobs than LIST_PAGES pages, so the leased ones were not reached and went to
        one-by-one looks: once a list has shown jobs, their times by Windmill's clock against ours (a job's
        created_at here is taken before its run request is sent) tell where the window must open, with
        LIST_MARGIN to spare, never more than LIST_SKEW."""
        offset = self._offsets.get(target.base_url)
        if offset is None:
            return LIST_SKEW
        return min(LIST_SKEW, max(LIST_MARGIN, LIST_MARGIN - offset))

    def _learn(self, target: RunTarget, jobs: list[OpenJob], found: dict[str, ListedJob], whole: bool) -> None:
        """Windmill's clock minus ours: the least difference between a shown job's created_at there and here (the
        job is made after we note its time, so the least is the closest). A list read whole that showed none of
        the jobs asked about may have missed them because that clock moved back: the next round opens the
        window LIST_SKEW before again, until a list shows jobs."""
        shown = [
            item.created_at - job.created_at
            for job in jobs
            if (item := found.get(job.job_id)) is not None and item.created_at is not None
        ]
        if shown:
            self._offsets[target.base_url] = min(shown)
        elif whole:
            self._offsets.pop(target.base_url, None)

    async def _look(self, job: OpenJob, listed: Listed) -> None:
        """Answer one leased job and record it. Only the requests to Windmill wait for the CONCURRENCY limit
        (inside `look` and `_from_list`): the store writes of a round go together into its group commits."""
        try:
            update = await self.answer(job, listed)
        except Exception as exc:  # never lose the job: look again later
            log.warning("job %s: looking failed: %s", job.job_id, exc)
            update = JobUpdate(job.delivery_id, "open", next_check_at=self.clock() + next_delay(job.checks))
        rerun_job = await self.store.record_job(update, self.clock())
        if update.state != "open" and self.metrics is not None:
            self.metrics.inc("headrace_jobs_total", job.destination, update.state)
        if rerun_job is not None:
            if self.metrics is not None:
                self.metrics.inc("headrace_job_reruns_total", job.destination)
            log.info(
                "job failed; re-running it under a new job id",
                extra={"delivery_id": job.delivery_id, "failed_job_id": job.job_id, "job_id": rerun_job},
            )
            self.on_rerun()

    async def answer(self, job: OpenJob, listed: Listed) -> JobUpdate:
        """The update for a leased job: from the round's list when it showed or covered the job, else one look."""
        item = listed.completed.get(job.job_id)
        dest = self.settings.destinations.get(job.destination)
        if item is not None and dest is not None:
            return await self._from_list(job, dest, item, self.clock())
        if job.job_id in listed.covered:  # the list would show it if it had completed: still queued or running
            now = self.clock()
            return JobUpdate(job.delivery_id, "open", next_check_at=now + next_delay(job.checks, self.rand))
        return await self.look(job)

    async def _from_list(self, job: OpenJob, dest: DestinationSettings, item: ListedJob, now: float) -> JobUpdate:
        """The update for a job the list shows completed (J7): outcome and duration from the item. The result
        (or a failure's error) is read with one `get_result_maybe`; a canceled job's is not needed, and a
        successful one's only when the destination's `job_results` is on."""
        canceled = (item.canceled_reason, item.canceled_by or "someone") if item.canceled else None
        poll: JobPoll | None = None
        if canceled is None and (dest.job_results or not item.success):
            async with self._limit:
                poll = await self.client.result_maybe(dest.target, dest.bearer.reveal(), job.job_id)
            if poll.status != 200 or not poll.completed:
                poll = None
        skipped = item.success and item.is_skipped
        return self._finished(job, dest, now, item.duration_ms, item.success and not skipped, skipped, canceled, poll)

    async def _completed(self, job: OpenJob, dest: DestinationSettings, poll: JobPoll, now: float) -> JobUpdate:
        """The update for a job Windmill says is completed. Its duration comes from `get_timing` (J6: a small
        body; a job's own body may be megabytes). `get_result_maybe`'s success is `status = 'success'`: a
        flow that stopped early (skipped, J4) says false there, so a job that did not succeed is read once
        more with `jobs_u/get`, which counts it a success."""
        target, token = dest.target, dest.bearer.reveal()
        duration = await self.client.job_duration(target, token, job.job_id)
        duration_ms = duration if duration is not None else (now - job.created_at) * 1000
        success = poll.success is not False
        canceled = None if success else canceled_by(poll.result)
        skipped = False
        if not success and canceled is None:
            info = await self.client.job_info(target, token, job.job_id)
            skipped = info.get("success") is True and info.get("is_skipped") is True
            if info.get("canceled") is True:
                canceled = (str(info.get("canceled_reason") or ""), str(info.get("canceled_by") or "someone"))
        return self._finished(job, dest, now, duration_ms, success, skipped, canceled, poll)

    def _finished(
        self,
        job: OpenJob,
        dest: DestinationSettings,
        now: float,
        duration_ms: float,
        success: bool,
        skipped: bool,
        canceled: tuple[str, str] | None,
        poll: JobPoll | None,
    ) -> JobUpdate:
        """The update for a completed job. A canceled job (J5) was canceled by someone on purpose: recorded
        with who and why, and never re-run. `poll` None: the result was not read."""
        if poll is None:
            text = "" if success or skipped else "the job failed; its error could not be read (see Windmill)"
        elif poll.result_excerpt is not None:
            text = f"(result larger than {RESPONSE_LIMIT // 1024} KiB; its start) {poll.result_excerpt[:JOB_EXCERPT]}"
        elif success or skipped:
            text = json.dumps(poll.result, default=str, ensure_ascii=False)
        else:
            text = error_excerpt(poll.result)
        if skipped:
            text = f"skipped: the flow stopped early (skip_if_stopped), which Windmill counts a success. {text}"
        elif canceled is not None:
            reason, by = canceled
            text = (
                f"canceled in Windmill by {by}" + (f": {reason}" if reason else "") + ". Not re-run: someone "
                "canceled it on purpose; `headrace replay` runs the event again if that was a mistake."
            )
        ok = success or skipped
        return JobUpdate(
            job.delivery_id,
            "success" if ok else "failure",
            completed_at=now,
            duration_ms=duration_ms,
            excerpt=text,
            rerun=not ok and canceled is None and job.reruns < dest.retry_on_job_failure,
            target=dest.job_target,
        )

    async def look(self, job: OpenJob) -> JobUpdate:
        """One look at one job, as the update to record (at most CONCURRENCY looks ask Windmill at once)."""
        async with self._limit:
            return await self._look_alone(job)

    async def _look_alone(self, job: OpenJob) -> JobUpdate:
        dest = self.settings.destinations.get(job.destination)
        now = self.clock()
        if dest is None:
            return JobUpdate(
                job.delivery_id, "unknown", excerpt=f"destination {job.destination!r} is no longer configured"
            )
        # The job was created in the destination's workspace (a transformation may not leave it), where
        # Windmill's lookups are (CONTRACT.md J1).
        target, token = dest.target, dest.bearer.reveal()
        poll: JobPoll = await self.client.result_maybe(target, token, job.job_id)
        if poll.status == 200:
            self._refused.discard(job.destination)  # a later refusal is said again
        if poll.status == 200 and poll.completed:
            return await self._completed(job, dest, poll, now)
        if poll.status == 403:  # J2: not the token's to read; asking again changes nothing
            text = unreadable(job.job_id, target, poll.error or "HTTP 403")
            _warn_once(self._told, job, text, "said once per destination; each such job is recorded unknown")
            return JobUpdate(job.delivery_id, "unknown", excerpt=text)
        if poll.status == 401:  # the token is refused, not the job: open until a token Windmill accepts reads it
            text = refused_token(job.job_id, poll.error or "HTTP 401")
            _warn_once(self._refused, job, text, "said once until a lookup succeeds again; the job stays open")
            if now - job.created_at > GIVE_UP:
                stopped = f"Stopped tracking {GIVE_UP / 3600:g} h after the job was created (see Windmill). "
                return JobUpdate(job.delivery_id, "unknown", excerpt=stopped + text)
            return JobUpdate(job.delivery_id, "open", next_check_at=now + next_delay(job.checks, self.rand))
        if now - job.created_at > GIVE_UP:
            return JobUpdate(
                job.delivery_id,
                "unknown",
                excerpt=f"not completed {GIVE_UP / 3600:g} h after it was created; stopped tracking (see Windmill)",
            )
        # get_result_maybe never answers 404 (J2): queued and unknown look the same (`started: false`; null
        # from a Windmill that ignores get_started). jobs_u/get tells them apart (a queued job is there, a job
        # Windmill does not know is 404): asked every CONFIRM_AFTER-th look while the job is not started, so
        # one extra request per five looks, and none for a running job.
        not_started = poll.status == 200 and poll.started is not True and confirms(job)
        if not_started and await self.client.job_exists(target, token, job.job_id) is False:
            return JobUpdate(
                job.delivery_id,
                "unknown",
                excerpt=(
                    f"Windmill does not know job {job.job_id} in workspace {target.workspace} (jobs_u/get "
                    "answered 404): deleted, or its database restored from a backup; stopped tracking. "
                    "`headrace replay` runs the event again under a new job id."
                ),
            )
        if poll.status == 404 and job.checks + 1 >= NOT_FOUND_LIMIT:
            return JobUpdate(
                job.delivery_id,
                "unknown",
                excerpt=f"Windmill does not know job {job.job_id} (HTTP 404 {NOT_FOUND_LIMIT} times); stopped tracking",
            )
        return JobUpdate(job.delivery_id, "open", next_check_at=now + next_delay(job.checks, self.rand))
