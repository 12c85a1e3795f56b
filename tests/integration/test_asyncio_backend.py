"""The pool's network backend on asyncio transports (transport/aio.py), over real
sockets: bounded buffering, timeouts, end of stream, one send per small request, and
the pool's connections on asyncio locks."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpcore
import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.testing import Emulator
from steer_llm_sdk.transport import aio
from steer_llm_sdk.transport.aio import AsyncioBackend

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_big_body_read_slowly_stays_buffered_within_bounds() -> None:
    total = 4 * 1024 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(total // 65536):
            writer.write(b"x" * 65536)
            await writer.drain()
        writer.close()

    async with serve(handler) as port:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        protocol = stream._protocol
        pauses: list[int] = []
        pause = stream._transport.pause_reading
        stream._transport.pause_reading = lambda: (pauses.append(protocol.size), pause())
        got = 0
        most = 0
        while True:
            data = await stream.read(65536, timeout=5)
            if not data:
                break
            got += len(data)
            most = max(most, protocol.size)
            if got % (512 * 1024) < 65536:
                await asyncio.sleep(0.01)  # a slow reader: the socket is paused meanwhile
        await stream.aclose()
        assert got == total
        assert pauses  # the slow reader made the socket pause
        # Paused past the high-water mark: at most that plus one socket read (256 KiB).
        assert most <= aio._HIGH_WATER + 256 * 1024


async def test_a_silent_server_is_a_read_timeout_and_a_closed_one_is_the_end() -> None:
    closing = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await closing.wait()
        writer.write(b"last")
        writer.close()

    async with serve(handler) as port:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        began = time.monotonic()
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(1024, timeout=0.2)
        assert 0.15 < time.monotonic() - began < 2
        assert stream.get_extra_info("is_readable") is False  # idle and silent
        closing.set()
        assert await stream.read(1024, timeout=5) == b"last"
        assert await stream.read(1024, timeout=5) == b""  # the end, not an error
        assert stream.get_extra_info("is_readable") is True  # a pool would drop it
        await stream.aclose()
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"more", timeout=1)


async def test_connecting_to_a_closed_port_is_a_connect_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(httpcore.ConnectError):
        await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)


async def test_a_requests_head_and_body_leave_in_one_send() -> None:
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"BODY-END"))
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    async with serve(handler) as port:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        writes: list[bytes] = []
        transport_write = stream._transport.write
        stream._transport.write = lambda data: (writes.append(data), transport_write(data))
        await stream.write(b"POST / HTTP/1.1\r\nhost: x\r\n\r\n", timeout=5)
        await stream.write(b'{"a": 1} BODY-END', timeout=5)
        assert writes == []  # held until the response is read
        assert await stream.read(1024, timeout=5) == b"ok"
        assert writes == [b'POST / HTTP/1.1\r\nhost: x\r\n\r\n{"a": 1} BODY-END']
        assert received == writes
        await stream.aclose()


async def test_the_pools_connections_use_asyncio_locks() -> None:
    async with Emulator() as emu:
        async with SteerLLMClient(
            api_keys={"openai": "k"}, base_urls={"openai": emu.openai_base_url}
        ) as client:
            texts = await asyncio.gather(
                *(client.generate(f"Hi {i}", model="gpt-4o-mini", max_tokens=5) for i in range(8))
            )
            assert all(t.text for t in texts)
            pools = [t._pool for t in client._transport._direct.values()]  # type: ignore[attr-defined]
            conns = [conn for pool in pools for stack in pool._idle.values() for conn, _ in stack]
            assert conns
            for conn in conns:
                assert isinstance(conn._request_lock, aio._Lock)
                assert isinstance(conn._connection._state_lock, aio._Lock)
