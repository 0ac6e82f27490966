"""Retention, on SQLite and PostgreSQL (the contract suite's stores): what is pruned, what is kept, batches."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from headrace.models import Cancelled, Delivered, EventFilter, Failed, JobUpdate, Rejection
from headrace.ops import retention
from headrace.store.base import Finished
from headrace.store.core import Store
from tests.integration.test_store_contract import attempt, event, make_store, routes, run

__all__ = ["make_store"]  # the fixture, shared with the contract suite

DAY = 86400.0
OLD = 1000.0  # received (and settled) long before the cutoff
NOW = OLD + 40 * DAY
KEEP = 30 * DAY  # the default retention: the cutoff is NOW - KEEP, 10 days after OLD


async def settle(store: Store, webhook_id: str, state: str, *, at: float = OLD, event_type: str = "x.y") -> int:
    """Ingest one event at `at` for destination `webhook_id` and bring its delivery to `state`."""
    dest = webhook_id
    result = await store.ingest(event(webhook_id, event_type, at=at), [] if state == "unrouted" else routes(dest))
    if state in ("unrouted", "pending"):
        return result.event_id
    [c] = await store.claim(dest, 1, f"t-{dest}", at, at + 60)
    if state == "in_flight":
        return result.event_id
    outcome = {
        "delivered": Delivered(c.job_id),
        "job_open": Delivered(c.job_id),
        "job_failed": Delivered(c.job_id),
        "job_unknown": Delivered(c.job_id),
        "failed": Failed("no"),
        "cancelled": Cancelled(),
    }[state]
    await store.finish(Finished(c, f"t-{dest}", attempt(), outcome), at)
    if state in ("delivered", "job_failed", "job_unknown"):
        job = {"delivered": "success", "job_failed": "failure", "job_unknown": "unknown"}[state]
        await store.record_job(JobUpdate(c.delivery_id, job, completed_at=at), at)  # type: ignore[arg-type]
    return result.event_id


FINISHED = ["unrouted", "delivered", "cancelled", "job_unknown"]
KEPT = ["pending", "in_flight", "job_open", "failed", "job_failed"]


async def remaining(store: Store) -> set[str]:
    return {e.webhook_id for e in await store.list_events(EventFilter(limit=1000))}


def test_old_finished_events_are_pruned_and_open_or_failed_ones_kept(make_store):
    async def scenario(store: Store) -> None:
        for state in FINISHED + KEPT:
            await settle(store, f"old_{state}", state)
            await settle(store, f"new_{state}", state, at=NOW - DAY)  # inside the retention window
        ids = {e.webhook_id: e.id for e in await store.list_events(EventFilter(limit=1000))}
        done = await retention.prune(store, NOW, retention=KEEP, rejection_retention=None)
        assert (done.events, done.scanned) == (len(FINISHED), len(FINISHED + KEPT))
        assert await remaining(store) == {f"old_{s}" for s in KEPT} | {f"new_{s}" for s in FINISHED + KEPT}
        # Gone with their deliveries and attempts: nothing of them is left to find.
        assert await store.get_event(str(ids["old_delivered"])) is None
        counts = await store.table_counts()  # type: ignore[attr-defined]
        # 18 events, 16 with a delivery (not the unrouted ones); 3 of the 4 pruned had one.
        assert counts["deliveries"] == 16 - 3
        assert counts["attempts"] == counts["deliveries"] - 4  # none yet for the pending and in-flight ones
        # Asked to, failed ones go too; pending, in-flight and still-tracked ones never.
        done = await retention.prune(store, NOW, retention=KEEP, rejection_retention=None, include_failed=True)
        assert done.events == 2
        assert await remaining(store) == {"old_pending", "old_in_flight", "old_job_open"} | {
            f"new_{s}" for s in FINISHED + KEPT
        }

    run(make_store, scenario)


def test_a_replayed_failure_goes_once_its_replay_is_delivered_and_old(make_store):
    async def scenario(store: Store) -> None:
        event_id = await settle(store, "r", "failed")
        await store.replay(event_id, routes("r"), OLD + DAY)  # generation 1, pending
        await retention.prune(store, NOW, retention=KEEP, rejection_retention=None)
        assert await remaining(store) == {"r"}  # the replay is pending
        [c] = await store.claim("r", 1, "t", OLD + DAY, OLD + DAY + 60)
        await store.finish(Finished(c, "t", attempt(), Delivered(c.job_id)), NOW - DAY)
        await store.record_job(JobUpdate(c.delivery_id, "success", completed_at=NOW - DAY), NOW - DAY)
        await retention.prune(store, NOW, retention=KEEP, rejection_retention=None)
        assert await remaining(store) == {"r"}  # delivered, but yesterday: kept until that is old too
        await retention.prune(store, NOW + KEEP, retention=KEEP, rejection_retention=None)
        assert await remaining(store) == set()

    run(make_store, scenario)


def test_pruning_walks_in_batches_past_the_events_it_keeps(make_store):
    async def scenario(store: Store) -> None:
        for n in range(7):
            await settle(store, f"f{n}", "failed", at=OLD + n)  # the oldest ones are kept...
        for n in range(11):
            await settle(store, f"d{n}", "delivered", at=OLD + 10 + n)  # ...and do not hide these
        first = await store.prune_events(NOW - KEEP, None, 5, include_failed=False)
        assert (first.scanned, first.deleted) == (5, 0) and first.after is not None
        done = await retention.prune(store, NOW, retention=KEEP, rejection_retention=None, batch=5, pause=0)
        assert (done.events, done.scanned, done.batches) == (11, 18, 4)  # 5 + 5 + 5 + 3
        assert await remaining(store) == {f"f{n}" for n in range(7)}

    run(make_store, scenario)


def test_old_rejection_rows_are_pruned_in_batches(make_store):
    async def scenario(store: Store) -> None:
        for n in range(12):
            await store.reject(Rejection("dodo", "bad_signature", 401, "d", "127.0.0.1", OLD + n))
        await store.reject(Rejection("dodo", "bad_signature", 401, "d", "127.0.0.1", NOW - 60))
        assert await store.prune_rejections(NOW - 7 * DAY, 5) == 5
        done = await retention.prune(store, NOW, retention=None, rejection_retention=7 * DAY, batch=5, pause=0)
        assert (done.rejections, done.batches, done.events) == (7, 2, 0)
        assert [r.at for r in await store.list_rejections(None, 100)] == [NOW - 60]

    run(make_store, scenario)


def test_retention_off_keeps_everything_and_the_serving_loop_stops_on_request(make_store, tmp_path: Path):
    from headrace.config import ServerSettings, Settings

    async def scenario(store: Store) -> None:
        await settle(store, "old", "delivered")
        done = await retention.prune(store, NOW, retention=None, rejection_retention=None)
        assert done == retention.Pruned()
        settings = Settings(server=ServerSettings(retention="30d"))
        stop = asyncio.Event()
        task = asyncio.create_task(retention.run(store, settings, stop, clock=lambda: NOW))
        for _ in range(200):
            if not await remaining(store):
                break
            await asyncio.sleep(0.02)
        assert await remaining(store) == set()  # the first pass runs at start
        stop.set()
        await asyncio.wait_for(task, 5)

    run(make_store, scenario)


def test_a_batch_of_zero_is_refused():
    with pytest.raises(ValueError, match="at least 1 row"):
        asyncio.run(retention.prune(None, NOW, retention=KEEP, rejection_retention=None, batch=0))  # type: ignore[arg-type]


def test_db_prune_command_prunes_with_the_config_or_older_than(tmp_path: Path):
    import time

    from headrace.store.sqlite import SQLiteStore
    from tests.integration.test_schema_guard import headrace, write_config

    db = tmp_path / "h.db"
    now = time.time()

    async def fill() -> None:
        store = SQLiteStore(db)
        await store.open()
        try:
            await settle(store, "ancient", "delivered", at=now - 100 * DAY)
            await settle(store, "old", "delivered", at=now - 40 * DAY)
            await settle(store, "old_failed", "failed", at=now - 40 * DAY)
            await settle(store, "recent", "delivered", at=now - DAY)
        finally:
            await store.close()

    asyncio.run(fill())
    config = write_config(tmp_path, f"sqlite:///{db}")
    done = headrace("db", "prune", "-c", str(config), "--older-than", "90d")
    assert (done.returncode, done.stdout.strip()) == (
        0,
        "deleted 1 events (of 1 old enough) with their deliveries and attempts, and 0 rejection rows, in 2 batches",
    )
    done = headrace("db", "prune", "-c", str(config), "--include-failed", "--batch", "1")
    assert done.returncode == 0 and done.stdout.startswith("deleted 2 events (of 2 old enough)"), done
    refused = headrace("db", "prune", "-c", str(config), "--older-than", "1d")
    assert refused.returncode != 0 and "--older-than 1d: at least 14d" in refused.stderr
    with pytest.raises(SystemExit):
        headrace("db", "prune", "-c", str(config), "--batch", "0")  # argparse: "'0': a number from 1 to 10000"
    with pytest.raises(SystemExit):
        headrace("db", "prune", "-c", str(config), "--batch", "10001")

    async def left() -> set[str]:
        store = SQLiteStore(db)
        await store.open(migrate=False)
        try:
            return await remaining(store)
        finally:
            await store.close()

    assert asyncio.run(left()) == {"recent"}


def test_serve_prunes_at_start_and_stops_cleanly(tmp_path: Path):
    """`headrace serve` runs retention in the background: an old finished event goes, a recent one stays."""
    import time

    from headrace.store.sqlite import SQLiteStore
    from tests.helpers import config_text, free_port, running_server, settings_for

    db = tmp_path / "serve.db"
    now = time.time()

    async def main() -> set[str]:
        store = SQLiteStore(db)
        await store.open()
        await settle(store, "old", "delivered", at=now - 40 * DAY)
        await settle(store, "old_failed", "failed", at=now - 40 * DAY)
        await settle(store, "recent", "delivered", at=now - DAY)
        await store.close()
        text = config_text(db, free_port(), extra_server='retention = "30d"\nworker = false')
        async with running_server(settings_for(text, tmp_path)):
            check = SQLiteStore(db)
            await check.open(migrate=False)
            try:
                for _ in range(250):
                    if "old" not in await remaining(check):
                        break
                    await asyncio.sleep(0.02)
                return await remaining(check)
            finally:
                await check.close()

    assert asyncio.run(main()) == {"old_failed", "recent"}
