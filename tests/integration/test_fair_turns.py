"""The pipeline takes its steps from the loop's fair budget (streaming/fair.py): many
concurrent streams over real sockets prepare their requests and decode their reads a
few per loop turn, and every one of them still gets its whole text."""

from __future__ import annotations

import asyncio
from collections import Counter

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.streaming import fair
from steer_llm_sdk.wiring import Wiring

STREAMS = 40
PER_TURN = 4


async def test_concurrent_streams_take_a_few_steps_per_loop_turn(
    client: SteerLLMClient, model: str
) -> None:
    loop = asyncio.get_running_loop()
    granted: Counter[int] = Counter()  # loop turn -> steps granted in it
    turn = [0]

    def tick() -> None:
        turn[0] += 1
        if not done:
            loop.call_soon(tick)

    class Recorded(fair.Turns):
        __slots__ = ()

        def step(self) -> asyncio.Future[None] | None:
            wait = super().step()
            if wait is None:
                granted[turn[0]] += 1
            else:
                wait.add_done_callback(lambda _: granted.update([turn[0]]))
            return wait

    budget = Recorded(loop, per_turn=PER_TURN)
    previous = fair._by_loop.get(loop)
    fair._by_loop[loop] = budget
    done = False
    loop.call_soon(tick)
    try:

        async def text() -> str:
            return "".join([chunk async for chunk in client.stream("Hi", model)])

        expected = await text()
        granted.clear()
        texts = await asyncio.gather(*(text() for _ in range(STREAMS)))
    finally:
        done = True
        if previous is None:
            del fair._by_loop[loop]
        else:
            fair._by_loop[loop] = previous
    assert expected and texts == [expected] * STREAMS
    steps = sum(granted.values())
    assert steps >= 2 * STREAMS  # each stream: its request, then at least one read
    # A few per turn (the budget's turn and this clock's differ by a callback's place
    # in the turn, hence the slack), never all forty at once.
    assert max(granted.values()) <= 2 * PER_TURN, granted
    assert len(granted) >= steps // (2 * PER_TURN)


async def test_connections_and_response_heads_take_steps_too() -> None:
    """httpx's own steps are gated inside the transport: with forty calls on a fresh
    client and a server that answers them all at the same moment, at most a few
    connections are made and a few response heads handled per loop turn (before the
    gate, all forty heads in one turn)."""
    loop = asyncio.get_running_loop()
    waiting: list[asyncio.StreamWriter] = []
    everyone = asyncio.Event()
    body = b"".join(
        b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":'
        b'[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}\n\n' % word
        for word in (b"Hello", b" there")
    )
    body += (
        b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":'
        b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        size = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(size)
        waiting.append(writer)
        if len(waiting) == STREAMS:
            everyone.set()
        await everyone.wait()  # then all forty answers go out at once
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=STREAMS)
    port = server.sockets[0].getsockname()[1]
    turn = [0]
    done = False

    def tick() -> None:
        turn[0] += 1
        if not done:
            loop.call_soon(tick)

    connects: Counter[int] = Counter()  # loop turn -> connections begun in it
    heads: Counter[int] = Counter()  # loop turn -> response heads handled in it
    from steer_llm_sdk.transport import http
    from steer_llm_sdk.transport.aio import AsyncioBackend

    connect = AsyncioBackend.connect_tcp
    handle = http._Pool.handle_async_request

    async def counted_connect(self: object, *args: object, **kwargs: object) -> object:
        connects[turn[0]] += 1
        return await connect(self, *args, **kwargs)  # type: ignore[arg-type]

    async def counted_handle(self: object, request: object) -> object:
        response = await handle(self, request)  # type: ignore[arg-type]
        heads[turn[0]] += 1
        return response

    previous = fair._by_loop.get(loop)
    fair._by_loop[loop] = fair.Turns(loop, per_turn=PER_TURN)
    AsyncioBackend.connect_tcp = counted_connect  # type: ignore[method-assign]
    http._Pool.handle_async_request = counted_handle  # type: ignore[method-assign]
    loop.call_soon(tick)
    try:
        async with SteerLLMClient(
            providers={"raw": {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-0"}}
        ) as client:

            async def text() -> str:
                return "".join([chunk async for chunk in client.stream("Hi", "raw/m")])

            texts = await asyncio.wait_for(asyncio.gather(*(text() for _ in range(STREAMS))), 30)
    finally:
        done = True
        AsyncioBackend.connect_tcp = connect  # type: ignore[method-assign]
        http._Pool.handle_async_request = handle  # type: ignore[method-assign]
        if previous is None:
            del fair._by_loop[loop]
        else:
            fair._by_loop[loop] = previous
        server.close()
    assert texts == ["Hello there"] * STREAMS
    assert sum(connects.values()) == STREAMS and sum(heads.values()) == STREAMS
    assert max(connects.values()) <= 2 * PER_TURN, connects
    assert max(heads.values()) <= 2 * PER_TURN, heads


async def test_a_calls_start_is_a_step_too(client: SteerLLMClient, model: str) -> None:
    """Thousands of calls started by one gather do not all prepare in its first turn:
    the call's first step (before its base URL, observer and request) waits its turn
    (before, all forty started in one turn)."""
    loop = asyncio.get_running_loop()
    started: Counter[int] = Counter()  # loop turn -> calls that got past their start
    turn = [0]
    done = False

    def tick() -> None:
        turn[0] += 1
        if not done:
            loop.call_soon(tick)

    base_url = Wiring.base_url  # the call's first step resolves its base URL here

    async def counted(self: Wiring, route: object) -> str:
        started[turn[0]] += 1
        return await base_url(self, route)  # type: ignore[arg-type]

    previous = fair._by_loop.get(loop)
    fair._by_loop[loop] = fair.Turns(loop, per_turn=PER_TURN)
    Wiring.base_url = counted  # type: ignore[method-assign]
    loop.call_soon(tick)
    try:

        async def text() -> str:
            return "".join([chunk async for chunk in client.stream("Hi", model)])

        texts = await asyncio.gather(*(text() for _ in range(STREAMS)))
    finally:
        done = True
        Wiring.base_url = base_url  # type: ignore[method-assign]
        if previous is None:
            del fair._by_loop[loop]
        else:
            fair._by_loop[loop] = previous
    assert all(texts) and sum(started.values()) == STREAMS
    assert max(started.values()) <= 2 * PER_TURN, started
