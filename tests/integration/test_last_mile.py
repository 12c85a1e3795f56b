"""The last mile of a call, over real sockets (issue #22): keep-alive events, streams
that break after a part other than text, what an interruption is an instance of, no
raw library exception in an error's chain, redacted reprs, and a Retry-After that is
not worth waiting for.

The servers write exact bytes of each wire protocol (``Hostile`` from
test_stream_end: a chunked body written by a script; ``RawServer`` from test_hostile:
whatever bytes a handler returns).
"""

from __future__ import annotations

import asyncio
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from steer_llm_sdk import (
    InvalidResponseError,
    RateLimitError,
    ReadTimeoutError,
    SteerLLMClient,
    StreamInterruptedError,
)
from steer_llm_sdk.errors import InterruptedInvalidResponseError, SteerError
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.parts import TextDelta, ToolCall, ToolCallDelta, ToolCallEnd, ToolCallStart
from steer_llm_sdk.testing import Emulator, Reply

from .test_hostile import RawServer
from .test_stream_end import Hostile, chunk

KEYS = {
    "openai": "sk-test-key-000000",
    "anthropic": "sk-ant-test-key-000",
    "gemini": "AIzaSyTEST-gemini-key-00000000000000000",
}
# Keys a hostile server echoes (shapes errors._KEY_RE knows), never the client's own.
ECHOED = [
    "sk-proj-EchoedSecret0123456789abcdef",
    "sk-ant-api03-EchoedSecret0123456789",
    "AIza" + "E" * 35,
]


def sse(obj: Any, event: str | None = None, crlf: bool = False) -> bytes:
    line = (f"event: {event}\n" if event else "") + "data: " + json.dumps(obj) + "\n\n"
    return line.replace("\n", "\r\n").encode() if crlf else line.encode()


@dataclass
class Wire:
    """One protocol's bytes: the start of an answer, a text event, a tool-call part, a
    reasoning part, a text field of the wrong type, a keep-alive event, the end."""

    model: str
    start: bytes
    text: Callable[[str], bytes]
    tool: bytes
    reasoning: bytes
    bad_text: bytes
    noop: bytes
    end: bytes


def _openai_delta(delta: dict[str, Any]) -> bytes:
    return sse({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})


def _anthropic(obj: dict[str, Any]) -> bytes:
    return sse(obj, obj["type"])


def _responses(obj: dict[str, Any]) -> bytes:
    return sse(obj, obj["type"])


def _gemini(parts: list[dict[str, Any]], **extra: Any) -> bytes:
    return sse({"candidates": [{"content": {"parts": parts, "role": "model"}, **extra}]}, crlf=True)


WIRES = {
    "openai": Wire(
        model="gpt-4o-mini",
        start=b"",
        text=lambda t: _openai_delta({"content": t}),
        tool=_openai_delta(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a"'},
                    }
                ]
            }
        ),
        reasoning=_openai_delta({"reasoning_content": "thinking"}),
        bad_text=_openai_delta({"content": 42}),
        noop=sse({"id": "c", "object": "chat.completion.chunk", "choices": []}),
        end=sse(
            {
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            }
        )
        + b"data: [DONE]\n\n",
    ),
    "anthropic": Wire(
        model="claude-3-haiku-20240307",
        start=_anthropic(
            {
                "type": "message_start",
                "message": {"id": "m", "model": "c", "usage": {"input_tokens": 3}},
            }
        )
        + _anthropic(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
        ),
        text=lambda t: _anthropic(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}
        ),
        tool=_anthropic(
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
            }
        )
        + _anthropic(
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
            }
        ),
        reasoning=_anthropic(
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "thinking", "thinking": ""},
            }
        )
        + _anthropic(
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "thinking_delta", "thinking": "thinking"},
            }
        ),
        bad_text=_anthropic(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 4}}
        ),
        noop=b'event: ping\ndata: {"type": "ping"}\n\n',
        end=_anthropic({"type": "content_block_stop", "index": 0})
        + _anthropic(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 2},
            }
        )
        + _anthropic({"type": "message_stop"}),
    ),
    "responses": Wire(
        model="o3-pro",
        start=_responses(
            {"type": "response.created", "response": {"id": "r", "model": "o3", "output": []}}
        ),
        text=lambda t: _responses(
            {"type": "response.output_text.delta", "item_id": "m", "output_index": 1, "delta": t}
        ),
        tool=_responses(
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "f"},
            }
        )
        + _responses(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_1",
                "output_index": 0,
                "delta": '{"a"',
            }
        ),
        reasoning=_responses(
            {
                "type": "response.reasoning_summary_text.delta",
                "item_id": "rs_1",
                "output_index": 0,
                "summary_index": 0,
                "delta": "thinking",
            }
        ),
        bad_text=_responses(
            {"type": "response.output_text.delta", "item_id": "m", "output_index": 1, "delta": 4}
        ),
        noop=_responses({"type": "keepalive", "sequence_number": 7}),
        end=_responses(
            {
                "type": "response.completed",
                "response": {
                    "id": "r",
                    "model": "o3",
                    "status": "completed",
                    "usage": {"input_tokens": 3, "output_tokens": 2},
                },
            }
        ),
    ),
    "gemini": Wire(
        model="gemini-2.5-flash",
        start=b"",
        text=lambda t: _gemini([{"text": t}]),
        tool=_gemini([{"functionCall": {"name": "f", "args": {"a": 1}}}]),
        reasoning=_gemini([{"text": "thinking", "thought": True}]),
        bad_text=_gemini([{"text": 4}]),
        noop=b": keep-alive\r\n\r\n",  # Gemini sends no keep-alive event; a comment
        end=_gemini(
            [{"text": ""}],
            finishReason="STOP",
        ).replace(
            b'"STOP"}]}',
            b'"STOP"}], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}}',
        ),
    ),
}
PROTOCOLS = list(WIRES)


