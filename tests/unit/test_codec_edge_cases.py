"""Wire-format edge cases of the codecs (issue #22): what real servers send that the
recorded corpus does not hold. Each stream is fed the way the pipeline feeds it: one
SSE event per decode call, ``state.out`` drained after each, and, for Gemini, reading
stops where the pipeline stops (``state.done``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from steer_llm_sdk.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectionError,
    ContextWindowError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
    SteerError,
)
from steer_llm_sdk.parts import ToolCall, ToolCallDelta, ToolCallEnd, ToolCallStart
from steer_llm_sdk.providers.anthropic import AnthropicCodec
from steer_llm_sdk.providers.base import ChatRequest
from steer_llm_sdk.providers.gemini import GeminiCodec
from steer_llm_sdk.providers.openai_chat import OpenAIChatCodec
from steer_llm_sdk.providers.openai_responses import OpenAIResponsesCodec
from steer_llm_sdk.tools import Tool, normalize_tool_choice, normalize_tools, tool_result_message
from steer_llm_sdk.transport.http import is_retryable


def feed(codec: Any, events: list[dict[str, Any]], *, stop_at_done: bool = True) -> list[Any]:
    """Decode one event at a time as the pipeline does; return the parts (text as str)."""
    parts: list[Any] = []
    out = codec.state.out if codec.state.out is not None else []
    for event in events:
        text = codec.decode(event.get("type"), json.dumps(event).encode())
        parts.extend(out)
        out.clear()
        if text:
            parts.append(text)
        if stop_at_done and codec.state.done:
            break
    codec.finish()
    parts.extend(out)
    out.clear()
    return parts


def ends(parts: list[Any]) -> list[ToolCall]:
    return [p.call for p in parts if isinstance(p, ToolCallEnd)]


# -- OpenAI Responses ---------------------------------------------------------------------
def added(item: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return {"type": "response.output_item.added", "output_index": index, "item": item}


def done(item: dict[str, Any], index: int = 0) -> dict[str, Any]:
    return {"type": "response.output_item.done", "output_index": index, "item": item}


def completed(
    output: list[dict[str, Any]], kind: str = "completed", **extra: Any
) -> dict[str, Any]:
    response = {
        "id": "resp_1",
        "model": "gpt-5",
        "output": output,
        "usage": {"input_tokens": 5, "output_tokens": 7},
        **extra,
    }
    return {"type": f"response.{kind}", "response": response}


def fn_item(call_id: str, arguments: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_1",
        "call_id": call_id,
        "name": "get_weather",
        "arguments": arguments,
        **extra,
    }


def args_delta(delta: str) -> dict[str, Any]:
    return {
        "type": "response.function_call_arguments.delta",
        "item_id": "fc_1",
        "output_index": 0,
        "delta": delta,
    }


def test_responses_call_id_of_the_finished_item_wins() -> None:
    codec = OpenAIResponsesCodec(record=True)
    final = fn_item("call_FINAL", '{"city":"Paris"}', status="completed")
    parts = feed(
        codec,
        [
            added(fn_item("call_added")),
            args_delta('{"city":'),
            args_delta('"Paris"}'),
            done(final),
            completed([final]),
        ],
    )
    (call,) = codec.state.tool_calls
    assert call.id == "call_FINAL" and call.args == {"city": "Paris"}
    assert [c.id for c in ends(parts)] == ["call_FINAL"]
    assert call.to_openai()["id"] == "call_FINAL"


def test_responses_call_id_of_the_final_response_wins() -> None:
    codec = OpenAIResponsesCodec(record=True)
    parts = feed(
        codec,
        [
            added(fn_item("call_added")),
            args_delta("{}"),
            done(fn_item("call_done", "{}")),
            completed([fn_item("call_completed", "{}")]),
        ],
    )
    assert [c.id for c in codec.state.tool_calls] == ["call_completed"]
    assert [c.id for c in ends(parts)] == ["call_completed"]  # the same call object


def test_responses_final_ids_with_reasoning_replay() -> None:
    reasoning = {"type": "reasoning", "id": "rs_1", "summary": []}
    codec = OpenAIResponsesCodec(record=True)
    feed(
        codec,
        [
            added(reasoning),
            done(reasoning),
            added(fn_item("call_added"), 1),
            done(fn_item("call_final", "{}"), 1),
            completed([reasoning, fn_item("call_final", "{}")]),
        ],
    )
    kept = codec.state.provider_data["openai_output"]
    assert [i.get("call_id") for i in kept] == [None, "call_final"]
    assert codec.state.tool_calls[0].id == "call_final"


@pytest.mark.parametrize("field", [{}, {"status": None}])
def test_responses_failed_without_status_is_a_failure(field: dict[str, Any]) -> None:
    codec = OpenAIResponsesCodec(record=True)
    event = completed([], "failed", error={"code": "server_error", "message": "boom"}, **field)
    with pytest.raises(ServerError, match="boom"):
        feed(codec, [event])
    codec = OpenAIResponsesCodec(record=True)
    with pytest.raises(ServerError):  # no error object at all: still a failure
        feed(codec, [completed([], "failed", **field)])
    assert not codec.state.done


def test_responses_incomplete_without_status_is_incomplete() -> None:
    codec = OpenAIResponsesCodec(record=True)
    event = completed([], "incomplete", incomplete_details={"reason": "max_output_tokens"})
    feed(codec, [{"type": "response.output_text.delta", "delta": "Hel"}, event])
    state = codec.state
    assert state.done and state.finish_reason == "incomplete" and state.reason == "length"


def test_responses_a_call_cut_by_max_output_tokens_never_ends() -> None:
    codec = OpenAIResponsesCodec(record=True)
    cut = fn_item("call_1", '{"city": "Par', status="incomplete")
    parts = feed(
        codec,
        [
            added(fn_item("call_1")),
            args_delta('{"city": "Par'),
            done(cut),
            completed(
                [cut],
                "incomplete",
                status="incomplete",
                incomplete_details={"reason": "max_output_tokens"},
            ),
        ],
    )
    assert ends(parts) == [] and codec.state.reason == "length"
    assert codec.state.tool_calls[0].arguments == '{"city": "Par'


CODES = [
    ("rate_limit_exceeded", RateLimitError, True),
    ("insufficient_quota", RateLimitError, False),
    ("server_error", ServerError, True),
    ("internal_error", ServerError, True),
    ("vector_store_timeout", ServerError, True),
    ("invalid_prompt", BadRequestError, False),
    ("context_length_exceeded", ContextWindowError, False),  # a BadRequestError
    ("invalid_image_url", BadRequestError, False),
    ("image_too_large", BadRequestError, False),
    ("invalid_api_key", AuthenticationError, False),
    ("model_not_found", NotFoundError, False),
    ("something_new", ServerError, True),  # unknown: a server-side failure, as before
    (None, ServerError, True),
]


@pytest.mark.parametrize(("code", "cls", "retry"), CODES)
def test_responses_error_codes_map_as_their_status(
    code: str | None, cls: type[SteerError], retry: bool
) -> None:
    event = {"type": "error", "code": code, "message": "it failed", "param": None}
    failed = completed([], "failed", status="failed", error={"code": code, "message": "it failed"})
    for events in ([event], [failed]):
        codec = OpenAIResponsesCodec()
        with pytest.raises(SteerError) as info:
            feed(codec, events)
        assert type(info.value) is cls
        assert is_retryable(info.value) is retry
        assert "it failed" in str(info.value)


def test_an_error_event_with_a_nested_error_type() -> None:
    event = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
    with pytest.raises(BadRequestError):
        feed(OpenAIResponsesCodec(), [event])


def test_http_429_insufficient_quota_is_not_retried() -> None:
    body = json.dumps(
        {
            "error": {
                "message": "You exceeded your quota",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        }
    ).encode()
    for parse in (OpenAIResponsesCodec.parse_error, OpenAIChatCodec.parse_error):
        error = parse(429, {}, body)
        assert isinstance(error, RateLimitError) and not is_retryable(error)
    plain = json.dumps({"error": {"message": "slow down", "code": "rate_limit_exceeded"}})
    assert is_retryable(OpenAIChatCodec.parse_error(429, {}, plain.encode()))


# custom (free-form) tools
def custom_item(call_id: str, text: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "type": "custom_tool_call",
        "id": "ctc_1",
        "call_id": call_id,
        "name": "apply_patch",
        "input": text,
        **extra,
    }


PATCH = "*** Begin Patch\n*** Update File: a.py\n-x = 1\n+x = 2\n*** End Patch"


def custom_stream(call_id_done: str = "call_c") -> list[dict[str, Any]]:
    delta = {"type": "response.custom_tool_call_input.delta", "item_id": "ctc_1", "output_index": 0}
    return [
        added(custom_item("call_c")),
        {**delta, "delta": PATCH[:20]},
        {**delta, "delta": PATCH[20:]},
        {
            "type": "response.custom_tool_call_input.done",
            "item_id": "ctc_1",
            "output_index": 0,
            "input": PATCH,
        },
        done(custom_item(call_id_done, PATCH, status="completed")),
        completed([custom_item(call_id_done, PATCH, status="completed")]),
    ]


def test_responses_custom_tool_call_is_a_tool_call_with_raw_input() -> None:
    codec = OpenAIResponsesCodec(record=True)
    parts = feed(codec, custom_stream())
    (call,) = codec.state.tool_calls
    assert call.kind == "custom" and call.type == "custom"
    assert call.name == "apply_patch" and call.id == "call_c"
    assert call.arguments == PATCH  # never parsed as JSON
    assert call.args == {"input": PATCH}
    assert "".join(p.arguments for p in parts if isinstance(p, ToolCallDelta)) == PATCH
    assert [type(p) for p in parts] == [ToolCallStart, ToolCallDelta, ToolCallDelta, ToolCallEnd]
    assert ends(parts) == [call]
    assert codec.state.reason == "tool_calls"
    assert call.to_openai() == {
        "id": "call_c",
        "type": "custom",
        "custom": {"name": "apply_patch", "input": PATCH},
    }
    assert call.to_dict()["type"] == "custom"


def test_responses_custom_call_given_whole_and_with_a_final_id() -> None:
    codec = OpenAIResponsesCodec(record=True)
    item = custom_item("call_final", PATCH)
    parts = feed(codec, [added(custom_item("call_first")), done(item), completed([item])])
    (call,) = codec.state.tool_calls
    assert (call.id, call.arguments, call.kind) == ("call_final", PATCH, "custom")
    assert ends(parts) == [call]
    # a server that sent the call only in the final response
    codec = OpenAIResponsesCodec(record=True)
    parts = feed(codec, [completed([item])])
    assert [(c.id, c.arguments, c.kind) for c in ends(parts)] == [("call_final", PATCH, "custom")]


def responses_body(request: ChatRequest) -> dict[str, Any]:
    return OpenAIResponsesCodec().encode(request, "sk-x").json


CUSTOM_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Apply a patch.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
}


def test_custom_tools_are_sent_to_responses_as_given() -> None:
    tools = normalize_tools([CUSTOM_TOOL, {"name": "f", "parameters": {"type": "object"}}])
    assert tools[0].kind == "custom" and tools[0].parameters is None
    neutral = [t.to_dict() for t in tools]
    body = responses_body(
        ChatRequest(
            "gpt-5",
            [{"role": "user", "content": "hi"}],
            tools=neutral,
            tool_choice=normalize_tool_choice("apply_patch", tools),
        )
    )
    assert body["tools"][0] == CUSTOM_TOOL
    assert body["tools"][1]["type"] == "function"
    assert body["tool_choice"] == {"type": "custom", "name": "apply_patch"}
    # Chat Completions' shape of a custom tool is accepted too
    chat_shape = {"type": "custom", "custom": {k: v for k, v in CUSTOM_TOOL.items() if k != "type"}}
    assert normalize_tools([chat_shape])[0].to_dict() == neutral[0]


@pytest.mark.parametrize("codec", [AnthropicCodec, GeminiCodec, OpenAIChatCodec])
def test_custom_tools_on_other_protocols_are_a_configuration_error(codec: Any) -> None:
    tools = [t.to_dict() for t in normalize_tools([CUSTOM_TOOL])]
    request = ChatRequest("m", [{"role": "user", "content": "hi"}], tools=tools)
    with pytest.raises(ConfigurationError, match=r"'apply_patch' is a custom .*Responses"):
        codec().encode(request, "k")


@pytest.mark.parametrize("codec", [AnthropicCodec, GeminiCodec])
def test_a_replayed_custom_call_on_other_protocols_is_a_configuration_error(codec: Any) -> None:
    call = ToolCall("call_c", "apply_patch", PATCH, kind="custom", type="custom")
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call.to_openai()]},
        tool_result_message("call_c", "done"),
    ]
    with pytest.raises(ConfigurationError, match="custom tool 'apply_patch'"):
        codec().encode(ChatRequest("m", messages), "k")


def test_custom_tool_validation() -> None:
    with pytest.raises(ConfigurationError, match="not parameters"):
        Tool("t", kind="custom", parameters={"type": "object"})
    with pytest.raises(ConfigurationError, match="kind='other' is not known"):
        Tool("t", kind="other")
    with pytest.raises(ConfigurationError, match="format is for custom tools"):
        Tool("t", format={"type": "text"})
    with pytest.raises(ConfigurationError, match="fields this SDK does not send"):
        normalize_tools([{**CUSTOM_TOOL, "parameters": {}}])


@pytest.mark.parametrize("reasoning", [False, True])
def test_a_custom_call_is_replayed_with_its_output(reasoning: bool) -> None:
    """to_message() then a tool result → custom_tool_call + custom_tool_call_output."""
    from steer_llm_sdk.models.response import StreamingResponse

    events = custom_stream("call_final")
    if reasoning:
        item = {"type": "reasoning", "id": "rs_1", "summary": []}
        events = [added(item), done(item)] + [
            {**e, "output_index": 1} if "output_index" in e else e for e in events[:-1]
        ]
        events.append(completed([item, custom_item("call_final", PATCH)]))
    codec = OpenAIResponsesCodec(record=True)
    feed(codec, events)
    state = codec.state
    response = StreamingResponse(
        "",
        {},
        None,
        "gpt-5",
        "openai",
        state.reason,
        tool_calls=state.tool_calls,
        provider_data=state.provider_data,
    )
    messages = [
        {"role": "user", "content": "fix it"},
        response.to_message(),
        tool_result_message("call_final", "patched"),
    ]
    items = responses_body(ChatRequest("gpt-5", messages))["input"]
    calls = [i for i in items if i.get("type") == "custom_tool_call"]
    assert [(c["call_id"], c["name"], c["input"]) for c in calls] == [
        ("call_final", "apply_patch", PATCH)
    ]
    assert items[-1] == {
        "type": "custom_tool_call_output",
        "call_id": "call_final",
        "output": "patched",
    }
    assert not any(i.get("type", "").startswith("function_call") for i in items)


async def test_run_tools_calls_a_custom_tool_with_its_text() -> None:
    got: list[str] = []

    async def apply_patch(patch: str) -> str:
        got.append(patch)
        return "ok"

    tool = Tool("apply_patch", kind="custom", function=apply_patch)
    assert await tool.call({"input": PATCH}) == "ok"
    sync = Tool("p", kind="custom", function=lambda text: text.upper())
    assert await sync.call({"input": "abc"}) == "ABC"
    assert got == [PATCH]


# -- Gemini -------------------------------------------------------------------------------
def gemini_text(text: str, **candidate: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, **candidate}]}


def usage(prompt: int, output: int) -> dict[str, Any]:
    return {
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
        }
    }


@pytest.mark.parametrize(
    "trailer",
    [
        usage(9, 30),  # usage only (the general path)
        gemini_text("", index=0) | usage(9, 30),  # an empty text part (the fast path's shape)
        gemini_text("") | usage(9, 30) | {"modelVersion": "gemini-2.5-flash"},
    ],
    ids=["usage-only", "empty-candidate", "empty-candidate-model"],
)
def test_gemini_usage_after_the_finish_reason_is_the_usage(trailer: dict[str, Any]) -> None:
    codec = GeminiCodec(record=True)
    events = [
        gemini_text("Hello") | usage(9, 1) | {"modelVersion": "gemini-2.5-flash"},
        gemini_text(" world") | usage(9, 2),
        gemini_text("!", finishReason="STOP") | usage(9, 3),
        trailer,
    ]
    parts = feed(codec, events)
    assert "".join(p for p in parts if isinstance(p, str)) == "Hello world!"
    state = codec.state
    assert state.done and state.finish_reason == "STOP"
    assert state.usage == {"prompt_tokens": 9, "completion_tokens": 30, "total_tokens": 39}


def test_gemini_text_after_an_early_finish_reason_is_not_dropped() -> None:
    """Translating proxies send an empty STOP chunk before the text: it is read on."""
    codec = GeminiCodec()
    events = [
        gemini_text("", finishReason="STOP"),
        gemini_text("Hello") | usage(2, 1),
        gemini_text(" there") | usage(2, 2),
        gemini_text("", finishReason="MAX_TOKENS") | usage(2, 3),
    ]
    assert "".join(p for p in feed(codec, events) if isinstance(p, str)) == "Hello there"
    state = codec.state
    assert state.done and state.finish_reason == "MAX_TOKENS" and state.reason == "length"
    assert state.usage is not None and state.usage["completion_tokens"] == 3


def test_gemini_a_stream_without_finish_reason_says_so() -> None:
    call = {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}}]}
    for events in ([call], [gemini_text("")], [gemini_text("Hel") | usage(2, 1)]):
        codec = GeminiCodec()
        with pytest.raises(ConnectionError, match="ended without a finishReason"):
            feed(codec, events)
        assert not codec.state.done
    codec = GeminiCodec()
    feed(codec, [])  # no event at all: the pipeline says what bytes it got
    assert not codec.state.done


# -- Anthropic ----------------------------------------------------------------------------
def message_start(message_id: str = "msg_1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "usage": {"input_tokens": 10, "output_tokens": 1},
            **extra,
        },
    }


def tool_start(index: int, call_id: str, name: str = "f") -> dict[str, Any]:
    return {
        "type": "content_block_start",
        "index": index,
        "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
    }


def json_delta(index: int, partial: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": partial},
    }


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_delta(reason: str) -> dict[str, Any]:
    return {
        "type": "message_delta",
        "delta": {"stop_reason": reason, "stop_sequence": None},
        "usage": {"output_tokens": 20},
    }


MESSAGE_STOP = {"type": "message_stop"}


def text_block(index: int, text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        },
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        },
        block_stop(index),
    ]


@pytest.mark.parametrize("deltas", [[], [""], ["", ""]], ids=["none", "empty", "two-empty"])
def test_anthropic_a_tool_without_input_has_arguments_braces(deltas: list[str]) -> None:
    codec = AnthropicCodec(record=True)
    events = [
        message_start(),
        tool_start(0, "toolu_1"),
        *[json_delta(0, d) for d in deltas],
        block_stop(0),
        message_delta("tool_use"),
        MESSAGE_STOP,
    ]
    parts = feed(codec, events)
    (call,) = codec.state.tool_calls
    assert call.arguments == "{}" and call.args == {}
    assert "".join(p.arguments for p in parts if isinstance(p, ToolCallDelta)) == "{}"
    assert [c.arguments for c in ends(parts)] == ["{}"]


def test_anthropic_a_repeated_message_start_is_ignored() -> None:
    codec = AnthropicCodec(record=True)
    events = [
        message_start(),
        *text_block(0, "Hi"),
        message_start(),
        message_delta("end_turn"),
        MESSAGE_STOP,
    ]
    assert [p for p in feed(codec, events) if isinstance(p, str)] == ["Hi"]
    assert codec.state.done and codec.state.usage is not None
    assert codec.state.usage["completion_tokens"] == 20


@pytest.mark.parametrize(
    "second",
    [message_start("msg_2"), message_start("msg_1", model="claude-other")],
    ids=["other-id", "same-id-other-content"],
)
def test_anthropic_a_second_different_message_start_is_a_spliced_stream(
    second: dict[str, Any],
) -> None:
    codec = AnthropicCodec(record=True)
    events = [message_start(), *text_block(0, "Hi"), second, *text_block(0, "Again")]
    with pytest.raises(InvalidResponseError, match="second, different message_start"):
        feed(codec, events)


def cut_stream() -> list[dict[str, Any]]:
    """A complete call, then a call cut by max_tokens mid-JSON, one event at a time."""
    return [
        message_start(),
        tool_start(0, "toolu_whole", "a"),
        json_delta(0, '{"x": 1}'),
        block_stop(0),
        tool_start(1, "toolu_cut", "b"),
        json_delta(1, '{"query": "the weath'),
        block_stop(1),
        message_delta("max_tokens"),
        MESSAGE_STOP,
    ]


def test_anthropic_a_call_cut_by_max_tokens_never_ends() -> None:
    codec = AnthropicCodec(record=True)
    events = cut_stream()
    parts: list[Any] = []
    out = codec.state.out
    for i, event in enumerate(events):
        codec.decode(event["type"], json.dumps(event).encode())
        parts.extend(out)
        out.clear()
        if i == 3:  # the whole call ends at its own block stop, as before
            assert [c.id for c in ends(parts)] == ["toolu_whole"]
    codec.finish()
    parts.extend(out)
    assert [c.id for c in ends(parts)] == ["toolu_whole"]
    assert codec.state.reason == "length"
    assert codec.state.tool_calls[1].arguments == '{"query": "the weath'


def test_anthropic_a_held_call_ends_when_the_stop_reason_is_not_max_tokens() -> None:
    codec = AnthropicCodec(record=True)
    events = cut_stream()
    events[-2] = message_delta("tool_use")
    parts: list[Any] = []
    out = codec.state.out
    for event in events:
        codec.decode(event["type"], json.dumps(event).encode())
        parts.extend(out)
        out.clear()
        if event["type"] == "content_block_stop" and event["index"] == 1:
            assert [c.id for c in ends(parts)] == ["toolu_whole"]  # held
    codec.finish()
    assert [c.id for c in ends(parts)] == ["toolu_whole", "toolu_cut"]
    assert [p.index for p in parts if isinstance(p, ToolCallEnd)] == [0, 1]


def test_anthropic_a_call_cut_before_any_input_is_not_an_empty_call() -> None:
    codec = AnthropicCodec(record=True)
    events = [
        message_start(),
        tool_start(0, "toolu_1"),
        block_stop(0),
        message_delta("max_tokens"),
        MESSAGE_STOP,
    ]
    parts = feed(codec, events)
    assert ends(parts) == [] and codec.state.tool_calls[0].arguments == ""
