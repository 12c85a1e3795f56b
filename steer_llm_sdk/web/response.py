"""``stream_response`` / ``resume_response``: a stream of parts as a Starlette
response (any ASGI app, FastAPI included).

Without ``resumable`` the response reads the model stream itself, one part per send:
a client that reads slowly slows the read from the provider (ASGI servers' ``send``
waits while the socket's buffer is full), and a client that leaves cancels the model
call at once (the provider's HTTP response is closed). With ``resumable`` a producer
task reads the model stream into a store and every response is a listener of it."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    PermissionDeniedError,
    RateLimitError,
    SteerError,
    TimeoutError,
    redact,
)
from .encode import Encoder, make_encoder
from .store import SQLiteStore, StreamStore

try:
    from starlette.responses import Response
except ImportError:  # pragma: no cover - the extra is missing
    raise ConfigurationError(
        "steer_llm_sdk.web needs Starlette: pip install 'steer-llm-sdk[web]'"
    ) from None

__all__ = ["error_status", "resume_response", "stream_response"]

log = logging.getLogger("steer_llm_sdk.web")
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
KEEPALIVE = b": keepalive\n\n"
MAX_STORED_BYTES = 64 * 1024 * 1024  # one resumable answer's parts, at most
_DEFAULT_STORE: SQLiteStore | None = None
_PRODUCERS: dict[str, _Producer] = {}  # this process's resumable answers, by stream id


def error_status(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """The HTTP status, a redacted message and headers for an error raised before the
    first byte: 400 a bad request, 429 a rate limit (with ``Retry-After``), 504 a
    timeout, 502 any other upstream failure (a provider's 401 included), 500 a bug."""
    headers: dict[str, str] = {}
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
        return 502, "the model provider refused this server's credentials", headers
    if isinstance(exc, RateLimitError):
        if exc.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
        return 429, "the model provider's rate limit was reached; try again later", headers
    if isinstance(exc, (ConfigurationError, BadRequestError)):
        return 400, error_message(exc), headers
    if isinstance(exc, TimeoutError):
        return 504, error_message(exc), headers
    if isinstance(exc, SteerError):
        return 502, error_message(exc), headers
    return 500, "internal server error", headers


def error_message(exc: BaseException) -> str:
    """What a browser may see of an error: its kind and redacted message, no traceback."""
    if isinstance(exc, (AuthenticationError, PermissionDeniedError)):
        return "the model provider refused this server's credentials"
    if not isinstance(exc, SteerError):
        return "internal server error"
    text = redact(str(exc))
    if len(text) > 500:
        text = text[:500] + "..."
    return f"{type(exc).__name__}: {text}"


def _log_error(exc: BaseException) -> None:
    log.warning("stream failed: %s", redact(f"{type(exc).__name__}: {exc}"))


def _error_response(exc: BaseException, encoding: str) -> Response:
    status, message, headers = error_status(exc)
    if encoding == "openai":
        import orjson

        kind = "rate_limit_error" if status == 429 else "server_error"
        kind = "invalid_request_error" if status == 400 else kind
        body = orjson.dumps({"error": {"message": message, "type": kind, "code": status}})
        return Response(body, status, headers, media_type="application/json")
    return Response(message, status, headers, media_type="text/plain")


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _with_id(chunk: bytes, event_id: str) -> bytes:
    """The chunk with ``id:`` on its last event (the id a reconnecting client sends)."""
    cut = chunk.rfind(b"\n\n", 0, len(chunk) - 2) + 2 if chunk.count(b"\n\n") > 1 else 0
    return chunk[:cut] + b"id: " + event_id.encode() + b"\n" + chunk[cut:]


class _Stream(Response):
    """The base of both responses: headers, a disconnect watch, keep-alives."""

    def __init__(self, encoder: Encoder, keepalive: float | None, headers: dict[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self._hdrs = {**encoder.headers, **headers}
        self.init_headers(self._hdrs)
        self.encoder = encoder
        self.keepalive = keepalive
        self._lock = asyncio.Lock()
        self._last = 0.0

    async def _send_body(self, send: Send, data: bytes) -> None:
        async with self._lock:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        self._last = time.monotonic()

    async def _keepalives(self, send: Send) -> None:
        assert self.keepalive is not None
        while True:
            await asyncio.sleep(max(0.0, self._last + self.keepalive - time.monotonic()))
            if time.monotonic() - self._last >= self.keepalive:
                await self._send_body(send, KEEPALIVE)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = asyncio.ensure_future(self._run(scope, receive, send))
        watch = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait({body, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (body, watch):
                task.cancel()
            await asyncio.gather(body, watch, return_exceptions=True)
        if not body.cancelled() and body.exception() is not None:
            raise body.exception()  # type: ignore[misc]

    async def _start(self, send: Send) -> asyncio.Task[None] | None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        self._last = time.monotonic()
        if self.keepalive is None or self.keepalive <= 0:
            return None
        return asyncio.ensure_future(self._keepalives(send))

    async def _finish(self, send: Send, ticker: asyncio.Task[None] | None, data: bytes) -> None:
        if ticker is not None:
            ticker.cancel()
        async with self._lock:
            await send({"type": "http.response.body", "body": data, "more_body": False})


class _Direct(_Stream):
    """Not resumable: the response reads the stream; leaving cancels it."""

    def __init__(self, source: Any, encoder: Encoder, encoding: str, **kw: Any) -> None:
        super().__init__(encoder, **kw)
        self.source = source
        self.encoding = encoding

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        it: AsyncIterator[Any] = aiter(self.source)
        try:
            await self._pump(it, scope, send)
        finally:
            close = getattr(it, "aclose", None) or getattr(self.source, "aclose", None)
            if close is not None:
                await close()

    async def _relay(self, first: bytes, it: AsyncIterator[Any], send: Send) -> None:
        """Send what a reader task encodes, in batches, until the stream ends."""
        batches = _Batches(first)
        reader = asyncio.ensure_future(batches.read(it, self.encoder))
        try:
            while True:
                if batches.buf:
                    await self._send_body(send, batches.take())
                elif reader.done():
                    reader.result()  # its failure, if any
                    return
                else:
                    batches.waiting.clear()
                    await batches.waiting.wait()
        finally:
            if not reader.done():
                reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _pump(self, it: AsyncIterator[Any], scope: Scope, send: Send) -> None:
        first = asyncio.ensure_future(anext(it))
        try:
            await self._pump_from(first, it, scope, send)
        finally:
            if not first.done():
                first.cancel()
                await asyncio.gather(first, return_exceptions=True)

    async def _pump_from(
        self, first: asyncio.Future[Any], it: AsyncIterator[Any], scope: Scope, send: Send
    ) -> None:
        enc = self.encoder
        ticker = None
        started = False
        try:
            await asyncio.wait({first}, timeout=self.keepalive or None)
            if not first.done():  # a slow first part: headers now, keep-alives meanwhile
                started = True
                ticker = await self._start(send)
            try:
                part = await first
            except StopAsyncIteration:
                part = None
            except Exception as exc:
                _log_error(exc)
                if not started:
                    await _error_response(exc, self.encoding)(scope, _no_receive, send)
                    return
                raise
            if not started:
                started = True
                ticker = await self._start(send)
            if part is not None:
                await self._relay(enc.part(part), it, send)
            end = enc.end()
        except Exception as exc:
            _log_error(exc)
            end = enc.error(error_message(exc))
        await self._finish(send, ticker, end)


class _Batches:
    """The parts a reader task encoded and the sender has not sent yet: the sender
    takes them all at once (one send per network read, not per part); the reader
    waits while ``HIGH_WATER`` bytes wait (a slow client slows the read)."""

    HIGH_WATER = 64 * 1024

    def __init__(self, data: bytes) -> None:
        self.buf = [data] if data else []
        self.size = len(data)
        self.waiting = asyncio.Event()  # something to send (or the end)
        self.room = asyncio.Event()  # below the high-water mark
        self.room.set()

    async def read(self, it: AsyncIterator[Any], encoder: Encoder) -> None:
        try:
            async for part in it:
                data = encoder.part(part)
                if data:
                    self.buf.append(data)
                    self.size += len(data)
                    self.waiting.set()
                    if self.size >= self.HIGH_WATER:
                        self.room.clear()
                        await self.room.wait()
        finally:
            self.waiting.set()

    def take(self) -> bytes:
        data = b"".join(self.buf)
        self.buf.clear()
        self.size = 0
        self.room.set()
        return data


def _retrieved(future: asyncio.Future[None]) -> None:
    """Mark a failure as seen: a producer's first part may fail with no listener left."""
    if not future.cancelled():
        future.exception()


async def _no_receive() -> Message:  # pragma: no cover - never called
    return {"type": "http.disconnect"}


class _Producer:
    """A resumable answer being read into the store (a task of its own)."""

    def __init__(
        self, source: Any, encoder: Encoder, store: StreamStore, chat_id: str, timeout: float
    ) -> None:
        self.stream_id = uuid.uuid4().hex
        self.source = source
        self.encoder = encoder
        self.store = store
        self.chat_id = chat_id
        self.timeout = timeout
        self.chunks: list[bytes] = []  # chunk seq = index + 1, ids included
        self.done = False
        self.first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.first.add_done_callback(_retrieved)
        self.listeners = 0
        self.last_listened = time.monotonic()
        self._wake: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None

    async def _add(self, data: bytes) -> None:
        seq = len(self.chunks) + 1
        chunk = _with_id(data, f"{self.stream_id}:{seq}")
        self.chunks.append(chunk)
        await self.store.append(self.stream_id, seq, chunk)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        if not self.first.done():
            self.first.set_result(None)

    def wait(self) -> asyncio.Future[None]:
        if self._wake is None or self._wake.done():
            self._wake = asyncio.get_running_loop().create_future()
        return self._wake

    async def run(self) -> None:
        it: AsyncIterator[Any] = aiter(self.source)
        enc = self.encoder
        size = 0
        watchdog = asyncio.ensure_future(self._watchdog())
        try:
            async for part in it:
                data = enc.part(part)
                if data:
                    size += len(data)
                    if size > MAX_STORED_BYTES:
                        raise ConfigurationError("the answer is too long to keep for resuming")
                    await self._add(data)
            await self._add(enc.end())
        except asyncio.CancelledError:
            await self._add(enc.error("the answer was cancelled: no client listened"))
        except Exception as exc:
            _log_error(exc)
            if not self.first.done():
                self.first.set_exception(exc)
            else:
                await self._add(enc.error(error_message(exc)))
        finally:
            watchdog.cancel()
            close = getattr(it, "aclose", None)
            if close is not None:
                await close()
            self.done = True
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
            _PRODUCERS.pop(self.stream_id, None)
            await self.store.finish(self.stream_id)

    async def _watchdog(self) -> None:
        """Cancel the model call once no client (here or in another process) has
        listened for ``timeout`` seconds."""
        step = min(1.0, max(0.05, self.timeout / 4))
        while True:
            await asyncio.sleep(step)
            if self.listeners:
                self.last_listened = time.monotonic()
                continue
            idle = time.monotonic() - self.last_listened
            remote = time.time() - await self.store.listened(self.stream_id)
            if min(idle, remote) > self.timeout and self.task is not None:
                self.task.cancel()
                return


class _Listener(_Stream):
    """A response that sends a stored answer from ``after`` on (and what follows)."""

    def __init__(
        self,
        store: StreamStore,
        *,
        stream_id: str | None = None,
        chat_id: str | None = None,
        after: int = 0,
        producer: _Producer | None = None,
        encoding: str = "ui",
        **kw: Any,
    ) -> None:
        super().__init__(make_encoder(encoding), **kw)
        self.store = store
        self.stream_id = stream_id
        self.chat_id = chat_id
        self.after = after
        self.producer = producer
        self.encoding = encoding

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = self.producer
        ticker = None
        if producer is not None:
            first = producer.first
            await asyncio.wait({first}, timeout=self.keepalive or None)
            if not first.done():  # a slow first part: headers now, keep-alives meanwhile
                ticker = await self._start(send)
            try:
                await asyncio.shield(first)
            except Exception as exc:
                if ticker is None:
                    await _error_response(exc, self.encoding)(scope, receive, send)
                else:
                    await self._finish(send, ticker, self.encoder.error(error_message(exc)))
                return
        else:
            if self.stream_id is None and self.chat_id is not None:
                self.stream_id = await self.store.active(self.chat_id)
            if self.stream_id is None or await self.store.done(self.stream_id) is None:
                await Response(None, 204)(scope, receive, send)
                return
            producer = _PRODUCERS.get(self.stream_id)
        if ticker is None:
            self._hdrs["x-steer-stream-id"] = self.stream_id or ""
            self.init_headers(self._hdrs)
            ticker = await self._start(send)
        if producer is not None:
            await self._local(producer, send)
        else:
            await self._remote(send)
        await self._finish(send, ticker, b"")

    async def _local(self, producer: _Producer, send: Send) -> None:
        i = self.after
        producer.listeners += 1
        try:
            while True:
                if i < len(producer.chunks):
                    n = len(producer.chunks)
                    await self._send_body(send, b"".join(producer.chunks[i:n]))
                    i = n
                if producer.done:
                    return
                # Shielded: the future is shared by every listener, and a listener
                # cancelled (its client left) must not cancel it under the others.
                await asyncio.shield(producer.wait())
        finally:
            producer.listeners -= 1
            producer.last_listened = time.monotonic()

    async def _remote(self, send: Send) -> None:
        """Another process produces: poll the store (50 ms), say we listen (1 s)."""
        assert self.stream_id is not None
        after, touched = self.after, 0.0
        while True:
            if time.monotonic() - touched > 1.0:
                await self.store.touch(self.stream_id)
                touched = time.monotonic()
            done = await self.store.done(self.stream_id)
            for seq, data in await self.store.read(self.stream_id, after):
                await self._send_body(send, data)
                after = seq
            if done is not False:
                return
            await asyncio.sleep(0.05)


def _default_store() -> SQLiteStore:
    global _DEFAULT_STORE
    if _DEFAULT_STORE is None:
        _DEFAULT_STORE = SQLiteStore()
    return _DEFAULT_STORE


def stream_response(
    stream: Any,
    encoding: str = "ui",
    *,
    keepalive: float | None = 15.0,
    resumable: bool = False,
    chat_id: str | None = None,
    store: StreamStore | None = None,
    resume_timeout: float = 60.0,
    message_id: str | None = None,
    model: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    """A streaming response of ``stream`` (what ``stream_events()``, ``stream_tools()``
    or ``stream()`` return) in ``encoding`` ``"ui"`` (AI SDK UI message stream v1),
    ``"openai"`` (Chat Completions chunks) or ``"sse"`` (this SDK's parts as JSON).

    An error before the first part is a real status (see :func:`error_status`); after
    it, an error event with a redacted message. An SSE comment goes out after
    ``keepalive`` seconds without anything else. With ``resumable=True`` (and a
    ``chat_id``), the parts are kept in ``store`` (SQLite by default) under event ids,
    the model call survives the client leaving for ``resume_timeout`` seconds, and
    :func:`resume_response` gives the answer to a reconnecting client."""
    encoder = make_encoder(encoding, message_id=message_id, model=model)
    if not resumable:
        return _Direct(stream, encoder, encoding, keepalive=keepalive, headers=headers or {})
    if not chat_id:
        raise ConfigurationError("stream_response(resumable=True) needs a chat_id")
    store = store or _default_store()
    producer = _Producer(stream, encoder, store, chat_id, resume_timeout)
    return _ResumableStart(producer, store, encoding, keepalive=keepalive, headers=headers or {})


class _ResumableStart(_Listener):
    """The first response of a resumable answer: registers and starts the producer."""

    def __init__(self, producer: _Producer, store: StreamStore, encoding: str, **kw: Any):
        super().__init__(
            store, stream_id=producer.stream_id, producer=producer, encoding=encoding, **kw
        )
        self._hdrs["x-steer-stream-id"] = producer.stream_id
        self.init_headers(self._hdrs)

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> None:
        producer = self.producer
        assert producer is not None
        await self.store.start(producer.chat_id, producer.stream_id)
        _PRODUCERS[producer.stream_id] = producer
        producer.task = asyncio.ensure_future(producer.run())
        _TASKS.add(producer.task)
        producer.task.add_done_callback(_TASKS.discard)
        await super()._run(scope, receive, send)


_TASKS: set[asyncio.Task[None]] = set()


def resume_response(
    chat_id: str | None = None,
    *,
    store: StreamStore | None = None,
    last_event_id: str | None = None,
    keepalive: float | None = 15.0,
    encoding: str = "ui",
) -> Response:
    """The answer of ``chat_id`` that is still being produced, replayed from the start
    (what ``useChat``'s resume GET expects), or 204 when none is. With
    ``last_event_id`` (the ``Last-Event-ID`` header: ``<stream id>:<seq>``), exactly
    the parts after it, ``chat_id`` not needed."""
    store = store or _default_store()
    stream_id, after = None, 0
    if last_event_id:
        sid, _, seq = last_event_id.strip().rpartition(":")
        if not sid or not seq.isdigit():
            raise ConfigurationError(f"Last-Event-ID {last_event_id[:80]!r} is not <stream>:<seq>")
        stream_id, after = sid, int(seq)
    elif not chat_id:
        raise ConfigurationError("resume_response needs a chat_id or a last_event_id")
    return _Listener(
        store,
        stream_id=stream_id,
        chat_id=chat_id,
        after=after,
        encoding=encoding,
        keepalive=keepalive,
        headers={},
    )
