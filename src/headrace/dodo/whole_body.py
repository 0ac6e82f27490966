"""A transport for `DodoClient` that reads each answer whole (up to `api.RESPONSE_LIMIT`).

`api.AiohttpTransport` reads the body with one `content.read(n)`, which returns what has arrived so far: a
page of 100 payments (~140 KB) comes back cut, and "not JSON". Until that is mended there, reconcile (which
reads such pages) uses this one; everything else is `AiohttpTransport`'s behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from headrace.dodo.api import RESPONSE_LIMIT, DodoApiError, HttpResponse


class WholeBodyTransport:
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
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > RESPONSE_LIMIT:
                        raise DodoApiError(f"{method} {url}: the answer is larger than {RESPONSE_LIMIT} bytes")
                    chunks.append(chunk)
                return HttpResponse(response.status, b"".join(chunks), dict(response.headers.items()))
        except TimeoutError:
            raise DodoApiError(f"{method} {url}: no answer within {timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:
            raise DodoApiError(f"{method} {url}: cannot connect ({exc.os_error.strerror or exc.os_error})") from None
        except aiohttp.ClientError as exc:
            raise DodoApiError(f"{method} {url}: {type(exc).__name__}") from None
