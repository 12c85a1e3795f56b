"""HTTP transport: one pooled httpx client per base URL, timeouts, typed I/O errors.

Knows nothing of any provider's JSON: the caller passes a function that turns an
error response into a typed error.

The connection pool is the SDK's own (:class:`_Pool`), under httpx's API: httpcore's
pool walks every pooled connection, with syscalls, twice per request (and counts
them quadratically; encode/httpcore#1035), so a past burst of connections made every
later call slower and a few thousand concurrent calls never finished. Here a request
takes a free slot or waits its turn in a FIFO queue (O(1)), takes the most recently
used idle connection of its origin (O(1), one readability check) or opens one, and
gives both back when its response closes. Requests above ``max_connections`` wait for
a slot; that wait counts against ``total_timeout``, not ``connection_timeout``.
Figures: docs/architecture.md, "Transport".
"""

from __future__ import annotations

import contextlib
import random
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import asyncio

from ..errors import (
    APIStatusError,
    ConfigurationError,
    ConnectionError,
    ConnectTimeoutError,
    InvalidResponseError,
    OverloadedError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    SteerError,
    TotalTimeoutError,
    redact,
)
from ..errors import TimeoutError as SteerTimeoutError

__all__ = ["RETRYABLE_STATUS", "Transport", "backoff_delay", "is_retryable", "map_httpx_error"]

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
MAX_BACKOFF = 8.0
MAX_RETRY_AFTER = 60.0  # default StreamingOptions.max_retry_after
MAX_ERROR_BODY_BYTES = 64 * 1024  # default StreamingOptions.max_error_body_bytes

ErrorParser = Callable[[int, httpx.Headers, bytes], SteerError]


def is_retryable(error: BaseException) -> bool:
    """Whether a failure before any text was delivered is worth another try."""
    if isinstance(error, TotalTimeoutError) or getattr(error, "retryable", None) is False:
        return False
    if isinstance(error, ConnectionError | SteerTimeoutError):
        return True
    if isinstance(error, RateLimitError | OverloadedError | ServerError):
        return True
    if isinstance(error, APIStatusError):
        return error.status_code in RETRYABLE_STATUS
    return False


def backoff_delay(
    retry: int, base: float, retry_after: float | None, max_retry_after: float = MAX_RETRY_AFTER
) -> float:
    """Exponential backoff with jitter; the provider's Retry-After wins when longer,
    up to ``max_retry_after`` (a server cannot park a call for an hour)."""
    delay = min(MAX_BACKOFF, base * (2 ** (retry - 1))) if base > 0 else 0.0
    delay *= 1.0 - 0.25 * random.random()
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_retry_after))
    return delay


