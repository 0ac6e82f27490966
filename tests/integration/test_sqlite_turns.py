"""Several processes writing one SQLite database take turns (store/sqlite_io.py, WriteTurn): a writer waiting
behind a busy process gets the next turn instead of polling for a lock the busy one keeps re-taking, its event
loop runs on meanwhile, and the turn is given back on every path (a failed write, a failed COMMIT, a lock held
by a process that does not take turns, a wait that outlasted its deadline)."""

from __future__ import annotations

import asyncio
import math
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from headrace.store.base import StoreUnavailable
from headrace.store.sqlite_io import LoopWriter, turn_path

HOLD = 0.1  # seconds the busy process keeps the write lock per transaction

BUSY_WRITER = """
import asyncio, sys, time
from pathlib import Path
from headrace.store.sqlite_io import LoopWriter

async def main():
    writer = LoopWriter(Path(sys.argv[1]))
    hold = float(sys.argv[2])

    def op(conn):
        conn.execute("INSERT INTO t (who) VALUES ('busy')")
        time.sleep(hold)  # keeps the write lock, as a long batch would

    await writer.submit(op)
    print("ready", flush=True)
    while True:  # the next transaction as soon as the last one is committed
        await writer.submit(op)

asyncio.run(main())
"""

HOLD_TURN = """
import sys, time
from pathlib import Path
from headrace.store.sqlite_io import WriteTurn

turn = WriteTurn(Path(sys.argv[1]))
turn.take()
print("taken", flush=True)
time.sleep(float(sys.argv[2]))
"""

PROBE = """
import sys
import threading
from pathlib import Path
from headrace.store.sqlite_io import WriteTurn

print(WriteTurn(Path(sys.argv[1])).try_take())
"""


def _db(tmp_path: Path) -> Path:
    db = tmp_path / "turns.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
    return db


def _insert(who: str) -> Callable[[sqlite3.Connection], object]:
    """A write of one row by `who`."""
    return lambda conn: conn.execute("INSERT INTO t (who) VALUES (?)", (who,))


def _start(script: str, *args: object, until: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != until:
        process.kill()
        raise AssertionError(f"helper process said {line!r}: {process.communicate()[1]}")
    return process


def _end(process: subprocess.Popen[str]) -> None:
    process.kill()
    process.communicate()  # reaps it and closes its pipes


def _others_may_take(db: Path) -> bool:
    """Whether another process could take the write turn right now."""
    probe = subprocess.run([sys.executable, "-c", PROBE, str(db)], capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr
    return probe.stdout.strip() == "True"


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[Path]:
    """A database another process writes without a pause, holding the lock HOLD seconds per transaction."""
    db = _db(tmp_path)
    process = _start(BUSY_WRITER, db, HOLD, until="ready")
    try:
        yield db
    finally:
        _end(process)


def test_a_writer_behind_a_process_that_never_pauses_gets_the_next_turn(busy: Path) -> None:
    """Polling for SQLite's lock (the writer before turns), each of these writes waited until a 5 ms poll happened
    to land in the ~0.1 ms between the busy process's COMMIT and its next BEGIN: seconds, or the 30 s limit."""
    waits: list[float] = []
    gaps: list[float] = []
    waited: list[float] = []

    async def main() -> None:
        writer = LoopWriter(busy)
        ticking = True

        async def tick() -> None:  # the loop must run on while this writer waits for its turn
            last = time.perf_counter()
            while ticking:
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        try:
            for _ in range(5):
                started = time.perf_counter()
                await writer.submit(_insert("waiting"))
                waits.append(time.perf_counter() - started)
            waited.append(writer.turn_wait_seconds)
        finally:
            ticking = False
            await ticker
            await writer.close()

    asyncio.run(main())
    assert 0 < waited[0] <= sum(waits)  # the metric: waiting for the other process's turn, not the write itself
    # One busy transaction (HOLD) and a COMMIT at most; 1 s leaves room for a slow disk.
    assert max(waits) < 1.0, [f"{w:.3f}" for w in waits]
    assert max(gaps) < 0.5, f"the event loop stalled {max(gaps):.3f} s while waiting for the turn"
    with sqlite3.connect(busy) as conn:
        assert conn.execute("SELECT COUNT(*) FROM t WHERE who = 'waiting'").fetchone() == (5,)


@pytest.mark.parametrize("place", ["loop", "thread"])  # where the COMMIT runs (fast disk, slow disk)
def test_the_turn_is_given_back_after_a_failed_write_and_a_failed_commit(tmp_path: Path, place: str) -> None:
    db = _db(tmp_path)
    with sqlite3.connect(db) as conn:  # a deferred foreign key: the INSERT passes, its COMMIT fails
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id) "
            "DEFERRABLE INITIALLY DEFERRED)"
        )
    free: list[bool] = []

    async def main() -> None:
        writer = LoopWriter(db)
        if place == "thread":
            writer._thread_until = math.inf
        try:
            bad = writer.submit(lambda c: c.execute("INSERT INTO nowhere VALUES (1)"))
            good = writer.submit(_insert("kept"))
            results = await asyncio.gather(bad, good, return_exceptions=True)
            assert isinstance(results[0], sqlite3.OperationalError) and results[1] is not None
            free.append(await asyncio.to_thread(_others_may_take, db))
            with pytest.raises(StoreUnavailable, match="commit failed"):
                await writer.submit(lambda c: c.execute("INSERT INTO child (id, parent) VALUES (1, 99)"))
            free.append(await asyncio.to_thread(_others_may_take, db))
        finally:
            await writer.close()

    asyncio.run(main())
    assert free == [True, True]