def client_for(url: str) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys=KEYS,
        base_urls={"openai": url + "/v1", "anthropic": url, "gemini": url},
    )


def script_of(*pieces: bytes, then: str = "close", every: float = 0.0) -> Any:
    """A script that writes ``pieces`` (one chunk each, ``every`` seconds apart), then
    ends the body ("end"), cuts the connection ("close") or waits ("hold")."""

    async def script(writer: asyncio.StreamWriter) -> None:
        for piece in pieces:
            chunk(writer, piece)
            await writer.drain()
            if every:
                await asyncio.sleep(every)
        if then == "end":
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        elif then == "close":
            writer.transport.abort()
            raise ConnectionError("closed by the script")
        else:
            await asyncio.sleep(60)

    return script


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_every_wire_is_a_complete_answer(protocol: str) -> None:
    """The bytes above are what the codecs take for text, tool calls and reasoning."""
    wire = WIRES[protocol]
    body = wire.start + wire.reasoning + wire.text("Hi") + wire.noop + wire.tool + wire.end
    async with Hostile(script_of(body, then="end")) as server:
        async with client_for(server.url) as client:
            parts = [p async for p in client.stream_events("x", wire.model)]
    kinds = {type(p).__name__ for p in parts}
    assert {"ReasoningDelta", "TextDelta", "ToolCallStart", "Finish"} <= kinds, kinds


# -- 1. keep-alive events are idle reads -----------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("where", ["from the start", "after the start"])
async def test_keepalive_events_forever_end_in_a_read_timeout(protocol: str, where: str) -> None:
    wire = WIRES[protocol]

    async def script(writer: asyncio.StreamWriter) -> None:
        if where == "after the start" and wire.start:
            chunk(writer, wire.start)
        for _ in range(400):
            await writer.drain()
            await asyncio.sleep(0.05)
            chunk(writer, wire.noop)

    async with Hostile(script) as server, client_for(server.url) as client:
        options = StreamingOptions(read_timeout=0.5, reconnect_delay=0.01)  # else defaults
        started = time.perf_counter()
        with pytest.raises(ReadTimeoutError, match="keep-alive"):
            await client.stream_with_usage("x", wire.model, streaming_options=options)
        elapsed = time.perf_counter() - started
        with pytest.raises(ReadTimeoutError):
            async for _ in client.stream_events("x", wire.model, streaming_options=options):
                pass
    # Three attempts (the default two retries), each ended by read_timeout.
    assert len(server.requests) == 6
    assert 1.4 < elapsed < 6.0


