"""The one place that wires concrete pieces together: store, sandbox, Windmill client, worker, ingest."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from headrace.config import ConfigError, Settings
from headrace.config.database import SQLITE_PREFIX, sqlite_file
from headrace.deliver.attempt import Attempter
from headrace.deliver.preflight import SchemaCache
from headrace.deliver.recorder import OutcomeRecorder
from headrace.deliver.tracker import JobTracker
from headrace.deliver.worker import Transformations, Worker
from headrace.ingest.endpoint import Ingestor
from headrace.observe.metrics import Metrics
from headrace.ops import outages
from headrace.ops.charts import Charts
from headrace.ops.replays import Replays
from headrace.policy import DEAD_AFTER, WAL_LIMIT
from headrace.previews import Previews
from headrace.store.core import Store
from headrace.store.sqlite import SQLiteStore
from headrace.transform import Sandbox, Script
from headrace.windmill.client import WindmillClient
from headrace.windmill.connections import RunConnections

log = logging.getLogger("headrace.app")

RELOAD_TIMEOUT = 10.0  # seconds a SIGHUP reload may spend reading the config, its secrets and scripts


def open_store(settings: Settings) -> Store:
    return store_at(settings.server.database, settings.sqlite_path, wal_limit=settings.server.wal_limit)


def store_at(url: str, sqlite_path: Path | None = None, *, wal_limit: int = WAL_LIMIT) -> Store:
    """The store for a database URL (`sqlite:///PATH` or `postgresql://…`); `sqlite_path` as config resolved it,
    else a relative path is under the current folder (config.database)."""
    if url.startswith(SQLITE_PREFIX):
        try:
            path = sqlite_path or sqlite_file(url, Path.cwd())
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return SQLiteStore(path, wal_limit=wal_limit)
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


class App:
    """The running pieces, picked and wired: the store, ingest, the worker (when this process delivers), the
    services the API, the console and the CLI call (`replays`, `charts`, `outages`, `previews()`), the config
    reload, readiness and /metrics. What each service does is in its own module."""

    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.worker: Worker | None = None
        self.metrics = Metrics(clock, settings)
        self._session: aiohttp.ClientSession | None = None
        self._runs: RunConnections | None = None
        self._sandbox: Sandbox | None = None  # made for previews when the worker has none
        self._previews: Previews | None = None
        self.ingestor = Ingestor(settings, store, self._notify, clock, self.metrics)
        self._reloading = False
        self.replays = Replays(store, lambda: self.settings, clock, self._notify)
        self.charts = Charts(store, lambda: list(self.settings.destinations), clock)
        self.outages = outages.OutageWatch(store, lambda: list(self.settings.sources), clock)

    @classmethod
    async def open(cls, settings: Settings, *, migrate: bool = True) -> App:
        """`migrate`: bring the schema up to date (serve and worker); False refuses an older schema instead."""
        store = open_store(settings)
        await store.open(migrate=migrate)
        if migrate:
            await store.index_backlog()  # events stored before payload search: once, after migration 0006
            await store.key_backlog()  # events stored before event keys: once, after migration 0010/0011
        return cls(settings, store)

    def _notify(self) -> None:
        if self.worker is not None:
            self.worker.notify()

    async def start_worker(self) -> Worker:
        """Build the delivery side: one Windmill client, the schema cache, the sandbox, the attempt, the
        outcome recorder, the job tracker, and the worker that schedules them."""
        transformations = load_transformations(self.settings)
        client = self._windmill()
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

    def _windmill(self) -> WindmillClient:
        """The one HTTP session to Windmill (the worker's, and the previews' when there is no worker)."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": "headrace"})
            self._runs = RunConnections()
        return WindmillClient(self._session, self._runs)

    def sandbox(self) -> Sandbox:
        """Where user scripts run: the worker's sandbox when it has one, else one made on first use (previews
        on a server whose destinations have no scripts, or whose worker runs apart)."""
        if self.worker is not None and self.worker.transformations.sandbox is not None:
            return self.worker.transformations.sandbox
        if self._sandbox is None:
            self._sandbox = make_sandbox(self.settings)
        return self._sandbox

    def script_of(self, destination: str) -> Script | None:
        """The destination's transformation as deliveries run it now (the worker's loaded copy)."""
        if self.worker is not None:
            return self.worker.transformations.scripts.get(destination)
        return load_scripts(self.settings).get(destination)

    def previews(self) -> Previews:
        """The "try a transformation" service, made on first use (it needs the Windmill session)."""
        if self._previews is None:
            self._previews = Previews(
                self.store, lambda: self.settings, self._windmill(), self.sandbox, self.script_of, self.clock
            )
        return self._previews

    def _delivering(self) -> bool:
        return self.worker is not None and self.worker.in_flight > 0

    def reload(self, config_path: Path | None) -> bool:
        """SIGHUP: read the config file again (`config_path`; None: the running settings, so only the
        transformations' files), validate it, load its transformations, and only then hand everything to
        ingest, the worker, the tracker, the guards and metrics in one step (no await in between, so no
        request or attempt sees half of it). A file that does not load keeps the running config: False.
        `serve` runs it through `reload_off_loop`: the reading then never holds the event loop."""
        prepared = self._prepare_reload(config_path)
        return prepared is not None and self._apply_reload(*prepared)

    async def reload_off_loop(self, config_path: Path | None, timeout: float = RELOAD_TIMEOUT) -> bool:
        """`reload`, with the reading and checking (files, `file:` secrets, scripts) in a thread and at most
        `timeout` seconds of it (a secret on a hung mount), then applied on the loop; one at a time."""
        if self._reloading:
            log.warning("config reload already in progress: this SIGHUP is ignored")
            return False
        self._reloading = True
        try:
            reading = asyncio.get_running_loop().run_in_executor(None, self._prepare_reload, config_path)
            try:
                prepared = await asyncio.wait_for(asyncio.shield(reading), timeout)
            except TimeoutError:
                log.error(
                    "config not reloaded, the running config is kept: reading it took longer than %gs "
                    "(a file: secret on a hung mount?)",
                    timeout,
                )
                return False
            return prepared is not None and self._apply_reload(*prepared)
        finally:
            self._reloading = False

    def _prepare_reload(self, config_path: Path | None) -> tuple[Any, Transformations | None] | None:
        from headrace.config import load
        from headrace.ops.reload import merge

        try:
            new = load(config_path) if config_path is not None else self.settings
            change = merge(self.settings, new)
            transformations = None
            if self.worker is not None:
                transformations = load_transformations(change.settings, self.worker.transformations.sandbox)
        except ConfigError as exc:
            log.error("config not reloaded, the running config is kept: %s", " ".join(str(exc).split()))
            return None
        except (OSError, UnicodeDecodeError) as exc:  # unreadable: a folder, no permission, not UTF-8
            log.error("config not reloaded, the running config is kept: cannot read %s: %s", config_path, exc)
            return None
        return change, transformations

    def _apply_reload(self, change: Any, transformations: Transformations | None) -> bool:
        if change.needs_restart:
            log.warning(
                "config reload: [server] %s changed, which only a restart applies; the running value is kept",
                ", ".join(change.needs_restart),
            )
        self.settings = change.settings
        self.metrics.declare(change.settings)
        self.ingestor.reload(change.settings)
        if self.worker is not None and transformations is not None:
            self.worker.reload(transformations, change.settings)
        log.info("config reloaded: %s", change.summary)
        return True

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.close()
        if self.worker is not None and self.worker.transformations.sandbox is not None:
            await self.worker.transformations.sandbox.close()
        if self._sandbox is not None:
            await self._sandbox.close()
        if self._session is not None:
            await self._session.close()
        if self._runs is not None:
            await self._runs.close()
        await self.store.close()

    async def metrics_text(self) -> str:
        """Prometheus exposition: this process's counters and the store's queue gauges (cached ~1 s)."""
        queue, ready = await self.metrics.queue(self.store.queue_stats), await self.metrics.ready(self.ready)
        facts = self.store.describe()
        text = self.metrics.render(
            queue,
            ready,
            facts.get("wal_bytes"),
            turn_wait_seconds=facts.get("write_turn_wait_seconds"),
            commits_by_place=facts.get("commits_by_place"),
        )
        return text + outages.metric(await self.outages.current())

    async def ready(self) -> tuple[bool, str]:
        """Ready when the store has this binary's schema, can read every column it uses, and can write; and,
        when this process runs the delivery worker, its loop completes rounds and its heartbeat is written.
        When the worker runs apart (`[server] worker = false`), readiness stays ok without one (ingest alone
        is durable) and its detail says how many live workers are registered."""
        try:
            await asyncio.wait_for(self.store.check_schema(), 5)
        except Exception as exc:
            return False, f"store schema does not match this headrace: {exc}"
        try:
            await asyncio.wait_for(self.store.check_writable(), 5)
        except Exception as exc:
            return False, f"store not writable: {exc}"
        if self.worker is not None:
            return self.worker.health()
        if self.settings.server.worker:
            return True, "ok"
        try:
            live = await asyncio.wait_for(self.store.live_workers(self.clock() - DEAD_AFTER), 5)
        except Exception as exc:
            return False, f"cannot read the registered workers: {exc}"
        if live == 0:
            return True, "ok; no live delivery worker registered: events are stored and wait for `headrace worker`"
        return True, f"ok; {live} live delivery worker{'s' if live > 1 else ''} registered"
