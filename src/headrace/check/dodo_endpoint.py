"""`headrace check`'s `endpoint` row for a source with an API key: is headrace's webhook endpoint in Dodo
still enabled? Svix disables an endpoint whose deliveries failed for days; Dodo then sends nothing at all
until someone enables it again (`headrace connect dodo` does, with the URL it was registered with).

headrace's endpoints are the ones `connect dodo` marked (metadata `managed_by = headrace` and the source's
name). An endpoint made by hand is not recognised: the row then says so and how to let connect take it over.
"""

from __future__ import annotations

from pathlib import Path

from headrace.check.report import Row
from headrace.config.sources import SourceSettings, dodo_access
from headrace.dodo.api import DodoApiError, base_url, open_client
from headrace.dodo.connect import MANAGED_BY, SOURCE_KEY

RATE_LIMIT_WAIT = 5.0  # seconds of Dodo's 429 that `check` waits out; longer: a warning row


async def endpoint_rows(name: str, source: SourceSettings, base_dir: Path, timeout: float) -> list[Row]:
    """The `endpoint` rows of source `name` (none without an API key: headrace cannot ask Dodo)."""
    if source.api_key is None:
        return []
    subject = f"source {name}"
    connect = f"headrace connect dodo --source {name} --public-url URL --api-key {source.api_key}"
    try:
        access = dodo_access(source.api_key, source.mode, base_dir)
        base = base_url(access.mode, access.base_override)
        async with open_client(base, access.api_key.reveal(), timeout=timeout, max_wait=RATE_LIMIT_WAIT) as client:
            endpoints = await client.webhooks()
    except (ValueError, DodoApiError) as exc:
        return [Row(subject, "endpoint", "warn", f"could not ask Dodo about the webhook endpoint: {exc}")]
    ours = [e for e in endpoints if all(e.metadata.get(k) == v for k, v in MANAGED_BY.items())]
    ours = [e for e in ours if e.metadata.get(SOURCE_KEY) == name]
    if not ours:
        detail = f"no webhook endpoint in Dodo ({access.mode} mode) is marked as headrace's for this source"
        return [Row(subject, "endpoint", "warn", detail, f"`{connect}` registers (or takes over) it")]
    rows = []
    for e in ours:
        if e.disabled:
            detail = (
                f"Dodo's webhook endpoint {e.id} ({e.url}) is DISABLED: Dodo sends nothing to it (Svix disables an "
                "endpoint that failed for days)"
            )
            fix = f"`{connect.replace('URL', e.url)}` enables it again; then `headrace reconcile` the days it missed"
            rows.append(Row(subject, "endpoint", "fail", detail, fix))
        else:
            rows.append(Row(subject, "endpoint", "ok", f"Dodo's webhook endpoint {e.id} ({e.url}) is enabled"))
    return rows