async def test_pings_after_text_end_in_an_interrupted_read_timeout() -> None:
    wire = WIRES["anthropic"]

    async def script(writer: asyncio.StreamWriter) -> None:
        chunk(writer, wire.start + wire.text("Partial"))
        for _ in range(400):
            await writer.drain()
            await asyncio.sleep(0.05)
            chunk(writer, wire.noop)

    async with Hostile(script) as server, client_for(server.url) as client:
        options = StreamingOptions(
            read_timeout=0.5, retry_on_connection_error=False, preserve_partial_response=True
        )
        started = time.perf_counter()
        with pytest.raises(ReadTimeoutError) as info:
            await client.stream_with_usage("x", wire.model, streaming_options=options)
        elapsed = time.perf_counter() - started
    assert isinstance(info.value, StreamInterruptedError)
    assert info.value.partial_text == "Partial"
    assert 0.45 < elapsed < 3.0  # read_timeout after the text, not when the pings stop


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("method", ["stream", "stream_events"])
async def test_keepalives_between_slow_parts_are_not_a_timeout(protocol: str, method: str) -> None:
    """Only reads that deliver nothing are idle: text, and tool-call arguments that
    reach no caller of stream() but do change the answer, keep the call alive."""
    wire = WIRES[protocol]
    pieces = [wire.start] if wire.start else []
    for i in range(5):
        pieces += [wire.noop, wire.text(f"w{i} "), wire.noop]
    pieces.append(wire.tool)
    if protocol != "gemini":  # Gemini sends a call whole: no argument deltas
        more = wire.tool.split(b"\n\n")[-2] + b"\n\n"  # the arguments delta event
        pieces += [wire.noop, more.replace(b'{\\"a\\"', b":1"), wire.noop] * 3
    pieces.append(wire.end)
    async with Hostile(script_of(*pieces, then="end", every=0.12)) as server:
        async with client_for(server.url) as client:
            options = StreamingOptions(read_timeout=0.3, retry_on_connection_error=False)
            if method == "stream":
                response = await client.stream_with_usage(
                    "x", wire.model, streaming_options=options
                )
                text = response.text
            else:
                parts = [
                    p
                    async for p in client.stream_events("x", wire.model, streaming_options=options)
                ]
                text = "".join(p.text for p in parts if isinstance(p, TextDelta))
    assert text == "w0 w1 w2 w3 w4 "


# -- 2 and 3. a break after a part other than text -----------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("part", ["tool", "reasoning"])
@pytest.mark.parametrize("retry", [True, False])
async def test_a_break_after_a_tool_call_or_reasoning_part_is_an_interruption(
    protocol: str, part: str, retry: bool
) -> None:
    wire = WIRES[protocol]
    seen: list[BaseException] = []
    starts: list[int] = []
    options = StreamingOptions(
        retry_on_connection_error=retry,
        reconnect_delay=0.01,
        preserve_partial_response=True,
        on_error=seen.append,
        on_start=lambda: starts.append(1),
    )
    body = wire.start + getattr(wire, part)
    async with Hostile(script_of(body, then="close")) as server:
        async with client_for(server.url) as client:
            parts: list[Any] = []
            with pytest.raises(StreamInterruptedError) as info:
                async for p in client.stream_events("x", wire.model, streaming_options=options):
                    parts.append(p)
    error = info.value
    assert len(server.requests) == 1  # never started again from scratch
    assert type(parts[0]).__name__ == ("ToolCallStart" if part == "tool" else "ReasoningDelta")
    assert sum(isinstance(p, ToolCallStart) for p in parts) == (part == "tool")
    assert isinstance(error.cause, SteerError) and error.__cause__ is error.cause
    assert error.partial_text == "" and error.partial_usage is not None
    assert ("tool call" in str(error)) == (part == "tool")
    assert seen == [error] and starts == [1]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_stream_retries_a_break_after_a_tool_call_it_never_delivered(protocol: str) -> None:
    """stream() delivers text only: a break after a tool-call part that never reached
    its caller is retried like any break before text, and the answer comes whole."""
    wire = WIRES[protocol]
    bodies = iter([wire.start + wire.tool, wire.start + wire.text("Whole") + wire.end])

    async def script(writer: asyncio.StreamWriter) -> None:
        body = next(bodies)
        await script_of(body, then="end" if b"Whole" in body else "close")(writer)

    async with Hostile(script) as server, client_for(server.url) as client:
        options = StreamingOptions(reconnect_delay=0.01)
        chunks = [c async for c in client.stream("x", wire.model, streaming_options=options)]
    assert chunks == ["Whole"] and len(server.requests) == 2


