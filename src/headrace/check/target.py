"""The Windmill rows of a destination: its URL, whether Windmill accepts the token, the state of the script or
flow, and its input schema."""

from __future__ import annotations

from urllib.parse import urlsplit

from headrace.check.report import Row
from headrace.config import DestinationSettings
from headrace.windmill.client import TargetInfo
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
    if info.status in (401, 403):
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
        first = info.lock_error.strip().splitlines()[0][:200] if info.lock_error.strip() else ""
        detail = f"the newest version of {name} failed to build its lock ({first}); Windmill runs the previous one"
        rows.append(Row(subject, "target", "warn", detail, fix))
        return rows, True
    if info.lock_pending:
        fix = "wait for Windmill to build it; runs answer 404 until then and deliveries are retried meanwhile"
        rows.append(Row(subject, "target", "warn", f"the newest version of {name} is still building its lock", fix))
        return rows, True
    rows.append(Row(subject, "target", "ok", f"{name} is deployed" + (f": {info.summary}" if info.summary else "")))
    return rows, True


def _schema_row(subject: str, dest: DestinationSettings, info: TargetInfo) -> Row:
    schema = info.schema
    if not schema or not isinstance(schema.get("properties"), dict):
        fix = "give the script typed arguments so Windmill derives an input schema"
        return Row(subject, "schema", "warn", "the target has no input schema: payloads cannot be checked", fix)
    properties, required = schema["properties"], schema.get("required") or []
    detail = f"{len(properties)} argument(s), {len(required)} required; schema = {dest.schema_mode!r}"
    if dest.schema_mode == "off":
        return Row(subject, "schema", "warn", detail, 'schema = "enforce" stops mismatched payloads before Windmill')
    return Row(subject, "schema", "ok", detail)
