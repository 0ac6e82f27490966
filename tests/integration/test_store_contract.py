"""One contract for every Store implementation: SQLite, and PostgreSQL (marked `postgres`)."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from headrace.models import (
    EVENT_STATUSES,
    Attempt,
    Cancelled,
    Delivered,
    EventFilter,
    Failed,
    JobUpdate,
    NewEvent,
    Rejection,
    Retry,
    Route,
    event_status,
    job_id_for,
)
from headrace.store.base import Finished
from headrace.store.core import Store
from headrace.store.queries import load, migrations
from headrace.store.rows import FIRST_JOB_CHECK
from headrace.store.sqlite import SQLiteStore

StoreFactory = Callable[[pytest.FixtureRequest, Path], Store]


def _postgres(request: pytest.FixtureRequest, tmp: Path) -> Store:
    from headrace.store.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("pg_dsn"))  # a fresh schema in the session's database


FACTORIES: dict[str, StoreFactory] = {
    "sqlite": lambda request, tmp: SQLiteStore(tmp / "contract.db"),
    "postgres": _postgres,
}
MARKS = {"postgres": [pytest.mark.postgres]}


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(FACTORIES)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Store]:
    return lambda: FACTORIES[request.param](request, tmp_path)


def run(make: Callable[[], Store], scenario: Callable[[Store], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        store = make()
        await store.open()
        try:
            return await scenario(store)
        finally:
            await store.close()

    return asyncio.run(main())


TARGET = "http://127.0.0.1:8000/api/w/acme"


def routes(*names: str) -> list[Route]:
    return [Route(name, TARGET) for name in names]


def job_id(store: Store, webhook_id: str, destination: str, generation: int) -> str:
    assert store.deployment_id is not None
    return job_id_for(store.deployment_id, TARGET, "dodo", webhook_id, destination, generation)


def event(webhook_id: str = "msg_1", event_type: str = "payment.succeeded", at: float = 1000.0) -> NewEvent:
    return NewEvent("dodo", webhook_id, event_type, 1000, at, b'{"type": "%s"}' % event_type.encode(), {"a": "b"})


def attempt(status: int | None = 201) -> Attempt:
    return Attempt(started_at=1001.0, duration_ms=3.0, http_status=status, response_excerpt="resp")


def test_ingest_fans_out_and_dedupes(make_store):
    async def scenario(store: Store) -> None:
        first = await store.ingest(event(), routes("a", "b"))
        again = await store.ingest(event(), routes("a", "b"))
        assert (first.duplicate, first.deliveries) == (False, 2)
        assert (again.duplicate, again.event_id) == (True, first.event_id)
        detail = await store.get_event(str(first.event_id))
        assert detail is not None and detail.status == "pending"
        assert [(d.destination, d.generation, d.job_id) for d in detail.deliveries] == [
            ("a", 0, job_id(store, "msg_1", "a", 0)),
            ("b", 0, job_id(store, "msg_1", "b", 0)),
        ]
        assert detail.body == b'{"type": "payment.succeeded"}' and detail.headers == {"a": "b"}

    run(make_store, scenario)


def test_concurrent_ingests_are_each_stored_once(make_store):
    async def scenario(store: Store) -> None:
        results = await asyncio.gather(*(store.ingest(event(f"msg_{i % 50}"), routes("a")) for i in range(200)))
        assert sum(not r.duplicate for r in results) == 50
        assert len(await store.list_events(EventFilter(limit=1000))) == 50

    run(make_store, scenario)


def test_unrouted_events_are_kept(make_store):
    async def scenario(store: Store) -> None:
        result = await store.ingest(event(event_type="license_key.created"), [])
        listed = await store.list_events(EventFilter(status="unrouted"))
        assert [e.id for e in listed] == [result.event_id]

    run(make_store, scenario)


def test_claim_lease_finish_and_lost_lease(make_store):
    async def scenario(store: Store) -> None:
        await store.ingest(event(), routes("a"))
        claimed = await store.claim("a", 10, "w1#1", now=1000.0, lease_until=1060.0)
        assert len(claimed) == 1 and claimed[0].attempts == 0
        assert await store.claim("a", 10, "w2#1", now=1001.0, lease_until=1061.0) == []  # leased
        # The lease expires: another worker takes it, and the first one's late outcome is refused.
        stolen = await store.claim("a", 10, "w2#2", now=1061.0, lease_until=1121.0)
        assert [c.delivery_id for c in stolen] == [claimed[0].delivery_id]
        late = Finished(claimed[0], "w1#1", attempt(), Delivered("job"))
        assert await store.finish(late, now=1062.0) is False
        assert await store.finish(Finished(stolen[0], "w2#2", attempt(), Delivered("job")), now=1063.0) is True
        detail = await store.get_event(str(claimed[0].event_id))
        assert detail is not None and detail.status == "delivered"
        assert [a.number for a in detail.deliveries[0].attempt_rows] == [1]
        assert detail.deliveries[0].windmill_job_id == "job"

    run(make_store, scenario)


def test_retry_waits_until_due_then_counts_attempts(make_store):
    async def scenario(store: Store) -> None:
        await store.ingest(event(), routes("a"))
        [c] = await store.claim("a", 1, "t1", 1000.0, 1060.0)
        await store.finish(Finished(c, "t1", attempt(500), Retry(at=1100.0, reason="HTTP 500")), 1001.0)
        assert await store.next_due() == 1100.0
        assert await store.claim("a", 1, "t2", 1099.0, 1160.0) == []
        [again] = await store.claim("a", 1, "t3", 1100.0, 1160.0)
        assert again.attempts == 1 and again.job_id == c.job_id
        await store.finish(Finished(again, "t3", attempt(500), Failed("gave up")), 1101.0)
        detail = await store.get_event(str(c.event_id))
        assert detail is not None and detail.status == "failed"
        assert [(a.number, a.outcome) for a in detail.deliveries[0].attempt_rows] == [(1, "retry"), (2, "failed")]
        assert detail.deliveries[0].last_error == "gave up"

    run(make_store, scenario)


def test_release_returns_work_to_the_queue(make_store):
    async def scenario(store: Store) -> None:
        await store.ingest(event(), routes("a"))
        [c] = await store.claim("a", 1, "t1", 1000.0, 5000.0)
        await store.release(c, "t1", 1000.5)
        [again] = await store.claim("a", 1, "t2", 1001.0, 1060.0)
        assert again.delivery_id == c.delivery_id and again.attempts == 0

    run(make_store, scenario)


def test_replay_makes_a_new_generation_and_job_id(make_store):
    async def scenario(store: Store) -> None:
        result = await store.ingest(event(), routes("a"))
        [c] = await store.claim("a", 1, "t1", 1000.0, 1060.0)
        await store.finish(Finished(c, "t1", attempt(404), Failed("HTTP 404")), 1001.0)
        assert await store.failed_since(1000.0) == [(result.event_id, "a")]
        job_ids = await store.replay(result.event_id, routes("a"), 1002.0)
        assert job_ids == [job_id(store, "msg_1", "a", 1)] and job_ids[0] != c.job_id
        assert await store.failed_since(1000.0) == []  # the newest generation is pending now
        listed = await store.list_events(EventFilter(status="pending"))
        assert [e.id for e in listed] == [result.event_id]

    run(make_store, scenario)


def test_cancelled_and_filters(make_store):
    async def scenario(store: Store) -> None:
        await store.ingest(event("m1", "payment.succeeded", at=100.0), routes("a"))
        await store.ingest(event("m2", "refund.succeeded", at=200.0), [])
        await store.ingest(event("m3", "payment.failed", at=300.0), [])
        [c] = await store.claim("a", 1, "t", 1000.0, 1060.0)
        await store.finish(Finished(c, "t", attempt(None), Cancelled()), 1000.0)
        by_type = await store.list_events(EventFilter(event_type="payment.*"))
        assert [e.webhook_id for e in by_type] == ["m3", "m1"]
        exact = await store.list_events(EventFilter(event_type="payment.succeeded"))
        assert [(e.webhook_id, e.status) for e in exact] == [("m1", "cancelled")]
        window = await store.list_events(EventFilter(since=150.0, until=250.0))
        assert [e.webhook_id for e in window] == ["m2"]
        page = await store.list_events(EventFilter(limit=2))
        rest = await store.list_events(EventFilter(limit=2, before_id=page[-1].id))
        assert [e.webhook_id for e in page + rest] == ["m3", "m2", "m1"]
        assert (await store.get_event("m2")) is not None  # lookup by webhook-id

    run(make_store, scenario)


def test_rejections_are_counted_without_bodies(make_store):
    async def scenario(store: Store) -> None:
        for reason in ("bad_signature", "bad_signature", "body_too_large"):
            await store.reject(Rejection("dodo", reason, 401, "detail", "127.0.0.1", 1000.0))
        stats = await store.stats()
        assert stats.rejections == {("dodo", "bad_signature"): 2, ("dodo", "body_too_large"): 1}
        assert len(await store.list_rejections(None, 10)) == 3
        await store.check_writable()

    run(make_store, scenario)


async def delivered(store: Store, webhook_id: str, destination: str = "a", *, now: float = 1000.0, **kw: Any) -> Any:
    await store.ingest(event(webhook_id), routes(destination))
    [c] = await store.claim(destination, 1, f"t-{webhook_id}", now, now + 60)
    job_id = kw.pop("job_id", c.job_id)
    await store.finish(Finished(c, f"t-{webhook_id}", attempt(), Delivered(job_id, **kw)), now)
    return c


def test_delivered_async_job_is_open_until_its_outcome_is_recorded(make_store):
    async def scenario(store: Store) -> None:
        c = await delivered(store, "msg_j")
        detail = await store.get_event("msg_j")
        assert detail is not None
        [d] = detail.deliveries
        assert (d.job_state, d.job_created_at, d.job_checks) == ("open", 1001.0, 0)
        assert await store.next_job_check() == 1000.0 + FIRST_JOB_CHECK
        assert await store.lease_due_jobs(10, 1000.5, 1060.0) == []  # not due yet
        [job] = await store.lease_due_jobs(10, 1001.5, 1061.5)
        assert (job.delivery_id, job.job_id, job.source, job.webhook_id, job.reruns) == (
            c.delivery_id,
            c.job_id,
            "dodo",
            "msg_j",
            0,
        )
        assert await store.lease_due_jobs(10, 1002.0, 1062.0) == []  # leased to the first tracker
        assert await store.record_job(JobUpdate(c.delivery_id, "open", next_check_at=1003.0), 1001.6) is None
        assert await store.next_job_check() == 1003.0
        [job] = await store.lease_due_jobs(10, 1003.0, 1063.0)
        assert job.checks == 1
        done = JobUpdate(c.delivery_id, "success", completed_at=1004.0, duration_ms=812.5, excerpt="x" * 5000)
        assert await store.record_job(done, 1004.0) is None
        assert await store.record_job(done, 1005.0) is None  # a second record of a closed job changes nothing
        detail = await store.get_event("msg_j")
        assert detail is not None
        [d] = detail.deliveries
        assert (d.job_state, d.job_checks, d.job_completed_at, d.job_duration_ms) == ("success", 2, 1004.0, 812.5)
        assert len(d.job_excerpt) < 1100 and d.job_excerpt.startswith("xxx")
        assert await store.next_job_check() is None
        assert (await store.queue_stats()).open_jobs == 0

    run(make_store, scenario)


def test_failed_job_rerun_makes_one_new_generation(make_store):
    async def scenario(store: Store) -> None:
        c = await delivered(store, "msg_f")
        await store.lease_due_jobs(10, 1002.0, 1062.0)
        failure = JobUpdate(
            c.delivery_id, "failure", completed_at=1003.0, excerpt="ValueError: no", rerun=True, target=TARGET
        )
        new_job = await store.record_job(failure, 1003.0)
        assert new_job == job_id(store, "msg_f", "a", 1)
        detail = await store.get_event("msg_f")
        assert detail is not None
        first, second = detail.deliveries
        assert (first.job_state, first.job_excerpt) == ("failure", "ValueError: no")
        assert (second.generation, second.status, second.job_reruns, second.job_state) == (1, "pending", 1, None)
        [failures] = await store.job_failures(since=1000.0)
        assert (failures.destination, failures.count, failures.last_job_id, failures.last_webhook_id) == (
            "a",
            1,
            c.job_id,
            "msg_f",
        )
        assert await store.job_failures(since=1003.5) == []
        # The re-run fails too, after a manual replay made a newer generation: no second re-run from it.
        [c2] = await store.claim("a", 1, "t2", 1004.0, 1064.0)
        await store.finish(Finished(c2, "t2", attempt(), Delivered(c2.job_id)), 1004.0)
        await store.replay(c2.event_id, routes("a"), 1005.0)
        assert await store.record_job(JobUpdate(c2.delivery_id, "failure", rerun=True), 1006.0) is None
        detail = await store.get_event("msg_f")
        assert detail is not None and [d.generation for d in detail.deliveries] == [0, 1, 2]

    run(make_store, scenario)


def test_queue_stats_count_only_open_deliveries(make_store):
    async def scenario(store: Store) -> None:
        await store.ingest(event("q1", at=1000.0), routes("a", "b"))
        await store.ingest(event("q2", at=1010.0), routes("a"))
        await store.claim("a", 1, "t", 1020.0, 1080.0)
        await delivered(store, "q3", "c", now=1030.0)
        stats = await store.queue_stats()
        assert stats.depth == {("a", "in_flight"): 1, ("a", "pending"): 1, ("b", "pending"): 1}
        assert stats.oldest_open_at == 1000.0 and stats.open_jobs == 1

    run(make_store, scenario)


def test_event_type_filter_is_a_glob_with_no_other_wildcards(make_store):
    async def scenario(store: Store) -> None:
        await store.ingest(event("k1", "license_key.created"), [])
        await store.ingest(event("k2", "licenseXkey.created"), [])
        await store.ingest(event("k3", "license_key.updated"), [])
        listed = await store.list_events(EventFilter(event_type="license_key.*"))
        assert [e.webhook_id for e in listed] == ["k3", "k1"]  # "_" is a plain character, not a wildcard
        exact = await store.list_events(EventFilter(event_type="license_key.created"))
        assert [e.webhook_id for e in exact] == ["k1"]

    run(make_store, scenario)


def test_reopening_keeps_everything_and_migrates_nothing_twice(make_store):
    async def first(store: Store) -> int:
        result = await store.ingest(event("msg_r"), routes("a"))
        await store.claim("a", 1, "t", 1000.0, 1060.0)
        return result.event_id

    async def second(store: Store) -> None:
        assert (await store.ingest(event("msg_r"), routes("a"))).duplicate
        assert (await store.queue_stats()).depth == {("a", "in_flight"): 1}
        [stolen] = await store.claim("a", 1, "t2", 1061.0, 1121.0)  # the lease outlived the restart
        assert stolen.event_id == event_id

    event_id = run(make_store, first)
    run(make_store, second)


def test_sqlite_is_wal_with_synchronous_full_and_migrated(tmp_path: Path):
    async def scenario(store: Store) -> None:
        await store.ingest(event(), [])

    run(lambda: SQLiteStore(tmp_path / "x.db"), scenario)
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations("sqlite")[-1][0]
    from headrace.store.sqlite import connect

    assert connect(tmp_path / "x.db").execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_event_type_filter_has_one_wildcard_a_trailing_star(make_store):
    """`prefix.*` and `*` are the only patterns; `?`, `[`, `%`, `_` and an inner `*` match only themselves."""
    types = ["payment.succeeded", "payment.[s]x", "paymentXsucceeded", "a?c", "abc", "a[b]c", "a%b_c", "aXbYc", "a*c"]

    async def scenario(store: Store) -> None:
        for n, name in enumerate(types):
            await store.ingest(event(f"t{n}", name), [])

        async def matching(pattern: str) -> list[str]:
            listed = await store.list_events(EventFilter(event_type=pattern, limit=100))
            return sorted(e.event_type for e in listed)

        assert await matching("*") == sorted(types)
        assert await matching("payment.*") == ["payment.[s]x", "payment.succeeded"]
        assert await matching("payment.[s]*") == ["payment.[s]x"]  # "[s]" is not a character class
        assert await matching("payment?succeeded") == []  # "?" is not "any one character"
        assert await matching("a?c") == ["a?c"]
        assert await matching("a[b]c") == ["a[b]c"]
        assert await matching("a%b_c") == ["a%b_c"]  # neither "%" nor "_" is a LIKE wildcard
        assert await matching("a%*") == ["a%b_c"]
        assert await matching("a*c") == ["a*c"]  # only a trailing "*" is a wildcard
        assert await matching("payment.succeeded") == ["payment.succeeded"]

    run(make_store, scenario)


def test_leased_jobs_come_back_in_delivery_id_order(make_store):
    async def scenario(store: Store) -> None:
        # Later deliveries are due earlier: the answer is still in id order.
        made = [await delivered(store, f"msg_{n}", now=1010.0 - n) for n in range(4)]
        leased = await store.lease_due_jobs(10, 2000.0, 2060.0)
        assert [j.delivery_id for j in leased] == sorted(c.delivery_id for c in made)

    run(make_store, scenario)


DESTINATION_STATES = ["pending", "in_flight", "failed", "cancelled", "open", "success", "failure", "unknown"]


async def put_in_state(store: Store, destination: str, state: str, now: float) -> tuple[str, str | None]:
    """Move the one pending delivery to `destination` into `state`; returns its (status, job state)."""
    if state == "pending":
        return ("pending", None)
    [c] = await store.claim(destination, 1, f"t-{destination}", now, now + 60)
    outcome = {"in_flight": None, "failed": Failed("no"), "cancelled": Cancelled()}.get(state, Delivered(c.job_id))
    if outcome is None:
        return ("in_flight", None)
    await store.finish(Finished(c, f"t-{destination}", attempt(), outcome), now)
    if state in ("success", "failure", "unknown"):
        await store.record_job(JobUpdate(c.delivery_id, state, completed_at=now), now)  # type: ignore[arg-type]
    return ("delivered", state) if isinstance(outcome, Delivered) else (state, None)


FINISHED_STATES = ["failed", "cancelled", "open", "success", "failure", "unknown"]  # a replay's older generation


def searchable(webhook_id: str) -> NewEvent:
    """An event the search index finds by `biz_status` (its business_id)."""
    return NewEvent("dodo", webhook_id, "payment.succeeded", 1000, 1000.0, b'{"business_id": "biz_status"}', {})


def test_every_query_reporting_a_status_is_the_models_rule_for_every_combination(make_store):
    """Every query that reports an event status equals models.event_status over every (status, job state) of
    one and two destinations and of an older generation under each newest one: list_events (and its attention
    variant), search_events, chart_outcomes (all destinations, and each one alone), failed_since, get_event."""
    combos: list[tuple[str, ...]] = [(), *((s,) for s in DESTINATION_STATES)]
    combos += [(s, t) for s in DESTINATION_STATES for t in DESTINATION_STATES]
    generations = [(old, new) for old in FINISHED_STATES for new in DESTINATION_STATES]

    async def scenario(store: Store) -> None:
        expected: dict[str, str] = {}
        alone: dict[str, str] = {}  # destination -> the status of its newest delivery on its own
        failed: set[tuple[str, str]] = set()  # (webhook id, destination) whose newest delivery failed
        for n, combo in enumerate(combos):
            names = [f"d{n}_{k}" for k in range(len(combo))]
            await store.ingest(searchable(f"c{n}"), routes(*names))
            pairs = zip(names, combo, strict=True)
            latest = [await put_in_state(store, name, state, 1000.0 + n) for name, state in pairs]
            expected[f"c{n}"] = event_status(latest)  # type: ignore[arg-type]
            alone.update({name: event_status([pair]) for name, pair in zip(names, latest, strict=True)})  # type: ignore[list-item]
            failed |= {(f"c{n}", name) for name, (status, _) in zip(names, latest, strict=True) if status == "failed"}
        # An older generation does not count, whatever it was: each finished state, replayed, then each state.
        for n, (old, new) in enumerate(generations):
            name = f"g{n}"
            ingested = await store.ingest(searchable(name), routes(name))
            await put_in_state(store, name, old, 1000.0 + n)
            await store.replay(ingested.event_id, routes(name), 2000.0)
            pair = await put_in_state(store, name, new, 3000.0 + n)
            expected[name] = alone[name] = event_status([pair])  # type: ignore[list-item]
            failed |= {(name, name)} if pair[0] == "failed" else set()
        while await store.index_pending(1000):
            pass
        listed = {e.webhook_id: e.status for e in await store.list_events(EventFilter(limit=1000))}
        searched = {e.webhook_id: e.status for e in await store.list_events(EventFilter(q="biz_status", limit=1000))}
        detailed = {key: (await store.get_event(key)).status for key in expected}  # type: ignore[union-attr]
        assert listed == expected
        assert searched == expected
        assert detailed == expected
        assert set(expected.values()) == set(EVENT_STATUSES)  # every status is reached
        for status in EVENT_STATUSES:  # each through its own variant (programs.events.CANDIDATES), delivered not
            want = {key for key, value in expected.items() if value == status}
            for q in (None, "biz_status"):
                found = {e.webhook_id for e in await store.list_events(EventFilter(status=status, q=q, limit=1000))}  # type: ignore[arg-type]
                assert found == want, (status, q)
        chart = await store.activity(999.0, 10_000.0, 1, [])
        assert chart.outcomes == {0: dict(Counter(expected.values()))}
        for destination, status in alone.items():
            chart = await store.activity(999.0, 10_000.0, 1, [], destination)
            assert chart.outcomes == {0: {status: 1}}, destination
        ids = {e.id: e.webhook_id for e in await store.list_events(EventFilter(limit=1000))}
        assert {(ids[event_id], name) for event_id, name in await store.failed_since(0.0)} == failed

    run(make_store, scenario)


SQL = Path(__file__).parents[2] / "src/headrace/store/sql"
PARAMETER = {
    "sqlite": re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)"),
    "postgresql": re.compile(r"%\(([a-z_][a-z0-9_]*)\)s"),
}


def test_each_status_variant_is_list_events_over_its_candidates_only():
    """The status CASE (models.event_status in SQL) is written once per dialect: the variants for the statuses
    few events have (attention, cancelled, unrouted) repeat list_events word for word, adding only their
    candidate filter."""
    candidates = {
        "list_events_attention": re.compile(r"e\.id IN \(SELECT event_id FROM deliveries\n.*?END\)\n      AND ", re.S),
        "list_events_cancelled": re.compile(
            r"e\.id IN \(SELECT event_id FROM deliveries WHERE status = 'cancelled'\)\n      AND "
        ),
        "list_events_unrouted": re.compile(r"e\.unrouted = 1\n      AND "),
    }
    for dialect in PARAMETER:
        queries = load(dialect)
        for name, candidate in candidates.items():
            assert candidate.sub("", queries[name], count=1) == queries["list_events"], (dialect, name)


def test_the_status_rule_and_the_newest_generation_are_written_once_per_dialect():
    """models.event_status in SQL and "the newest generation" are one fragment each per dialect, which every
    query reporting a status pastes (the contract test above checks them all against the Python rule)."""
    for dialect in PARAMETER:
        text = (SQL / dialect / "queries.sql").read_text("utf-8")
        assert text.count("THEN 'job_failed'") == 1, dialect
        assert text.count("MAX(d2.generation)") == 1, dialect
        queries = load(dialect)
        using = {name for name, sql in queries.items() if "THEN 'job_failed'" in sql}
        assert using == {
            "list_events",
            "list_events_attention",
            "list_events_cancelled",
            "list_events_unrouted",
            "search_events",
            "chart_outcomes",
        }, dialect


def test_fragments_are_pasted_and_refused_when_unknown_or_circular():
    from headrace.store.queries import parse_queries

    text = "-- fragment: one\n1\n\n-- name: q\nSELECT {{one}} + {{two}}\n\n-- fragment: two\n{{one}} + 1;\n"
    assert parse_queries(text) == {"q": "SELECT 1 + 1 + 1"}
    with pytest.raises(ValueError, match="names no fragment"):
        parse_queries("-- name: q\nSELECT {{nope}}")
    with pytest.raises(ValueError, match="uses itself"):
        parse_queries("-- fragment: a\n{{b}}\n-- fragment: b\n{{a}}\n-- name: q\nSELECT {{a}}")
    with pytest.raises(ValueError, match="defined twice"):
        parse_queries("-- fragment: a\n1\n-- name: a\nSELECT 1")


def test_every_dialect_defines_the_same_queries_with_the_same_parameters():
    dialects = sorted(p.name for p in SQL.iterdir() if (p / "queries.sql").exists())
    assert dialects == sorted(PARAMETER), "a new dialect needs its parameter syntax in PARAMETER"
    params = {d: {name: set(PARAMETER[d].findall(sql)) for name, sql in load(d).items()} for d in dialects}
    reference = params["sqlite"]
    for dialect, queries in params.items():
        assert set(queries) == set(reference), f"{dialect} differs: {sorted(set(queries) ^ set(reference))}"
        for name, names in queries.items():
            assert names == reference[name], f"{dialect} query {name}: parameters {names} != {reference[name]}"
    assert reference["list_events"] >= {"type_exact", "type_prefix"}