async def test_a_break_after_text_and_a_tool_call_is_never_resumed() -> None:
    """Anthropic can continue text, not a tool call: after both reached the caller, a
    break is an interruption, not a resume that would send the call's parts again."""
    wire = WIRES["anthropic"]
    async with Hostile(script_of(wire.start + wire.text("Let me look.") + wire.tool)) as server:
        async with client_for(server.url) as client:
            parts: list[Any] = []
            with pytest.raises(StreamInterruptedError) as info:
                async for p in client.stream_events("x", wire.model):
                    parts.append(p)
    assert len(server.requests) == 1
    assert "12 characters of text and 1 tool call" in str(info.value)
    assert [type(p) for p in parts] == [TextDelta, ToolCallStart, ToolCallDelta]


# -- 4. invalid after text: an InvalidResponseError and an interruption --------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("method", ["stream", "stream_events"])
async def test_a_wrongly_typed_field_after_text_is_invalid_and_interrupted(
    protocol: str, method: str
) -> None:
    wire = WIRES[protocol]
    body = wire.start + wire.text("Some") + wire.text(" text") + wire.bad_text + wire.end
    async with Hostile(script_of(body, then="end")) as server:
        async with client_for(server.url) as client:
            options = StreamingOptions(preserve_partial_response=True)  # retries on
            received: list[Any] = []
            with pytest.raises(InvalidResponseError) as info:
                if method == "stream":
                    async for c in client.stream("x", wire.model, streaming_options=options):
                        received.append(c)
                else:
                    async for p in client.stream_events("x", wire.model, streaming_options=options):
                        received.append(p)
    error = info.value
    assert isinstance(error, InterruptedInvalidResponseError)
    assert isinstance(error, StreamInterruptedError)
    assert error.partial_text == "Some text"
    assert error.partial_usage and error.partial_usage["estimated"] is True
    assert isinstance(error.cause, InvalidResponseError) and "not a string" in str(error)
    assert len(server.requests) == 1


# -- 5. no raw library exception in a chain ------------------------------------------
def chain_of(error: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    stack = [error]
    while stack:
        node = stack.pop()
        if any(node is seen for seen in out):
            continue
        out.append(node)
        for link in (node.__cause__, node.__context__, getattr(node, "cause", None)):
            if isinstance(link, BaseException):
                stack.append(link)
    return out


def assert_clean(error: BaseException, key: str) -> None:
    links = chain_of(error)
    raw = [type(link) for link in links if not isinstance(link, SteerError)]
    assert not raw, f"raw exceptions in the chain: {raw}"
    for link in links:
        fields = {k: v for k, v in vars(link).items() if k not in ("raw_text", "partial_text")}
        seen = f"{link!s} {link!r} {link.args!r} {fields!r}"  # not the model's own text
        assert key not in seen and key[:12] not in seen
    printed = "".join(traceback.format_exception(error))
    assert key not in printed and key[:12] not in printed


@pytest.mark.parametrize("key", ECHOED)
@pytest.mark.parametrize(
    "case",
    ["status line", "chunk size", "header", "json in stream", "json body", "json after text"],
)
@pytest.mark.parametrize("method", ["stream_with_usage", "stream_events", "generate"])
async def test_no_raw_exception_holding_an_echoed_key_is_chained(
    key: str, case: str, method: str
) -> None:
    k = key.encode()
    text_event = WIRES["openai"].text("Hello")
    answers = {
        "status line": b"HTTP/1.1 2x0 " + k + b"\r\ncontent-length: 0\r\n\r\n",
        "chunk size": b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\nzz" + k + b"\r\n{}\r\n0\r\n\r\n",
        "header": b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nx-" + k + b"\r\n\r\n",
        "json in stream": b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
        b'data: {"choices": [' + k + b"]}\n\n",
        "json body": b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n"
        b'{"choices": ' + k + b"}",
        "json after text": b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
        + text_event
        + b'data: {"choices": ['
        + k
        + b"]}\n\n",
    }
    seen: list[BaseException] = []

    async def answer(head: bytes) -> bytes:
        return answers[case]

    options = StreamingOptions(retry_on_connection_error=False, on_error=seen.append)
    async with RawServer(answer) as server:
        client = SteerLLMClient(
            api_keys={"raw": "sk-client-own-key-00000000"},
            providers={"raw": {"base_url": server.url + "/v1"}},
        )
        with pytest.raises(SteerError) as info:
            if method == "generate":
                await client.generate("Hi", "raw/m", streaming_options=options)
            elif method == "stream_events":
                async for _ in client.stream_events("Hi", "raw/m", streaming_options=options):
                    pass
            else:
                await client.stream_with_usage("Hi", "raw/m", streaming_options=options)
        await client.aclose()
    assert seen == [info.value]
    assert_clean(info.value, key)


async def test_get_json_error_chains_no_decoder_exception() -> None:
    key = ECHOED[0]
    wire = WIRES["openai"]
    body = wire.text('{"k": ' + key) + wire.end
    async with Hostile(script_of(body, then="end")) as server:
        async with client_for(server.url) as client:
            response = await client.stream_with_usage("x", wire.model)
    with pytest.raises(InvalidResponseError) as info:
        response.get_json()
    assert_clean(info.value, key)
    with pytest.raises(InvalidResponseError) as info:
        response.get_json()  # the cached error, raised again
    assert_clean(info.value, key)


def test_tool_arguments_error_chains_no_decoder_exception() -> None:
    key = ECHOED[1]
    call = ToolCall(id="call_1", name="f", arguments='{"k": ' + key)
    with pytest.raises(InvalidResponseError) as info:
        _ = call.args
    assert_clean(info.value, key)


# -- 6. reprs redact keys a server echoed into the answer ----------------------------
@pytest.mark.parametrize("key", ECHOED)
async def test_reprs_redact_an_echoed_key_but_the_text_keeps_it(key: str) -> None:
    wire = WIRES["openai"]
    call = _openai_delta(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_" + key,
                    "type": "function",
                    "function": {"name": "f", "arguments": json.dumps({"k": key})},
                }
            ]
        }
    )
    body = wire.text("your key is " + key) + call + wire.end
    async with Hostile(script_of(body, then="end")) as server:
        async with client_for(server.url) as client:
            response = await client.stream_with_usage("x", wire.model)
            parts = [p async for p in client.stream_events("x", wire.model)]
    assert key in response.text  # the model's answer is left alone
    assert key in response.tool_calls[0].arguments
    shown = [repr(response), str(response), repr(response.tool_calls), str(response.tool_calls)]
    shown += [repr(p) for p in parts] + [str(p) for p in parts]
    for text in shown:
        assert key not in text and key[:12] not in text, text
    assert "[REDACTED]" in repr(response)
    assert {type(p) for p in parts} >= {TextDelta, ToolCallStart, ToolCallDelta, ToolCallEnd}


