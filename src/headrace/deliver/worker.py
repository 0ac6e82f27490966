"""The delivery worker: claim due deliveries under a lease, run each attempt, hand its outcome to the recorder.

Per destination at most `concurrency` requests are in flight. A claimed delivery carries a lease under a token
that starts with this worker's id. The worker heartbeats (heartbeat.py): if this process dies, a live worker
notices within seconds and releases its leases; the lease's own expiry stays as the backstop. Because every
attempt of a delivery uses the same deterministic Windmill job_id, a repeat after a crash cannot create a
second job.
What one attempt does is `Attempter`'s business (attempt.py); this module only schedules.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from headrace.config import DestinationSettings, Settings
from headrace.deliver.attempt import Attempter
from headrace.deliver.heartbeat import Heartbeat
from headrace.deliver.recorder import OutcomeRecorder
from headrace.deliver.rounds import idle_timeout, run_rounds
from headrace.deliver.tracker import JobTracker
from headrace.models import Claimed
from headrace.policy import LEASE_MARGIN
from headrace.store.base import Finished, WorkerInfo, WorkerStore, lease_prefix
from headrace.transform import Sandbox, Script
from headrace.windmill.api import LOOKUP_TIMEOUT

log = logging.getLogger("headrace.deliver")

STALLED_AFTER = 30.0  # readiness fails when the claim loop has not completed a round for this long


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{random.getrandbits(32):08x}"


@dataclass(frozen=True)
class Transformations:
    """Each destination's transformation script and the sandbox that runs them (None when there are none)."""

    scripts: Mapping[str, Script] = field(default_factory=dict)
    sandbox: Sandbox | None = None


def lease_for(settings: Settings) -> float:
    """A claimed delivery may wait for one attempt's worth of time in the queue, then run its own. An attempt is
    the schema lookup (preflight), the run and the confirmation that the job exists, each bounded by its timeout;
    a live worker's heartbeat renews the lease besides (heartbeat.py), for what has no bound (the sandbox's queue)."""
    timeout = max((d.timeout_seconds for d in settings.destinations.values()), default=30.0)
    return 2 * (LOOKUP_TIMEOUT + timeout + LOOKUP_TIMEOUT) + LEASE_MARGIN


