"""`headrace check`'s `endpoint` row for a source with an API key: is headrace's webhook endpoint in Dodo
still enabled? Svix disables an endpoint whose deliveries failed for days; Dodo then sends nothing at all
until someone enables it again (`headrace connect dodo` does, with the URL it was registered with).

headrace's endpoints are the ones `connect dodo` marked (metadata `managed_by = headrace` and the source's
name). An endpoint made by hand is not recognised: the row then says so and how to let connect take it over.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from headrace.check.report import Row, Status
from headrace.config.sources import SourceSettings, dodo_access
from headrace.dodo.api import DodoApiError, base_url, open_client
from headrace.dodo.endpoint_state import endpoint_state

RATE_LIMIT_WAIT = 5.0  # seconds of Dodo's 429 that `check` waits out; longer: a warning row
STATUS: dict[str, Status] = {"missing": "warn", "disabled": "fail", "incomplete": "warn", "ok": "ok"}


async def endpoint_rows(
    name: str, source: SourceSettings, base_dir: Path, timeout: float, wanted: Sequence[str] = ()
) -> list[Row]:
    """The `endpoint` row of source `name` (none without an API key: headrace cannot ask Dodo), judged by
    dodo.endpoint_state like the console's Setup page; `wanted`: the event types the destinations route."""
    if source.api_key is None:
        return []
    subject = f"source {name}"
    connect = f"headrace connect dodo --source {name} --public-url URL --api-key {source.api_key}"
    try:
        access = dodo_access(source.api_key, source.mode, base_dir)
        base = base_url(access.mode, access.base_override)
        async with open_client(base, access.api_key.reveal(), timeout=timeout, max_wait=RATE_LIMIT_WAIT) as client:
            state = endpoint_state(await client.webhooks(), name, wanted)
    except (ValueError, DodoApiError) as exc:
        return [Row(subject, "endpoint", "warn", f"could not ask Dodo about the webhook endpoint: {exc}")]
    detail = f"{state.describe()} ({access.mode} mode)"
    if state.endpoint is None:
        return [Row(subject, "endpoint", "warn", detail, f"`{connect}` registers (or takes over) it")]
    command, fix = connect.replace("URL", state.endpoint.url), ""
    if state.condition == "disabled":
        detail += " (Svix disables an endpoint that failed for days)"
        fix = f"`{command}` enables it again; then `headrace reconcile` the days it missed"
    elif state.condition == "incomplete":
        fix = f"`{command}` subscribes it to them"
    return [Row(subject, "endpoint", STATUS[state.condition], detail, fix)]
