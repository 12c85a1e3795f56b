"""httpcore's network backend on asyncio's own transports and protocols.

httpcore's ``AnyIOBackend`` wraps every socket read and write in a cancel scope, a
``fail_after`` deadline, an exception map and a checkpoint (an extra loop turn): about
a fifth of the client's CPU for a short call. Here a read takes what the protocol
buffered, or waits on one future with a ``call_later`` timer; a write hands the bytes
to the transport and waits only when its buffer is full. The SDK runs on asyncio only.

Errors are httpcore's (``ConnectError``, ``ConnectTimeout``, ``ReadError``,
``ReadTimeout``, ``WriteError``, ``WriteTimeout``), which httpx maps as before.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Iterable
from typing import Any

import httpcore

__all__ = ["AsyncioBackend", "AsyncioStream"]

_HIGH_WATER = 64 * 1024  # bytes buffered unread before the socket is paused (as anyio: ~1 read)
_HAPPY_EYEBALLS_DELAY = 0.25  # as anyio.connect_tcp
_CORK_BYTES = 64 * 1024  # writes up to this size leave with the next read


class _Protocol(asyncio.Protocol):
    """Buffers what arrives; wakes the one reader or writer waiting."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self.error: BaseException | None = None
        self.lost = False
        self.reading_paused = False
        self.writing_paused = False
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > _HIGH_WATER and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.eof = True
        if exc is not None and self.error is None:
            self.error = exc
        self._wake()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _timed_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _wait(protocol: _Protocol, timeout: float | None) -> None:  # noqa: ASYNC109
    """Until the protocol wakes its waiter; TimeoutError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    waiter = protocol.waiter = loop.create_future()
    timer = loop.call_later(timeout, _timed_out, waiter) if timeout is not None else None
    try:
        await waiter
    finally:
        protocol.waiter = None
        if timer is not None:
            timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    """One connection's socket (or TLS over it), httpcore's stream interface."""

    def __init__(self, transport: Any, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        # Small writes wait here for the next read, so that a request's head and
        # body leave in one send (httpcore writes them apart: two syscalls).
        self._pending: list[bytes] = []
        self._pending_size = 0

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._transport.write(data)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        protocol = self._protocol
        if self._pending:
            self._flush()
        while not protocol.chunks:
            if protocol.error is not None:
                raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
            if protocol.eof:
                return b""
            try:
                await _wait(protocol, timeout)
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out") from None
        data = protocol.chunks.popleft()
        if len(data) > max_bytes:
            protocol.chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        protocol.size -= len(data)
        if protocol.reading_paused and protocol.size <= _HIGH_WATER // 4 and not protocol.lost:
            protocol.reading_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        protocol = self._protocol
        if protocol.lost or self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        if self._pending_size + len(buffer) <= _CORK_BYTES:
            self._pending.append(buffer)
            self._pending_size += len(buffer)
            return
        self._pending.append(buffer)
        self._flush()
        while protocol.writing_paused and not protocol.lost:
            try:
                await _wait(protocol, timeout)
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out") from None
        if protocol.lost and protocol.error is not None:
            raise httpcore.WriteError(str(protocol.error) or type(protocol.error).__name__)

    async def aclose(self) -> None:
        self._pending.clear()
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        self._flush()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.abort()
            raise httpcore.ConnectTimeout("timed out during the TLS handshake") from None
        except (OSError, ssl.SSLError, ConnectionError, RuntimeError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if transport is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        transport = self._transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        if info == "is_readable":
            # Readable while idle: the server closed it or sent something unasked.
            protocol = self._protocol
            if protocol.chunks or protocol.eof or transport.is_closing():
                return True
            try:
                from httpcore._utils import is_socket_readable
            except ImportError:  # another httpcore: what the protocol saw
                return False
            return is_socket_readable(transport.get_extra_info("socket"))
        return None


async def _connected(
    connecting: Any,
    protocol: _Protocol,
    timeout: float | None,  # noqa: ASYNC109
    socket_options: Iterable[Any] | None,
) -> AsyncioStream:
    """A connection made within ``timeout``, its socket options set; httpcore's errors."""
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await connecting
    except TimeoutError:
        raise httpcore.ConnectTimeout("timed out") from None
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
    sock = transport.get_extra_info("socket")
    for option in socket_options or ():
        sock.setsockopt(*option)
    return AsyncioStream(transport, protocol)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend over asyncio's ``create_connection``."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol()
        connecting = loop.create_connection(
            lambda: protocol,
            host,
            port,
            local_addr=(local_address, 0) if local_address else None,
            happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY,
        )
        return await _connected(connecting, protocol, timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[Any] | None = None,
    ) -> AsyncioStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol()
        connecting = loop.create_unix_connection(lambda: protocol, path)
        return await _connected(connecting, protocol, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Lock:
    """httpcore's ``AsyncLock`` interface on an ``asyncio.Lock``, which takes no loop
    turn when free (anyio's takes one on every acquire: three a request)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> _Lock:
        await self._lock.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


def _swap_lock(owner: Any, name: str) -> None:
    lock = getattr(owner, name, None)
    if type(lock).__name__ != "AsyncLock" or not hasattr(lock, "_backend"):
        return  # ours already, or another httpcore's
    inner = getattr(lock, "_anyio_lock", None)
    if inner is not None and inner.locked():  # held: swapped on a later request
        return
    setattr(owner, name, _Lock())


def use_asyncio_locks(connection: Any) -> None:
    """Give an ``httpcore.AsyncHTTPConnection`` (and its HTTP/1.1 connection, once it
    is made) asyncio locks. The pool lends a connection to one request at a time, so
    they are free when taken; they still exclude a close racing a request."""
    _swap_lock(connection, "_request_lock")
    inner = getattr(connection, "_connection", None)
    if inner is not None:
        _swap_lock(inner, "_state_lock")