class Worker:
    def __init__(
        self,
        store: WorkerStore,
        settings: Settings,
        attempter: Attempter,
        recorder: OutcomeRecorder,
        tracker: JobTracker,
        transformations: Transformations | None = None,
        *,
        clock: Callable[[], float] = time.time,
        worker_id: str | None = None,
        heartbeat: Callable[..., Heartbeat] = Heartbeat,
        stalled_after: float = STALLED_AFTER,
    ) -> None:
        self.store = store
        self.settings = settings
        self.attempter = attempter
        self.recorder = recorder
        self.tracker = tracker
        self.transformations = transformations or Transformations()
        self.clock = clock
        self.worker_id = worker_id or new_worker_id()
        self.tracker.owner = self.worker_id
        self._lease = lease_for(settings)
        self.heartbeat = heartbeat(
            store,
            self._identity(),
            clock=clock,
            lease=lambda: self._lease,
            on_lost=self._lost,
            on_reaped=self.notify,
            on_beat=self._dispatch,
        )
        self.last_round: float | None = None  # clock() when the claim loop last completed a round
        self.stalled_after = stalled_after
        self._started: float | None = None
        self._claims = itertools.count(1)
        self._wake = asyncio.Event()
        # Per destination: claimed deliveries waiting for a free slot, and the attempts in flight.
        self._queued: dict[str, collections.deque[tuple[Claimed, str]]] = {}
        self._running: dict[str, dict[asyncio.Task[None], tuple[Claimed, str]]] = {}
        self._recording: set[asyncio.Task[bool]] = set()
        self._releasing: set[asyncio.Task[None]] = set()

    def _identity(self) -> WorkerInfo:
        return WorkerInfo(self.worker_id, socket.gethostname(), os.getpid())

    def _lost(self) -> WorkerInfo:
        """Our heartbeat row was gone: another worker presumed us dead and released everything we held. Drop
        the queued claims, cancel the attempts in flight (their outcomes would be refused), take a new id."""
        self._drop_all()
        self.worker_id = new_worker_id()
        self.tracker.owner = self.worker_id
        return self._identity()

    def _drop_all(self) -> None:
        for queue in self._queued.values():
            queue.clear()
        for running in self._running.values():
            for task in list(running):
                task.cancel()

    def health(self) -> tuple[bool, str]:
        """For readiness: the claim loop completes rounds and the heartbeat is written."""
        ok, detail = self.heartbeat.health()
        if not ok:
            return ok, detail
        last = self.last_round if self.last_round is not None else self._started
        if last is None:
            return True, "ok"  # not started yet
        if self.clock() - last > self.stalled_after:
            return False, f"delivery worker loop has not completed a round for {self.clock() - last:.0f}s"
        return True, "ok"

    def notify(self) -> None:
        """New work may be due (called by ingest after a commit, and by the tracker for a re-run)."""
        self._wake.set()

    def reload(self, transformations: Transformations, settings: Settings | None = None) -> None:
        """Take new transformation scripts (and destinations, on a config reload). Attempts in flight finish
        with the destination settings they started with; claimed deliveries still queued here are sent with
        the new ones (token, url, timeout); those of a destination the reload removed go back to the store,
        pending, where no worker claims them unless the destination comes back."""
        self.transformations = transformations
        self.attempter.schemas.clear()
        if settings is not None:
            self.settings = settings
            self.tracker.settings = settings
            self._lease = lease_for(settings)
            self._dispatch()  # hands queued deliveries of removed destinations back to the store
        self.notify()

    def _release_later(self, items: list[tuple[Claimed, str]]) -> None:
        task = asyncio.create_task(self._release(items))
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _release(self, items: list[tuple[Claimed, str]]) -> None:
        for claimed, token in items:
            try:
                await self.store.release(claimed, token, self.clock())
            except Exception as exc:  # the lease runs out instead; nothing is lost
                log.warning("could not release a delivery of a removed destination: %s", exc)

    @property
    def in_flight(self) -> int:
        return sum(len(tasks) for tasks in self._running.values())

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and send until `stop` is set. Claims run ahead of sending by up to one `concurrency` per
        destination, and outcomes are recorded in the background, so a slot never waits for a commit."""
        log.info("delivery worker started", extra={"worker_id": self.worker_id})
        self._started = self.clock()
        await self.heartbeat.start()
        tracker = asyncio.create_task(self.tracker.run(stop))
        try:
            await run_rounds(stop, self._wake, self._round, self._pause_after, log, "claiming deliveries")
        finally:
            await asyncio.wait([tracker], timeout=5)
            if not tracker.done():
                tracker.cancel()

    async def _round(self) -> bool:
        try:
            return await self._claim_round()
        finally:
            self._dispatch()
            self.last_round = self.clock()

    async def _pause_after(self, claimed_any: bool | None) -> float | None:
        if claimed_any:
            return None
        return await idle_timeout(self.store.next_due, self.clock, 0.01)

    async def drain(self, grace: float) -> None:
        """Let in-flight attempts finish for up to `grace` seconds, then release the rest for another worker;
        last, deregister (the heartbeat keeps beating until then, so nobody takes over a finishing attempt)."""
        try:
            await self._drain(grace)
        finally:
            await self.heartbeat.stop(retire=True)

    async def close(self) -> None:
        """Stop the heartbeat without touching the store (the process is going away without a drain)."""
        await self.heartbeat.stop(retire=False)

    async def _drain(self, grace: float) -> None:
        tasks = [task for tasks in self._running.values() for task in tasks]
        if tasks:
            log.info("waiting for %d in-flight deliveries", len(tasks))
            await asyncio.wait(tasks, timeout=grace)
        unfinished = [(task, info) for tasks in self._running.values() for task, info in tasks.items()]
        for task, _ in unfinished:
            task.cancel()
        await asyncio.gather(*(task for task, _ in unfinished), return_exceptions=True)
        if self._recording or self._releasing:
            await asyncio.wait([*self._recording, *self._releasing], timeout=max(grace, 5.0))
        leftovers = [info for _, info in unfinished] + [info for queue in self._queued.values() for info in queue]
        for queue in self._queued.values():
            queue.clear()
        for claimed, token in leftovers:
            await self.store.release(claimed, token, self.clock())
        if leftovers:
            log.info("released %d unfinished deliveries for the next worker", len(leftovers))

    async def _claim_round(self) -> bool:
        claimed_any = False
        if not self.heartbeat.fresh():
            return False  # not registered, or possibly reaped already: claim nothing until a beat succeeds
        now = self.clock()
        for name, dest in self.settings.destinations.items():
            queue = self._queued.setdefault(name, collections.deque())
            running = self._running.setdefault(name, {})
            room = 2 * dest.concurrency - len(running) - len(queue)
            if room <= 0:
                continue
            worker_id = self.worker_id
            token = f"{lease_prefix(worker_id)}{next(self._claims)}"
            found = await self.store.claim(name, room, token, now, now + self._lease, worker=worker_id)
            if worker_id != self.worker_id:
                return False  # presumed dead while claiming: the reaper released these after our claim
            for claimed in found:
                claimed_any = True
                queue.append((claimed, token))
        return claimed_any

    def _dispatch(self) -> None:
        if not self.heartbeat.fresh():
            return  # the fence: by now another worker may have taken these over; the next beat decides
        for name, queue in self._queued.items():
            dest = self.settings.destinations.get(name)
            if dest is None and queue:  # removed by a config reload: back to the store, pending
                self._release_later(list(queue))
                queue.clear()
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

    async def _deliver(self, claimed: Claimed, dest: DestinationSettings, token: str) -> None:
        transformations = self.transformations
        script = transformations.scripts.get(claimed.destination)
        attempt, outcome = await self.attempter.attempt(claimed, dest, script, transformations.sandbox)
        task = asyncio.create_task(self.recorder.record(Finished(claimed, token, attempt, outcome)))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)
