"""`headrace check`: every item of Dodo's troubleshooting list for the Windmill integration, per destination.

For each destination, in order (a failed step skips the steps that depend on it):

  url      the Windmill URL is a run URL (and https when the host is not loopback)
  dns      the host name resolves                        (timed)
  tcp      the port accepts a connection                 (timed)
  tls      the TLS handshake and certificate are good    (timed; https only)
  token    Windmill accepts the token
  target   the script or flow exists (archived or draft-only: a warning, Windmill still runs it)
  schema   its input schema could be fetched
  EVENT    for every event type the destination subscribes to: the bundled sample and each of its variants
           (zero-decimal currency, empty name, multi-subscription, ...) through the destination's
           transformation, validated against the schema; one row per type when all agree, else a row per
           problem naming the variant
  jobs     Windmill jobs of this destination that failed in the last day (from the store, if any)

and for each source: at least one signing secret of the form whsec_<base64>.

Each row is ok, warn or fail, with the fix for anything not ok. Secrets and tokens are never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from headrace import samples
from headrace.config import DestinationSettings, Settings
from headrace.deliver.request import Refused, Skipped, build_request
from headrace.store.base import Store
from headrace.transform import Sandbox
from headrace.windmill.client import TargetInfo, WindmillClient
from headrace.windmill.schema import validate
from headrace.windmill.urls import RunTarget

Status = Literal["ok", "warn", "fail", "skip"]
JOB_WINDOW = 24 * 3600.0


@dataclass(frozen=True)
class Row:
    subject: str  # "destination payments" / "source dodo"
    check: str
    status: Status
    detail: str
    fix: str = ""
    ms: float | None = None
    variant: str = ""  # event rows: the sample variant(s) the row is about ("sample": the plain sample)


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(row.status != "fail" for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "rows": [asdict(row) for row in self.rows]}

    def table(self) -> str:
        width = max((len(r.subject) for r in self.rows), default=10)
        check_width = max((len(r.check) for r in self.rows), default=10)
        lines = [f"{'SUBJECT':{width}}  {'CHECK':{check_width}}  RESULT  DETAIL"]
        for r in self.rows:
            timing = f" ({r.ms:.1f} ms)" if r.ms is not None else ""
            which = which_samples(r.variant, 1 + len(samples.variants(r.check))) if r.variant else ""
            detail = f"[{which}] {r.detail}" if which else r.detail
            lines.append(f"{r.subject:{width}}  {r.check:{check_width}}  {r.status.upper():6}  {detail}{timing}")
            if r.fix:
                lines.append(f"{'':{width}}  {'':{check_width}}          fix: {r.fix}")
        failed = sum(r.status == "fail" for r in self.rows)
        warned = sum(r.status == "warn" for r in self.rows)
        lines.append("")
        lines.append("all checks passed" if not failed and not warned else f"{failed} failed, {warned} warning(s)")
        return "\n".join(lines)


def expand_events(dest: DestinationSettings) -> list[str]:
    """The sample event types a destination subscribes to (`payment.*`, `*` expanded)."""
    return [event_type for event_type in samples.EVENT_TYPES if dest.matches(event_type)]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def _network(subject: str, target: RunTarget, timeout: float) -> tuple[list[Row], bool]:
    """DNS, TCP and TLS to the Windmill host, timed. Returns the rows and whether the host is reachable."""
    parts = urlsplit(target.base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    rows: list[Row] = []
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (OSError, TimeoutError) as exc:
        rows.append(Row(subject, "dns", "fail", f"{host} does not resolve: {exc}", "check the host name in url"))
        return rows, False
    address = str(infos[0][4][0])
    rows.append(Row(subject, "dns", "ok", f"{host} -> {address}", ms=_ms(started)))
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (OSError, TimeoutError) as exc:
        detail = f"cannot connect to {address}:{port}: {exc or 'timed out'}"
        fix = "is Windmill running and listening on that port? a firewall or the wrong port in url?"
        rows.append(Row(subject, "tcp", "fail", detail, fix))
        return rows, False
    rows.append(Row(subject, "tcp", "ok", f"connected to {address}:{port}", ms=_ms(started)))
    try:
        if parts.scheme == "https":
            started = time.perf_counter()
            try:
                await asyncio.wait_for(writer.start_tls(ssl.create_default_context(), server_hostname=host), timeout)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                fix = "the certificate must be valid for the host name (and trusted by this machine)"
                rows.append(Row(subject, "tls", "fail", f"TLS handshake with {host} failed: {exc}", fix))
                return rows, False
            rows.append(Row(subject, "tls", "ok", f"certificate valid for {host}", ms=_ms(started)))
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
        del reader
    return rows, True


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
    schema: dict[str, Any] | None,
    keeps_undeclared: bool,
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
    if schema is None:
        return _Outcome("skip", [(f"transformed ({len(payload)} keys); no schema to check", "")])
    problems = validate(payload, schema, keeps_undeclared=keeps_undeclared)
    if not problems:
        return _Outcome("ok", [(f"{len(payload)} argument(s) match the schema", "")])
    fix = (
        "make the transformation send exactly the target's arguments with their types"
        + (f" ({dest.transform})" if dest.transform else "; set transform, the Dodo body is sent as is")
        + ", or change the script's signature"
    )
    return _Outcome("fail" if dest.schema_mode != "off" else "warn", [(p.message, fix) for p in problems[:10]])


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


def which_samples(variant: str, total: int) -> str:
    """How a row names its samples in the table: "" when there is only the plain sample."""
    names = variant.split(",") if variant else []
    if total <= 1 or not names:
        return ""
    if len(names) == total:
        return f"plain sample and all {total - 1} variants"
    plain = ["plain sample"] if "sample" in names else []
    variants = [n for n in names if n != "sample"]
    return ", ".join(plain + ([f"variant{'s' if len(variants) > 1 else ''} {', '.join(variants)}"] if variants else []))


async def _event_rows(
    subject: str,
    name: str,
    dest: DestinationSettings,
    sandbox: Sandbox | None,
    schema: dict[str, Any] | None,
    base_dir: Any,
    keeps_undeclared: bool = False,
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
            *(_one_sample(name, dest, event_type, v, script, sandbox, schema, keeps_undeclared) for v in names)
        )
        outcomes = {v or "sample": result for v, result in zip(names, results, strict=True)}
        rows.extend(_type_rows(subject, event_type, outcomes))
    return rows


async def check(
    settings: Settings,
    names: Sequence[str] = (),
    *,
    session: aiohttp.ClientSession | None = None,
    sandbox: Sandbox | None = None,
    store: Store | None = None,
    timeout: float = 10.0,
    now: float | None = None,
) -> Report:
    """Run every check for the named destinations (all when none are named)."""
    unknown = [n for n in names if n not in settings.destinations]
    if unknown:
        known = ", ".join(sorted(settings.destinations)) or "none configured"
        raise ValueError(f"no destination named {', '.join(unknown)} (known: {known})")
    report = Report()
    for source_name, source in settings.sources.items():
        report.rows.append(_source_row(source_name, len(source.secrets)))
    own_session = session is None
    session = session or aiohttp.ClientSession(headers={"User-Agent": "headrace-check"})
    failures = {}
    if store is not None:
        since = (time.time() if now is None else now) - JOB_WINDOW
        failures = {f.destination: f for f in await store.job_failures(since)}
    try:
        client = WindmillClient(session)
        for name in names or list(settings.destinations):
            dest = settings.destinations[name]
            subject = f"destination {name}"
            report.rows.extend(await _check_destination(subject, name, dest, client, sandbox, settings, timeout))
            if name in failures:
                f = failures[name]
                link = dest.target.ui_url(f.last_job_id) if f.last_job_id else ""
                first_line = f.last_excerpt.splitlines()[0] if f.last_excerpt else ""
                detail = (
                    f"{f.count} job(s) failed in Windmill in the last 24 h; latest at "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(f.last_at))} for event {f.last_event_id} "
                    f"({f.last_event_type}): {first_line[:300]}"
                )
                fix = f"read the job's logs in Windmill: {link}; then `headrace replay {f.last_event_id}`"
                report.rows.append(Row(subject, "jobs", "fail", detail, fix))
            elif store is not None:
                report.rows.append(Row(subject, "jobs", "ok", "no failed Windmill jobs in the last 24 h"))
    finally:
        if own_session:
            await session.close()
    return report


def _source_row(name: str, count: int) -> Row:
    # Config loading already refused a source without secrets, or with one that is not whsec_<base64>.
    detail = f"{count} signing secret(s) of the form whsec_<base64>"
    return Row(f"source {name}", "secrets", "ok", detail + (" (rotation under way)" if count > 1 else ""))


async def _check_destination(
    subject: str,
    name: str,
    dest: DestinationSettings,
    client: WindmillClient,
    sandbox: Sandbox | None,
    settings: Settings,
    timeout: float,
) -> list[Row]:
    rows = [_url_row(subject, dest)]
    if not dest.enabled:
        rows.append(Row(subject, "enabled", "warn", "disabled: gets no new deliveries", "set enabled = true"))
    target = dest.target
    network, reachable = await _network(subject, target, timeout)
    rows.extend(network)
    if not reachable:
        return rows
    started = time.perf_counter()
    info = await client.get_target(target, dest.bearer.reveal(), timeout=timeout)
    target_rows, deployed = _target_rows(subject, target, info, _ms(started))
    rows.extend(target_rows)
    if not deployed:
        return rows
    rows.append(_schema_row(subject, dest, info))
    rows.extend(await _event_rows(subject, name, dest, sandbox, info.schema, settings.base_dir, info.keeps_undeclared))
    return rows


def render_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False)
