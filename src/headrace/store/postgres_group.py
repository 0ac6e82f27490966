"""Group commit on PostgreSQL: the writes of many concurrent ingests in one transaction, one COMMIT.

`GroupWriter.submit` queues an operation (a program of `store.programs` and its arguments) and returns
a future that resolves only after the COMMIT that made it durable, as with SQLite's `sqlite_io.LoopWriter`.
Operations queued while `lanes` batches are already running wait and go together in the next batch
(at most `max_batch`), so under load each COMMIT — each WAL flush the server waits for — carries many
operations, and `synchronous_commit` stays as the server has it.

A batch runs its programs in lockstep in psycopg's pipeline mode (`run_programs`): the next step of every
program is sent at once, then one sync brings back all their results, and the steps of a round that run
the same query go out as one statement (its bulk form in store/sql/postgresql/bulk.sql). A batch of
ingests therefore costs three round trips whatever its size: BEGIN with the late-copy lookup, the events'
INSERT, then the deliveries' INSERT with the COMMIT (a `many` step has no result to wait for). A lane keeps
its connection and pipeline while batches keep coming; psycopg's `transaction()` is not used, as inside a
pipeline it syncs on entering and on leaving (a batch took seven round trips with it).

Failures: a batch that fails for any reason but a broken connection (a statement the server refused, a
program that raised, a deadlock with another instance's batch) is rolled back and run again as two
halves, each a batch of its own: an operation that fails alone gets its own error, and every other
operation in the batch commits, after about 2·log2(batch) smaller batches. When the connection breaks, the
pool drops it and every operation of the batch fails with that error (nothing of it was committed, or —
if it broke during COMMIT — the caller cannot know, exactly as for a single transaction); an ingest then
answers 503 and Dodo sends the event again, stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow

from headrace.store.postgres_io import Conn, Pool
from headrace.store.programs import Program, Step
from headrace.store.queries import parse_queries


@dataclass
class Op:
    make: Callable[..., Program[Any]]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


async def run_programs(
    conn: Conn,
    queries: dict[str, str],
    programs: Sequence[Program[Any]],
    bulk: dict[str, str] | None = None,
    pipeline: psycopg.AsyncPipeline | None = None,
) -> list[Any]:
    """Run `programs` in one transaction on `conn`, in lockstep and pipelined; return their answers in
    order, once the COMMIT succeeded. Raises the first failure, and then nothing of any program was committed
    and `conn` is out of its transaction again (unless it broke).

    Each round sends the next step of every program that is still running, then syncs once. The steps of
    a round that run the same query go out as one statement when `bulk` has a bulk form of it
    (store/sql/postgresql/bulk.sql), else as one `executemany` (one result set each), which costs the
    driver much less than a cursor and an `execute` per statement.

    Round trips are what a batch costs most, on both sides of the socket, so none is spent on bookkeeping:
    BEGIN goes out with the first round, a `many` step (it has no result) is answered at once, so when a
    round holds only those the COMMIT goes out with it, and the caller may keep `pipeline` open over several
    batches (psycopg's `transaction()` in a pipeline syncs on entering and on leaving: three round trips more)."""
    bulk = bulk or {}
    answers: list[Any] = [None] * len(programs)
    steps: dict[int, Step] = {}
    for i, program in enumerate(programs):
        _advance(program, None, i, steps, answers)
    if not steps:
        return answers  # programs that ran no statement (nothing to write): no transaction needed
    async with contextlib.AsyncExitStack() as stack:
        if pipeline is None:
            pipeline = await stack.enter_async_context(conn.pipeline())
        try:
            await conn.execute(BEGIN, prepare=False)
            while steps:
                steps = await _round(conn, pipeline, queries, bulk, programs, steps, answers)
            await conn.execute(COMMIT, prepare=False)
            await pipeline.sync()  # the answers stand only now
        except Exception:
            await _roll_back(conn, pipeline)
            raise
    return answers


BEGIN, COMMIT, ROLLBACK = b"BEGIN", b"COMMIT", b"ROLLBACK"


async def _round(
    conn: Conn,
    pipeline: psycopg.AsyncPipeline,
    queries: dict[str, str],
    bulk: dict[str, str],
    programs: Sequence[Program[Any]],
    steps: dict[int, Step],
    answers: list[Any],
) -> dict[int, Step]:
    """Send one step of every program in `steps`; returns their next steps. Syncs only when a step has a
    result to wait for: the programs whose step was a `many` are sent on at once."""
    rounds: dict[tuple[str, str], list[int]] = {}
    for i, step in steps.items():
        rounds.setdefault((step.kind, step.query), []).append(i)
    sent: list[tuple[str, list[int], psycopg.AsyncCursor[DictRow], bool]] = []
    following: dict[int, Step] = {}
    for (kind, query), members in rounds.items():
        cursor = conn.cursor()
        if kind == "many":  # no results: every program's parameter sets in one go
            params = [p for i in members for p in steps[i].params]
            if query in bulk and len(params) > 1:
                await cursor.execute(bulk[query], bulk_params(bulk[query], params))
            else:
                await cursor.executemany(queries[query], params)
            for i in members:  # a failure shows at the next sync, and fails the whole transaction
                _advance(programs[i], None, i, following, answers)
            continue
        params = [steps[i].params for i in members]
        together = kind == "one" and query in bulk and len(params) > 1
        if together:
            await cursor.execute(bulk[query], bulk_params(bulk[query], params))
        elif len(params) == 1:
            await cursor.execute(queries[query], params[0])  # executemany would fetch its results at once
        else:
            await cursor.executemany(queries[query], params, returning=True)
        sent.append((kind, members, cursor, together))
    if not sent:
        return following
    await pipeline.sync()
    for kind, members, cursor, together in sent:
        if together:
            rows = {int(row.pop("n")): row for row in await cursor.fetchall()}
            for n, i in enumerate(members, start=1):
                _advance(programs[i], rows.get(n), i, following, answers)
            continue
        for n, i in enumerate(members):
            if n:
                cursor.nextset()
            result: Any = None
            if kind == "run":
                result = cursor.rowcount
            elif kind == "one":
                result = await cursor.fetchone()
            elif kind == "all":
                result = await cursor.fetchall()
            _advance(programs[i], result, i, following, answers)
    return following


async def _roll_back(conn: Conn, pipeline: psycopg.AsyncPipeline) -> None:
    """After a failure mid-transaction: collect what the pipeline still holds (statements skipped after the
    error) and end the transaction. A connection that cannot is left as it is: the pool drops it."""
    if conn.broken:
        return
    with contextlib.suppress(psycopg.Error):
        await pipeline.sync()
    if conn.info.transaction_status != TransactionStatus.IDLE:
        with contextlib.suppress(psycopg.Error):
            await conn.execute(ROLLBACK, prepare=False)
            await pipeline.sync()


PARAMETER = re.compile(r"%\(([a-z_][a-z0-9_]*)\)[sbt]")


def bulk_params(sql: str, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The parameters of a bulk form: for each parameter it names, the list of that value in every row."""
    return {name: [row[name] for row in rows] for name in _parameters(sql)}


@functools.cache
def _parameters(sql: str) -> tuple[str, ...]:
    """The parameters a bulk form names, each once (a few bulk forms: found once, not in every batch)."""
    return tuple(dict.fromkeys(PARAMETER.findall(sql)))


def load_bulk() -> dict[str, str]:
    text = resources.files("headrace.store").joinpath("sql", "postgresql", "bulk.sql").read_text("utf-8")
    return parse_queries(text)


def _advance(program: Program[Any], result: Any, i: int, steps: dict[int, Step], answers: list[Any]) -> None:
    try:
        steps[i] = program.send(result)
    except StopIteration as done:
        answers[i] = done.value


class GroupWriter:
    """Batches of operations on at most `lanes` pooled connections at once (see the module docstring)."""

    def __init__(self, pool: Pool, queries: dict[str, str], *, lanes: int = 2, max_batch: int = 256) -> None:
        self._pool = pool
        self._queries = queries
        self._bulk = load_bulk()
        self._lanes = max(1, min(lanes, pool.size))
        self._max_batch = max_batch
        self._pending: list[Op] = []
        self._running: set[asyncio.Task[None]] = set()
        self._starting = False
        self.batches = 0  # transactions committed or tried, retries of split batches included
        self.ops = 0

    def submit(self, make: Callable[..., Program[Any]], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append(Op(make, args, future))
        if not self._starting and len(self._running) < self._lanes:
            self._starting = True
            # Let every operation submitted in this loop iteration join the batch before it starts.
            loop.call_soon(self._start_lane)
        return future

    def _start_lane(self) -> None:
        self._starting = False
        if self._pending and len(self._running) < self._lanes:
            self._running.add(asyncio.get_running_loop().create_task(self._lane()))

    async def _lane(self) -> None:
        try:
            while self._pending:
                batch = self._take()
                try:
                    # One pipeline for as long as batches keep coming: leaving it costs a round trip (a sync).
                    async with self._pool.connection() as conn, conn.pipeline() as pipeline:
                        while batch:
                            await self._settle(conn, pipeline, batch)
                            batch = self._take() if self._pending and not conn.broken else []
                except Exception as exc:  # no connection could be opened
                    self._fail(batch, exc)
        finally:
            # At once, with no await since the last look at `_pending`: a done-callback would run later, and
            # an operation submitted in between would see this lane as running and wait for ever.
            task = asyncio.current_task()
            if task is not None:
                self._running.discard(task)

    def _take(self) -> list[Op]:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        self.ops += len(batch)
        return batch

    async def _settle(self, conn: Conn, pipeline: psycopg.AsyncPipeline, batch: list[Op]) -> None:
        self.batches += 1
        try:
            programs = [op.make(*op.args) for op in batch]
            answers = await run_programs(conn, self._queries, programs, self._bulk, pipeline)
        except Exception as exc:
            if conn.broken or len(batch) == 1:
                self._fail(batch, exc)
            else:  # one operation (or an unlucky moment) failed the batch: split it to find out which
                middle = len(batch) // 2
                await self._settle(conn, pipeline, batch[:middle])
                await self._settle(conn, pipeline, batch[middle:])
            return
        for op, answer in zip(batch, answers, strict=True):
            if not op.future.done():
                op.future.set_result(answer)

    @staticmethod
    def _fail(batch: list[Op], failure: Exception) -> None:
        for op in batch:
            if not op.future.done():
                op.future.set_exception(failure)

    async def close(self) -> None:
        """Wait for the batches under way and those queued (the pool closes after this)."""
        await asyncio.sleep(0)  # a lane scheduled with call_soon has started by now
        while self._running:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._running)
