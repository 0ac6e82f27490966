"""SQLite connection machinery for the embedded store: the group-commit writer, the reader thread and
migrations. `sqlite.SQLiteStore` builds the Store interface on top of these.

Writes are group-committed. The statements of a write run on the event loop's thread (they take
microseconds), inside the transaction that is open for the current batch, and so does its COMMIT while the
disk answers fast. Writes that arrive meanwhile form the next batch: one fsync for a whole batch of
concurrent ingests, and no thread hop per statement. A caller's future resolves only after the COMMIT that
made its write durable. Reads use a second connection on their own thread (WAL lets them run beside the writer).

Where the COMMIT runs (`LoopWriter._commit`). On a disk whose fsync takes a fraction of a millisecond (a local
SSD), the loop waiting for it costs less than handing the COMMIT to a thread: each hand-off and the GIL going
back and forth cost context switches, and on a 2-core VM the COMMIT on the loop took 15-24 % less of `serve`'s
CPU per event and accepted 3-17 % more events a second (bench/commit_place.py). Ingest's rate did not need the
thread even on a slow disk (every fsync 20 ms slower: the loop 1.29x the thread's rate), but the event loop
did: while it waits for the disk it answers nothing else (health checks, the console, `/metrics`, timers). So
when the median of the last COMMIT_WINDOW COMMITs passes SLOW_COMMIT (the loop waiting about as long as the
search indexer's rounds take it), or one takes STALL (a disk that stalls), COMMITs move to the committer thread
for RETRY_LOOP_AFTER seconds, and then the loop tries again.

Several processes may write one database (a `headrace worker` beside `serve`, two `serve` on one machine, a CLI
command). SQLite has one write lock and no queue for it: a writer that finds it taken can only try again, and
one that polls every few milliseconds rarely lands in the microseconds between another's COMMIT and its next
BEGIN, so a busy process kept the lock to itself while the other one's ingests waited (two `serve` on one file:
0.79-0.88x one, p99 55-64 ms). headrace's writers therefore first take their turn (`WriteTurn`), a lock the
kernel queues, and only then BEGIN IMMEDIATE, which then finds the database free.

The write-ahead log: SQLite appends every committed page to `PATH-wal` and copies them back into the database
(a checkpoint) after each commit that leaves it over 1,000 pages; it starts the WAL over once every frame is
copied and no reader still needs one. A read transaction that stays open (an interactive `sqlite3`, `.backup`,
a slow query of another process) pins the frames written after it began: nothing can start the WAL over, so it
grows with every write for as long as that reader stays, and SQLite never shrinks the file by itself. Hence
JOURNAL_SIZE_LIMIT on every connection (the file is cut back to it whenever the WAL starts over) and
`WalKeeper`, which cuts it to nothing once the reader has gone, traffic or not. The store refuses new traffic
past `[server] wal_limit` (sqlite.SQLiteStore) so the file cannot fill the disk meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import math
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headrace.store import schema
from headrace.store.base import StoreError, StoreUnavailable
from headrace.store.queries import migrations

log = logging.getLogger("headrace.store")

Op = Callable[[sqlite3.Connection], Any]
_STOP = object()
# Per connection (the writer, the reader, a CLI command): the page cache grows to at most this many KiB, and
# reads map up to this many bytes of the file instead of copying pages through read() (memory is only taken
# as pages are touched). SQLite's defaults (2 MiB, no mapping) make a multi-GB store read from the OS on every
# query once its indexes outgrow 2 MiB.
CACHE_KIB = 32 * 1024
MMAP_BYTES = 256 * 1024 * 1024
# The WAL file is cut back to this size whenever the WAL starts over (SQLite leaves it at its largest otherwise).
JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
# WalKeeper looks at the WAL this often (seconds).
WAL_CHECK_INTERVAL = 1.0


def connect(path: Path, *, readonly: bool = False, busy_timeout_ms: int = 30000) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
    return conn


def wal_bytes(path: Path) -> int:
    """The size of the database's WAL file (PATH-wal) now, 0 when there is none. Asked before every ingest write:
    the name is built as a string (Path.with_name cost more than the stat itself)."""
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


def checkpoint(conn: sqlite3.Connection) -> bool:
    """Copy what the WAL holds into the database and, unless a reader still needs part of it or a write is under
    way, truncate the WAL file to nothing; True when it was truncated. Never waits for a lock: first a passive
    checkpoint (no lock held: the long copy does not hold up writers), then TRUNCATE, which finds little left
    to copy and, with the connection's busy timeout at 0, gives up at once when it would have to wait."""
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    try:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError:  # locked or busy: try again later
        return False
    return not busy


