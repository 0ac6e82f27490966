"""PostgreSQL group commit's lanes (store/postgres_group.GroupWriter): an operation submitted while the last
lane is finishing still gets a lane. The lanes' scheduling alone, on a stand-in pool: the programs here run
no statement, so no connection is used."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("psycopg")
from headrace.store.postgres_group import GroupWriter
from headrace.store.programs import Program


class Connection:
    broken = False

    @contextlib.asynccontextmanager
    async def pipeline(self) -> AsyncIterator[None]:
        yield None


class Pool:
    size = 4

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        yield Connection()


def answer(value: int) -> Program[int]:
    yield from ()  # a program that runs no statement
    return value


def test_an_operation_submitted_as_the_last_lane_ends_is_not_stranded():
    """The lane's task has finished but its done-callback has not run yet: a submit in between saw the lane
    as running, started none, and the operation waited for ever (serve hung under bench/ingest.py)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        writer = GroupWriter(Pool(), {}, lanes=1)  # type: ignore[arg-type]
        later: list[asyncio.Future[Any]] = []
        first = writer.submit(answer, (1,))
        # Ready queue: [start the lane]. This callback runs after it, and puts the submit right behind the
        # lane's only step (which finishes it), ahead of the task's done-callbacks.
        loop.call_soon(lambda: loop.call_soon(lambda: later.append(writer.submit(answer, (2,)))))
        for _ in range(20):
            await asyncio.sleep(0)
        assert first.done() and first.result() == 1
        assert later and later[0].done(), "the second operation has no lane"
        assert later[0].result() == 2
        await writer.close()

    asyncio.run(main())
