"""The one place that wires concrete pieces together: store, sandbox, Windmill client, worker, ingest."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from headrace.config import ConfigError, Settings
from headrace.deliver.worker import Worker
from headrace.ingest.endpoint import Ingestor
from headrace.metrics import Metrics
from headrace.models import EventFilter, EventRow, Rejection
from headrace.store.base import Store, StoreStats
from headrace.store.sqlite import SQLiteStore
from headrace.transform import Sandbox, Script
from headrace.windmill.client import WindmillClient

log = logging.getLogger("headrace.app")


def open_store(settings: Settings) -> Store:
    path = settings.sqlite_path
    if path is not None:
        return SQLiteStore(path)
    try:
        from headrace.store.postgres import PostgresStore
    except ImportError as exc:  # psycopg is the optional extra `headrace[postgres]`
        raise ConfigError(
            f"[server] database is a PostgreSQL URL, but the PostgreSQL driver is not installed ({exc}); "
            "install it with: pip install 'headrace[postgres]'"
        ) from None
    return PostgresStore(settings.server.database)


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


def make_sandbox() -> Sandbox:
    from headrace.transform.quickjs_sandbox import QuickJSSandbox

    return QuickJSSandbox()


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
    async def open(cls, settings: Settings) -> App:
        store = open_store(settings)
        await store.open()
        return cls(settings, store)

    def _notify(self) -> None:
        if self.worker is not None:
            self.worker.notify()

    async def start_worker(self) -> Worker:
        scripts = load_scripts(self.settings)
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "headrace"})
        self.worker = Worker(
            self.store,
            self.settings,
            WindmillClient(self._session),
            make_sandbox() if scripts else None,
            scripts,
            clock=self.clock,
            metrics=self.metrics,
        )
        return self.worker

    def reload_scripts(self) -> None:
        if self.worker is None:
            return
        try:
            scripts = load_scripts(self.settings)
        except ConfigError as exc:
            log.error("transformations not reloaded: %s", exc)
            return
        if scripts and self.worker.sandbox is None:
            self.worker.sandbox = make_sandbox()
        self.worker.reload(self.settings, scripts)
        log.info("transformations reloaded", extra={"destinations": sorted(scripts)})

    async def close(self) -> None:
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
            destinations = self.settings.destinations_for(event.source, event.event_type)
            job_ids = await self.store.replay(event.id, destinations, self.clock())
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
        for event_id, destinations in grouped.items():
            results.append(ReplayResult(event_id, await self.store.replay(event_id, destinations, self.clock())))
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
        try:
            await asyncio.wait_for(self.store.check_writable(), 5)
        except Exception as exc:
            return False, f"store not writable: {exc}"
        return True, "ok"
