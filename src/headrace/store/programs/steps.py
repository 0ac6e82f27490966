"""What a program is made of: the `Step`s it yields (one named query each, of four kinds), the `Program` type,
and the two drivers that run a program to its answer (synchronously, or awaiting each step)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Literal, NamedTuple, TypeVar

T = TypeVar("T")
StepKind = Literal["one", "all", "run", "many"]


class Step(NamedTuple):  # not a frozen dataclass: a program makes several per ingested event, 4x the cost
    kind: StepKind
    query: str
    params: Any = None


Program = Generator[Step, Any, T]


def one(query: str, params: Any = None) -> Step:
    return Step("one", query, params)


def all_rows(query: str, params: Any = None) -> Step:
    return Step("all", query, params)


def run(query: str, params: Any = None) -> Step:
    return Step("run", query, params)


def many(query: str, params: list[dict[str, Any]]) -> Step:
    return Step("many", query, params)


def drive(program: Program[T], execute: Callable[[Step], Any]) -> T:
    """Run a program to its answer, with `execute` running each step (a backend's synchronous connection)."""
    result: Any = None
    while True:
        try:
            step = program.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = execute(step)


async def drive_async(program: Program[T], execute: Callable[[Step], Awaitable[Any]]) -> T:
    """`drive` for a backend whose connection is asynchronous."""
    result: Any = None
    while True:
        try:
            step = program.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        result = await execute(step)
