"""The Windmill rows of a destination: its URL, whether Windmill accepts the token, the state of the script or
flow (and of a flow's script steps, R9), and its input schema."""

from __future__ import annotations

import asyncio
import dataclasses
from urllib.parse import urlsplit

from headrace.check.report import Row
from headrace.config import DestinationSettings
from headrace.deliver.preflight import preprocessor_note, unreadable_note
from headrace.policy import LINE_EXCERPT
from headrace.windmill.api import TargetInfo, WindmillApi
from headrace.windmill.urls import RunTarget


def _url_row(subject: str, dest: DestinationSettings) -> Row:
    target = dest.target
    where = f"{target.kind} {target.path} in workspace {target.workspace}"
    if target.mode == "wait":
        where += " (a run_wait_result URL: jobs are created with jobs/run and followed, never waited on)"
    if target.base_url.startswith("http://"):
        host = urlsplit(target.base_url).hostname or ""
        if host not in ("localhost", "127.0.0.1", "::1"):
            return Row(
                subject, "url", "fail", f"{where} over plain http", "use https:// so the token is not sent in clear"
            )
    return Row(subject, "url", "ok", where)


def _target_rows(subject: str, target: RunTarget, info: TargetInfo, ms: float) -> tuple[list[Row], bool]:
    name = f"{target.kind} {target.path}"
    if info.status == 403:
        # T1: a scoped token without scripts:read / flows:read, like the one Windmill's Webhooks panel makes.
        plural = f"{target.kind}s"
        detail = (
            f"a run-only token: it can run {name} and follow its jobs, but Windmill refuses it the definition "
            f"(HTTP 403, no {plural}:read scope)"
        )
        fix = (
            f"nothing to do for deliveries; to have the target and its schema checked, give the destination a token "
            f"with {plural}:read as well"
        )
        rows = [Row(subject, "token", "warn", detail, fix, ms)]
        rows.append(Row(subject, "target", "skip", f"not checked: the token may not read the definition of {name}"))
        return rows, True
    if info.status == 401:
        fix = (
            "the token is wrong, revoked, or has no access to this workspace or path; set the destination's "
            "token (deliveries answered 401 are retried on the schedule until they give up)"
        )
        return [Row(subject, "token", "fail", f"Windmill refused the token (HTTP {info.status})", fix, ms)], False
    if info.status is None or info.status >= 500 or (info.status != 200 and info.status != 404):
        fix = "is url pointing at Windmill (including any path prefix before /api)?"
        return [Row(subject, "token", "fail", f"could not ask Windmill: {info.error}", fix, ms)], False
    rows = [Row(subject, "token", "ok", "accepted", ms=ms)]
    if info.status == 404:
        fix = (
            f"deploy the {target.kind} at {target.path} in workspace {target.workspace} "
            "(wmill sync push), or copy the webhook URL again from Windmill; meanwhile deliveries answered "
            "404 are retried on the schedule until they give up"
        )
        rows.append(Row(subject, "target", "fail", f"Windmill has no {name} in workspace {target.workspace}", fix))
        return rows, False
    if info.archived or info.draft_only:
        # Windmill runs a path whatever its archived or draft state (CONTRACT.md R4): deliveries work, but
        # the target is probably not the one meant to receive payments.
        state = "archived" if info.archived else "only a draft, never deployed"
        fix = (
            f"Windmill still runs it by path, so deliveries go through; if that is not meant, "
            f"{'unarchive or redeploy' if info.archived else 'deploy'} the {target.kind} or change url"
        )
        rows.append(Row(subject, "target", "warn", f"{name} is {state}", fix))
        return rows, True
    if info.lock_error:
        fix = "fix the script's dependencies and push again (`wmill sync push`); see the lock error in Windmill"
        first = info.lock_error.strip().splitlines()[0][:LINE_EXCERPT] if info.lock_error.strip() else ""
        detail = f"the newest version of {name} failed to build its lock ({first}); Windmill runs the previous one"
        rows.append(Row(subject, "target", "warn", detail, fix))
        return rows, True
    if info.lock_pending:
        fix = "wait for Windmill to build it; runs answer 404 until then and deliveries are retried meanwhile"
        rows.append(Row(subject, "target", "warn", f"the newest version of {name} is still building its lock", fix))
        return rows, True
    rows.append(Row(subject, "target", "ok", f"{name} is deployed" + (f": {info.summary}" if info.summary else "")))
    return rows, True


async def _step_rows(
    subject: str, client: WindmillApi, target: RunTarget, token: str, info: TargetInfo, timeout: float
) -> list[Row]:
    """R9: a flow runs before its steps can. Each `type: script` step runs its script's newest locked version,
    resolved when the job reaches it, so while a step script's lock builds the flow's jobs fail there."""
    if target.kind != "flow" or not info.found or not info.steps:
        return []
    limit = asyncio.Semaphore(4)

    async def one(path: str) -> tuple[str, TargetInfo]:
        step = dataclasses.replace(target, kind="script", path=path, mode="async", extra_query=())
        async with limit:
            return path, await client.get_target(step, token, timeout=timeout)

    found = await asyncio.gather(*(one(path) for path in info.steps))
    building = [path for path, step in found if step.found and step.lock_pending and not step.lock_error]
    missing = [path for path, step in found if step.status == 404]
    unread = [path for path, step in found if not step.found and step.status != 404]
    rows = []
    if building or missing:
        parts = []
        if building:
            parts.append(f"still building its lock: {', '.join(building)}")
        if missing:
            parts.append(f"not deployed: {', '.join(missing)}")
        detail = (
            f"step script(s) {'; '.join(parts)}. Windmill runs the flow anyway (201) and its jobs fail at that step "
            "until every step script has a lock"
        )
        fix = "wait for the locks (Windmill builds them after `wmill sync push`), or deploy the missing scripts"
        rows.append(Row(subject, "steps", "warn", detail, fix))
    else:
        ready = len(info.steps) - len(unread)
        rows.append(Row(subject, "steps", "ok", f"{ready} script step(s), each with a built lock"))
    if unread:
        rows.append(Row(subject, "steps", "skip", f"could not read step script(s) {', '.join(unread)}"))
    return rows


def _schema_row(subject: str, dest: DestinationSettings, info: TargetInfo) -> Row:
    if info.status == 403:
        detail = unreadable_note(dest.target).removeprefix("schema not checked: ")
        fix = f"give the destination a token with {dest.target.kind}s:read as well to check payloads before sending"
        return Row(subject, "schema", "warn", detail, fix)
    if info.preprocessor:
        detail = "does not apply: " + preprocessor_note(dest.target).removeprefix("schema not checked: ")
        return Row(subject, "schema", "skip", detail)
    schema = info.schema
    if not schema or not isinstance(schema.get("properties"), dict):
        fix = "give the script typed arguments so Windmill derives an input schema"
        return Row(subject, "schema", "warn", "the target has no input schema: payloads cannot be checked", fix)
    properties, required = schema["properties"], schema.get("required") or []
    detail = f"{len(properties)} argument(s), {len(required)} required; schema = {dest.schema_mode!r}"
    if dest.schema_mode == "off":
        return Row(subject, "schema", "warn", detail, 'schema = "enforce" stops mismatched payloads before Windmill')
    return Row(subject, "schema", "ok", detail)