def _request_url(exc: Exception) -> str:
    """The URL of the request that failed, without its query (it may hold a key)."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return "the server"
    return str(url.copy_with(query=None))


# SSE is read raw: ask servers not to compress it.
_DEFAULT_HEADERS = {
    "accept": "*/*",
    "accept-encoding": "identity",
    "connection": "keep-alive",
    "user-agent": "steer-llm-sdk",
}
# JSON, SSE, and AWS event stream frames (Bedrock's codecs declare that framing).
_READABLE_TYPES = frozenset(
    {"text/event-stream", "application/json", "application/vnd.amazon.eventstream"}
)


async def _read_capped(response: httpx.Response, cap: int, deadline: float | None) -> bytes:
    """At most ``cap`` bytes of a body (the rest is left unread and the connection
    closed), read within the deadline; a gzip/deflate body is decoded under the cap.
    A failure or the deadline ends the read with what arrived."""
    import asyncio

    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for piece in response.aiter_raw():
                parts.append(piece)
                size += len(piece)
                if size >= cap:
                    break
    except (httpx.HTTPError, TimeoutError):
        pass
    data = b"".join(parts)[:cap]
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding in ("gzip", "x-gzip", "deflate"):
        import zlib

        try:
            # 47: a gzip or zlib header, detected; max_length bounds the expansion.
            return zlib.decompressobj(47).decompress(data, cap)
        except zlib.error:
            return b""
    return b""  # an encoding the SDK cannot decode: the status still tells the story


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


class _PoolStream:
    """A response body that gives its connection and slot back to the pool on close."""

    __slots__ = ("_closed", "_conn", "_key", "_pool", "_stream")

    def __init__(self, stream: Any, pool: _Pool, conn: Any, key: tuple[bytes, bytes, int]) -> None:
        self._stream = stream
        self._key = key
        self._pool = pool
        self._conn = conn
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if hasattr(self._stream, "aclose"):
                await self._stream.aclose()
        finally:
            await self._pool._checkin(self._conn, self._key)


_TURNS = "steer_turns"  # the request extension that hands the pool its loop's budget


class _Gate:
    """The loop's fair budget (``streaming.fair.Turns``, handed over by the caller of
    :meth:`Transport.open`) for the steps of a pool's connections: at most a few dozen
    calls a loop turn go on past a point where thousands may resume at once."""

    __slots__ = ("turns",)

    def __init__(self) -> None:
        self.turns: Any = None  # no budget given: no step is taken

    async def step(self) -> None:
        turns = self.turns
        if turns is not None:
            wait = turns.step()
            if wait is not None:
                await wait


class _FairStream:
    """A connection's socket (httpcore's network stream interface) whose request
    phase takes its steps from the loop's budget: the TLS handshake, and the work
    after the response head arrives (parsing it, building the response). Body reads
    are not gated here: the pipeline takes a step per read itself."""

    __slots__ = ("_gate", "_head_due", "_stream")

    def __init__(self, stream: Any, gate: _Gate) -> None:
        self._stream = stream
        self._gate = gate
        self._head_due = False  # a request was written: its response head is next

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        data: bytes = await self._stream.read(max_bytes, timeout)
        if self._head_due:
            self._head_due = False
            await self._gate.step()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._head_due = True
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> _FairStream:
        await self._gate.step()  # a handshake costs a millisecond of CPU or more
        stream = await self._stream.start_tls(ssl_context, server_hostname, timeout)
        await self._gate.step()
        return _FairStream(stream, self._gate)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _FairBackend:
    """httpcore's network backend with each connection opened in budgeted steps: one
    before connecting, one after (the request is written next). A ``gather`` of
    thousands of calls so opens a few dozen connections a loop turn, and no turn runs
    the connection and request steps of thousands at once."""

    def __init__(self, gate: _Gate) -> None:
        from .aio import AsyncioBackend  # asyncio's transports: no anyio scope per read

        self._backend = AsyncioBackend()
        self._gate = gate

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> _FairStream:
        await self._gate.step()
        stream = await self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )
        await self._gate.step()
        return _FairStream(stream, self._gate)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Any = None,
    ) -> _FairStream:
        await self._gate.step()
        stream = await self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options
        )
        await self._gate.step()
        return _FairStream(stream, self._gate)

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _Pool:
    """An HTTP/1.1 connection pool with O(1) work per request (httpcore's interface:
    ``handle_async_request``, ``aclose``), used by httpx through :class:`_HTTPTransport`."""

    def __init__(
        self,
        ssl_context: Any,
        *,
        max_connections: int,
        max_keepalive: int,
        keepalive_expiry: float,
    ) -> None:
        self._ssl_context = ssl_context
        self._free = max_connections  # slots not held by a request
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._idle: dict[tuple[bytes, bytes, int], deque[tuple[Any, float]]] = {}  # (conn, since)
        self._idle_count = 0
        self._max_keepalive = max_keepalive
        self._expiry = keepalive_expiry
        self._open: set[Any] = set()  # every connection not yet closed
        self._closed = False
        self._gate = _Gate()  # the loop's budget, once a request hands it over
        self._backend = _FairBackend(self._gate)  # connections opened in budgeted steps
        from .aio import use_asyncio_locks  # here: `import steer_llm_sdk` loads no asyncio

        self._use_asyncio_locks = use_asyncio_locks

    # -- slots: at most max_connections requests hold a connection, the rest queue --
    async def _acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        import asyncio

        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
            # Streams ending in one turn free their slots at once: the calls woken
            # take turns to send their requests.
            await self._gate.step()
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot came with the cancellation: pass it on
            raise

    def _release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped here, in O(1)
                waiter.set_result(None)
                return
        self._free += 1

    # -- connections ------------------------------------------------------------
    async def _checkout(self, origin: Any, key: tuple[bytes, bytes, int]) -> Any:
        import httpcore

        stack = self._idle.get(key)
        while stack:
            conn, _ = stack.pop()  # the most recently used: the likeliest to be alive
            self._idle_count -= 1
            if conn.is_idle() and not conn.has_expired():
                return conn
            await self._close(conn)
        conn = httpcore.AsyncHTTPConnection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._expiry,
            network_backend=self._backend,  # type: ignore[arg-type]  # its interface, duck-typed
        )
        self._use_asyncio_locks(conn)
        self._open.add(conn)
        return conn

    async def _checkin(self, conn: Any, key: tuple[bytes, bytes, int]) -> None:
        try:
            if self._closed or not conn.is_idle():
                await self._close(conn)
                return
            now = time.monotonic()
            stack = self._idle.setdefault(key, deque())
            stack.append((conn, now))
            self._idle_count += 1
            # Oldest first: past keep-alive expiry, or more idle than max_keepalive.
            # (Not by count while calls wait for a slot: the next one takes it.)
            keep = self._max_keepalive if not self._waiters else len(self._open)
            while stack and (self._idle_count > keep or stack[0][1] + self._expiry < now):
                old, _ = stack.popleft()
                self._idle_count -= 1
                await self._close(old)
        finally:
            self._release()

    async def _close(self, conn: Any) -> None:
        self._open.discard(conn)
        try:
            await conn.aclose()
        except Exception:  # closing a broken socket: nothing to report
            pass

    async def handle_async_request(self, request: Any) -> Any:
        import httpcore

        if self._closed:
            raise httpcore.ConnectError("the client is closed")
        turns = request.extensions.get(_TURNS)
        if turns is not None:  # this pool's loop's budget (a pool serves one loop)
            self._gate.turns = turns
        await self._acquire()
        try:
            origin = request.url.origin
            key = (origin.scheme, origin.host, origin.port)  # httpcore.Origin: not hashable
            while True:
                conn = await self._checkout(origin, key)
                try:
                    response = await conn.handle_async_request(request)
                except httpcore.ConnectionNotAvailable:
                    await self._close(conn)
                    continue
                except BaseException:
                    await self._close(conn)
                    raise
                self._use_asyncio_locks(conn)  # its HTTP/1.1 connection's, once it exists
                break
        except BaseException:
            self._release()
            raise
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_PoolStream(response.stream, self, conn, key),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        import httpcore

        self._closed = True
        self._idle.clear()
        self._idle_count = 0
        for conn in list(self._open):
            await self._close(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(httpcore.ConnectError("the client was closed"))

    async def __aenter__(self) -> _Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _HTTPTransport(httpx.AsyncHTTPTransport):
    """httpx's transport (request conversion, exception mapping) over :class:`_Pool`."""

    def __init__(self, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context(trust_env=True)
        super().__init__(verify=ssl_context, limits=limits, trust_env=True)
        self._pool = _Pool(  # type: ignore[assignment]
            ssl_context,
            max_connections=limits.max_connections or 1 << 30,
            max_keepalive=limits.max_keepalive_connections or 0,
            keepalive_expiry=limits.keepalive_expiry or 0.0,
        )


def _proxy_mounts(limits: httpx.Limits) -> dict[str, httpx.AsyncBaseTransport | None] | None:
    """The environment's proxies (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY), mounted
    as httpx would mount them itself: a client given its own transport ignores them."""
    try:
        from httpx._utils import get_environment_proxies
    except ImportError:  # a future httpx: fall back to its own pool, proxies honoured
        return None
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    for pattern, proxy in get_environment_proxies().items():
        mounts[pattern] = (
            None if proxy is None else httpx.AsyncHTTPTransport(proxy=proxy, limits=limits)
        )
    return mounts


class _RedactingFilter:
    """Redacts keys in the records of httpx's and httpcore's own loggers: httpcore logs
    response headers verbatim at DEBUG, so a key a server echoes would be printed.
    A filter runs only for records that are emitted: no cost with logging off."""

    def filter(self, record: Any) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_LIBRARY_LOGGERS = (
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)
_filter_installed = False


def _install_log_redaction() -> None:
    global _filter_installed
    if not _filter_installed:
        import logging

        _filter_installed = True
        for name in _LIBRARY_LOGGERS:
            logging.getLogger(name).addFilter(_RedactingFilter())


class Transport:
    """Owns the connection pools. One per :class:`SteerLLMClient`."""

    def __init__(self, *, max_connections: int = 1000, pool: str = "steer") -> None:
        # One pool per base URL, bound to the event loop that made it: a client used
        # from two asyncio.run() calls (common in scripts) gets a fresh pool in the
        # second loop instead of sockets owned by a closed one.
        self._clients: dict[str, tuple[httpx.AsyncClient, object]] = {}
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=100, keepalive_expiry=30
        )
        self._closed = False
        self._pool_kind = pool  # "steer" (ours) or "httpcore" (httpx's own, for benchmarks)
        _install_log_redaction()
        self._unwatched: list[httpx.AsyncClient] = []
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        # A client's own transport (the SDK's pool) when no proxy is mounted: httpx's
        # send() steps (auth flow, redirects, cookies, hooks) do nothing for the SDK.
        self._direct: dict[httpx.AsyncClient, httpx.AsyncBaseTransport] = {}
        self._watchers: list[Any] = []

    @property
    def closed(self) -> bool:
        return self._closed

    def client_for(self, base_url: str) -> httpx.AsyncClient:
        import asyncio

        loop = asyncio.get_running_loop()
        entry = self._clients.get(base_url)
        if entry is not None and entry[1] is loop:
            return entry[0]
        if self._closed:
            raise ConfigurationError(
                "this SteerLLMClient is closed (aclose() or the end of its `async with` "
                "was reached): create a new one"
            )
        transport: httpx.AsyncBaseTransport | None = None
        mounts = _proxy_mounts(self._limits) if self._pool_kind == "steer" else None
        if mounts is not None:
            transport = _HTTPTransport(self._limits)
        client = httpx.AsyncClient(
            base_url=base_url,
            limits=self._limits,
            follow_redirects=False,
            headers=_DEFAULT_HEADERS,
            trust_env=True,
            transport=transport,
            mounts=mounts,
        )
        if entry is not None:  # a client of an earlier loop, closed with it
            self._direct.pop(entry[0], None)
        self._clients[base_url] = (client, loop)
        if transport is not None and not mounts:  # no proxy: requests go straight to it
            self._direct[client] = transport
        self._unwatched.append(client)
        return client

    async def _watch(self, client: httpx.AsyncClient) -> None:
        """Close ``client`` when its event loop ends (``asyncio.run()`` closes the async
        generators still open when its main coroutine returns), so a client used from
        several ``asyncio.run()`` calls leaves no socket open until garbage collection."""

        async def closer() -> AsyncGenerator[None, None]:
            try:
                yield
            finally:
                await client.aclose()

        watcher = closer()
        await watcher.__anext__()
        # The loop keeps only a weak reference; forget the watchers of ended loops.
        self._watchers = [w for w in self._watchers if w.ag_frame is not None]
        self._watchers.append(watcher)

    async def _send(self, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
        """``client.send(request, stream=True)``, straight to the SDK's pool when no
        proxy applies: the SDK has no auth flow, follows no redirect and keeps no
        cookie, and those steps of send() cost tens of µs a call."""
        direct = self._direct.get(client)
        if direct is None:
            return await client.send(request, stream=True)
        try:
            response = await direct.handle_async_request(request)
        except httpx.RequestError as exc:
            exc.request = request  # what send() adds: the error names the URL it tried
            raise
        response.request = request
        return response

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
        options: Any = None,  # the call's StreamingOptions (limits), or None: defaults
        turns: Any = None,  # the loop's fair budget (streaming.fair.Turns): gated steps
    ) -> httpx.Response:
        """Send a request; return the streaming response once its headers say 2xx
        with a body the pipeline can read (an event stream, or JSON).

        An error status is read up to ``max_error_body_bytes`` (within what is left of
        ``total_timeout``) and turned into a typed error by ``parse_error``. A redirect,
        a body that is neither SSE nor JSON, or a compressed body the SDK did not ask
        for is a typed error, whatever the body holds.
        """
        client = self.client_for(base_url)
        while self._unwatched:
            await self._watch(self._unwatched.pop())
        # The request is built directly, not with client.build_request(): that parses
        # and merges the URL on every call (about half the per-call CPU at load).
        url = self._urls.get((base_url, path))
        if url is None:
            if len(self._urls) > 256:
                self._urls.clear()
            url = httpx.URL(base_url.rstrip("/") + "/" + path.lstrip("/"))
            self._urls[(base_url, path)] = url
        request = httpx.Request(
            method,
            url,
            headers={**_DEFAULT_HEADERS, **headers},
            content=body,
            extensions={"timeout": timeout.as_dict(), _TURNS: turns},
        )
        failure: SteerError | None = None
        try:
            if deadline is None:
                response = await self._send(client, request)
            else:
                import asyncio

                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    raise TotalTimeoutError("total_timeout passed", **context)
                try:
                    async with asyncio.timeout(remaining):
                        response = await self._send(client, request)
                except TimeoutError:
                    raise TotalTimeoutError(
                        "total_timeout passed while waiting for the response", **context
                    ) from None
        except httpx.HTTPError as exc:
            # Not chained: an httpx/h11 exception can hold raw response bytes (a
            # malformed status line with an echoed key); its useful part is copied,
            # and the error is raised outside the handler so that not even
            # __context__ holds it.
            failure = map_httpx_error(exc, **context)
        if failure is not None:
            raise failure
        status = response.status_code
        if status >= 400:
            cap = getattr(options, "max_error_body_bytes", MAX_ERROR_BODY_BYTES)
            try:
                data = await _read_capped(response, cap, deadline)
            finally:
                await response.aclose()
            error = parse_error(status, response.headers, data)
            error.url = str(request.url.copy_with(query=None))
            error.provider = error.provider or context.get("provider")
            error.model = error.model or context.get("model")
            # error.retry_after stays the server's figure: the pipeline waits it when
            # it is within max_retry_after, else gives up at once (backoff_delay caps).
            raise error
        if status >= 300:
            location = redact(response.headers.get("location", ""))
            await response.aclose()
            raise APIStatusError(
                f"the server answered {status}, a redirect"
                + (f" to {location[:200]}" if location else "")
                + ": the SDK does not follow redirects, so that an API key is never sent "
                "to another address; set the base URL to the final address",
                status_code=status,
                **context,
            )
        encoding = response.headers.get("content-encoding", "").strip().lower()
        if encoding and encoding != "identity":
            await response.aclose()
            raise InvalidResponseError(
                f"the server compressed the response (Content-Encoding: {encoding[:40]}) "
                "although the SDK asked for none (Accept-Encoding: identity); it is refused "
                "so that a small body cannot expand without bound",
                status_code=status,
                **context,
            )
        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if mime and mime not in _READABLE_TYPES and not mime.endswith("+json"):
            try:
                excerpt = await _read_capped(response, 300, deadline)
            finally:
                await response.aclose()
            raise InvalidResponseError(
                f"the server answered {status} with Content-Type {mime[:60]!r}, neither "
                "an event stream nor JSON (is the base URL right?); the body begins: "
                f"{excerpt.decode('utf-8', 'replace')!r}",
                status_code=status,
                **context,
            )
        return response

    async def aclose(self) -> None:
        import asyncio

        self._closed = True
        loop = asyncio.get_running_loop()
        entries, self._clients = list(self._clients.values()), {}
        self._direct = {}
        for client, owner in entries:
            if owner is loop:  # a pool of a finished loop cannot be closed from here
                await client.aclose()
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            with contextlib.suppress(Exception):  # one of another (finished) loop
                await watcher.aclose()