def test_a_lock_held_by_a_process_that_takes_no_turn_times_out_and_gives_the_turn_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _db(tmp_path)
    monkeypatch.setattr(LoopWriter, "BUSY_WAIT", 0.5)
    other = sqlite3.connect(db, isolation_level=None)  # the sqlite3 shell, say: SQLite's lock, no turn
    other.execute("BEGIN IMMEDIATE")
    free: list[bool] = []

    async def main() -> None:
        writer = LoopWriter(db)
        try:
            with pytest.raises(StoreUnavailable, match="stayed locked"):
                await writer.submit(_insert("late"))
            free.append(await asyncio.to_thread(_others_may_take, db))
            other.execute("ROLLBACK")
            await writer.submit(_insert("after"))
        finally:
            await writer.close()

    try:
        asyncio.run(main())
    finally:
        other.close()
    assert free == [True]


def test_a_turn_kept_past_the_deadline_fails_the_batch_and_comes_back_to_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait cannot be interrupted: when the turn finally comes and no batch wants it any more, it is given
    straight back, or this process would keep every other one out while idle."""
    db = _db(tmp_path)
    monkeypatch.setattr(LoopWriter, "BUSY_WAIT", 0.3)
    holder = _start(HOLD_TURN, db, 1.0, until="taken")
    free: list[bool] = []

    async def main() -> None:
        writer = LoopWriter(db)
        try:
            with pytest.raises(StoreUnavailable, match="write turn") as refused:
                await writer.submit(_insert("late"))
            assert str(turn_path(db)) in str(refused.value)
            await asyncio.to_thread(holder.wait, 30)  # it exits: its turn goes to this process's waiting thread
            await asyncio.sleep(0.2)
            free.append(await asyncio.to_thread(_others_may_take, db))
            await writer.submit(_insert("after"))
        finally:
            await writer.close()

    try:
        asyncio.run(main())
    finally:
        _end(holder)
    assert free == [True]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT who FROM t").fetchall() == [("after",)]


def test_the_turn_file_is_created_at_the_first_write_only(tmp_path: Path) -> None:
    db = _db(tmp_path)

    async def main() -> None:
        writer = LoopWriter(db)
        try:
            assert not turn_path(db).exists()  # a read-only command opens the writer but never writes
            await writer.submit(_insert("first"))
            assert turn_path(db).exists()
        finally:
            await writer.close()

    asyncio.run(main())
    assert turn_path(db).name == ".turns.db.write-turn"


def test_a_process_killed_while_it_has_the_turn_hands_it_on_at_once(tmp_path: Path) -> None:
    """kill -9 runs no cleanup: the kernel drops a dead process's locks, so the next writer goes on at once
    instead of waiting out its 30 s limit."""
    db = _db(tmp_path)
    holder = _start(HOLD_TURN, db, 3600, until="taken")
    waited: list[float] = []

    async def main() -> None:
        writer = LoopWriter(db)
        try:
            write = writer.submit(_insert("after the kill"))
            await asyncio.sleep(0.3)
            assert not write.done()  # waiting for the holder's turn
            killed = time.perf_counter()
            holder.kill()
            await write
            waited.append(time.perf_counter() - killed)
        finally:
            await writer.close()

    try:
        asyncio.run(main())
    finally:
        _end(holder)
    assert waited[0] < 2.0, f"{waited[0]:.2f} s after the kill"


def test_closing_does_not_wait_for_a_turn_another_process_never_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process stopped (SIGSTOP) or hung with the turn: this one's write fails at its deadline, and shutting down
    does not wait for the turn either (it used to join the waiting thread for as long as the other kept it). When
    the turn comes at last, it goes straight back to the others."""
    db = _db(tmp_path)
    monkeypatch.setattr(LoopWriter, "BUSY_WAIT", 0.3)
    holder = _start(HOLD_TURN, db, 3600, until="taken")
    closed = threading.Event()

    async def main() -> None:
        writer = LoopWriter(db)
        with pytest.raises(StoreUnavailable, match="write turn"):
            await writer.submit(_insert("never"))
        await writer.close()
        closed.set()

    runner = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    try:
        runner.start()
        assert closed.wait(10), "close() waited for the other process's turn"
        _end(holder)  # its turn comes to the waiting thread now, which gives it back
        deadline = time.monotonic() + 5
        while not _others_may_take(db) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _others_may_take(db)
    finally:
        _end(holder)
        runner.join(10)
