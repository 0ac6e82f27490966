"""The one place that wires concrete pieces together: store, sandbox, Windmill client, worker, ingest."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from headrace.config import ConfigError, Settings
from headrace.config.database import SQLITE_PREFIX, sqlite_file
from headrace.deliver import preview as trying
from headrace.deliver import testsend
from headrace.deliver.attempt import Attempter
from headrace.deliver.preflight import SchemaCache
from headrace.deliver.recorder import OutcomeRecorder
from headrace.deliver.tracker import JobTracker
from headrace.deliver.worker import Transformations, Worker
from headrace.ingest.endpoint import Ingestor
from headrace.models import Activity, DeliveryError, EventFilter, EventRow, Rejection, TestDelivery, no_event
from headrace.observe.metrics import Metrics
from headrace.ops import bulk, outages
from headrace.policy import DEAD_AFTER, WAL_LIMIT
from headrace.previews import PreviewSpec
from headrace.store.base import StoreStats
from headrace.store.core import Store
from headrace.store.sqlite import SQLiteStore
from headrace.transform import Sandbox, Script
from headrace.windmill.client import WindmillClient

log = logging.getLogger("headrace.app")

# The console's chart windows: name -> (bucket seconds, buckets).
CHART_WINDOWS: dict[str, tuple[float, int]] = {"1h": (60.0, 60), "6h": (300.0, 72), "24h": (900.0, 96)}
ERRORS_WINDOW = 7 * 86400.0  # how far back a destination page looks for its last errors
CHART_CACHE = 15.0  # seconds a chart's numbers are reused (charts of 1- to 15-minute buckets)
OUTAGE_TTL = 60.0  # seconds an outage report is reused (/metrics scrapes, console pages)
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


class Previews:
    """Trying transformations (the console's preview page, `POST /api/v1/preview`) and test deliveries:
    the worker's own pieces (build_request, Attempter, JobTracker's reading of Windmill), wired here."""

    def __init__(self, app: App) -> None:
        self.app = app
        client = app._windmill()
        self.schemas = SchemaCache(client)
        # Tests are not deliveries: their attempts are counted in a Metrics of their own, never exported.
        self.attempter = Attempter(client, self.schemas, Metrics(app.clock, app.settings), clock=app.clock)
        self.client = client

    async def _input(self, spec: PreviewSpec) -> trying.Input:
        if spec.event_type is not None:
            return trying.sample_input(spec.event_type, spec.variant)
        assert spec.event_id is not None
        event = await self.app.store.get_event(spec.event_id)
        if event is None or event.body is None:
            raise LookupError(no_event(spec.event_id))
        label = f"event {event.id} ({event.webhook_id})"
        return trying.Input(event.event_type, event.body, event.webhook_id, event.id, event.source, label)

    def _needs_sandbox(self, script: Script | None) -> Sandbox | None:
        return None if script is None else self.app.sandbox()

    async def preview(self, spec: PreviewSpec) -> dict[str, Any]:
        """What a delivery would send (LookupError for an unknown event)."""
        dest = self.app.settings.destinations[spec.destination]
        script = trying.script_for(spec.script, self.app.script_of(spec.destination))
        given = await self._input(spec)
        return await trying.preview(dest, script, given, self._needs_sandbox(script), self.schemas)

    async def send_test(self, spec: PreviewSpec) -> TestDelivery:
        """Send it once as a test delivery (deliver/testsend.py)."""
        settings = self.app.settings
        dest = settings.destinations[spec.destination]
        script = trying.script_for(spec.script, self.app.script_of(spec.destination))
        given = await self._input(spec)
        sandbox = self._needs_sandbox(script)
        test = await testsend.send_test(
            self.attempter, self.app.store, spec.destination, dest, script, sandbox, given, self.app.clock()
        )
        log.info(
            "test delivery sent",
            extra={"destination": spec.destination, "job_id": test.job_id, "outcome": test.outcome},
        )
        return test

    async def test(self, test_id: int) -> TestDelivery | None:
        """One test delivery, after a look at its job if it is still open."""
        found = await self.app.store.get_test_delivery(test_id)
        if found is None:
            return None
        tracker = JobTracker(self.app.store, self.app.settings, self.client, clock=self.app.clock)
        return await testsend.look(tracker, self.app.store, found, self.app.clock())

    async def tests(self, event_id: int | None = None, limit: int = 20) -> list[TestDelivery]:
        return await self.app.store.list_test_deliveries(event_id, limit)


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
        self._sandbox: Sandbox | None = None  # made for previews when the worker has none
        self._previews: Previews | None = None
        self.ingestor = Ingestor(settings, store, self._notify, clock, self.metrics)
        self._reloading = False
        self._charts: dict[tuple[str, str | None], tuple[float, Activity]] = {}
        self._outages: tuple[float, list[outages.Outage]] | None = None

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
        return WindmillClient(self._session)

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
        if self._previews is None:
            self._previews = Previews(self)
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
                raise LookupError(no_event(key))
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

    async def bulk_plan(self, flt: EventFilter) -> bulk.Plan:
        """What a bulk replay of the events `flt` matches would send; bulk.TooMany past BULK_REPLAY_LIMIT."""
        return (await self._bulk_count(bulk.counting_filter(flt)))[0]

    async def _bulk_count(self, flt: EventFilter) -> tuple[bulk.Plan, list[tuple[int, list[str]]]]:
        mark = await self.store.delivery_mark()  # before listing: a replay racing the count shows as changed
        return bulk.plan_of(flt, await self.store.list_events(flt), mark, self.settings)

    async def bulk_replay(self, token: str) -> tuple[bulk.Plan, list[ReplayResult]]:
        """Replay what a plan's token counted. Counted again under the same filter and newest event id, and
        sent only if nothing changed: the same deliveries per destination, and no counted event replayed (or
        re-run) since the count (bulk.Changed, with the new plan, otherwise). A token replays once, atomically:
        its first chunk's transaction claims it and checks again under a lock that serialises bulk replays
        (store.replay_counted), so concurrent confirmations of one count (or of two counts of the same events,
        on any instance) write one replay. A new generation per delivery, like `replay`, written bulk.CHUNK
        events per transaction."""
        counted = bulk.decode(token)
        plan, routed = await self._bulk_count(counted.flt)
        touched = set(await self.store.replayed_since(counted.mark, counted.max_event_id))
        if plan.destinations != counted.destinations or touched & {event_id for event_id, _ in routed}:
            raise bulk.Changed(plan)
        results: list[ReplayResult] = []
        todo = [(event_id, [self.settings.route(n) for n in names]) for event_id, names in routed if names]
        planned = [event_id for event_id, _ in todo]
        counted_at = (counted.mark, counted.max_event_id)
        for start in range(0, max(len(todo), 1), bulk.CHUNK):
            chunk = todo[start : start + bulk.CHUNK]
            claim = bulk.claim_key(token) if start == 0 else None
            job_ids = await self.store.replay_counted(chunk, self.clock(), counted_at, claim, planned)
            if job_ids is None:  # the token was used, or a racing replay wrote first: nothing was written
                raise bulk.Changed((await self._bulk_count(counted.flt))[0])
            results.extend(
                ReplayResult(event_id, ids) for (event_id, _), ids in zip(chunk, job_ids, strict=True) if ids
            )
            self._notify()
        return plan, results

    async def activity(self, window: str = "6h", destination: str | None = None) -> Activity:
        """The console's charts over `window` (a key of CHART_WINDOWS) ending at the next bucket boundary;
        kept CHART_CACHE seconds per window and destination, so reloading a page does not count again."""
        key = (window, destination)
        cached = self._charts.get(key)
        if cached is not None and 0 <= self.clock() - cached[0] < CHART_CACHE:
            return cached[1]
        step, buckets = CHART_WINDOWS[window]
        now = self.clock()
        until = math.ceil(now / step) * step
        since = until - step * buckets
        found = await self.store.activity(since, step, buckets, list(self.settings.destinations), destination)
        self._charts[key] = (now, found)  # keys: windows x (configured destinations + 1), a bounded table
        return found

    async def destination_errors(self, name: str, limit: int = 10) -> list[DeliveryError]:
        """A destination's newest errors of the last ERRORS_WINDOW seconds."""
        return await self.store.destination_errors(name, self.clock() - ERRORS_WINDOW, limit)

    async def rejections(self, since: float | None = None, limit: int = 100) -> list[Rejection]:
        return await self.store.list_rejections(since, limit)

    async def stats(self, *, rejections: bool = True) -> StoreStats:
        return await self.store.stats(rejections=rejections)

    async def metrics_text(self) -> str:
        """Prometheus exposition: this process's counters and the store's queue gauges (cached ~1 s)."""
        queue, ready = await self.metrics.queue(self.store.queue_stats), await self.metrics.ready(self.ready)
        text = self.metrics.render(queue, ready, self.store.describe().get("wal_bytes"))
        return text + outages.metric(await self.outages())

    async def outages(self) -> list[outages.Outage]:
        """Stretches in which Dodo gave up on events headrace never stored (ops/outages.py), looked up at most once
        per OUTAGE_TTL; a store that cannot answer reports none (readiness says what is wrong with it)."""
        cached = self._outages
        if cached is not None and time.monotonic() - cached[0] < OUTAGE_TTL:
            return cached[1]
        try:
            found = await outages.find(self.store, self.clock(), list(self.settings.sources))
        except Exception:
            log.exception("could not look for outages longer than Dodo's retries")
            found = []
        self._outages = (time.monotonic(), found)
        return found

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
