"""Tool-call accumulation against the shapes real servers send (each a hand-made
stream of a pattern seen in peer SDKs' bug reports)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from steer_llm_sdk.errors import InvalidResponseError, ToolArgumentsError
from steer_llm_sdk.parts import ToolCallDelta, ToolCallEnd, ToolCallStart
from steer_llm_sdk.providers.anthropic import AnthropicCodec
from steer_llm_sdk.providers.openai_chat import OpenAIChatCodec
from steer_llm_sdk.transport.sse import SSEDecoder


def openai_stream(*deltas: dict[str, Any], finishes: int = 1, reason: str = "tool_calls") -> bytes:
    frames = []
    for delta in deltas:
        chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        frames.append(f"data: {json.dumps(chunk)}\n\n")
    for _ in range(finishes):  # OpenRouter repeats the finish chunk to carry usage
        chunk = {
            "choices": [{"index": 0, "delta": {}, "finish_reason": reason}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        }
        frames.append(f"data: {json.dumps(chunk)}\n\n")
    frames.append("data: [DONE]\n\n")
    return "".join(frames).encode()


def run(codec: Any, body: bytes) -> list[Any]:
    sse = SSEDecoder()
    parts: list[Any] = []
    for event, data in [*sse.feed(body), *sse.close()]:
        codec.decode(event, data)
        parts.extend(codec.state.out)
        codec.state.out.clear()
    codec.finish()
    parts.extend(codec.state.out)
    return parts


def calls_of(codec: Any) -> list[tuple[str, str, str]]:
    return [(c.id, c.name, c.arguments) for c in codec.state.tool_calls]


def tc(
    index: int | None = None,
    id: str | None = None,
    name: str | None = None,
    args: str | None = None,
) -> dict[str, Any]:
    call: dict[str, Any] = {}
    if index is not None:
        call["index"] = index
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    fn: dict[str, Any] = {}
    if name is not None:
        fn["name"] = name
    if args is not None:
        fn["arguments"] = args
    call["function"] = fn
    return {"tool_calls": [call]}


def test_parallel_calls_interleaved_never_merge() -> None:
    codec = OpenAIChatCodec(record=True)
    parts = run(
        codec,
        openai_stream(
            tc(0, "call_a", "f", ""),
            tc(1, "call_b", "g", ""),
            tc(0, args='{"x":'),
            tc(1, args='{"y":'),
            tc(0, args="1}"),
            tc(1, args="2}"),
        ),
    )
    assert calls_of(codec) == [("call_a", "f", '{"x":1}'), ("call_b", "g", '{"y":2}')]
    ends = [p for p in parts if isinstance(p, ToolCallEnd)]
    assert [e.index for e in ends] == [0, 1] and codec.state.reason == "tool_calls"


def test_a_new_id_at_an_occupied_index_opens_a_new_call() -> None:
    # Some servers (Gemini's OpenAI shim, older Ollama) send every call at index 0.
    codec = OpenAIChatCodec(record=True)
    run(
        codec,
        openai_stream(tc(0, "call_a", "f", '{"x":1}'), tc(0, "call_b", "g", '{"y":2}')),
    )
    assert calls_of(codec) == [("call_a", "f", '{"x":1}'), ("call_b", "g", '{"y":2}')]


def test_a_known_id_wins_over_the_index() -> None:
    codec = OpenAIChatCodec(record=True)
    run(
        codec,
        openai_stream(
            tc(0, "call_a", "f", '{"x":'),
            tc(1, "call_b", "g", '{"y":2}'),
            tc(5, "call_a", None, "1}"),  # a wrong index, but a known id
        ),
    )
    assert calls_of(codec) == [("call_a", "f", '{"x":1}'), ("call_b", "g", '{"y":2}')]


def test_a_delta_with_neither_id_nor_index_extends_the_open_call() -> None:
    codec = OpenAIChatCodec(record=True)
    run(codec, openai_stream(tc(None, "call_a", "f", '{"x":'), tc(None, None, None, "1}")))
    assert calls_of(codec) == [("call_a", "f", '{"x":1}')]


def test_id_sent_once_keeps_every_argument() -> None:
    codec = OpenAIChatCodec(record=True)
    parts = run(
        codec, openai_stream(tc(0, "call_a", "f"), tc(0, args='{"a"'), tc(0, args=":[1,2]}"))
    )
    assert calls_of(codec) == [("call_a", "f", '{"a":[1,2]}')]
    deltas = [p.arguments for p in parts if isinstance(p, ToolCallDelta)]
    assert deltas == ['{"a"', ":[1,2]}"]


def test_no_argument_tool_is_kept_with_empty_args() -> None:
    codec = OpenAIChatCodec(record=True)
    run(codec, openai_stream(tc(0, "call_a", "now", "")))
    (call,) = codec.state.tool_calls
    assert call.arguments == "" and call.args == {}


def test_a_second_finish_chunk_does_not_duplicate_calls() -> None:
    codec = OpenAIChatCodec(record=True)
    parts = run(codec, openai_stream(tc(0, "call_a", "f", "{}"), finishes=2))
    assert len(codec.state.tool_calls) == 1
    assert len([p for p in parts if isinstance(p, ToolCallEnd)]) == 1
    assert len([p for p in parts if isinstance(p, ToolCallStart)]) == 1


def test_a_call_cut_by_max_tokens_is_length_not_a_call() -> None:
    codec = OpenAIChatCodec(record=True)
    parts = run(codec, openai_stream(tc(0, "call_a", "f", '{"text": "a lo'), reason="length"))
    assert codec.state.reason == "length"
    assert not [p for p in parts if isinstance(p, ToolCallEnd)]
    with pytest.raises(ToolArgumentsError, match="not valid JSON"):
        _ = codec.state.tool_calls[0].args


def test_stop_with_tool_calls_is_tool_calls() -> None:
    codec = OpenAIChatCodec(record=True)
    run(codec, openai_stream(tc(0, "call_a", "f", "{}"), reason="stop"))
    assert codec.state.reason == "tool_calls" and codec.state.finish_reason == "stop"


@pytest.mark.parametrize(
    "bad",
    [
        tc("0", "call_a", "f", "{}"),  # type: ignore[arg-type]
        {"tool_calls": [{"index": 0, "id": 7, "function": {"name": "f"}}]},
        {"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": {}}}]},
        {"tool_calls": "nope"},
        {"content": 42},
        {"content": ["not a part"]},
    ],
)
def test_wrongly_typed_fields_are_invalid_responses(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidResponseError):
        run(OpenAIChatCodec(record=True), openai_stream(bad))


def anthropic_stream(*events: dict[str, Any]) -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "model": "claude",
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
    }
    tail = [
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    return "".join(
        f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in [start, *events, *tail]
    ).encode()


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def json_delta(index: int, partial: str) -> dict[str, Any]:
    return {
        "type": "content_block_delta",
        "index": index,
        "delta": {"type": "input_json_delta", "partial_json": partial},
    }


def stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def test_anthropic_empty_input_is_not_glued_to_streamed_arguments() -> None:
    codec = AnthropicCodec(record=True)
    run(
        codec,
        anthropic_stream(
            block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
            json_delta(0, ""),
            json_delta(0, '{"a": 1}'),
            stop(0),
            block_start(1, {"type": "tool_use", "id": "toolu_2", "name": "g", "input": {}}),
            json_delta(1, ""),
            stop(1),
        ),
    )
    assert calls_of(codec) == [("toolu_1", "f", '{"a": 1}'), ("toolu_2", "g", "{}")]
    assert codec.state.tool_calls[1].args == {}
    assert codec.state.reason == "tool_calls"


def test_anthropic_whole_input_then_deltas_keeps_the_deltas() -> None:
    codec = AnthropicCodec(record=True)
    run(
        codec,
        anthropic_stream(
            block_start(0, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 0}}),
            json_delta(0, '{"a": 1}'),
            stop(0),
        ),
    )
    assert calls_of(codec) == [("toolu_1", "f", '{"a": 1}')]


def test_anthropic_calls_end_at_their_block_stop() -> None:
    codec = AnthropicCodec(record=True)
    parts = run(
        codec,
        anthropic_stream(
            block_start(0, {"type": "text", "text": ""}),
            stop(0),
            block_start(1, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
            json_delta(1, "{}"),
            stop(1),
        ),
    )
    kinds = [type(p).__name__ for p in parts]
    assert kinds == ["ToolCallStart", "ToolCallDelta", "ToolCallEnd"]
    assert parts[-1].index == 0  # the SDK's ordinal, not Anthropic's block index


def test_anthropic_non_string_text_is_an_error() -> None:
    bad = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}}
    with pytest.raises(InvalidResponseError, match="not a string"):
        run(AnthropicCodec(record=True), anthropic_stream(bad))


@pytest.mark.parametrize(
    "usage",
    [
        {
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": "2"},
        },
        {
            "prompt_tokens": 3,
            "completion_tokens": 1,
            "completion_tokens_details": {"reasoning_tokens": 1.5},
        },
        {"prompt_tokens": -1, "completion_tokens": 1},
    ],
)
def test_wrongly_typed_usage_counts_are_invalid_responses(usage: dict[str, Any]) -> None:
    from steer_llm_sdk.providers.openai_chat import normalize_usage
    from steer_llm_sdk.providers.openai_responses import normalize_usage as responses_usage

    with pytest.raises(InvalidResponseError, match="not a whole number"):
        normalize_usage(usage)
    renamed = {
        "input_tokens": usage.get("prompt_tokens"),
        "output_tokens": usage.get("completion_tokens"),
        "input_tokens_details": usage.get("prompt_tokens_details"),
        "output_tokens_details": usage.get("completion_tokens_details"),
    }
    with pytest.raises(InvalidResponseError, match="not a whole number"):
        responses_usage(renamed)
