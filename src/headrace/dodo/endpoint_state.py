"""Is headrace's webhook endpoint in Dodo there, enabled, and subscribed to every event type the destinations
route? One answer for everything that asks (the console's Setup page, `headrace check`).

headrace's endpoints are the ones `connect dodo` marked: metadata `managed_by = headrace` and the source's name
(dodo/connect.py MANAGED_BY, SOURCE_KEY). An endpoint made by hand is not recognised (`missing`): `connect dodo`
with its URL takes it over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import aiohttp

from headrace.dodo.api import DodoClient, WebhookEndpoint, base_url
from headrace.dodo.connect import MANAGED_BY, SOURCE_KEY
from headrace.dodo.transport import AiohttpTransport

if TYPE_CHECKING:
    from headrace.config import Settings
    from headrace.config.sources import SourceSettings

RATE_LIMIT_WAIT = 2.0  # seconds of Dodo's 429 a status question waits out; longer: DodoApiError

EndpointCondition = Literal["missing", "disabled", "incomplete", "ok"]


@dataclass(frozen=True)
class EndpointState:
    """headrace's endpoint for one source as Dodo holds it now."""

    condition: EndpointCondition
    endpoint: WebhookEndpoint | None = None  # the enabled one first, when there are several
    missing_types: tuple[str, ...] = ()  # routed by a destination, not subscribed (empty filter = every type)
    others: tuple[WebhookEndpoint, ...] = ()  # more endpoints marked as this source's

    def describe(self) -> str:
        if self.endpoint is None:
            return "no webhook endpoint in Dodo is marked as headrace's for this source"
        e = self.endpoint
        more = f" ({len(self.others)} more marked as this source's)" if self.others else ""
        if self.condition == "disabled":
            return f"endpoint {e.id} ({e.url}) is DISABLED: Dodo sends nothing to it{more}"
        if self.condition == "incomplete":
            shown = ", ".join(self.missing_types[:8]) + (" ..." if len(self.missing_types) > 8 else "")
            return (
                f"endpoint {e.id} ({e.url}) is enabled but not subscribed to {len(self.missing_types)} event "
                f"type(s) the destinations route: {shown}{more}"
            )
        return f"endpoint {e.id} ({e.url}) is enabled and subscribed to every event type the destinations route{more}"


def routed_types(settings: Settings, source: str) -> list[str]:
    """The Dodo event types some enabled destination takes from `source`: what the endpoint must subscribe to."""
    from headrace.dodo import samples

    return [t for t in samples.EVENT_TYPES if settings.destinations_for(source, t)]


def endpoint_state(endpoints: Sequence[WebhookEndpoint], source: str, wanted: Sequence[str]) -> EndpointState:
    """The state of `source`'s endpoint among `endpoints` (every page of `GET /webhooks`)."""
    ours = [
        e
        for e in endpoints
        if all(e.metadata.get(key) == value for key, value in MANAGED_BY.items())
        and e.metadata.get(SOURCE_KEY) == source
    ]
    if not ours:
        return EndpointState("missing")
    ours.sort(key=lambda e: e.disabled)
    found, others = ours[0], tuple(ours[1:])
    if found.disabled:
        return EndpointState("disabled", found, others=others)
    missing = tuple(t for t in wanted if found.filter_types and t not in found.filter_types)
    return EndpointState("incomplete" if missing else "ok", found, missing, others)


async def source_endpoint_state(
    name: str,
    source: SourceSettings,
    base_dir: Path,
    wanted: Sequence[str],
    session: aiohttp.ClientSession,
    timeout: float,
) -> EndpointState:
    """Ask Dodo (with the source's `api_key` and `mode`) for the state of `name`'s endpoint. Raises ValueError
    (no api_key, or it cannot be read) or DodoApiError (Dodo refused, or did not answer within `timeout` per
    request); neither message holds the key."""
    from headrace.config.sources import dodo_access

    if source.api_key is None:
        raise ValueError(f"source {name} has no api_key; `headrace connect dodo` stores it")
    access = dodo_access(source.api_key, source.mode, base_dir)
    client = DodoClient(
        base_url(access.mode, access.base_override),
        access.api_key.reveal(),
        AiohttpTransport(session),
        timeout=timeout,
        max_wait=RATE_LIMIT_WAIT,
    )
    return endpoint_state(await client.webhooks(), name, wanted)