def file_facts(path: Path) -> dict[str, int]:
    """The database file's size, its pages and how many are free (left by deletes: reused by new rows, given
    back to the disk only by `vacuum`), and the WAL's size; read-only, any time."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        page_size, pages, free = (int(conn.execute(f"PRAGMA {name}").fetchone()[0]) for name in PAGE_PRAGMAS)
    finally:
        conn.close()
    return {
        "file_bytes": os.stat(path).st_size,
        "page_size": page_size,
        "pages": pages,
        "free_pages": free,
        "wal_bytes": wal_bytes(path),
    }


PAGE_PRAGMAS = ("page_size", "page_count", "freelist_count")


def vacuum(path: Path) -> None:
    """Rewrite the database without its free pages (VACUUM), then truncate the WAL it went through. Writes of
    other processes wait meanwhile; a reader that stays keeps the WAL at the database's size until it goes."""
    conn = connect(path)
    try:
        conn.execute("VACUUM")
        checkpoint(conn)
    finally:
        conn.close()


class WalKeeper(threading.Thread):
    """Every WAL_CHECK_INTERVAL seconds, when the WAL file is over JOURNAL_SIZE_LIMIT (it only gets there while
    a reader held it), checkpoints it back to nothing on a connection of its own that never waits for a lock
    (`checkpoint`). So the file shrinks as soon as the reader goes, even when no write comes to start it over."""

    def __init__(self, path: Path, interval: float = WAL_CHECK_INTERVAL) -> None:
        super().__init__(name="headrace-sqlite-wal", daemon=True)
        self._path = path
        self._interval = interval
        self._halt = threading.Event()
        # Opened now, with the store: never later, when it could create an empty database in a deleted one's place.
        self._conn = connect(path, readonly=True, busy_timeout_ms=0)

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        try:
            while not self._halt.wait(self._interval):
                if wal_bytes(self._path) > JOURNAL_SIZE_LIMIT:
                    with contextlib.suppress(sqlite3.Error):  # a full disk, a deleted file: ingest and readiness say so
                        checkpoint(self._conn)
        finally:
            self._conn.close()


def turn_path(path: Path) -> Path:
    """`.headrace.db.write-turn` beside `headrace.db` (hidden, and matched by no `rm headrace.db*`)."""
    return path.with_name(f".{path.name}.write-turn")


