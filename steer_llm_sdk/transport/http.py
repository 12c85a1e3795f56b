"""HTTP transport: one pooled httpx client per base URL, timeouts, typed I/O errors.

Knows nothing of any provider's JSON: the caller passes a function that turns an
error response into a typed error.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import httpx

from ..errors import (
    APIStatusError,
    ConnectionError,
    ConnectTimeoutError,
    OverloadedError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    SteerError,
    TotalTimeoutError,
)
from ..errors import TimeoutError as SteerTimeoutError

__all__ = ["RETRYABLE_STATUS", "Transport", "backoff_delay", "is_retryable", "map_httpx_error"]

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_BACKOFF = 8.0

ErrorParser = Callable[[int, httpx.Headers, bytes], SteerError]


def is_retryable(error: BaseException) -> bool:
    """Whether a failure before any text was delivered is worth another try."""
    if isinstance(error, TotalTimeoutError):
        return False
    if isinstance(error, ConnectionError | SteerTimeoutError):
        return True
    if isinstance(error, RateLimitError | OverloadedError | ServerError):
        return True
    if isinstance(error, APIStatusError):
        return error.status_code in RETRYABLE_STATUS
    return False


def backoff_delay(retry: int, base: float, retry_after: float | None) -> float:
    """Exponential backoff with jitter; the provider's Retry-After wins when longer."""
    delay = min(MAX_BACKOFF, base * (2 ** (retry - 1))) if base > 0 else 0.0
    delay *= 1.0 - 0.25 * random.random()
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _request_url(exc: Exception) -> str:
    """The URL of the request that failed, without its query (it may hold a key)."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return "the server"
    return str(url.copy_with(query=None))


def map_httpx_error(exc: Exception, **context: Any) -> SteerError:
    """An httpx exception → the SDK's typed error, naming the URL it tried."""
    url = _request_url(exc)
    error = _map_httpx_error(exc, url, context)
    error.url = url if url != "the server" else None
    return error


def _map_httpx_error(exc: Exception, url: str, context: dict[str, Any]) -> SteerError:
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ConnectTimeoutError(
            f"connecting to {url} timed out: {type(exc).__name__}", **context
        )
    if isinstance(exc, httpx.ReadTimeout | httpx.WriteTimeout):
        return ReadTimeoutError(f"{url} sent nothing for longer than read_timeout", **context)
    if isinstance(exc, httpx.ConnectError):
        return ConnectionError(
            f"could not connect to {url}: {exc or type(exc).__name__}", **context
        )
    if isinstance(exc, httpx.TransportError):
        return ConnectionError(
            f"the connection to {url} was lost: {exc or type(exc).__name__}", **context
        )
    return ConnectionError(f"HTTP failure at {url}: {type(exc).__name__}: {exc}", **context)


class Transport:
    """Owns the connection pools. One per :class:`SteerLLMClient`."""

    def __init__(self, *, max_connections: int = 1000) -> None:
        # One pool per base URL, bound to the event loop that made it: a client used
        # from two asyncio.run() calls (common in scripts) gets a fresh pool in the
        # second loop instead of sockets owned by a closed one.
        self._clients: dict[str, tuple[httpx.AsyncClient, object]] = {}
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=100, keepalive_expiry=30
        )
        self._closed = False

    def client_for(self, base_url: str) -> httpx.AsyncClient:
        import asyncio

        loop = asyncio.get_running_loop()
        entry = self._clients.get(base_url)
        if entry is not None and entry[1] is loop:
            return entry[0]
        if self._closed:
            raise RuntimeError("this SteerLLMClient is closed: create a new one")
        client = httpx.AsyncClient(
            base_url=base_url,
            limits=self._limits,
            follow_redirects=False,
            # SSE is read raw: ask servers not to compress it.
            headers={"accept-encoding": "identity", "user-agent": "steer-llm-sdk"},
            trust_env=True,
        )
        self._clients[base_url] = (client, loop)
        return client

    async def open(
        self,
        base_url: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        *,
        timeout: httpx.Timeout,  # noqa: ASYNC109 - httpx's per-phase timeouts, not one
        parse_error: ErrorParser,
        deadline: float | None,
        context: dict[str, Any],
    ) -> httpx.Response:
        """Send a request; return the streaming response once its headers say 2xx.

        An error status is read whole and turned into a typed error by ``parse_error``.
        """
        client = self.client_for(base_url)
        request = client.build_request(method, path, headers=headers, content=body, timeout=timeout)
        try:
            if deadline is None:
                response = await client.send(request, stream=True)
            else:
                import asyncio

                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise TotalTimeoutError("total_timeout passed", **context)
                try:
                    async with asyncio.timeout(remaining):
                        response = await client.send(request, stream=True)
                except TimeoutError:
                    raise TotalTimeoutError(
                        "total_timeout passed while waiting for the response", **context
                    ) from None
        except httpx.HTTPError as exc:
            raise map_httpx_error(exc, **context) from exc
        if response.status_code >= 400:
            try:
                data = await response.aread()
            except httpx.HTTPError:
                data = b""
            finally:
                await response.aclose()
            error = parse_error(response.status_code, response.headers, data)
            error.url = str(request.url.copy_with(query=None))
            error.provider = error.provider or context.get("provider")
            error.model = error.model or context.get("model")
            raise error
        return response

    async def aclose(self) -> None:
        import asyncio

        self._closed = True
        loop = asyncio.get_running_loop()
        entries, self._clients = list(self._clients.values()), {}
        for client, owner in entries:
            if owner is loop:  # a pool of a finished loop cannot be closed from here
                await client.aclose()
