"""Pieces every `headrace` command shares: the usage error, JSON output, time options and the event loop.

Neutral ground: `cli.py` and `cli_tools.py` both import from here, and this module imports neither (nor
`api`, `console` or `server`), so the choice of event loop and the error style are made once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from headrace.durations import parse_since

T = TypeVar("T")


class UsageError(Exception):
    """A mistake in the command line: printed as `headrace: ...`, exit code 2."""


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed (the `fast` default on Linux), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on the loop `new_event_loop` picks."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def since_option(option: str, text: str, now: float) -> float:
    """A `--since`/`--until` value as unix seconds, or a UsageError naming the option and the forms."""
    try:
        return parse_since(text, now)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
