"""The delivery worker: claim due deliveries under a lease, send them, record one outcome per attempt.

Per destination at most `concurrency` requests are in flight. A claimed delivery carries a lease; if this
process dies, the lease expires and any worker picks the delivery up again. Because every attempt of a
delivery uses the same deterministic Windmill job_id, a repeat after a crash cannot create a second job.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import json
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from headrace.config import DestinationSettings, Settings
from headrace.deliver.classify import classify
from headrace.deliver.preflight import SchemaCache
from headrace.deliver.schedule import next_attempt_at, parse_retry_after
from headrace.deliver.tracker import JobTracker
from headrace.metrics import Metrics
from headrace.models import Attempt, Cancelled, Claimed, Delivered, Failed, Outcome, Retry
from headrace.store.base import Finished, Store
from headrace.transform import Sandbox, Script, TransformError, WebhookObject
from headrace.windmill.client import WindmillClient
from headrace.windmill.urls import WindmillUrlError, parse_run_url

log = logging.getLogger("headrace.deliver")

LEASE_MARGIN = 5.0
IDLE_POLL = 1.0  # how often an idle worker looks for work other processes queued


@dataclass(frozen=True)
class Prepared:
    """What will be sent for one delivery, after the transformation."""

    url: str
    method: str
    headers: Mapping[str, str]
    body: bytes
    transformed: str | None  # the transformed payload JSON, kept for the timeline
    payload: object = None  # the transformed payload (None: the Dodo body is sent as is)


class Worker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        client: WindmillClient,
        sandbox: Sandbox | None = None,
        scripts: Mapping[str, Script] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        worker_id: str | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.client = client
        self.sandbox = sandbox
        self.scripts = dict(scripts or {})
        self.clock = clock
        self.rand = rand
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"
        self.metrics = metrics or Metrics(clock)
        self.schemas = SchemaCache(client)
        self.tracker = JobTracker(
            store,
            settings,
            client,
            metrics=self.metrics,
            clock=clock,
            on_rerun=self.notify,
            busy=lambda: self.in_flight > 0,
        )
        self._claims = itertools.count(1)
        self._wake = asyncio.Event()
        # Per destination: claimed deliveries waiting for a free slot, and the attempts in flight.
        self._queued: dict[str, collections.deque[tuple[Claimed, str]]] = {}
        self._running: dict[str, dict[asyncio.Task[None], tuple[Claimed, str]]] = {}
        self._recording: set[asyncio.Task[None]] = set()
        timeout = max((d.timeout_seconds for d in settings.destinations.values()), default=30.0)
        # A claimed delivery may wait for one attempt's worth of time in the queue, then run its own.
        self._lease = 2 * timeout + LEASE_MARGIN

    def notify(self) -> None:
        """New work may be due (called by ingest after a commit)."""
        self._wake.set()

    def reload(self, settings: Settings, scripts: Mapping[str, Script]) -> None:
        """Take new transformation scripts; queued work is untouched and uses them from its next attempt."""
        self.scripts = dict(scripts)
        self.settings = settings
        self.tracker.settings = settings
        self.schemas.clear()
        self.notify()

    @property
    def in_flight(self) -> int:
        return sum(len(tasks) for tasks in self._running.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until `stop` is set. Claims run ahead of sending by up to one `concurrency` per
        destination, and outcomes are recorded in the background, so a slot never waits for a commit."""
        log.info("delivery worker started", extra={"worker_id": self.worker_id})
        tracker = asyncio.create_task(self.tracker.run(stop))
        try:
            await self._loop(stop)
        finally:
            await asyncio.wait([tracker], timeout=5)
            if not tracker.done():
                tracker.cancel()

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                claimed_any = await self._claim_round()
            except Exception:
                log.exception("claiming deliveries failed; trying again shortly")
                claimed_any = False
            self._dispatch()
            if claimed_any:
                continue
            timeout = await self._idle_timeout()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def drain(self, grace: float) -> None:
        """Let in-flight attempts finish for up to `grace` seconds, then release the rest for another worker."""
        tasks = [task for tasks in self._running.values() for task in tasks]
        if tasks:
            log.info("waiting for %d in-flight deliveries", len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        unfinished = [(task, info) for tasks in self._running.values() for task, info in tasks.items()]
        for task, _ in unfinished:
            task.cancel()
        await asyncio.gather(*(task for task, _ in unfinished), return_exceptions=True)
        if self._recording:
            await asyncio.wait(list(self._recording), timeout=max(grace, 5.0))
        leftovers = [info for _, info in unfinished] + [info for queue in self._queued.values() for info in queue]
        for queue in self._queued.values():
            queue.clear()
        for claimed, token in leftovers:
            await self.store.release(claimed, token, self.clock())
        if leftovers:
            log.info("released %d unfinished deliveries for the next worker", len(leftovers))

    async def _claim_round(self) -> bool:
        claimed_any = False
        now = self.clock()
        for name, dest in self.settings.destinations.items():
            queue = self._queued.setdefault(name, collections.deque())
            running = self._running.setdefault(name, {})
            room = 2 * dest.concurrency - len(running) - len(queue)
            if room <= 0:
                continue
            token = f"{self.worker_id}#{next(self._claims)}"
            for claimed in await self.store.claim(name, room, token, now, now + self._lease):
                claimed_any = True
                queue.append((claimed, token))
        return claimed_any

    def _dispatch(self) -> None:
        for name, queue in self._queued.items():
            dest = self.settings.destinations.get(name)
            running = self._running.setdefault(name, {})
            while queue and dest is not None and len(running) < dest.concurrency:
                claimed, token = queue.popleft()
                task = asyncio.create_task(self._deliver(claimed, dest, token))
                running[task] = (claimed, token)
                task.add_done_callback(functools.partial(self._done, running))

    def _done(self, running: dict[asyncio.Task[None], tuple[Claimed, str]], task: asyncio.Task[None]) -> None:
        running.pop(task, None)
        self._dispatch()
        self._wake.set()

    async def _idle_timeout(self) -> float:
        try:
            due = await self.store.next_due()
        except Exception:
            return IDLE_POLL
        if due is None:
            return IDLE_POLL
        return min(IDLE_POLL, max(0.01, due - self.clock()))

    async def _deliver(self, claimed: Claimed, dest: DestinationSettings, token: str) -> None:
        attempt, outcome = await self.attempt(claimed, dest)
        task = asyncio.create_task(self._record(Finished(claimed, token, attempt, outcome)))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def _record(self, finished: Finished) -> None:
        claimed, outcome = finished.claimed, finished.outcome
        fields = {
            "event_id": claimed.event_id,
            "delivery_id": claimed.delivery_id,
            "destination": claimed.destination,
            "webhook_id": claimed.webhook_id,
            "job_id": claimed.job_id,
            "outcome": type(outcome).__name__.lower(),
        }
        metrics, name = self.metrics, claimed.destination
        if isinstance(outcome, Retry):
            metrics.inc("headrace_delivery_retries_total", name)
        else:
            metrics.inc("headrace_deliveries_total", name, str(fields["outcome"]))
            if isinstance(outcome, Delivered) and outcome.completed:
                metrics.inc("headrace_jobs_total", name, "success")
        if isinstance(outcome, Delivered | Cancelled):
            log.debug("delivery %s", fields["outcome"], extra=fields)
        else:
            log.warning("delivery %s: %s", fields["outcome"], outcome.reason, extra=fields)
        for pause in (0.1, 0.5, 2.0, 5.0):
            try:
                if not await self.store.finish(finished, self.clock()):
                    log.warning("lease lost before the outcome was recorded; another worker owns it", extra=fields)
                return
            except Exception:
                log.exception("recording an outcome failed; retrying", extra=fields)
                await asyncio.sleep(pause)
        # Still unrecorded: the lease expires and the delivery is tried again; its job id keeps that safe.

    async def attempt(self, claimed: Claimed, dest: DestinationSettings) -> tuple[Attempt, Outcome]:
        """One attempt of one delivery, start to outcome. Never raises."""
        started = self.clock()
        perf = time.perf_counter()

        notes = ""

        def attempt(status: int | None = None, excerpt: str = "", payload: str | None = None) -> Attempt:
            return Attempt(started, (time.perf_counter() - perf) * 1000, status, excerpt, payload, notes)

        try:
            prepared = await self.prepare(claimed, dest)
        except _Cancel as cancel:
            return attempt(payload=cancel.payload), Cancelled()
        except _Refuse as refuse:
            return attempt(payload=refuse.payload), Failed(refuse.reason)

        target = dest.target
        if dest.schema_mode != "off":
            try:
                refused, notes = await self._preflight(claimed, dest, prepared)
            except Exception as exc:  # a preflight bug must not hold a payment back
                refused, notes = None, f"schema not checked: {type(exc).__name__}: {exc}"
            if refused is not None:
                return attempt(payload=prepared.transformed), Failed(refused)
        response = await self.client.run(
            target,
            prepared.url,
            dest.bearer.reveal(),
            claimed.job_id,
            prepared.body,
            method=prepared.method,
            headers=prepared.headers,
            timeout=dest.timeout_seconds,
        )
        self.metrics.observe_attempt(claimed.destination, response.duration_ms / 1000)
        verdict = classify(response, claimed.job_id, target.mode)
        record = attempt(
            response.status, response.body[:2000] if response.status else (response.error or ""), prepared.transformed
        )
        outcome: Outcome
        if verdict.verdict == "delivered":
            outcome = Delivered(verdict.job_id or claimed.job_id, verdict.result, completed=target.mode == "wait")
        elif verdict.verdict == "confirm":
            exists = await self.client.job_exists(target, dest.bearer.reveal(), claimed.job_id)
            if exists:
                outcome = Delivered(claimed.job_id)
            elif exists is None:
                outcome = self._retry(claimed, dest, f"{verdict.reason} (could not confirm whether the job exists)")
            else:
                outcome = Failed(f"{verdict.reason}. Fix the payload or the target, then replay.")
        elif verdict.verdict == "retry":
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.clock())
            outcome = self._retry(claimed, dest, verdict.reason, retry_after)
        else:
            outcome = Failed(verdict.reason + ". Fix the destination, then replay.")
        return record, outcome

    async def _preflight(
        self, claimed: Claimed, dest: DestinationSettings, prepared: Prepared
    ) -> tuple[str | None, str]:
        """Check the payload against the target's input schema: (reason to refuse or None, attempt notes)."""
        target = dest.target
        if prepared.url != target.run_url:
            target = parse_run_url(prepared.url)[0]
        payload = prepared.payload
        if payload is None:
            try:
                payload = json.loads(prepared.body)
            except ValueError:
                return None, ""
        verdict = await self.schemas.check(target, dest.bearer.reveal(), payload)
        if not verdict.problems:
            return None, verdict.note
        self.metrics.inc("headrace_schema_problems_total", claimed.destination, dest.schema_mode)
        where = f"the input schema of {target.kind} {target.path}"
        if dest.schema_mode == "enforce":
            return (
                f'payload does not match {where}: {verdict.text}. Not sent (schema = "enforce"): fix the '
                "transformation or the target, then replay.",
                "",
            )
        return None, f'schema warning (sent anyway, schema = "warn"): payload does not match {where}: {verdict.text}'

    def _retry(
        self, claimed: Claimed, dest: DestinationSettings, reason: str, retry_after: float | None = None
    ) -> Outcome:
        attempts_made = claimed.attempts + 1
        at = next_attempt_at(attempts_made, dest.retry_delays, self.clock(), retry_after, self.rand)
        if at is None:
            return Failed(f"gave up after {attempts_made} attempts; last: {reason}")
        return Retry(at, reason)

    async def prepare(self, claimed: Claimed, dest: DestinationSettings) -> Prepared:
        """The request for one delivery: the Dodo body as is, or what the transformation made of it."""
        script = self.scripts.get(claimed.destination)
        if script is None or self.sandbox is None:
            return Prepared(dest.target.run_url, "POST", {}, claimed.body, None)
        try:
            body = json.loads(claimed.body)
            result = await self.sandbox.transform(
                script,
                WebhookObject(
                    event_type=claimed.event_type,
                    payload=body,
                    url=dest.target.run_url,
                    webhook_id=claimed.webhook_id,
                ),
            )
        except TransformError as exc:
            raise _Refuse(f"transformation {script.name} failed: {exc}. Fix the script, then replay.") from None
        payload_json = json.dumps(result.payload, separators=(",", ":"), ensure_ascii=False)
        if result.cancel:
            raise _Cancel(payload_json)
        if not isinstance(result.payload, dict):
            raise _Refuse(
                f"transformation {script.name} returned a payload of type {type(result.payload).__name__}; "
                "Windmill needs a JSON object (each key becomes one argument of main)",
                payload_json,
            )
        url = result.url
        if url != dest.target.run_url:
            url = _checked_url(url, dest, script.name, payload_json)
        return Prepared(url, result.method, dict(result.headers), payload_json.encode(), payload_json, result.payload)


def _checked_url(url: str, dest: DestinationSettings, script: str, payload: str) -> str:
    """A transformation may point a delivery at another Windmill run URL on the same host, nothing else."""
    try:
        target, _ = parse_run_url(url)
    except WindmillUrlError as exc:
        raise _Refuse(
            f"transformation {script} set url to something that is not a Windmill run URL: {exc}", payload
        ) from None
    if target.base_url != dest.target.base_url:
        raise _Refuse(
            f"transformation {script} set url to host {target.host}; only {dest.target.host} "
            "(the destination's Windmill) is allowed",
            payload,
        )
    return target.run_url


class _Cancel(Exception):
    def __init__(self, payload: str) -> None:
        self.payload = payload


class _Refuse(Exception):
    def __init__(self, reason: str, payload: str | None = None) -> None:
        self.reason = reason
        self.payload = payload