class WriteTurn:
    """Whose turn it is to write the database, among headrace's processes: POSIX record locks on two bytes of
    `turn_path` (fcntl, so a lock is the process's: released when it exits, however it ends, and never
    inherited by a child).

    Byte 1 is the turn itself. Byte 0 is the queue to it: a process takes the queue, then the turn, then lets
    the queue go. A process waiting for the turn holds the queue meanwhile, so the one that has just given the
    turn back cannot take it again before the waiter has had it (the kernel does not hand a released lock to
    its oldest waiter: whoever asks first after the release gets it). Taking the turn costs three system calls
    when nobody else writes.

    The file is opened at the first write, so read-only commands never create it; created by root (a `sudo`
    command), it is given to the database file's owner, as SQLite does with its `-wal` and `-shm`.

    Two stores on one file in one process do not exclude each other (POSIX locks are the process's), and closing
    one drops the other's locks too: then SQLite's own lock still keeps every write whole, as it does against a
    process that takes no turn (the `sqlite3` shell); only the queueing is lost."""

    QUEUE, TURN = 0, 1

    def __init__(self, path: Path) -> None:
        self._database = path
        self.path = turn_path(path)
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot open {self.path}, the lock headrace's processes take turns on to write the database: "
                    f"{exc.strerror}. The database's folder and this file must be writable by headrace's user"
                ) from exc
            if os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    owner = os.stat(self._database)
                    os.fchown(fd, owner.st_uid, owner.st_gid)
            self._fd = fd
        return self._fd

    def _lock(self, byte: int, how: int) -> bool:
        try:
            fcntl.lockf(self._open(), how, 1, byte)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EAGAIN):
                return False  # held by another process (only asked without waiting)
            raise StoreUnavailable(f"cannot lock {self.path}: {exc.strerror}") from exc
        return True

    def try_take(self) -> bool:
        """Take the turn if nobody holds or waits for it; False at once otherwise (then `take` it)."""
        if not self._lock(self.QUEUE, fcntl.LOCK_EX | fcntl.LOCK_NB):
            return False
        taken = self._lock(self.TURN, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._lock(self.QUEUE, fcntl.LOCK_UN)
        return taken

    def take(self) -> None:
        """Wait in the queue for the turn (blocks: call it off the event loop)."""
        self._lock(self.QUEUE, fcntl.LOCK_EX)
        try:
            self._lock(self.TURN, fcntl.LOCK_EX)
        finally:
            self._lock(self.QUEUE, fcntl.LOCK_UN)

    def give(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self.TURN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases whatever this process still held on the file
            self._fd = None


class LoopWriter:
    """Group commit for one connection owned by the event loop (see the module docstring)."""

    BUSY_WAIT = 30.0  # another process (a CLI replay, a `headrace worker`) may hold the write lock briefly
    # Where COMMITs run (module docstring): on the loop while the median of the last COMMIT_WINDOW there stays
    # at or under SLOW_COMMIT seconds and none takes STALL; else on the committer thread for RETRY_LOOP_AFTER.
    SLOW_COMMIT = 0.005  # a local SSD: 0.3-0.7 ms, 5-15 ms with a checkpoint; 5 ms is a search indexer round's share
    STALL = 0.2  # a disk that hangs: one such COMMIT is enough (a VM's fsync spikes to tens of ms now and then)
    COMMIT_WINDOW = 8
    RETRY_LOOP_AFTER = 30.0

    def __init__(
        self, path: Path, guard: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._guard = guard  # runs before each batch: raises when the database file is gone
        self._clock = clock  # times the COMMITs run on the loop
        self._loop_commits: list[float] = []  # seconds each of the last COMMIT_WINDOW on the loop took
        self._thread_until = -math.inf  # COMMITs run on the committer thread until this time (`clock`)
        self._slow_said = False  # the first move to the thread is logged at INFO, later ones at DEBUG
        self.commits_on_loop = 0
        self.commits_in_thread = 0
        self._conn = connect(path, busy_timeout_ms=0)  # never block the loop on a lock: retry asynchronously
        self._turn = WriteTurn(path)
        self._turn_wait: asyncio.Future[None] | None = None  # the committer thread waiting for the turn
        self._turn_wanted = False  # a batch awaits `_turn_wait`
        self._turn_asked = 0.0  # time.monotonic() when the committer thread began waiting
        self.turn_wait_seconds = 0.0  # spent waiting while another process had the turn (a metric)
        self._committer = Committer(self._conn, self._turn)
        self._committer.start()
        self._pending: list[tuple[Op, asyncio.Future[Any]]] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self.batches = 0
        self.ops = 0

    def submit(self, op: Op) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((op, future))
        if not self._flushing:
            self._flushing = True
            # Let every request ready in this loop iteration join the batch before it starts.
            loop.call_soon(self._start_flush, loop)
        return future

    def _start_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flush_task = loop.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self.batches += 1
                self.ops += len(batch)
                try:
                    results = await self._transaction(batch)
                except Exception as exc:  # the whole batch failed (begin or commit): nothing was stored
                    results = [(future, None, exc) for _, future in batch]
                for future, result, error in results:
                    _settle(future, result, error)
        finally:
            self._flushing = False

    async def _transaction(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> list[tuple[Any, Any, Any]]:
        self._guard()
        await self._begin()
        try:
            results = [(future, op(self._conn), None) for op, future in batch]
        except Exception:
            # One operation failed: undo the batch and run each on its own, so one bad write cannot
            # take the others down. Rare; the fast path needs no savepoints.
            self._roll_back()
            return [await self._alone(op, future) for op, future in batch]
        await self._commit()
        return results

    async def _alone(self, op: Op, future: asyncio.Future[Any]) -> tuple[Any, Any, Any]:
        await self._begin()
        try:
            result = op(self._conn)
        except Exception as exc:
            self._roll_back()
            return (future, None, exc)
        await self._commit()
        return (future, result, None)

    async def _begin(self) -> None:
        """Take the write turn, then SQLite's write lock; give the turn back if the lock cannot be had."""
        deadline = time.monotonic() + self.BUSY_WAIT
        await self._take_turn(deadline)
        try:
            await self._begin_immediate(deadline)
        except BaseException:
            self._turn.give()
            raise

    async def _take_turn(self, deadline: float) -> None:
        """At once when no other process writes or waits; else the committer thread waits in the queue. A wait
        that outlasts the deadline is not abandoned (the thread cannot be interrupted): the next batch awaits
        the same one, so this process never asks for the turn twice."""
        if self._turn_wait is None:
            if self._turn.try_take():
                return
            self._turn_asked = time.monotonic()
            self._turn_wait = self._committer.wait_turn(asyncio.get_running_loop())
            self._turn_wait.add_done_callback(self._turn_came)
        wait = self._turn_wait
        self._turn_wanted = True
        try:
            await asyncio.wait_for(asyncio.shield(wait), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise StoreUnavailable(
                f"another headrace process kept the database's write turn for {self.BUSY_WAIT:g}s "
                f"({self._turn.path}): nothing in this batch was stored"
            ) from None
        finally:
            self._turn_wanted = False
            if wait.done():
                self._turn_wait = None

    def _turn_came(self, wait: asyncio.Future[None]) -> None:
        """The committer thread's wait ended: counted in `turn_wait_seconds`. When nobody awaits it any more (the
        batch gave up at its deadline, and no batch has come since), the turn goes straight back, or this process
        would keep it idle."""
        self.turn_wait_seconds += time.monotonic() - self._turn_asked
        error = None if wait.cancelled() else wait.exception()
        if self._turn_wanted or self._turn_wait is not wait:
            return
        self._turn_wait = None
        if error is None:
            self._turn.give()

    async def _begin_immediate(self, deadline: float) -> None:
        # With the turn held, the lock is free unless a process that does not take turns writes (the sqlite3 shell).
        while True:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise StoreUnavailable(f"cannot begin a write: {exc}") from exc
                if time.monotonic() > deadline:
                    raise StoreUnavailable(f"the database stayed locked for {self.BUSY_WAIT:g}s: {exc}") from exc
                await asyncio.sleep(0.005)

    def _roll_back(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        finally:
            self._turn.give()

    async def _commit(self) -> None:
        """COMMIT on the loop, or in the committer thread while the disk is slow (module docstring); the turn is
        given back as soon as it is done, in either place (another process may be waiting for it)."""
        try:
            if self._clock() < self._thread_until:
                self.commits_in_thread += 1
                await self._committer.commit(asyncio.get_running_loop())
            else:
                self.commits_on_loop += 1
                started = self._clock()
                try:
                    self._conn.execute("COMMIT")
                finally:
                    self._turn.give()  # a failed COMMIT leaves the transaction open: the ROLLBACK follows
                self._took(self._clock() - started)
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StoreUnavailable(f"commit failed, nothing in this batch was stored: {exc}") from exc

    def _took(self, seconds: float) -> None:
        """Count a COMMIT the loop waited for; move the next ones to the thread when the disk has become slow."""
        recent = self._loop_commits
        recent.append(seconds)
        if len(recent) > self.COMMIT_WINDOW:
            del recent[0]
        slow = len(recent) == self.COMMIT_WINDOW and sorted(recent)[self.COMMIT_WINDOW // 2] > self.SLOW_COMMIT
        if not slow and seconds < self.STALL:
            return
        self._thread_until = self._clock() + self.RETRY_LOOP_AFTER
        recent.clear()
        log.log(
            logging.DEBUG if self._slow_said else logging.INFO,
            "the database's disk is slow (a COMMIT took %.1f ms): COMMITs run on a thread for %.0f s, so the "
            "event loop takes requests meanwhile, and then on the loop again",
            seconds * 1000,
            self.RETRY_LOOP_AFTER,
        )
        self._slow_said = True

    async def close(self) -> None:
        await asyncio.sleep(0)  # a flush scheduled with call_soon has started by now
        if self._flush_task is not None:
            await self._flush_task
        # A turn still being waited for comes when the process holding it commits, and then goes straight back
        # (nothing is left to write); the join waits for that, but not past BUSY_WAIT: a process that keeps the
        # turn (stopped, hung) must not keep this one from shutting down. Its thread is then left to its wait.
        if self._turn_wait is not None and not self._turn_wait.done():
            self._committer.leaving = True
        self._committer.stop()
        self._committer.join(self.BUSY_WAIT if self._committer.leaving else None)
        self._conn.close()
        if not self._committer.is_alive():  # else the waiting thread still needs the file to give the turn back
            self._turn.close()


class Committer(threading.Thread):
    """Waits for the write turn when another process has it, off the event loop; and runs the writer's COMMITs
    while the disk is slow (LoopWriter._commit), giving the turn back after each: one thread fed by a queue. (A
    ThreadPoolExecutor through run_in_executor did the same for 40-55 us of CPU a commit against ~25.)"""

    def __init__(self, conn: sqlite3.Connection, turn: WriteTurn) -> None:
        super().__init__(name="headrace-sqlite-commit", daemon=True)
        self._conn = conn
        self._turn = turn
        self.leaving = False  # the writer is closing: a turn that comes is given straight back
        self._queue: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, asyncio.Future[None], bool] | None] = (
            queue.SimpleQueue()
        )

    def commit(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """COMMIT the connection's transaction, then give the turn back; the future ends with it (with its
        exception if it failed)."""
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((loop, future, True))
        return future

    def wait_turn(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Wait in the queue for the write turn; the future ends once this process has it."""
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((loop, future, False))
        return future

    def stop(self) -> None:
        """End the thread once the COMMITs already asked for are done."""
        self._queue.put(None)

    def run(self) -> None:
        while (item := self._queue.get()) is not None:
            loop, future, commit = item
            error: BaseException | None = None
            try:
                if commit:
                    try:
                        self._conn.execute("COMMIT")
                    finally:
                        self._turn.give()  # a failed COMMIT leaves the transaction open: the ROLLBACK follows
                else:
                    self._turn.take()
                    if self.leaving:
                        self._turn.give()
            except BaseException as exc:  # handed to the awaiting writer, which rolls back and answers
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, future, None, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """End `future` with `error`, or else with `result`; nothing when its waiter has gone (cancelled)."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Reader(threading.Thread):
    """Runs read-only operations on a connection of its own, so a slow list never holds up the loop."""

    def __init__(self, path: Path, max_batch: int = 64) -> None:
        super().__init__(name="headrace-sqlite-reader", daemon=True)
        self._path = path
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start_and_wait(self) -> None:
        self.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreError(f"cannot open SQLite database {self._path}: {self._error}") from self._error

    def submit(self, op: Op) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((op, future, loop))
        return future

    def stop(self) -> None:
        self._queue.put(_STOP)

    def run(self) -> None:
        try:
            conn = connect(self._path, readonly=True)
        except sqlite3.Error as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                batch = [item]
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        self._queue.put(_STOP)
                        break
                    batch.append(nxt)
                settled: list[Settled] = []
                for op, future, loop in batch:
                    try:
                        settled.append((loop, future, op(conn), None))
                    except Exception as exc:
                        settled.append((loop, future, None, exc))
                _settle_all(settled)
        finally:
            conn.close()


Settled = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Any, BaseException | None]


def _settle_all(results: list[Settled]) -> None:
    """Resolve a batch's futures with one wake-up per event loop, not one per operation."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Settled]] = {}
    for item in results:
        by_loop.setdefault(item[0], []).append(item)
    for loop, items in by_loop.items():
        loop.call_soon_threadsafe(_apply, items)


def _apply(items: list[Settled]) -> None:
    for _, future, result, error in items:
        _settle(future, result, error)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, where: str, *, allow: bool = True) -> int:
    """Check the schema version (see `schema.guard`) and, when `allow`, bring it to the newest in one
    transaction that holds the write lock, so two processes starting together cannot both migrate.
    Returns the version."""
    known = schema.known_version("sqlite")
    if not allow:
        version = schema_version(conn)
        schema.guard(where, version, known, migrate=False)
        return version
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(conn)
        schema.guard(where, version, known, migrate=True)
        for number, name, sql in migrations("sqlite"):
            if number <= version:
                continue
            try:
                for statement in _statements(sql):
                    conn.execute(statement)
            except sqlite3.Error as exc:
                raise StoreError(f"migration {name} failed on {where}: {exc}") from exc
            conn.execute(f"PRAGMA user_version = {int(number)}")
            version = number
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version


def _statements(sql: str) -> list[str]:
    """The statements of a migration file; a `;` inside one (a trigger's body) does not end it."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    found, pending = [], ""
    for part in "\n".join(lines).split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip().rstrip(";"))
            pending = ""
    if pending.strip(" \n;"):
        found.append(pending.strip().rstrip(";"))
    return found
