"""Schema preflight: the target's input schema, cached, and what to do when a payload does not fit it.

Fetch policy (docs/operations.md): a schema is fetched once per target and kept for `SCHEMA_TTL`; a
failed fetch is remembered for `FAILURE_TTL`, so an unreachable or forbidden schema endpoint costs one
request per target per quarter minute, never one per delivery. When no schema can be had, the delivery
is sent anyway and the attempt notes "schema not checked: ...": the run endpoint is the authority, and a
schema endpoint that is down or closed to the token must not hold payments back. One lookup per key is
in flight at a time; every other delivery for that target waits for the same answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headrace.windmill.client import TargetInfo, WindmillClient
from headrace.windmill.schema import Problem, summary, validate
from headrace.windmill.urls import RunTarget

SCHEMA_TTL = 60.0
FAILURE_TTL = 15.0
REFRESH_ON_MISMATCH = 1.0  # a mismatch against a schema older than this re-fetches it once (a fix was deployed?)


@dataclass(frozen=True)
class SchemaLookup:
    schema: dict[str, Any] | None  # None: nothing to check against (see `note`)
    note: str = ""  # why there is no schema, for the attempt's notes
    fetched_at: float = 0.0
    keeps_undeclared: bool = False  # undeclared keys reach the code (a flow, or Python **kwargs)


@dataclass(frozen=True)
class SchemaFindings:
    problems: list[Problem]
    note: str = ""

    @property
    def text(self) -> str:
        return summary(self.problems)


def _key(target: RunTarget) -> tuple[str, str, str, str]:
    return (target.base_url, target.workspace, target.kind, target.path)


def lookup_from(info: TargetInfo, target: RunTarget, now: float) -> SchemaLookup:
    name = f"{target.kind} {target.path}"
    if info.found:
        if info.schema is None:
            return SchemaLookup(None, f"schema not checked: Windmill gives no input schema for {name}", now)
        return SchemaLookup(info.schema, "", now, info.keeps_undeclared)
    if info.status == 404:
        return SchemaLookup(None, f"schema not checked: Windmill has no {name} (HTTP 404)", now)
    return SchemaLookup(None, f"schema not checked: could not fetch it for {name}: {info.error}", now)


class SchemaCache:
    def __init__(self, client: WindmillClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        self._entries: dict[tuple[str, str, str, str], SchemaLookup] = {}
        self._inflight: dict[tuple[str, str, str, str], asyncio.Future[SchemaLookup]] = {}

    async def get(self, target: RunTarget, token: str, *, max_age: float | None = None) -> SchemaLookup:
        key = _key(target)
        entry = self._entries.get(key)
        if entry is not None:
            ttl = SCHEMA_TTL if entry.schema is not None else FAILURE_TTL
            if max_age is not None:
                ttl = min(ttl, max_age)
            if self.clock() - entry.fetched_at < ttl:
                return entry
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[SchemaLookup] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            info = await self.client.get_target(target, token)
            entry = lookup_from(info, target, self.clock())
            self._entries[key] = entry
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[key]

    def clear(self) -> None:
        self._entries.clear()

    async def check(self, target: RunTarget, token: str, payload: Any) -> SchemaFindings:
        """The problems of `payload` against the target's schema; re-fetches a stale schema on mismatch."""
        found = await self.get(target, token)
        if found.schema is None:
            return SchemaFindings([], found.note)
        if not isinstance(payload, dict):
            return SchemaFindings([], "")
        problems = validate(payload, found.schema, keeps_undeclared=found.keeps_undeclared)
        if problems and self.clock() - found.fetched_at > REFRESH_ON_MISMATCH:
            found = await self.get(target, token, max_age=REFRESH_ON_MISMATCH)
            if found.schema is not None:
                problems = validate(payload, found.schema, keeps_undeclared=found.keeps_undeclared)
            else:
                problems = []
            if found.schema is None:
                return SchemaFindings([], found.note)
        return SchemaFindings(problems)
