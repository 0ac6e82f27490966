"""Dodo's side of `headrace connect dodo`: find headrace's webhook endpoint among all of Dodo's (every page),
create it when it is missing, PATCH only what differs, and never create two.

The config side (the secret file, `[sources.NAME]`) is the CLI's (cli/dodo.py); this module talks to
`DodoClient` only, so it runs the same against Dodo and the stand-in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from headrace.dodo.api import DodoApiError, DodoClient, WebhookEndpoint

MANAGED_BY = {"managed_by": "headrace"}
SOURCE_KEY = "headrace_source"
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_url(url: str) -> str:
    """`url` compared the way Dodo's endpoint list should be searched: scheme and host in lower case, the
    default port dropped, no trailing slash; path and query as written (they are case-sensitive)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host if port is None or DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), parts.query, ""))


def check_public_url(url: str) -> str | None:
    """Why `url` cannot be a webhook endpoint's address, or None."""
    if len(url) > 2048:
        return "longer than 2048 characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "give the https:// URL Dodo will POST to, e.g. https://hooks.example.com/webhooks/dodo"
    if parts.username or parts.password:
        return "a URL with a user name or password in it would hand them to Dodo; leave them out"
    if parts.fragment:
        return "a URL fragment (#...) is never sent; leave it out"
    try:
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return "the port is not a number between 1 and 65535"
    return None


def plain_http_elsewhere(url: str) -> bool:
    """True for an http:// URL whose host is not this machine (only the stand-in and tests use those)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and (parts.hostname or "") not in ("127.0.0.1", "localhost", "::1")


def idempotency_key(mode: str, url: str, source: str, replaced: str = "") -> str:
    """The same key for the same endpoint, so a POST Dodo did receive is not made twice (two runs at once
    send the same key). `replaced`: the id of a deleted endpoint the plain key answered with, so the next
    endpoint gets a key of its own (still the same for every run that saw that deleted one)."""
    text = f"headrace\n{mode}\n{normalise_url(url)}\n{source}" + (f"\nreplacing {replaced}" if replaced else "")
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"headrace-{digest[:40]}"


@dataclass(frozen=True)
class Plan:
    """What connect does to Dodo: create, change (`changes`, PATCH body) or leave the endpoint."""

    action: str  # "create" | "update" | "none"
    endpoint: WebhookEndpoint | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    others: tuple[WebhookEndpoint, ...] = ()  # more endpoints with the same URL, left alone


def find(
    endpoints: Sequence[WebhookEndpoint], url: str, source: str
) -> tuple[WebhookEndpoint | None, tuple[WebhookEndpoint, ...]]:
    """The endpoint with `url` (headrace's for `source` first, then an enabled one), and any others."""
    wanted = normalise_url(url)
    same = [e for e in endpoints if normalise_url(e.url) == wanted]
    if not same:
        return None, ()
    same.sort(key=lambda e: (e.metadata.get(SOURCE_KEY) != source, e.disabled))
    return same[0], tuple(same[1:])


def plan(endpoints: Sequence[WebhookEndpoint], url: str, source: str, filter_types: Sequence[str]) -> Plan:
    found, others = find(endpoints, url, source)
    if found is None:
        return Plan("create")
    owner = found.metadata.get(SOURCE_KEY)
    if owner is not None and owner != source:
        raise DodoApiError(
            f"endpoint {found.id} for {found.url} is headrace's for source {owner!r}, not {source!r}: it is "
            f"left as it is. Give this source its own URL (…/webhooks/{source}), or run connect for {owner!r}"
        )
    changes: dict[str, Any] = {}
    if found.disabled:
        changes["disabled"] = False
    if found.filter_types and not set(filter_types) <= set(found.filter_types):
        # Keep what someone else subscribed it to; add what headrace's destinations need. Empty = every type.
        changes["filter_types"] = sorted(set(found.filter_types) | set(filter_types))
    metadata = {**found.metadata, **MANAGED_BY, SOURCE_KEY: source}
    if metadata != dict(found.metadata):
        changes["metadata"] = metadata
    return Plan("update" if changes else "none", found, changes, others)


async def ensure_endpoint(
    client: DodoClient,
    *,
    url: str,
    source: str,
    mode: str,
    filter_types: Sequence[str],
    dry_run: bool = False,
    say: Callable[[str], None] = print,
) -> tuple[Plan, WebhookEndpoint | None]:
    """Make Dodo hold one enabled endpoint for `url` subscribed to `filter_types`. Returns the plan and the
    endpoint as it is now (None on a dry run that would create it)."""
    endpoints = await client.webhooks()
    say(f"Dodo has {len(endpoints)} webhook endpoint(s) ({client.base})")
    current = plan(endpoints, url, source, filter_types)
    for other in current.others:
        say(f"note: endpoint {other.id} has the same URL; left alone")
    if current.action == "none":
        assert current.endpoint is not None
        say(f"endpoint {current.endpoint.id} for {current.endpoint.url}: up to date")
        return current, current.endpoint
    if current.action == "update":
        assert current.endpoint is not None
        say(f"endpoint {current.endpoint.id}: {'would change' if dry_run else 'changing'} {describe(current.changes)}")
        if dry_run:
            return current, current.endpoint
        return current, await client.update_webhook(current.endpoint.id, current.changes)
    say(f"{'would create' if dry_run else 'creating'} an endpoint for {url} ({len(filter_types)} event types)")
    if dry_run:
        return current, None
    return current, await _create_once(client, url=url, source=source, mode=mode, filter_types=filter_types, say=say)


async def _create_once(
    client: DodoClient,
    *,
    url: str,
    source: str,
    mode: str,
    filter_types: Sequence[str],
    say: Callable[[str], None],
) -> WebhookEndpoint:
    """POST the endpoint. When the answer is lost (no answer, 5xx) Dodo may have created it anyway: list
    again, and POST again (same idempotency key) only when it is not there."""
    replaced, failed = "", 0
    for _ in range(3):  # two POSTs without a clear answer at most, and one more for a deleted endpoint
        try:
            created = await client.create_webhook(
                url,
                description=f"headrace: Dodo events into Windmill (source {source})",
                filter_types=filter_types,
                metadata={**MANAGED_BY, SOURCE_KEY: source},
                idempotency_key=idempotency_key(mode, url, source, replaced),
            )
        except DodoApiError as exc:
            failed += 1
            if (exc.status is not None and exc.status < 500) or failed == 2:
                raise
            say(f"the create request got no clear answer ({exc}); listing again before anything else")
        else:
            # The key was used before: the answer may be an endpoint deleted since (in Dodo's dashboard). Then
            # the next endpoint needs a key of its own.
            listed = await client.webhooks()
            if replaced or any(endpoint.id == created.id for endpoint in listed):
                return created
            say(f"Dodo answered with endpoint {created.id}, which was deleted since; creating a new one")
            replaced = created.id
            continue
        found, _ = find(await client.webhooks(), url, source)
        if found is not None:
            say(f"Dodo did create endpoint {found.id}")
            return found
    raise AssertionError("unreachable")


def describe(changes: Mapping[str, Any]) -> str:
    words = []
    if "disabled" in changes:
        words.append("enable it (it was disabled)")
    if "filter_types" in changes:
        words.append(f"subscribe it to {len(changes['filter_types'])} event types")
    if "metadata" in changes:
        words.append("mark it as headrace's (metadata)")
    return ", ".join(words)
