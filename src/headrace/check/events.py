"""The EVENT rows of a destination: every subscribed event type's plain sample and each of its variants through
the destination's transformation and against the target's schema, grouped by type with the variants named."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from headrace.check.report import Row, Status
from headrace.config import DestinationSettings
from headrace.deliver.preflight import SchemaCache, judge
from headrace.deliver.request import Refused, Request, Skipped, build_request
from headrace.dodo import samples
from headrace.transform import Sandbox


def expand_events(dest: DestinationSettings) -> list[str]:
    """The sample event types a destination subscribes to (`payment.*`, `*` expanded)."""
    return [event_type for event_type in samples.EVENT_TYPES if dest.matches(event_type)]


@dataclass(frozen=True)
class _Outcome:
    """What one sample (the plain one, or a variant) gave: status, detail and fix per problem."""

    status: Status
    problems: list[tuple[str, str]]  # (detail, fix); for ok and skip, one entry with the detail
    tryable: bool = False  # the fix ends with a `headrace transform` command that takes --variant


async def _one_sample(
    name: str,
    dest: DestinationSettings,
    event_type: str,
    variant: str | None,
    script: Any,
    sandbox: Sandbox | None,
    schemas: SchemaCache,
) -> _Outcome:
    body = json.dumps(samples.load(event_type, variant)).encode()
    built = await build_request(
        dest.target, event_type, body, "msg_headrace_check", script, sandbox, dest.payload_limit
    )
    if isinstance(built, Refused):
        fix = f"fix {dest.transform}; try: headrace transform --script {dest.transform} --event {event_type}"
        return _Outcome("fail", [(built.reason, fix)], tryable=True)
    if isinstance(built, Skipped):
        detail = "the transformation cancels it: subscribed but never sent"
        fix = f"narrow events for [destinations.{name}] or handle {event_type} in the transformation"
        return _Outcome("warn", [(detail, fix)])
    payload = json.loads(built.body)
    if not isinstance(payload, dict):
        return _Outcome("fail", [("the payload is not a JSON object", "return an object")])
    outcome = await _schema_outcome(dest, built, payload, schemas)
    if not built.guarded:
        return outcome
    # The script wrote text Windmill would resolve without windmill.reference(...): it is sent guarded.
    flagged = (built.guarded, f'mark a reference you mean with windmill.reference("$res:...") in {dest.transform}')
    if outcome.status in ("ok", "skip"):
        return _Outcome("warn", [flagged])
    return _Outcome(outcome.status, [*outcome.problems, flagged])


async def _schema_outcome(
    dest: DestinationSettings, built: Request, payload: dict[str, Any], schemas: SchemaCache
) -> _Outcome:
    # The verdict deliveries use (preflight.judge), against the target this request goes to: the one the
    # transformation chose, if it chose one.
    verdict = await judge(schemas, built, dest.bearer.reveal(), dest.schema_mode)
    where = "" if built.target == dest.target else f" of {built.target.kind} {built.target.path}"
    if not verdict.checked:
        return _Outcome("skip", [(f"transformed ({len(payload)} keys); {verdict.note}", "")])
    if not verdict.problems:
        return _Outcome("ok", [(f"{len(payload)} argument(s) match the schema{where}", "")])
    fix = (
        "make the transformation send exactly the target's arguments with their types"
        + (f" ({dest.transform})" if dest.transform else "; set transform, the Dodo body is sent as is")
        + ", or change the script's signature"
    )
    if not verdict.refused:
        fix += f' (schema = "{dest.schema_mode}": deliveries are sent anyway and noted)'
    status: Status = "fail" if verdict.refused else "warn"
    return _Outcome(status, [(p.message + where, fix) for p in verdict.problems[:10]])


def _type_rows(subject: str, event_type: str, outcomes: dict[str, _Outcome]) -> list[Row]:
    """The rows of one event type: each distinct problem once, naming the samples ("sample": the plain one, or
    a variant's name) that show it, then one row for the samples that passed."""
    found: dict[tuple[Status, str, str, bool], list[str]] = {}
    passed: list[str] = []
    for sample_name, outcome in outcomes.items():
        if outcome.status in ("ok", "skip"):
            passed.append(sample_name)
            continue
        for detail, fix in outcome.problems:
            found.setdefault((outcome.status, detail, fix, outcome.tryable), []).append(sample_name)
    rows = []
    for (status, detail, fix, tryable), names in found.items():
        if tryable and len(names) == 1 and names[0] != "sample":
            fix += f" --variant {names[0]}"  # the one sample that shows it, ready to paste
        rows.append(Row(subject, event_type, status, detail, fix, variant=",".join(names)))
    if passed:
        first = outcomes[passed[0]]
        rows.append(Row(subject, event_type, first.status, first.problems[0][0], variant=",".join(passed)))
    return rows


async def _event_rows(
    subject: str,
    name: str,
    dest: DestinationSettings,
    sandbox: Sandbox | None,
    schemas: SchemaCache,
    base_dir: Any,
) -> list[Row]:
    """Every subscribed event type's plain sample and each of its variants (samples.variants) through the
    destination's transformation and against the target's schema; grouped by type, variants named."""
    from headrace.transform.scripts import load_script

    script = None
    if dest.transform:
        try:
            script = load_script(dest.transform, base_dir)
        except ValueError as exc:
            return [Row(subject, "transform", "fail", str(exc), "fix transform in the config")]
    event_types = expand_events(dest)
    if not event_types:
        return [Row(subject, "events", "warn", f"no bundled sample matches {list(dest.events)}", "check events")]
    rows = []
    for event_type in event_types:
        names: list[str | None] = [None, *samples.variants(event_type)]
        results = await asyncio.gather(
            *(_one_sample(name, dest, event_type, v, script, sandbox, schemas) for v in names)
        )
        outcomes = {v or "sample": result for v, result in zip(names, results, strict=True)}
        rows.extend(_type_rows(subject, event_type, outcomes))
    return rows
