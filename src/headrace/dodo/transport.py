"""How the Dodo client reaches Dodo: the transport seam (`Transport`, answered with `HttpResponse`s), its aiohttp
implementation with a cap on the answer's size, and the error every failure becomes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

RESPONSE_LIMIT = 8 * 1024 * 1024  # bytes: a page of 100 full objects is far below


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    async def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> HttpResponse: ...


class AiohttpTransport:
    """Requests over an aiohttp session; a transport failure becomes DodoApiError (status None)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __call__(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        params: Mapping[str, str],
        body: bytes | None,
        timeout: float,
    ) -> HttpResponse:
        try:
            async with self._session.request(
                method,
                url,
                headers=headers,
                params=params,
                data=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                chunks, total = [], 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    total += len(chunk)
                    if total > RESPONSE_LIMIT:
                        raise DodoApiError(f"{method} {url}: the answer is larger than {RESPONSE_LIMIT} bytes")
                    chunks.append(chunk)
                return HttpResponse(response.status, b"".join(chunks), {k: v for k, v in response.headers.items()})
        except TimeoutError:
            raise DodoApiError(f"{method} {url}: no answer within {timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise DodoApiError(f"{method} {url}: cannot connect ({exc.os_error.strerror or exc.os_error})") from None
        except aiohttp.ClientError as exc:
            raise DodoApiError(f"{method} {url}: {type(exc).__name__}") from None


class DodoApiError(Exception):
    """A request Dodo refused or that did not get an answer (`status` None). The message says what to do
    and never holds the API key."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None
