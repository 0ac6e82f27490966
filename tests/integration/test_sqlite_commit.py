"""The SQLite writer's group commit (store/sqlite_io.py): a COMMIT runs on the committer thread, a failed COMMIT
reaches every write of its batch as StoreUnavailable with nothing of the batch kept, and the writer goes on."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from headrace.store.base import StoreUnavailable
from headrace.store.sqlite_io import LoopWriter


def test_a_failed_commit_fails_its_whole_batch_and_the_next_batch_commits(tmp_path: Path) -> None:
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
        try:
            good = writer.submit(insert("INSERT INTO parent (id) VALUES (1)"))
            orphan = writer.submit(insert("INSERT INTO child (id, parent) VALUES (1, 99)"))
            results = await asyncio.gather(good, orphan, return_exceptions=True)
            for result in results:
                assert isinstance(result, StoreUnavailable) and "commit failed" in str(result)
            assert await writer.submit(insert("INSERT INTO parent (id) VALUES (2)")) == 1
            assert (writer.batches, writer.ops) == (2, 3)
        finally:
            await writer.close()

    asyncio.run(main())
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM parent").fetchall() == [(2,)]
        assert conn.execute("SELECT COUNT(*) FROM child").fetchone() == (0,)


def test_commits_run_off_the_event_loop_thread(tmp_path: Path) -> None:
    import threading

    db = tmp_path / "w.db"
    seen: list[str] = []

    async def main() -> None:
        writer = LoopWriter(db)
        try:
            writer._conn.set_trace_callback(  # which thread runs the COMMIT
                lambda sql: seen.append(threading.current_thread().name) if sql == "COMMIT" else None
            )
            await writer.submit(lambda c: c.execute("CREATE TABLE t (x)"))
        finally:
            await writer.close()

    asyncio.run(main())
    assert len(seen) == 1 and seen[0] != threading.current_thread().name  # the loop ran on this thread


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
