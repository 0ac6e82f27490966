"""Worker heartbeats: how a dead worker's deliveries are taken over within seconds instead of a lease.

Each worker process registers a row (id, host, pid, started_at) and beats every `HEARTBEAT_INTERVAL` seconds
(policy.py). In the same write, each beat reaps: a worker whose last beat is older than `DEAD_AFTER` is dead,
so its delivery leases and its tracker's job leases are released (due at once) and its row deleted; the reaping
worker is woken to claim them. A worker that stops cleanly deregisters the same way after its drain.

Never two live workers on one delivery:
- a claim checks, in its own transaction, that the claiming worker's row still exists, so a worker once
  reaped claims nothing more (on PostgreSQL the check holds a key-share lock the reaper's DELETE waits for);
- a worker starts no attempt while its last successful beat is older than `DEAD_AFTER - HEARTBEAT_INTERVAL` (its own
  fence: by then it may be reaped), and when a beat finds its row gone it drops its queued work, cancels its
  attempts in flight and registers again under a new id;
- the outcome of an attempt made under a lease that was released is refused by the store (`finish`), and a
  repeat send carries the same Windmill job id, which Windmill refuses to create twice.
The beat runs on the worker's event loop: a loop stuck for `DEAD_AFTER` stops beating and is treated as dead.
Each beat also renews the leases of this worker's deliveries in flight, so a slow attempt (a schema lookup, the
sandbox's queue, the confirmation) is never claimed twice while its worker lives. Leases stay as the backstop (a
worker from before heartbeats, or rows whose worker row is gone otherwise).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from headrace.policy import DEAD_AFTER, HEARTBEAT_INTERVAL
from headrace.store.base import Beat, Reaped, WorkerInfo, WorkerRegistry

log = logging.getLogger("headrace.deliver")


def _nothing() -> None:
    return None


class Heartbeat:
    def __init__(
        self,
        store: WorkerRegistry,
        info: WorkerInfo,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = HEARTBEAT_INTERVAL,
        dead_after: float = DEAD_AFTER,
        lease: Callable[[], float] | None = None,
        on_lost: Callable[[], WorkerInfo] | None = None,
        on_reaped: Callable[[], None] = _nothing,
        on_beat: Callable[[], None] = _nothing,
    ) -> None:
        if not 0 < interval < dead_after:
            raise ValueError(f"heartbeat interval {interval}s must be positive and shorter than dead_after")
        self.store = store
        self.info = info
        self.clock = clock
        self.interval = interval
        self.dead_after = dead_after
        self.lease = lease  # seconds a beat keeps this worker's deliveries in flight leased (None: not renewed)
        self.on_lost = on_lost  # our row was gone: drop the work, return the identity to register again under
        self.on_reaped = on_reaped  # we released a dead worker's work: claim it
        self.on_beat = on_beat  # a beat succeeded: work held back by the fence may start
        self.registered = False
        self.last_ok: float | None = None  # clock() of the last successful register or beat
        self.last_error: str | None = None  # the last failure, cleared by a success
        self.reaped: list[Reaped] = []  # every worker this one reaped (for logs and tests)
        self.started: float | None = None  # clock() when start() was called
        self._task: asyncio.Task[None] | None = None

    def fresh(self) -> bool:
        """True while this worker surely still holds its leases: registered, and beat recently enough that
        no other worker can have reaped it yet."""
        last = self.last_ok
        return self.registered and last is not None and self.clock() - last < self.dead_after - self.interval

    def health(self) -> tuple[bool, str]:
        """For readiness: the heartbeat can be written."""
        if self.last_error is not None:
            return False, f"worker heartbeat cannot be written: {self.last_error}"
        last = self.last_ok if self.last_ok is not None else self.started
        if last is None:
            return True, "ok"  # not started yet
        age = self.clock() - last
        if age > self.dead_after / 2:
            if self.last_ok is None:
                return False, f"worker heartbeat not written yet, {age:.1f}s after the worker started"
            return False, f"worker heartbeat last written {age:.1f}s ago (every {self.interval:g}s expected)"
        return True, "ok"

    async def start(self) -> None:
        """Register now (a failure is retried by the loop), then beat in the background until `stop`."""
        self.started = self.clock()
        await self.once()
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def stop(self, *, retire: bool = True) -> Reaped | None:
        """Stop beating; with `retire`, release what this worker still holds and delete its row."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if not (retire and self.registered):
            return None
        self.registered = False
        try:
            return await self.store.retire_worker(self.info.id, self.clock())
        except Exception as exc:
            log.warning("could not deregister worker %s (%s); other workers will reap it", self.info.id, exc)
            return None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.once()

    async def once(self) -> None:
        """Register (when not registered) or beat and reap; never raises."""
        now = self.clock()
        try:
            if not self.registered:
                await self.store.register_worker(self.info, now)
                self.registered = True
                log.info("worker registered", extra={"worker_id": self.info.id})
                beat = Beat(True, [])
            else:
                lease_until = None if self.lease is None else now + self.lease()
                beat = await self.store.heartbeat(self.info.id, now, now - self.dead_after, lease_until)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("worker heartbeat failed (%s); retrying in %gs", self.last_error, self.interval)
            return
        self.last_error = None
        if not beat.alive:
            self._lost(now)
            await self.once()  # register again under the new identity
            return
        self.last_ok = now
        for reaped in beat.reaped:
            self.reaped.append(reaped)
            silent = "?" if reaped.heartbeat_at is None else f"{now - reaped.heartbeat_at:.1f}"
            log.warning(
                "worker %s presumed dead (no heartbeat for %ss): %d deliveries and %d job looks released "
                "to live workers",
                reaped.worker_id,
                silent,
                reaped.deliveries,
                reaped.jobs,
                extra={"worker_id": self.info.id},
            )
        if beat.reaped:
            self.on_reaped()
        self.on_beat()

    def _lost(self, now: float) -> None:
        silent = "?" if self.last_ok is None else f"{now - self.last_ok:.1f}"
        log.warning(
            "worker %s was presumed dead by another worker (its last heartbeat %ss ago) and its work handed "
            "over; dropping what it held and registering again",
            self.info.id,
            silent,
        )
        self.registered = False
        self.last_ok = None
        if self.on_lost is not None:
            self.info = self.on_lost()