def test_a_tool_call_repr_is_redacted_and_still_a_dataclass_repr() -> None:
    call = ToolCall(id="call_1", name="f", arguments='{"k": "sk-ant-api03-abcdefghijkl"}')
    assert repr(call) == (
        "ToolCall(id='call_1', name='f', arguments='{\"k\": \"[REDACTED]\"}', index=0, "
        "type='function', provider_data=None, kind='function')"
    )


# -- 7. a Retry-After longer than max_retry_after is not waited for ------------------
@pytest.mark.parametrize("header", ["retry-after", "retry-after-ms"])
@pytest.mark.parametrize("method", ["stream_with_usage", "stream_events", "generate"])
async def test_a_retry_after_longer_than_max_retry_after_raises_at_once(
    client: SteerLLMClient, guide_env: Emulator, model: str, header: str, method: str
) -> None:
    value = "5" if header == "retry-after" else "5000"
    guide_env.enqueue(Reply(status=429, headers={header: value}))
    before = len(guide_env.requests)
    options = StreamingOptions(max_retry_after=1.0, reconnect_delay=0.01)
    started = time.perf_counter()
    with pytest.raises(RateLimitError) as info:
        if method == "stream_events":
            async for _ in client.stream_events("x", model, streaming_options=options):
                pass
        else:
            await getattr(client, method)("x", model, streaming_options=options)
    assert time.perf_counter() - started < 0.9  # no sleep, not even max_retry_after
    assert len(guide_env.requests) - before == 1
    assert info.value.retry_after == 5.0
    assert "max_retry_after" in str(info.value)


async def test_a_retry_after_within_max_retry_after_is_still_waited(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(status=429, headers={"retry-after": "0.4"}), Reply(text="done"))
    started = time.perf_counter()
    response = await client.stream_with_usage(
        "x", model, streaming_options=StreamingOptions(max_retry_after=1.0)
    )
    assert response.text == "done" and response.attempts == 2
    assert time.perf_counter() - started >= 0.35
