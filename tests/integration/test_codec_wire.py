"""Wire-format edge cases of the codecs (issue #22) through the whole client, over a
real socket: a raw server that answers each request with the next scripted reply,
writing each SSE event in its own chunk (and, when paced, in its own network read)."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import pytest

from steer_llm_sdk import SteerLLMClient, ToolCallEnd
from steer_llm_sdk.errors import (
    ConnectionError,
    InvalidResponseError,
    RateLimitError,
    SteerError,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.tools import Tool

NO_RETRY = StreamingOptions(retry_on_connection_error=False)
FAST = StreamingOptions(reconnect_delay=0.01)


@dataclass
class Script:
    events: list[Any]  # dicts (sent as `data:` JSON, with `event:` = their type) or bytes
    status: int = 200
    pace: float = 0.0  # seconds between events: each one arrives in its own read
    crlf: bool = False


def frame(event: Any, crlf: bool) -> bytes:
    if isinstance(event, bytes):
        return event
    end = "\r\n" if crlf else "\n"
    name = f"event: {event['type']}{end}" if "type" in event else ""
    return f"{name}data: {json.dumps(event)}{end}{end}".encode()


@dataclass
class ScriptServer:
    """Answers the n-th request with ``scripts[n]`` (the last one again after them)."""

    scripts: list[Script]
    requests: list[dict[str, Any]] = field(default_factory=list)
    _server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> ScriptServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                script = self.scripts[min(len(self.requests), len(self.scripts) - 1)]
                self.requests.append(json.loads(body))
                writer.write(
                    f"HTTP/1.1 {script.status} X\r\ncontent-type: "
                    f"{'text/event-stream' if script.status == 200 else 'application/json'}"
                    "\r\ntransfer-encoding: chunked\r\n\r\n".encode()
                )
                for event in script.events:
                    data = frame(event, script.crlf)
                    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    await writer.drain()
                    if script.pace:
                        await asyncio.sleep(script.pace)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, OSError):
            pass
        finally:
            writer.close()


def client_for(server: ScriptServer) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": "sk-test-000000", "anthropic": "sk-ant-test", "gemini": "AIza-test"},
        base_urls={
            "openai": server.url + "/v1",
            "anthropic": server.url,
            "gemini": server.url,
        },
    )


RESPONSES = "openai-responses/gpt-5"
ANTHROPIC = "anthropic/claude-sonnet-4-5"
GEMINI = "gemini/gemini-2.5-flash"


# -- OpenAI Responses -------------------------------------------------------------------
def response(kind: str = "completed", output: list[Any] | None = None, **extra: Any) -> Any:
    body = {
        "id": "resp_1",
        "model": "gpt-5",
        "output": output or [],
        "usage": {"input_tokens": 5, "output_tokens": 3},
        **extra,
    }
    return {"type": f"response.{kind}", "response": body}


def text_answer(text: str) -> Script:
    return Script(
        [
            {"type": "response.created", "response": {"id": "resp_2", "model": "gpt-5"}},
            {"type": "response.output_text.delta", "delta": text},
            response(status="completed"),
        ]
    )


def call_item(kind: str, call_id: str, value: str) -> dict[str, Any]:
    field_name = "input" if kind == "custom_tool_call" else "arguments"
    return {"type": kind, "id": "it_1", "call_id": call_id, "name": "tool", field_name: value}


def call_answer(kind: str, value: str) -> Script:
    delta = (
        "response.custom_tool_call_input.delta"
        if kind == "custom_tool_call"
        else "response.function_call_arguments.delta"
    )
    final = call_item(kind, "call_FINAL", value) | {"status": "completed"}
    return Script(
        [
            {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5"}},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": call_item(kind, "call_added", ""),
            },
            {"type": delta, "item_id": "it_1", "output_index": 0, "delta": value},
            {"type": "response.output_item.done", "output_index": 0, "item": final},
            response(status="completed", output=[final]),
        ]
    )


async def test_responses_tool_loop_uses_the_final_call_id() -> None:
    seen: list[str] = []

    def tool(city: str) -> str:
        seen.append(city)
        return "sunny"

    script = [call_answer("function_call", '{"city": "Paris"}'), text_answer("Sunny.")]
    async with ScriptServer(script) as server, client_for(server) as client:
        events = [e async for e in client.stream_tools("hi", RESPONSES, tools=[tool])]
    assert seen == ["Paris"]
    assert [e.call.id for e in events if isinstance(e, ToolCallEnd)] == ["call_FINAL"]
    items = server.requests[1]["input"]
    assert [(i["type"], i["call_id"]) for i in items if "call_id" in i] == [
        ("function_call", "call_FINAL"),
        ("function_call_output", "call_FINAL"),
    ]


async def test_responses_custom_tool_loop() -> None:
    patch = "*** Begin Patch\n*** End Patch"
    got: list[str] = []

    def apply(text: str) -> str:
        got.append(text)
        return "applied"

    tool = Tool("tool", "Apply a patch.", kind="custom", function=apply)
    script = [call_answer("custom_tool_call", patch), text_answer("Done.")]
    async with ScriptServer(script) as server, client_for(server) as client:
        result = await client.run_tools("fix", RESPONSES, tools=[tool])
    assert result.text == "Done." and got == [patch]
    assert server.requests[0]["tools"] == [
        {"type": "custom", "name": "tool", "description": "Apply a patch."}
    ]
    items = server.requests[1]["input"]
    assert [i for i in items if "call_id" in i] == [
        {"type": "custom_tool_call", "call_id": "call_FINAL", "name": "tool", "input": patch},
        {"type": "custom_tool_call_output", "call_id": "call_FINAL", "output": "applied"},
    ]
    (call,) = result.messages[1]["tool_calls"]  # type: ignore[index]
    assert call == {
        "id": "call_FINAL",
        "type": "custom",
        "custom": {"name": "tool", "input": patch},
    }


async def test_responses_failed_without_status_is_retried_not_an_empty_answer() -> None:
    failed = Script([response("failed", error={"code": "server_error", "message": "boom"})])
    async with ScriptServer([failed, text_answer("ok")]) as server, client_for(server) as client:
        answer = await client.stream_with_usage("hi", RESPONSES, streaming_options=FAST)
    assert answer.text == "ok" and answer.attempts == 2


@pytest.mark.parametrize(
    ("code", "attempts"), [("rate_limit_exceeded", 2), ("insufficient_quota", 1)]
)
async def test_responses_in_band_rate_limits(code: str, attempts: int) -> None:
    error = Script([{"type": "error", "code": code, "message": "limited", "param": None}])
    async with ScriptServer([error, text_answer("ok")]) as server, client_for(server) as client:
        if attempts == 1:
            with pytest.raises(RateLimitError, match="limited"):
                await client.stream_with_usage("hi", RESPONSES, streaming_options=FAST)
        else:
            answer = await client.stream_with_usage("hi", RESPONSES, streaming_options=FAST)
            assert answer.text == "ok"
    assert len(server.requests) == attempts


async def test_http_429_insufficient_quota_is_not_retried() -> None:
    body = {
        "error": {"message": "quota", "type": "insufficient_quota", "code": "insufficient_quota"}
    }
    quota = Script([json.dumps(body).encode()], status=429)
    for model in (RESPONSES, "openai/gpt-4o"):
        async with ScriptServer([quota, text_answer("ok")]) as server, client_for(server) as client:
            with pytest.raises(RateLimitError, match="quota"):
                await client.stream_with_usage("hi", model, streaming_options=FAST)
        assert len(server.requests) == 1


# -- Gemini -------------------------------------------------------------------------------
def gemini(text: str | None = None, usage: tuple[int, int] | None = None, **cand: Any) -> Any:
    event: dict[str, Any] = {}
    if text is not None or cand:
        candidate: dict[str, Any] = dict(cand)
        if text is not None:
            candidate["content"] = {"parts": [{"text": text}], "role": "model"}
        event["candidates"] = [candidate]
    if usage is not None:
        event["usageMetadata"] = {
            "promptTokenCount": usage[0],
            "candidatesTokenCount": usage[1],
            "totalTokenCount": sum(usage),
        }
    return event


@pytest.mark.parametrize("pace", [0.0, 0.02], ids=["one-read", "a-read-each"])
async def test_gemini_usage_only_chunk_after_the_finish_is_the_usage(pace: float) -> None:
    events = [
        gemini("Hello", (7, 1)) | {"modelVersion": "gemini-2.5-flash"},
        gemini(" there", (7, 2)),
        gemini("", finishReason="STOP"),
        gemini(usage=(7, 12)),
    ]
    script = Script(events, pace=pace, crlf=True)
    async with ScriptServer([script]) as server, client_for(server) as client:
        answer = await client.stream_with_usage("hi", GEMINI)
        parts = [p async for p in client.stream_events("hi", GEMINI)]
    for usage in (answer.usage, parts[-1].response.usage):
        assert usage == {"prompt_tokens": 7, "completion_tokens": 12, "total_tokens": 19}
    assert answer.text == "Hello there" and answer.finish_reason == "stop"


async def test_gemini_a_stream_without_finish_reason_says_so() -> None:
    call = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}]}
    async with ScriptServer([Script([call], crlf=True)]) as server, client_for(server) as client:
        with pytest.raises(ConnectionError, match="Gemini stream ended without a finishReason"):
            await client.stream_with_usage("hi", GEMINI, streaming_options=NO_RETRY)


# -- Anthropic ----------------------------------------------------------------------------
def message_start(message_id: str = "msg_1") -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "usage": {"input_tokens": 10, "output_tokens": 1},
        },
    }


def tool_block(index: int, call_id: str, partial: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "tool_use", "id": call_id, "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "input_json_delta", "partial_json": partial},
        },
        {"type": "content_block_stop", "index": index},
    ]


def message_end(reason: str) -> list[dict[str, Any]]:
    return [
        {"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]


@pytest.mark.parametrize("pace", [0.0, 0.02], ids=["one-read", "a-read-each"])
async def test_anthropic_a_call_cut_by_max_tokens_never_ends(pace: float) -> None:
    events = [
        message_start(),
        *tool_block(0, "toolu_whole", '{"x": 1}'),
        *tool_block(1, "toolu_cut", '{"query": "the wea'),
        *message_end("max_tokens"),
    ]
    async with ScriptServer([Script(events, pace=pace)]) as server, client_for(server) as client:
        parts = [p async for p in client.stream_events("hi", ANTHROPIC)]
    assert [p.call.id for p in parts if isinstance(p, ToolCallEnd)] == ["toolu_whole"]
    assert parts[-1].reason == "length"


async def test_anthropic_a_spliced_stream_is_an_invalid_response() -> None:
    text = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    ]
    events = [
        message_start("msg_1"),
        *text,
        message_start("msg_2"),
        *text,
        *message_end("end_turn"),
    ]
    async with ScriptServer([Script(events)]) as server, client_for(server) as client:
        with pytest.raises(SteerError) as info:
            await client.stream_with_usage("hi", ANTHROPIC, streaming_options=NO_RETRY)
    error = info.value
    cause = getattr(error, "cause", None) or error
    assert isinstance(cause, InvalidResponseError)
    assert "second, different message_start" in str(cause)
