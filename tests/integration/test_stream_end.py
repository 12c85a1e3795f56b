"""Where a stream ends, and what a timeout is: hostile servers over real sockets.

Each server here writes exactly the bytes a misbehaving (or merely unusual) server
sends, then does what the test says: holds the connection open, sends keep-alives
forever, stalls. The SDK must return the answer it has, or raise the one error the
README promises, never hang and never append what came after the end.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from steer_llm_sdk import (
    InvalidResponseError,
    ReadTimeoutError,
    SteerLLMClient,
    StreamInterruptedError,
    TotalTimeoutError,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator, Fault, Reply

Script = Callable[[asyncio.StreamWriter], Awaitable[None]]


class Hostile:
    """An HTTP server whose response body is written by a script (chunked)."""

    def __init__(self, script: Script, content_type: str = "text/event-stream") -> None:
        self.script = script
        self.content_type = content_type
        self.requests: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Hostile:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode("latin-1").split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                self.requests.append(await reader.readexactly(length))
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: "
                    + self.content_type.encode()
                    + b"\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                await self.script(writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()


def chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(b"%x\r\n%s\r\n" % (len(data), data))


def openai_text(text: str) -> bytes:
    frame = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(frame).encode() + b"\n\n"


OPENAI_END = (
    b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\ndata: [DONE]\n\n'
)


def anthropic_text(text: str) -> bytes:
    event = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    return b"event: content_block_delta\ndata: " + json.dumps(event).encode() + b"\n\n"


ANTHROPIC_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","model":"c",'
    b'"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
)
ANTHROPIC_END = (
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":2}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def client_for(server: Hostile, **options: Any) -> tuple[SteerLLMClient, StreamingOptions]:
    client = SteerLLMClient(
        api_keys={"openai": "sk-test-key-000000", "anthropic": "sk-ant-test-key-000"},
        base_urls={"openai": server.url + "/v1", "anthropic": server.url},
    )
    return client, StreamingOptions(retry_on_connection_error=False, **options)


MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-haiku-20240307"}


def body(protocol: str, *texts: str) -> bytes:
    if protocol == "openai":
        return b"".join(openai_text(t) for t in texts) + OPENAI_END
    return ANTHROPIC_START + b"".join(anthropic_text(t) for t in texts) + ANTHROPIC_END


def after_end(protocol: str) -> bytes:
    return openai_text(" EXTRA") if protocol == "openai" else anthropic_text(" EXTRA")


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_nothing_after_the_terminal_event_is_appended(protocol: str) -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        chunk(writer, body(protocol, "Hello", " world") + after_end(protocol))
        chunk(writer, after_end(protocol))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with Hostile(script) as server:
        client, options = client_for(server)
        response = await client.stream_with_usage("x", MODELS[protocol], streaming_options=options)
        chunks = [c async for c in client.stream("x", MODELS[protocol], streaming_options=options)]
        events = [p async for p in client.stream_events("x", MODELS[protocol])]
        await client.aclose()
    assert response.text == "Hello world"
    assert "".join(chunks) == "Hello world"
    assert "".join(getattr(p, "text", "") for p in events) == "Hello world"


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_a_complete_answer_on_a_connection_held_open_is_returned(protocol: str) -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        chunk(writer, body(protocol, "Complete", " answer"))
        await writer.drain()
        await asyncio.sleep(30)  # never ends the body

    async with Hostile(script) as server:
        client, options = client_for(server, read_timeout=5)
        started = time.perf_counter()
        response = await client.stream_with_usage("x", MODELS[protocol], streaming_options=options)
        elapsed = time.perf_counter() - started
        await client.aclose()
    assert response.text == "Complete answer" and response.finish_reason == "stop"
    assert elapsed < 2.0  # not read_timeout: the terminal event ends the stream


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_keep_alives_forever_end_in_a_read_timeout(protocol: str) -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        first = body(protocol, "Partial")
        cut = (
            first.index(b"data: [DONE]")
            if protocol == "openai"
            else first.index(b"event: content_block_stop")
        )
        if protocol == "openai":
            cut = first.index(b'data: {"choices":[{"index":0,"delta":{},"finish_reason"')
        chunk(writer, first[:cut])
        for _ in range(200):
            await writer.drain()
            await asyncio.sleep(0.1)
            chunk(writer, b": keep-alive\n\n")

    async with Hostile(script) as server:
        client, options = client_for(server, read_timeout=1.0, preserve_partial_response=True)
        started = time.perf_counter()
        with pytest.raises(TimeoutError) as info:
            await client.stream_with_usage("x", MODELS[protocol], streaming_options=options)
        elapsed = time.perf_counter() - started
        await client.aclose()
    error = info.value
    assert isinstance(error, ReadTimeoutError) and isinstance(error, StreamInterruptedError)
    assert "keep-alive" in str(error)
    assert error.partial_text == "Partial"
    assert 0.9 < elapsed < 4.0


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_a_trailing_unterminated_event_after_a_complete_answer_is_dropped(
    protocol: str,
) -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        complete = body(protocol, "Done")
        if protocol == "openai":  # no [DONE]: a finish chunk, then a cut-off event
            complete = complete.replace(b"data: [DONE]\n\n", b"")
        else:
            complete = complete.replace(
                b'event: message_stop\ndata: {"type":"message_stop"}\n\n', b""
            )
        chunk(writer, complete + b'data: {"choices": [{"delta": \n')
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with Hostile(script) as server:
        client, options = client_for(server)
        response = await client.stream_with_usage("x", MODELS[protocol], streaming_options=options)
        await client.aclose()
    assert response.text == "Done"


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
async def test_every_timeout_after_text_is_a_timeout_and_an_interruption(protocol: str) -> None:
    async with Emulator() as emu:
        client = SteerLLMClient(
            api_keys={"openai": "sk-test-key-000000", "anthropic": "sk-ant-test-key-000"},
            base_urls={"openai": emu.openai_base_url, "anthropic": emu.anthropic_base_url},
        )
        for options in (
            StreamingOptions(
                read_timeout=0.5, preserve_partial_response=True, retry_on_connection_error=False
            ),
            StreamingOptions(
                total_timeout=0.5, preserve_partial_response=True, retry_on_connection_error=False
            ),
        ):
            emu.enqueue(Reply(fault=Fault.stall_after(3, 5.0, then="close")))
            with pytest.raises(TimeoutError) as info:
                await client.stream_with_usage("x", MODELS[protocol], streaming_options=options)
            error = info.value
            assert isinstance(error, StreamInterruptedError)
            assert error.partial_text and len(error.partial_text.split()) == 3
            assert error.partial_usage and error.partial_usage["estimated"] is True
            if options.total_timeout:
                assert isinstance(error, TotalTimeoutError)
            else:
                assert isinstance(error, ReadTimeoutError)
        await client.aclose()


async def test_on_error_that_raises_does_not_hide_the_sdk_error(caplog: Any) -> None:
    def on_error(exc: BaseException) -> None:
        raise ValueError("my handler broke")

    async with Emulator() as emu:
        client = SteerLLMClient(
            api_keys={"openai": "sk-test-key-000000"}, base_urls={"openai": emu.openai_base_url}
        )
        emu.enqueue(Reply(status=400, error_message="bad request"))
        with pytest.raises(Exception) as info:
            await client.stream_with_usage(
                "x", "gpt-4o-mini", streaming_options=StreamingOptions(on_error=on_error)
            )
        await client.aclose()
    assert type(info.value).__name__ == "BadRequestError"
    assert any("my handler broke" in note for note in info.value.__notes__)
    assert "on_error raised ValueError" in caplog.text


async def test_a_slow_async_callback_is_bounded_by_total_timeout() -> None:
    async def on_delta(text: str) -> None:
        await asyncio.sleep(30)

    async with Emulator() as emu:
        client = SteerLLMClient(
            api_keys={"openai": "sk-test-key-000000"}, base_urls={"openai": emu.openai_base_url}
        )
        started = time.perf_counter()
        with pytest.raises(TotalTimeoutError, match="on_delta"):
            await client.stream_with_usage(
                "x",
                "gpt-4o-mini",
                streaming_options=StreamingOptions(total_timeout=0.5, on_delta=on_delta),
            )
        await client.aclose()
    assert time.perf_counter() - started < 2.0


async def test_anthropic_json_prefill_ignored_by_the_server_is_not_doubled() -> None:
    # A server that starts its answer with "{" again (LiteLLM proxies, some shims).
    async def script(writer: asyncio.StreamWriter) -> None:
        chunk(writer, body("anthropic", '{"a": ', "1}"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with Hostile(script) as server:
        client, options = client_for(server)
        response = await client.stream_with_usage(
            "x",
            "claude-3-haiku-20240307",
            response_format={"type": "json_object"},
            streaming_options=options,
        )
        sent = json.loads(server.requests[0])
        await client.aclose()
    assert sent["messages"][-1] == {"role": "assistant", "content": "{"}
    assert response.text == '{"a": 1}'
    assert response.get_json() == {"a": 1}


@pytest.mark.parametrize(
    ("protocol", "frame"),
    [
        ("openai", b'data: {"choices":[{"index":0,"delta":{"content":42}}]}\n\n'),
        (
            "openai",
            b'data: {"choices":[{"index":0,"delta":{"content":"a"}}],'
            b'"usage":{"prompt_tokens":"3"}}\n\n',
        ),
        (
            "anthropic",
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":["a"]}}\n\n',
        ),
    ],
)
async def test_wrongly_typed_fields_are_errors_not_text(protocol: str, frame: bytes) -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        start = ANTHROPIC_START if protocol == "anthropic" else b""
        chunk(writer, start + frame)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with Hostile(script) as server:
        client, options = client_for(server)
        with pytest.raises(InvalidResponseError):
            await client.stream_with_usage("x", MODELS[protocol], streaming_options=options)
        await client.aclose()


async def test_partial_usage_counts_each_attempt_once() -> None:
    """A resumed stream that then fails to reconnect: the broken attempt's usage is
    counted once, not again for the attempt that never opened."""
    async with Emulator() as emu:
        client = SteerLLMClient(
            providers={"resumable": {"base_url": emu.openai_base_url, "continues_prefix": True}}
        )
        emu.enqueue(
            Reply(text="one two three four five six seven eight", fault=Fault.drop_after(4)),
            Reply(status=503),
            Reply(status=503),
            Reply(status=503),
        )
        options = StreamingOptions(
            preserve_partial_response=True, reconnect_delay=0.01, max_reconnect_attempts=2
        )
        with pytest.raises(StreamInterruptedError) as info:
            await client.stream_with_usage("x", "resumable/m", streaming_options=options)
        await client.aclose()
    usage = info.value.partial_usage
    assert usage is not None
    # four one-word chunks were delivered by one attempt: ~4 tokens, not twice that
    assert 1 <= usage["completion_tokens"] <= 5


@pytest.mark.parametrize("method", ["stream", "stream_events"])
async def test_breaking_out_while_holding_the_stream_closes_it_with_async_with(
    method: str,
) -> None:
    """A caller that keeps the stream object and breaks: `async with` closes the HTTP
    response at the block's end (a bare `async for` over a held generator would keep
    the connection streaming until the object is collected)."""
    async with Emulator(reply_words=400) as emu:
        client = SteerLLMClient(
            api_keys={"openai": "sk-test-key-000000"}, base_urls={"openai": emu.openai_base_url}
        )
        emu.enqueue(Reply(text=" ".join(["word"] * 400), delay_between_chunks=0.01))
        held = getattr(client, method)("x", "gpt-4o-mini")
        async with held as stream:
            async for _ in stream:
                break
            assert emu.open_connections == 1
        for _ in range(100):  # the server sees the connection go
            if emu.open_connections == 0:
                break
            await asyncio.sleep(0.01)
        assert emu.open_connections == 0
        # and aclose() on a held stream does the same
        emu.enqueue(Reply(text=" ".join(["word"] * 400), delay_between_chunks=0.01))
        again = getattr(client, method)("x", "gpt-4o-mini")
        async for _ in again:
            break
        await again.aclose()
        for _ in range(100):
            if emu.open_connections == 0:
                break
            await asyncio.sleep(0.01)
        assert emu.open_connections == 0
        await client.aclose()


@pytest.mark.parametrize("method", ["generate", "stream_with_usage"])
async def test_total_timeout_bounds_a_trickled_json_body(method: str) -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        chunk(writer, b'{"choices": [{"message": {"content": "')
        for _ in range(100):
            await writer.drain()
            await asyncio.sleep(0.1)
            chunk(writer, b"a")

    async with Hostile(script, content_type="application/json") as server:
        client, options = client_for(server, total_timeout=1.0)
        started = time.perf_counter()
        with pytest.raises(TotalTimeoutError, match="reading the response body"):
            await getattr(client, method)("x", "gpt-4o-mini", streaming_options=options)
        elapsed = time.perf_counter() - started
        await client.aclose()
    assert elapsed < 3.0


async def test_a_json_body_larger_than_the_cap_is_an_error() -> None:
    async def script(writer: asyncio.StreamWriter) -> None:
        chunk(writer, b'{"choices": [{"message": {"content": "' + b"a" * 5000 + b'"}}]}')
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with Hostile(script, content_type="application/json") as server:
        client, options = client_for(server, max_event_bytes=2048)
        with pytest.raises(InvalidResponseError, match="max_event_bytes=2048"):
            await client.generate("x", "gpt-4o-mini", streaming_options=options)
        await client.aclose()
