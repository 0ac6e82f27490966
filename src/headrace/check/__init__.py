"""`headrace check`: every item of Dodo's troubleshooting list for the Windmill integration, per destination.

For each destination, in order (a failed step skips the steps that depend on it):

  url      the Windmill URL is a run URL (and https when the host is not loopback)
  dns      the host name resolves                        (timed)
  tcp      the port accepts a connection                 (timed)
  tls      the TLS handshake and certificate are good    (timed; https only)
  token    Windmill accepts the token
  target   the script or flow exists (archived or draft-only: a warning, Windmill still runs it; a run-only
           token that may not read it: a warning, not a failure)
  steps    a flow's script steps each have a lock (a flow runs before its steps can, and fails there)
  schema   its input schema could be fetched (a target with a preprocessor: does not apply)
  EVENT    for every event type the destination subscribes to: the bundled sample and each of its variants
           (zero-decimal currency, empty name, multi-subscription, ...) through the destination's
           transformation, validated against the schema; one row per type when all agree, else a row per
           problem naming the variant
  jobs     Windmill jobs of this destination that failed in the last day (from the store, if any)

and for each source: at least one signing secret of the form whsec_<base64>; with an API key, that headrace's
webhook endpoint in Dodo is still enabled (check/dodo_endpoint.py); and, from the store, any stretch
in which Dodo gave up on events headrace never stored (headrace/ops/outages.py), with the reconcile to run.

Each row is ok, warn or fail, with the fix for anything not ok. Secrets and tokens are never printed.

This module runs the checks in that order; report.py holds the rows and their rendering, network.py the dns,
tcp and tls rows, target.py the url, token, target and schema rows, events.py the EVENT rows.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiohttp

from headrace.check.dodo_endpoint import endpoint_rows
from headrace.check.events import _event_rows, expand_events
from headrace.check.network import _ms, _network
from headrace.check.report import Report, Row, Status, render_json, which_samples
from headrace.check.target import _schema_row, _step_rows, _target_rows, _url_row
from headrace.config import DestinationSettings, Settings
from headrace.deliver.preflight import SchemaCache
from headrace.dodo.endpoint_state import routed_types
from headrace.ops import outages
from headrace.policy import QUOTE_EXCERPT
from headrace.store.core import Store
from headrace.transform import Sandbox
from headrace.windmill.api import WindmillApi
from headrace.windmill.client import WindmillClient

__all__ = ["JOB_WINDOW", "Report", "Row", "Status", "check", "expand_events", "render_json", "which_samples"]

JOB_WINDOW = 24 * 3600.0


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
        wanted = routed_types(settings, source_name)
        report.rows.extend(await endpoint_rows(source_name, source, settings.base_dir, timeout, wanted))
    own_session = session is None
    session = session or aiohttp.ClientSession(headers={"User-Agent": "headrace-check"})
    failures = {}
    if store is not None:
        since = (time.time() if now is None else now) - JOB_WINDOW
        failures = {f.destination: f for f in await store.job_failures(since)}
        report.rows.extend(
            _outage_rows(await outages.find(store, time.time() if now is None else now, list(settings.sources)))
        )
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
                    f"({f.last_event_type}): {first_line[:QUOTE_EXCERPT]}"
                )
                fix = f"read the job's logs in Windmill: {link}; then `headrace replay {f.last_event_id}`"
                report.rows.append(Row(subject, "jobs", "fail", detail, fix))
            elif store is not None:
                report.rows.append(Row(subject, "jobs", "ok", "no failed Windmill jobs in the last 24 h"))
    finally:
        if own_session:
            await session.close()
    return report


def _outage_rows(found: Sequence[outages.Outage]) -> list[Row]:
    if not found:
        detail = "no stretch longer than Dodo's 27 h 35 min of retries without headrace (down, or answering 401)"
        return [Row("headrace", "outages", "ok", detail)]
    return [
        Row(
            "headrace" if o.source is None else f"source {o.source}",
            "outages",
            "fail",
            o.message(),
            'preview with the command above, then add --apply; docs/operations.md, "headrace was down for two days"',
        )
        for o in found
    ]


def _source_row(name: str, count: int) -> Row:
    # Config loading already refused a source without secrets, or with one that is not whsec_<base64>.
    detail = f"{count} signing secret(s) of the form whsec_<base64>"
    return Row(f"source {name}", "secrets", "ok", detail + (" (rotation under way)" if count > 1 else ""))


async def _check_destination(
    subject: str,
    name: str,
    dest: DestinationSettings,
    client: WindmillApi,
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
    token = dest.bearer.reveal()
    info = await client.get_target(target, token, timeout=timeout)
    target_rows, deployed = _target_rows(subject, target, info, _ms(started))
    rows.extend(target_rows)
    if not deployed:
        return rows
    rows.extend(await _step_rows(subject, client, target, token, info, timeout))
    rows.append(_schema_row(subject, dest, info))
    schemas = SchemaCache(client)
    schemas.remember(target, info)  # the samples the transformation sends elsewhere fetch that target's own
    rows.extend(await _event_rows(subject, name, dest, sandbox, schemas, settings.base_dir))
    return rows
