"""Schema preflight: the target's input schema, cached, and what to do when a payload does not fit it.

Fetch policy (docs/operations.md): a schema is fetched once per target and kept for `SCHEMA_TTL`; a
failed fetch is remembered for `FAILURE_TTL`, so an unreachable or forbidden schema endpoint costs one
request per target per quarter minute, never one per delivery. When no schema can be had, the delivery
is sent anyway and the attempt notes "schema not checked: ...": the run endpoint is the authority, and a
schema endpoint that is down or closed to the token must not hold payments back. One lookup per key is
in flight at a time; every other delivery for that target waits for the same answer.

Two targets are never checked, and say why: one whose definition the token may not read (T1: the run-only
token Windmill's Webhooks panel makes answers 403 on scripts/get; logged once per target), and one with a
preprocessor (R8: it receives `{"event": ...}`, so `main`'s schema says nothing about what the run URL takes).

What a schema mode means is decided here, once (`Verdict`): deliveries (attempt.py), previews (preview.py) and
`headrace check` (check/events.py) all read it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from headrace.deliver.request import Request
from headrace.windmill.api import TargetInfo, WindmillApi
from headrace.windmill.schema import Problem, summary, validate
from headrace.windmill.urls import RunTarget

log = logging.getLogger("headrace.deliver")

SchemaMode = Literal["enforce", "warn", "off"]
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


def unreadable_note(target: RunTarget) -> str:
    """T1: why a definition the token may not read (403) turns the schema check off, and what to do."""
    plural = f"{target.kind}s"
    return (
        f"schema not checked: the token may run {target.kind} {target.path} but not read its definition (HTTP "
        f"403: a run-only token, like the jobs:run:{plural}:{target.path} one Windmill's Webhooks panel makes). "
        f"The schema check is off until the destination has a token with {plural}:read as well"
    )


def preprocessor_note(target: RunTarget) -> str:
    """R8: why a target with a preprocessor is not checked against its schema."""
    return (
        f"schema not checked: {target.kind} {target.path} has a preprocessor, which receives "
        '{"event": {"kind": "webhook", "body": ...}} and returns main\'s arguments, so main\'s input schema '
        "says nothing about what the run URL accepts"
    )


def lookup_from(info: TargetInfo, target: RunTarget, now: float) -> SchemaLookup:
    name = f"{target.kind} {target.path}"
    if info.found:
        if info.preprocessor:
            return SchemaLookup(None, preprocessor_note(target), now)
        if info.schema is None:
            return SchemaLookup(None, f"schema not checked: Windmill gives no input schema for {name}", now)
        return SchemaLookup(info.schema, "", now, info.keeps_undeclared)
    if info.status == 404:
        return SchemaLookup(None, f"schema not checked: Windmill has no {name} (HTTP 404)", now)
    if info.status == 403:
        return SchemaLookup(None, unreadable_note(target), now)
    return SchemaLookup(None, f"schema not checked: could not fetch it for {name}: {info.error}", now)


class SchemaCache:
    def __init__(self, client: WindmillApi, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        self._entries: dict[tuple[str, str, str, str], SchemaLookup] = {}
        self._inflight: dict[tuple[str, str, str, str], asyncio.Future[SchemaLookup]] = {}
        self._told: set[tuple[str, str, str, str]] = set()  # targets whose 403 was logged (once each)

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
            if info.status == 403 and key not in self._told:
                self._told.add(key)
                log.warning(
                    "%s (said once per target; deliveries are sent)", entry.note.removeprefix("schema not checked: ")
                )
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[key]

    def remember(self, target: RunTarget, info: TargetInfo) -> None:
        """Keep a definition fetched elsewhere (`check` reads it for its own rows) as this target's entry."""
        self._entries[_key(target)] = lookup_from(info, target, self.clock())

    def clear(self) -> None:
        self._entries.clear()

    async def check(self, target: RunTarget, token: str, payload_of: Callable[[], Any]) -> SchemaFindings:
        """The problems of the payload against the target's schema; re-fetches a stale schema on mismatch.
        `payload_of` makes the payload (parses the body) and is called only when there is a schema to check."""
        found = await self.get(target, token)
        if found.schema is None:
            return SchemaFindings([], found.note)
        payload = payload_of()
        if not isinstance(payload, dict):
            return SchemaFindings([], "")
        problems = validate(payload, found.schema, keeps_undeclared=found.keeps_undeclared)
        if problems and self.clock() - found.fetched_at > REFRESH_ON_MISMATCH:
            found = await self.get(target, token, max_age=REFRESH_ON_MISMATCH)
            if found.schema is None:
                return SchemaFindings([], found.note)
            problems = validate(payload, found.schema, keeps_undeclared=found.keeps_undeclared)
        return SchemaFindings(problems)


@dataclass(frozen=True)
class Verdict:
    """What a destination's schema mode makes of one payload: the one reading of enforce / warn / off."""

    mode: SchemaMode
    checked: bool
    problems: list[Problem]
    note: str = ""  # why it was not checked

    @property
    def refused(self) -> bool:
        """Not sent: enforce, and the payload does not fit."""
        return self.mode == "enforce" and bool(self.problems)

    @property
    def outcome(self) -> Literal["fits", "not sent", "sent anyway", "not checked"]:
        if not self.checked:
            return "not checked"
        if not self.problems:
            return "fits"
        return "not sent" if self.refused else "sent anyway"

    def refusal(self, target: RunTarget) -> str:
        return (
            f'payload does not match {_where(target)}: {summary(self.problems)}. Not sent (schema = "enforce"): '
            "fix the transformation or the target, then replay."
        )

    def attempt_note(self, target: RunTarget) -> str:
        """The line an attempt's notes carry: a warning sent anyway, why nothing was checked, or nothing."""
        if self.checked and self.problems and not self.refused:
            return (
                f'schema warning (sent anyway, schema = "{self.mode}"): payload does not match {_where(target)}: '
                f"{summary(self.problems)}"
            )
        return "" if self.checked or self.mode == "off" else self.note


def _payload(built: Request) -> Any:
    return built.payload if built.payload is not None else json.loads(built.body)


def _where(target: RunTarget) -> str:
    return f"the input schema of {target.kind} {target.path}"


OFF_NOTE = 'schema = "off" for this destination: deliveries are not checked against the target'


async def judge(schemas: SchemaCache, built: Request, token: str, mode: SchemaMode) -> Verdict:
    """The verdict on what `built` sends, against the target it goes to (the one the transformation chose),
    under `mode`. Never raises: a preflight that breaks must not hold a payment back, so it is "not checked"
    with the reason."""
    if mode == "off":
        return Verdict(mode, False, [], OFF_NOTE)
    try:
        # The Dodo body as is is parsed only for a target with a schema (most deliveries have none to check).
        findings = await schemas.check(built.target, token, lambda: _payload(built))
    except Exception as exc:
        return Verdict(mode, False, [], f"schema not checked: {type(exc).__name__}: {exc}")
    if findings.note:
        return Verdict(mode, False, [], findings.note)
    return Verdict(mode, True, findings.problems)
