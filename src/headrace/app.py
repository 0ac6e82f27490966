"""The one place that wires concrete pieces together: store, sandbox, Windmill client, worker, ingest."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from headrace.config import ConfigError, Settings
from headrace.deliver.attempt import Attempter
from headrace.deliver.preflight import SchemaCache
from headrace.deliver.recorder import OutcomeRecorder
from headrace.deliver.tracker import JobTracker
from headrace.deliver.worker import Transformations, Worker
from headrace.ingest.endpoint import Ingestor
from headrace.metrics import Metrics
from headrace.models import EventFilter, EventRow, Rejection
from headrace.store.base import Store, StoreStats
from headrace.store.sqlite import SQLiteStore
from headrace.transform import Sandbox, Script
from headrace.windmill.client import WindmillClient

log = logging.getLogger("headrace.app")


def open_store(settings: Settings) -> Store:
    return store_at(settings.server.database, settings.sqlite_path)


def store_at(url: str, sqlite_path: Path | None = None) -> Store:
    """The store for a database URL (`sqlite:///PATH` or `postgresql://…`); `sqlite_path` as config resolved it."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(sqlite_path or Path(url.removeprefix("sqlite:///")))
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB")
    try:
        from headrace.store.postgres import PostgresStore
    except ImportError as exc:  # psycopg is the optional extra `headrace[postgres]`
        raise ConfigError(
            f"the database is a PostgreSQL URL, but the PostgreSQL driver is not installed ({exc}); "
            "install it with: pip install 'headrace[postgres]'"
        ) from None
    return PostgresStore(url)


def load_scripts(settings: Settings) -> dict[str, Script]:
    """Each destination's transformation, loaded and checked now so a typo stops start-up, not a delivery."""
    from headrace.transform.scripts import load_script

    scripts = {}
    for name, dest in settings.destinations.items():
        if dest.transform:
            try:
                scripts[name] = load_script(dest.transform, settings.base_dir)
            except ValueError as exc:
                raise ConfigError(f"[destinations.{name}] transform = {dest.transform!r}: {exc}") from None
    return scripts


def load_transformations(settings: Settings, sandbox: Sandbox | None = None) -> Transformations:
    """Every destination's script, and a sandbox to run them (`sandbox` kept when given; none when no scripts)."""
    scripts = load_scripts(settings)
    if scripts and sandbox is None:
        sandbox = make_sandbox(settings)
    return Transformations(scripts, sandbox)


def make_sandbox(settings: Settings | None = None) -> Sandbox:
    """User scripts in a pool of worker processes with a wall-clock deadline; built-in templates in-process."""
    from headrace.config import ServerSettings
    from headrace.transform.pool import ProcessPoolSandbox

    server = settings.server if settings is not None else ServerSettings.model_validate({})
    return ProcessPoolSandbox(workers=server.transform_workers)


@dataclass(frozen=True)
class ReplayResult:
    event_id: int
    job_ids: list[str]


class App:
    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.worker: Worker | None = None
        self.metrics = Metrics(clock, settings)
        self._session: aiohttp.ClientSession | None = None
        self.ingestor = Ingestor(settings, store, self._notify, clock, self.metrics)

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool = True) -> App:
        """`migrate`: bring the schema up to date (serve and worker); False refuses an older schema instead."""
        store = open_store(settings)
        await store.open(migrate=migrate)
        if migrate:
            await store.index_backlog()  # events stored before payload search: once, after migration 0006
        return cls(settings, store)

    def _notify(self) -> None:
        if self.worker is not None:
            self.worker.notify()

    async def start_worker(self) -> Worker:
        """Build the delivery side: one Windmill client, the schema cache, the sandbox, the attempt, the
        outcome recorder, the job tracker, and the worker that schedules them."""
        transformations = load_transformations(self.settings)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "headrace"})
        client = WindmillClient(self._session)
        tracker = JobTracker(
            self.store,
            self.settings,
            client,
            metrics=self.metrics,
            clock=self.clock,
            on_rerun=self._notify,
            busy=self._delivering,
        )
        self.worker = Worker(
            self.store,
            self.settings,
            Attempter(client, SchemaCache(client), self.metrics, clock=self.clock),
            OutcomeRecorder(self.store, self.metrics, self.clock),
            tracker,
            transformations,
            clock=self.clock,
        )
        return self.worker

    def _delivering(self) -> bool:
        return self.worker is not None and self.worker.in_flight > 0

    def reload_scripts(self) -> None:
        """SIGHUP: load every transformation again and hand them to the worker in one step."""
        if self.worker is None:
            return
        try:
            transformations = load_transformations(self.settings, self.worker.transformations.sandbox)
        except ConfigError as exc:
            log.error("transformations not reloaded: %s", exc)
            return
        self.worker.reload(transformations)
        log.info("transformations reloaded", extra={"destinations": sorted(transformations.scripts)})

    async def close(self) -> None:
        if self.worker is not None and self.worker.transformations.sandbox is not None:
            await self.worker.transformations.sandbox.close()
        if self._session is not None:
            await self._session.close()
        await self.store.close()

    # -- operations used by the API, the console and the CLI -------------------------------------------
    async def list_events(self, flt: EventFilter) -> list[EventRow]:
        return await self.store.list_events(flt)

    async def get_event(self, key: str) -> EventRow | None:
        return await self.store.get_event(key)

    async def replay(self, keys: Sequence[str]) -> list[ReplayResult]:
        """A new generation (so a new job id) for every destination the event matches under today's config."""
        results = []
        for key in keys:
            event = await self.store.get_event(key)
            if event is None:
                raise LookupError(f"no event {key!r} (give the event id or the webhook-id)")
            names = self.settings.destinations_for(event.source, event.event_type)
            job_ids = await self.store.replay(event.id, [self.settings.route(n) for n in names], self.clock())
            results.append(ReplayResult(event.id, job_ids))
        self._notify()
        return results

    async def replay_failed(self, since: float) -> list[ReplayResult]:
        """A new generation for each delivery whose newest generation failed since `since`."""
        grouped: dict[int, list[str]] = {}
        for event_id, destination in await self.store.failed_since(since):
            if destination in self.settings.destinations:
                grouped.setdefault(event_id, []).append(destination)
        results = []
        for event_id, names in grouped.items():
            routes = [self.settings.route(n) for n in names]
            results.append(ReplayResult(event_id, await self.store.replay(event_id, routes, self.clock())))
        self._notify()
        return results

    async def rejections(self, since: float | None = None, limit: int = 100) -> list[Rejection]:
        return await self.store.list_rejections(since, limit)

    async def stats(self) -> StoreStats:
        return await self.store.stats()

    async def metrics_text(self) -> str:
        """Prometheus exposition: this process's counters and the store's queue gauges (cached ~1 s)."""
        return self.metrics.render(await self.metrics.queue(self.store.queue_stats))

    async def ready(self) -> tuple[bool, str]:
        """Ready when the store has this binary's schema, can read every column it uses, and can write."""
        try:
            await asyncio.wait_for(self.store.check_schema(), 5)
        except Exception as exc:
            return False, f"store schema does not match this headrace: {exc}"
        try:
            await asyncio.wait_for(self.store.check_writable(), 5)
        except Exception as exc:
            return False, f"store not writable: {exc}"
        return True, "ok"
