"""The search indexer's pacing (headrace/ops/indexer.py) over a real SQLite store: small rounds with a pause while
ingest is busy, the whole queue at once when it is quiet, and a failing round retried, not fatal."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from headrace import search
from headrace.dodo.samples import load as load_sample
from headrace.models import EventFilter, NewEvent
from headrace.ops import indexer
from headrace.store.sqlite import SQLiteStore


class Recording(SQLiteStore):
    """A real SQLite store that notes each round: (limit asked, ids taken, monotonic start, end)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.rounds: list[tuple[int, int, float, float]] = []
        self.fail = 0

    async def index_pending(self, limit: int) -> int:
        started = time.monotonic()
        if self.fail:
            self.fail -= 1
            raise OSError("disk I/O error")
        taken = await super().index_pending(limit)
        self.rounds.append((limit, taken, started, time.monotonic()))
        return taken


async def stored(path: Path, count: int) -> Recording:
    store = Recording(path)
    await store.open()
    body = load_sample("payment.succeeded")
    for n in range(count):
        body["data"]["payment_id"] = f"pay_idx{n:04d}"
        event = NewEvent("dodo", f"msg_{n}", "payment.succeeded", 1, 1.0, json.dumps(body).encode(), {})
        await store.ingest(event, [])
    return store


async def until_empty(store: Recording, stop: asyncio.Event, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if not (await store.queue_stats()).search_pending:
            break
        await asyncio.sleep(0.02)
    stop.set()


def test_while_ingest_is_busy_rounds_are_small_and_take_at_most_a_tenth_of_the_time(tmp_path: Path):
    async def main() -> Recording:
        store = await stored(tmp_path / "h.db", 2 * indexer.BUSY_BATCH + 30)
        stop = asyncio.Event()
        try:
            await asyncio.gather(indexer.run(store, stop, busy=lambda: True), until_empty(store, stop))
        finally:
            await store.close()
        return store

    store = asyncio.run(main())
    full = [r for r in store.rounds if r[1] == indexer.BUSY_BATCH]
    assert [r[0] for r in store.rounds] == [indexer.BUSY_BATCH] * len(store.rounds)
    assert len(full) == 2 and sum(r[1] for r in store.rounds) == 2 * indexer.BUSY_BATCH + 30
    for (_, _, started, ended), (_, _, following, _) in zip(store.rounds, store.rounds[1:], strict=False):
        assert following - ended >= max(indexer.PAUSE, (ended - started) * indexer.DUTY_FACTOR) * 0.9


def test_when_ingest_is_quiet_the_queue_is_taken_in_full_rounds_back_to_back(tmp_path: Path):
    async def main() -> tuple[Recording, list[int]]:
        store = await stored(tmp_path / "h.db", indexer.BATCH + 20)
        stop = asyncio.Event()
        try:
            await asyncio.gather(indexer.run(store, stop), until_empty(store, stop))
            found = [e.id for e in await store.list_events(EventFilter(q="pay_idx0513", limit=10))]
        finally:
            await store.close()
        return store, found

    store, found = asyncio.run(main())
    assert [(r[0], r[1]) for r in store.rounds[:2]] == [(indexer.BATCH, indexer.BATCH), (indexer.BATCH, 20)]
    assert store.rounds[1][2] - store.rounds[0][3] < indexer.IDLE  # no pause between the two
    assert found == [514]


def test_a_failing_round_is_logged_and_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setattr(indexer, "RETRY_AFTER", 0.05)

    async def main() -> Recording:
        store = await stored(tmp_path / "h.db", 5)
        store.fail = 2
        stop = asyncio.Event()
        try:
            await asyncio.gather(indexer.run(store, stop), until_empty(store, stop))
        finally:
            await store.close()
        return store

    with caplog.at_level(logging.ERROR, logger="headrace.indexer"):
        store = asyncio.run(main())
    failures = [r.getMessage() for r in caplog.records if r.name == "headrace.indexer"]
    assert len(failures) == 2 and "disk I/O error" in failures[0] and "trying again" in failures[0]
    assert store.rounds[0][1] == 5


def test_a_body_that_cannot_be_indexed_does_not_hold_up_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    real = search.document

    def document(webhook_id: str, body: bytes, parsed: object = None) -> str:
        if webhook_id == "msg_1":
            raise MemoryError("a body no one expected")
        return real(webhook_id, body)

    monkeypatch.setattr(search, "document", document)

    async def main() -> tuple[int, list[int], list[int]]:
        store = await stored(tmp_path / "h.db", 3)
        try:
            taken = await store.index_pending(10)
            by_id = [e.id for e in await store.list_events(EventFilter(q="msg_1", limit=10))]
            by_body = [e.id for e in await store.list_events(EventFilter(q="pay_idx0001", limit=10))]
            assert (await store.queue_stats()).search_pending == 0
        finally:
            await store.close()
        return taken, by_id, by_body

    with caplog.at_level(logging.ERROR, logger="headrace.store"):
        taken, by_id, by_body = asyncio.run(main())
    assert taken == 3 and by_id == [2] and by_body == []
    assert any("event 2: its body could not be indexed" in r.getMessage() for r in caplog.records)
