"""stream() and stream_events() run on one read loop: the options that shape
delivery behave the same in both (they drifted when each had its own loop)."""

from __future__ import annotations

import orjson
import pytest

from steer_llm_sdk import SteerLLMClient, StreamInterruptedError, TextDelta
from steer_llm_sdk.models.streaming import StreamingOptions

from .replay import ReplayServer


def _chat_stream(words: list[str], *, logprobs: bool = False, terminated: bool = True) -> bytes:
    out = []
    for i, word in enumerate(words):
        choice: dict = {"index": 0, "delta": {"content": word}, "finish_reason": None}
        if logprobs:
            choice["logprobs"] = {
                "content": [{"token": word, "logprob": -0.5, "bytes": None, "top_logprobs": []}]
            }
        chunk = {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}
        if i == 0:
            chunk["choices"][0]["delta"]["role"] = "assistant"
        out.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    end = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    out.append(b"data: " + orjson.dumps(end) + b"\n\n")
    if terminated:
        out.append(b"data: [DONE]\n\n")
    else:
        out[-1] = out[-1][:-2]  # the last event never ends: the body's tail
    return b"".join(out)


def _client(server: ReplayServer) -> SteerLLMClient:
    return SteerLLMClient(
        providers={"replay": {"base_url": server.url + "/v1", "api_key": "sk-test-0000"}}
    )


async def test_coalesce_deltas_is_the_same_in_stream_and_stream_events() -> None:
    words = ["One", " two", " three", " four"]
    opts = StreamingOptions(coalesce_deltas=True)
    async with ReplayServer(body=_chat_stream(words)) as server, _client(server) as client:
        chunks = [c async for c in client.stream("x", "replay/m", streaming_options=opts)]
        deltas = [
            p.text
            async for p in client.stream_events("x", "replay/m", streaming_options=opts)
            if type(p) is TextDelta
        ]
    assert "".join(chunks) == "".join(deltas) == "One two three four"
    # The whole body arrives in one read: one chunk, one TextDelta.
    assert chunks == deltas == ["One two three four"]


@pytest.mark.parametrize("method", ["stream", "stream_events"])
async def test_an_async_on_delta_gets_every_chunk_in_both(method: str) -> None:
    seen: list[str] = []

    async def on_delta(text: str) -> None:
        seen.append(text)

    opts = StreamingOptions(on_delta=on_delta)
    words = ["a", "b", "c"]
    async with ReplayServer(body=_chat_stream(words)) as server, _client(server) as client:
        async for _ in getattr(client, method)("x", "replay/m", streaming_options=opts):
            pass
    assert seen == words


async def test_the_tails_text_keeps_its_logprobs_in_stream_events() -> None:
    """An event the body never ended (its line ends, the blank line never comes) is
    decoded at the end of the body when the answer is not complete without it; its
    TextDelta keeps its logprobs like every other."""
    events = _chat_stream(["Hi", " there"], logprobs=True).split(b"\n\n")
    body = events[0] + b"\n\n" + events[1] + b"\n"  # " there": the unterminated tail
    got: list[TextDelta] = []
    async with ReplayServer(body=body) as server, _client(server) as client:
        with pytest.raises(StreamInterruptedError):  # no finish reason: cut short
            async for part in client.stream_events("x", "replay/m", logprobs=True):
                if type(part) is TextDelta:
                    got.append(part)
    assert [d.text for d in got] == ["Hi", " there"]
    assert all(d.logprobs for d in got)


async def test_a_caller_that_stops_mid_read_is_recorded_with_what_it_got() -> None:
    """stream() hands a read's chunks over without per-chunk bookkeeping once the first
    chunk is out; the call's record (an observer's, telemetry's) still holds only the
    chunks the caller took."""
    import asyncio

    words = [f" w{i}" for i in range(50)]
    body = _chat_stream(words)
    cut = body.index(b"data: ", body.index(b"data: ", 1) + 1)  # after two events
    records: list[tuple[str, type | None]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                size = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(size)
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body[:cut])
                )
                await writer.drain()
                await asyncio.sleep(0.05)  # the rest in a second read: 48 chunks
                writer.write(body[cut:])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    class Observer:
        def start(self, call: object) -> Observer:
            return self

        def end(self, record: object, error: BaseException | None) -> None:
            records.append((record.text, type(error) if error else None))  # type: ignore[attr-defined]

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = SteerLLMClient(
        providers={"replay": {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-0"}},
        telemetry=Observer(),
    )
    try:
        async with client:
            for taken in (1, 2, 3, 10):  # the first read per chunk, the second at once
                got = []
                stream = client.stream("x", "replay/m")
                async for chunk in stream:
                    got.append(chunk)
                    if len(got) == taken:
                        break
                await stream.aclose()
                assert records[-1] == ("".join(got), GeneratorExit)
            whole = [c async for c in client.stream("x", "replay/m")]
    finally:
        server.close()
    assert whole == words and records[-1] == ("".join(words), None)
