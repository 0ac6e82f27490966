"""Dodo Payments' REST API over aiohttp (not the SDK: its POSTs are retried with no idempotency and its
page-number auto-pagination skips page 1). The `dodopayments` SDK 1.123.0 is the oracle for every shape;
the tests hold this client and the stand-in to it.

The transport is injected (`Transport`): `AiohttpTransport` over a session in production, anything that
answers `HttpResponse`s in tests. The API key is sent as `Authorization: Bearer` and never appears in an
error, a log line or a repr. 429 is waited out (`Retry-After`, bounded); 401/403/5xx become a
`DodoApiError` that says what to do. The base URL is decided by the caller (`base_url`): config/ reads
`DODO_PAYMENTS_BASE_URL`, not this module.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp

from headrace.dodo.kinds import kind_of
from headrace.dodo.transport import (
    RESPONSE_LIMIT,
    AiohttpTransport,
    DodoApiError,
    HttpResponse,
    Transport,
    header,
)
from headrace.durations import retry_after
from headrace.policy import QUOTE_EXCERPT

__all__ = [
    "BASE_URLS",
    "MODES",
    "PAGE_SIZE",
    "RESPONSE_LIMIT",
    "AiohttpTransport",
    "DodoApiError",
    "DodoClient",
    "HttpResponse",
    "Transport",
    "WebhookEndpoint",
    "WebhookPage",
    "base_url",
    "iso",
    "open_client",
]

MODES = ("live", "test")
BASE_URLS = {"live": "https://live.dodopayments.com", "test": "https://test.dodopayments.com"}
PAGE_SIZE = 100  # Dodo's largest page for the object lists
WEBHOOK_PAGE = 100  # `limit` for GET /webhooks
MAX_PAGES = 10_000  # a server that never says `done` cannot keep a command walking forever
RATE_LIMIT_RETRIES = 5  # 429s waited out in a row before giving up
RATE_LIMIT_WAIT = 60.0  # seconds: the longest Retry-After honoured; a longer one is an error


def base_url(mode: str, override: str | None = None) -> str:
    """The API's base: `override` (DODO_PAYMENTS_BASE_URL, as in Dodo's SDKs) when given, else the mode's."""
    if override:
        if not override.startswith(("http://", "https://")):
            raise ValueError(f"DODO_PAYMENTS_BASE_URL {override!r}: give an http:// or https:// URL")
        return override.rstrip("/")
    if mode not in BASE_URLS:
        raise ValueError(f"mode {mode!r}: one of {', '.join(MODES)}")
    return BASE_URLS[mode]


@dataclass(frozen=True)
class WebhookEndpoint:
    """One webhook endpoint as `GET /webhooks` lists it (the SDK's WebhookDetails)."""

    id: str
    url: str
    description: str
    metadata: Mapping[str, str]
    disabled: bool
    filter_types: tuple[str, ...]
    rate_limit: int | None = None
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def from_json(cls, data: Any) -> WebhookEndpoint:
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("url"), str):
            raise DodoApiError("Dodo answered a webhook endpoint without an id or url")
        return cls(
            id=data["id"],
            url=data["url"],
            description=str(data.get("description") or ""),
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
            disabled=bool(data.get("disabled")),
            filter_types=tuple(str(t) for t in (data.get("filter_types") or ())),
            rate_limit=data.get("rate_limit"),
            created_at=str(data.get("created_at") or ""),
            updated_at=str(data.get("updated_at") or ""),
        )


@dataclass(frozen=True)
class WebhookPage:
    endpoints: tuple[WebhookEndpoint, ...]
    iterator: str | None
    done: bool


