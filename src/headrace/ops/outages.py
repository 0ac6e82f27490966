"""Knowing that a reconcile is needed: stretches in which Dodo gave up on events headrace never stored.

Dodo retries a webhook 8 times over `RETRY_WINDOW` (27 h 35 min, the Svix schedule) and then drops it. An
event is lost for good when every one of its attempts failed: it happened at some t with [t, t + window]
inside a stretch where nothing was accepted — headrace down (no `serve` alive) or refusing every attempt
with 401 (a wrong signing secret). For a stretch from A to B that is the events of [A, B - window]: none
when the stretch is shorter than the window.

- **Down**: `serve` records an alive span (its start, then a beat every `BEAT_EVERY`) in the store; a gap
  between spans (or since the last one, when nothing is alive now) is a stretch.
- **Refused**: 401 refusals are recorded (sampled; ingest/refusals.py) with their time; the hours that had one
  form a stretch while consecutive ones are at most `MAX_RETRY_GAP` apart (no event can have all its
  attempts refused across a longer silence: Dodo's longest pause between two attempts is 10 h) and no event
  from that source was accepted within it.

An outage is reported (start-up log, `check`, `/metrics`, the console) until a `headrace reconcile --apply`
covered it; the store keeps `HISTORY` of both records. Rejection rows go after [server] rejection_retention:
a retention under the window hides refused stretches (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from headrace.observe.metrics import Cached
from headrace.ops.periodic import pause
from headrace.store.core import Store

log = logging.getLogger("headrace.outages")

RETRY_WINDOW = 27 * 3600 + 35 * 60  # seconds from an event to Dodo's last attempt (0, 5 s, 5 min, ... 10 h)
BEAT_EVERY = 60.0  # seconds between two alive beats of `serve`
HISTORY = 30 * 86400  # seconds of alive spans and refusal times looked at (and alive spans kept)
MAX_RETRY_GAP = 11 * 3600  # seconds: longer than Dodo's longest pause between two attempts (10 h)
LOOK_EVERY = 60.0  # seconds a found list is reused (/metrics scrapes, console pages)


@dataclass(frozen=True)
class Outage:
    kind: Literal["down", "refused"]
    start: float  # the stretch: nothing accepted from `start` to `end`
    end: float
    source: str | None = None  # for "refused": the source whose webhooks were refused

    @property
    def missed_until(self) -> float:
        """Events that happened from `start` to this were never retried successfully by Dodo."""
        return self.end - RETRY_WINDOW

    def message(self) -> str:
        t0, t1 = iso(self.start), iso(self.missed_until)
        why = (
            "headrace was not running"
            if self.kind == "down"
            else f"every webhook of source {self.source} was refused with 401 (a wrong signing secret?)"
        )
        source = f" --source {self.source}" if self.source else ""
        return (
            f"events from {t0} to {t1} were not retried by Dodo ({why} from {t0} to {iso(self.end)}, longer than "
            f"Dodo's 27 h 35 min of retries): run `headrace reconcile{source} --since {t0}`"
        )


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def down_stretches(spans: Sequence[tuple[float, float]], now: float, *, beat: float = BEAT_EVERY) -> list[Outage]:
    """Gaps between alive spans (start, last beat) longer than the window; with none alive now (the last
    beat older than two beats), the gap since the last one too."""
    found: list[Outage] = []
    covered: float | None = None
    for start, last in sorted(spans):
        if covered is not None and start - covered > RETRY_WINDOW:
            found.append(Outage("down", covered, start))
        covered = last if covered is None else max(covered, last)
    if covered is not None and now - covered > max(RETRY_WINDOW, 2 * beat):
        found.append(Outage("down", covered, now))
    return found


def refusal_runs(hours: Sequence[tuple[str, float, float]]) -> list[Outage]:
    """Runs of hours with 401 refusals (per source; consecutive ones at most MAX_RETRY_GAP apart) longer than
    the window: candidates, before the check that nothing was accepted within."""
    found: list[Outage] = []
    run: tuple[str, float, float] | None = None
    for source, first, last in sorted(hours):
        if run is not None and run[0] == source and first - run[2] <= MAX_RETRY_GAP:
            run = (source, run[1], max(run[2], last))
            continue
        if run is not None and run[2] - run[1] > RETRY_WINDOW:
            found.append(Outage("refused", run[1], run[2], run[0]))
        run = (source, first, last)
    if run is not None and run[2] - run[1] > RETRY_WINDOW:
        found.append(Outage("refused", run[1], run[2], run[0]))
    return found


async def find(store: Store, now: float, sources: Sequence[str] = ()) -> list[Outage]:
    """The outages of the last HISTORY that no `headrace reconcile --apply` has covered yet, oldest first.
    `sources`: the configured ones; a stretch headrace was down is covered only once each was reconciled."""
    since = now - HISTORY
    found = down_stretches(await store.alive_spans(since), now)
    for run in refusal_runs(await store.refusal_hours(since)):
        if run.source is not None and not await store.accepted_between(run.source, run.start, run.end):
            found.append(run)
    windows = await store.reconciled_windows(since)
    return sorted((o for o in found if not _covered(o, windows, sources)), key=lambda o: o.start)


class OutageWatch:
    """`find`, looked up at most once per LOOK_EVERY for /metrics and the console; a store that cannot answer
    reports none (readiness says what is wrong with it)."""

    def __init__(self, store: Store, sources: Callable[[], Sequence[str]], clock: Callable[[], float]) -> None:
        self.store = store
        self.sources = sources  # the configured sources, as the running settings have them
        self.clock = clock
        self._found: Cached[list[Outage]] = Cached(LOOK_EVERY)

    async def current(self) -> list[Outage]:
        return await self._found.get(self._find)

    async def _find(self) -> list[Outage]:
        try:
            return await find(self.store, self.clock(), list(self.sources()))
        except Exception:
            log.exception("could not look for outages longer than Dodo's retries")
            return []


def _covered(outage: Outage, windows: Sequence[tuple[str, float, float]], sources: Sequence[str]) -> bool:
    """A reconcile of the outage's source covered all it missed; for "down", one of each configured source
    (of any source when none are named)."""

    def of(wanted: str | None) -> bool:
        return any(
            since <= outage.start and until >= outage.missed_until
            for source, since, until in windows
            if wanted is None or source == wanted
        )

    if outage.source is not None:
        return of(outage.source)
    return all(of(source) for source in sources) if sources else of(None)


async def stay_alive(
    store: Store,
    stop: asyncio.Event,
    clock: Callable[[], float],
    *,
    beat: float = BEAT_EVERY,
    sources: Sequence[str] = (),
) -> None:
    """`serve`'s alive record: a span at start (an outage before it is logged), then a beat every `beat` and
    a last one as `stop` is set. Never raises: a store refusing writes is logged and tried again next beat."""
    instance = f"{socket.gethostname()}:{os.getpid()}"
    span: int | None = None
    while True:
        try:
            if span is None:
                span = await store.start_alive(instance, clock(), clock() - HISTORY)
                for outage in await find(store, clock(), sources):
                    log.warning("%s", outage.message())
            else:
                await store.beat_alive(span, clock())
        except Exception as exc:  # the store refuses writes for now (ingest says so too): try again next beat
            log.warning("could not record that headrace is alive: %s", exc)
        if stop.is_set():
            return
        await pause(stop, beat)


def metric(found: Sequence[Outage]) -> str:
    """The /metrics gauge: when the oldest unreconciled outage began (0: none), and how many there are."""
    start = min((o.start for o in found), default=0.0)
    return (
        "# HELP headrace_unreconciled_outage_start_seconds Start (unix time) of the oldest stretch in which Dodo "
        "gave up on events headrace never stored (0: none); `headrace check` says which command recovers them.\n"
        "# TYPE headrace_unreconciled_outage_start_seconds gauge\n"
        f"headrace_unreconciled_outage_start_seconds {start:.0f}\n"
        "# HELP headrace_unreconciled_outages Such stretches not yet covered by `headrace reconcile --apply`.\n"
        f"# TYPE headrace_unreconciled_outages gauge\nheadrace_unreconciled_outages {len(found)}\n"
    )
