"""The SQLite writer's group commit (store/sqlite_io.py): a COMMIT runs on the event loop while the disk is fast
and on the committer thread while it is slow, a failed COMMIT reaches every write of its batch as
StoreUnavailable with nothing of the batch kept (in either place), and the writer goes on."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from headrace.store.base import StoreUnavailable
from headrace.store.sqlite_io import LoopWriter


@pytest.mark.parametrize("place", ["loop", "thread"])
def test_a_failed_commit_fails_its_whole_batch_and_the_next_batch_commits(tmp_path: Path, place: str) -> None:
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as conn:  # a deferred foreign key: the INSERT passes, its COMMIT fails
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, "
            "parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )

    def insert(sql: str) -> object:
        return lambda c: c.execute(sql).rowcount

    async def main() -> None:
        writer = LoopWriter(db)
        if place == "thread":
            writer._thread_until = math.inf
        try:
            good = writer.submit(insert("INSERT INTO parent (id) VALUES (1)"))
            orphan = writer.submit(insert("INSERT INTO child (id, parent) VALUES (1, 99)"))
            results = await asyncio.gather(good, orphan, return_exceptions=True)
            for result in results:
                assert isinstance(result, StoreUnavailable) and "commit failed" in str(result)
            assert await writer.submit(insert("INSERT INTO parent (id) VALUES (2)")) == 1
            assert (writer.batches, writer.ops) == (2, 3)
            assert (writer.commits_on_loop, writer.commits_in_thread) == ((2, 0) if place == "loop" else (0, 2))
        finally:
            await writer.close()

    asyncio.run(main())
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM parent").fetchall() == [(2,)]
        assert conn.execute("SELECT COUNT(*) FROM child").fetchone() == (0,)


class Clock:
    """A monotonic clock that moves `step` seconds at each reading: a COMMIT on the loop is timed by two
    readings, so each takes `step`."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _commit_places(
    db: Path, clock: Clock, commits: int, between: Callable[[int, LoopWriter], None] | None = None
) -> list[str]:
    """Run `commits` one-write batches; which thread ran each COMMIT ("loop" or "thread"). `between(i, writer)`
    runs before batch i."""
    places: list[str] = []
    loop_thread = threading.current_thread().name

    def where(sql: str) -> None:
        if sql == "COMMIT":
            places.append("loop" if threading.current_thread().name == loop_thread else "thread")

    async def main() -> None:
        writer = LoopWriter(db, clock=clock)
        writer._conn.set_trace_callback(where)
        try:
            await writer.submit(lambda c: c.execute("CREATE TABLE t (x)"))
            for i in range(commits - 1):
                if between is not None:
                    between(i + 1, writer)
                await writer.submit(lambda c, i=i: c.execute("INSERT INTO t VALUES (?)", (i,)))
            assert writer.commits_on_loop == places.count("loop")
            assert writer.commits_in_thread == places.count("thread")
        finally:
            await writer.close()

    asyncio.run(main())
    return places


def test_commits_run_on_the_event_loop_while_the_disk_is_fast(tmp_path: Path) -> None:
    # Each COMMIT "takes" 0.5 ms, as on a local SSD: the loop runs them all (no thread hop, no GIL hand-off).
    assert _commit_places(tmp_path / "w.db", Clock(0.0005), 30) == ["loop"] * 30


def test_slow_commits_move_to_the_thread_and_come_back_to_the_loop_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="headrace.store")
    window, retry = LoopWriter.COMMIT_WINDOW, LoopWriter.RETRY_LOOP_AFTER
    clock = Clock(0.006)  # 6 ms a COMMIT: a disk busy with other work, a spinning one

    def later(i: int, writer: LoopWriter) -> None:
        if i == window + 5:
            clock.now += retry  # the thread's time is up: the loop tries again

    places = _commit_places(tmp_path / "w.db", clock, window + 5 + window + 2, later)
    # The loop waits for a full window before it judges the median; then the thread, until `retry` has passed;
    # then the loop again, for another full window, and the thread again (the disk is still slow).
    assert places == ["loop"] * window + ["thread"] * 5 + ["loop"] * window + ["thread"] * 2
    said = [(r.levelno, r.getMessage()) for r in caplog.records if "disk is slow" in r.getMessage()]
    assert [level for level, _ in said] == [logging.INFO, logging.DEBUG]  # said once; later moves only at DEBUG
    assert "a COMMIT took 6.0 ms" in said[0][1] and "on a thread for 30 s" in said[0][1]


def test_one_commit_that_stalls_the_loop_moves_the_next_ones_to_the_thread(tmp_path: Path) -> None:
    clock = Clock(0.0005)

    def stall(i: int, writer: LoopWriter) -> None:
        clock.step = LoopWriter.STALL if i == 3 else 0.0005

    assert _commit_places(tmp_path / "w.db", clock, 6, stall) == ["loop"] * 4 + ["thread"] * 2


@pytest.mark.parametrize("batches", [1, 50])
def test_every_write_of_every_batch_is_answered_after_its_commit(tmp_path: Path, batches: int) -> None:
    db = tmp_path / "w.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")

    async def main() -> None:
        writer = LoopWriter(db)
        try:
            for n in range(batches):
                done = await asyncio.gather(
                    *(
                        writer.submit(lambda c, x=x: c.execute("INSERT INTO t VALUES (?)", (x,)).rowcount)
                        for x in range(n * 10, n * 10 + 10)
                    )
                )
                assert done == [1] * 10
                with sqlite3.connect(db) as reader:  # committed before the answers
                    assert reader.execute("SELECT COUNT(*) FROM t").fetchone() == ((n + 1) * 10,)
        finally:
            await writer.close()

    asyncio.run(main())