def iso(moment: datetime | str) -> str:
    """A time for `created_at_gte/lte`: RFC 3339 in UTC (a string is sent as given)."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError("give an aware datetime (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class DodoClient:
    """Dodo's webhook-endpoint and object-listing API for one API key."""

    def __init__(
        self,
        base: str,
        api_key: str,
        transport: Transport,
        *,
        timeout: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = RATE_LIMIT_WAIT,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("the Dodo API key is empty")
        self.base = base.rstrip("/")
        self._key = api_key
        self._transport = transport
        self._timeout = timeout
        self._sleep = sleep
        self._max_wait = max_wait
        self._on_wait = on_wait

    def __repr__(self) -> str:
        return f"DodoClient({self.base!r}, api_key='***')"

    # ---- one request -------------------------------------------------------------------------------

    async def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None
    ) -> Any:
        """One call, answered as parsed JSON. 429 is waited out (bounded); anything else not 2xx raises."""
        url = self.base + path
        headers = {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            response = await self._transport(
                method, url, headers=headers, params=params or {}, body=data, timeout=self._timeout
            )
            if response.status != 429:
                break
            wait = retry_after(header(response.headers, "Retry-After"), time.time())
            wait = 1.0 * 2**attempt if wait is None else wait
            if attempt == RATE_LIMIT_RETRIES or wait > self._max_wait:
                raise DodoApiError(
                    f"{method} {path}: Dodo's rate limit (429) still holds after {attempt + 1} tries "
                    f"(Retry-After {wait:g}s); run the command again later",
                    429,
                )
            if self._on_wait is not None:
                self._on_wait(wait)
            await self._sleep(wait)
        return self._parse(method, path, response)

    def _parse(self, method: str, path: str, response: HttpResponse) -> Any:
        status = response.status
        if 200 <= status < 300:
            if not response.body.strip():
                return None
            try:
                return json.loads(response.body)
            except ValueError:
                message = f"{method} {path}: Dodo answered {status} with a body that is not JSON"
                raise DodoApiError(message, status) from None
        detail = self._excerpt(response.body)
        if status == 401:
            advice = "the API key was refused: check it is a key of this mode (test keys work only with --mode test)"
        elif status == 403:
            advice = "the API key may not do this: give it write access to webhooks in Dodo's dashboard"
        elif status == 404:
            advice = "not found"
        elif status >= 500:
            advice = "Dodo failed on its side; try again in a minute"
        else:
            advice = "Dodo refused the request"
        raise DodoApiError(f"{method} {path}: HTTP {status}: {advice}{': ' + detail if detail else ''}", status)

    def _excerpt(self, body: bytes) -> str:
        text = body[:QUOTE_EXCERPT].decode("utf-8", "replace").strip()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            for key in ("message", "error", "code"):
                if isinstance(parsed.get(key), str):
                    text = parsed[key][:QUOTE_EXCERPT]
                    break
        return text.replace(self._key, "***")

    # ---- webhook endpoints -------------------------------------------------------------------------

    async def webhook_page(self, iterator: str | None = None, limit: int = WEBHOOK_PAGE) -> WebhookPage:
        params = {"limit": str(limit)}
        if iterator:
            params["iterator"] = iterator
        data = await self.request("GET", "/webhooks", params=params)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise DodoApiError("GET /webhooks: the answer has no `data` list")
        return WebhookPage(
            tuple(WebhookEndpoint.from_json(item) for item in data["data"]),
            data.get("iterator") or None,
            bool(data.get("done")),
        )

    async def webhooks(self, limit: int = WEBHOOK_PAGE) -> list[WebhookEndpoint]:
        """Every webhook endpoint, walking every page (until `done`, or no iterator to go on with)."""
        found: list[WebhookEndpoint] = []
        iterator: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = await self.webhook_page(iterator, limit)
            found.extend(page.endpoints)
            if page.done or not page.iterator:
                return found
            if page.iterator in seen:
                raise DodoApiError("GET /webhooks: Dodo gave the same iterator twice; the listing does not end")
            seen.add(page.iterator)
            iterator = page.iterator
        raise DodoApiError(f"GET /webhooks: more than {MAX_PAGES} pages")

    async def create_webhook(
        self,
        url: str,
        *,
        description: str,
        filter_types: Sequence[str],
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> WebhookEndpoint:
        body = {
            "url": url,
            "description": description,
            "filter_types": list(filter_types),
            "metadata": dict(metadata),
            "idempotency_key": idempotency_key,
        }
        return WebhookEndpoint.from_json(await self.request("POST", "/webhooks", body=body))

    async def update_webhook(self, webhook_id: str, changes: Mapping[str, Any]) -> WebhookEndpoint:
        """PATCH only the fields in `changes` (url, description, disabled, filter_types, metadata, rate_limit)."""
        path = f"/webhooks/{quote(webhook_id, safe='')}"
        return WebhookEndpoint.from_json(await self.request("PATCH", path, body=dict(changes)))

    async def webhook_secret(self, webhook_id: str) -> str:
        data = await self.request("GET", f"/webhooks/{quote(webhook_id, safe='')}/secret")
        if not isinstance(data, dict) or not isinstance(data.get("secret"), str) or not data["secret"]:
            raise DodoApiError("GET /webhooks/{id}/secret: the answer has no secret")
        return str(data["secret"])

    # ---- objects -----------------------------------------------------------------------------------

    async def list_page(
        self,
        kind: str,
        page_number: int,
        *,
        created_at_gte: datetime | str | None = None,
        created_at_lte: datetime | str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """One page (`page_number` from 0) of `GET /{kind}`: the reduced list items."""
        kind_of(kind)
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size {page_size}: between 1 and {PAGE_SIZE}")
        params = {"page_number": str(page_number), "page_size": str(page_size)}
        if created_at_gte is not None:
            params["created_at_gte"] = iso(created_at_gte)
        if created_at_lte is not None:
            params["created_at_lte"] = iso(created_at_lte)
        data = await self.request("GET", f"/{kind}", params=params)
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise DodoApiError(f"GET /{kind}: the answer has no `items` list")
        return [item for item in data["items"] if isinstance(item, dict)]

    async def list_all(
        self,
        kind: str,
        *,
        created_at_gte: datetime | str | None = None,
        created_at_lte: datetime | str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of `GET /{kind}` in the window, page 0, 1, 2, ... until a short page."""
        for page_number in range(MAX_PAGES):
            items = await self.list_page(
                kind,
                page_number,
                created_at_gte=created_at_gte,
                created_at_lte=created_at_lte,
                page_size=page_size,
            )
            for item in items:
                yield item
            if len(items) < page_size:
                return
        raise DodoApiError(f"GET /{kind}: more than {MAX_PAGES} pages; give a shorter time window")

    async def retrieve(self, kind: str, object_id: str) -> dict[str, Any]:
        """`GET /{kind}/{id}`: the full object."""
        if not kind_of(kind).retrievable:
            raise ValueError(f"Dodo's API has no GET /{kind}/{{id}}; use the list item")
        data = await self.request("GET", f"/{kind}/{quote(object_id, safe='')}")
        if not isinstance(data, dict):
            raise DodoApiError(f"GET /{kind}/{{id}}: the answer is not an object")
        return data


@asynccontextmanager
async def open_client(base: str, api_key: str, **options: Any) -> AsyncIterator[DodoClient]:
    """A DodoClient over its own aiohttp session, closed on leaving (`options` as DodoClient takes them)."""
    async with aiohttp.ClientSession() as session:
        yield DodoClient(base, api_key, AiohttpTransport(session), **options)
