"""Each codec reads the common text event through a fast path (msgspec into a struct
of the few fields that matter, the rest skipped) and every other event through its
general path (orjson and dicts). The fast path must never change what a stream
decodes to: for events of the fast shape and for every nearby shape a server could
send (fields added, removed, nulled, of the wrong type, unparsable), a codec with its
fast path gives the same texts, the same errors and the same final state as the same
codec reading every event through the general path."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steer_llm_sdk.providers.anthropic import AnthropicCodec
from steer_llm_sdk.providers.bedrock import BedrockConverseCodec
from steer_llm_sdk.providers.gemini import GeminiCodec
from steer_llm_sdk.providers.openai_chat import OpenAIChatCodec
from steer_llm_sdk.providers.openai_responses import OpenAIResponsesCodec

# Per protocol: the codec, the events before the text (not mutated), a text event of
# the fast shape, and the field names worth adding where they change the meaning.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "openai-chat": {
        "codec": OpenAIChatCodec,
        "lead": [
            (
                None,
                {
                    "id": "c1",
                    "model": "m",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}],
                },
            )
        ],
        "text": (
            None,
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": "Hi"},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
                "usage": None,
            },
        ),
        "names": [
            "content",
            "role",
            "tool_calls",
            "reasoning_content",
            "refusal",
            "finish_reason",
            "usage",
            "error",
            "index",
            "delta",
            "choices",
            "logprobs",
            "reasoning",
            "reasoning_details",
            "function_call",
            "audio",
        ],
    },
    "anthropic-messages": {
        "codec": AnthropicCodec,
        "lead": [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_1",
                        "model": "m",
                        "usage": {"input_tokens": 3, "output_tokens": 1},
                    },
                },
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ],
        "text": (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
        ),
        "names": ["type", "delta", "text", "index", "thinking", "partial_json", "usage", "error"],
    },
    "openai-responses": {
        "codec": OpenAIResponsesCodec,
        "lead": [
            (
                "response.created",
                {
                    "type": "response.created",
                    "response": {"id": "resp_1", "model": "m", "output": []},
                },
            ),
        ],
        "text": (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "sequence_number": 3,
                "item_id": "msg_1",
                "output_index": 0,
                "content_index": 0,
                "delta": "Hi",
                "logprobs": [],
            },
        ),
        "names": ["type", "delta", "item_id", "output_index", "logprobs", "response", "error"],
    },
    "gemini": {
        "codec": GeminiCodec,
        "lead": [
            (
                None,
                {
                    "candidates": [
                        {"content": {"parts": [{"text": ""}], "role": "model"}, "index": 0}
                    ],
                    "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
                    "modelVersion": "g",
                    "responseId": "r",
                },
            ),
        ],
        "text": (
            None,
            {
                "candidates": [
                    {"content": {"parts": [{"text": "Hi"}], "role": "model"}, "index": 0}
                ],
                "usageMetadata": {
                    "promptTokenCount": 5,
                    "candidatesTokenCount": 1,
                    "totalTokenCount": 6,
                },
                "modelVersion": "g",
                "responseId": "r",
            },
        ),
        "names": [
            "candidates",
            "content",
            "parts",
            "text",
            "thought",
            "thoughtSignature",
            "functionCall",
            "finishReason",
            "index",
            "usageMetadata",
            "promptTokenCount",
            "candidatesTokenCount",
            "promptFeedback",
            "error",
        ],
    },
}

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "Hi", "text_delta", "STOP", "response.output_text.delta", "é\u2028"]),
    lambda inner: (
        st.lists(inner, max_size=2)
        | st.dictionaries(st.sampled_from(["a", "text", "type"]), inner, max_size=2)
    ),
    max_leaves=4,
)


def mutate(value: Any, draw: Any, names: list[str], depth: int = 0) -> Any:
    """A copy of ``value`` with a few random changes at random depths."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            roll = draw(st.integers(0, 9))
            if roll == 0:
                continue  # the field is dropped
            out[key] = draw(JSON) if roll == 1 else mutate(item, draw, names, depth + 1)
        if draw(st.integers(0, 4)) == 0:
            out[draw(st.sampled_from(names))] = draw(JSON)
        return out
    if isinstance(value, list):
        items = [mutate(item, draw, names, depth + 1) for item in value]
        if draw(st.integers(0, 6)) == 0:
            items.append(draw(JSON))
        return items
    return draw(JSON) if draw(st.integers(0, 7)) == 0 else value


def outcome(fn: Any, *args: Any) -> tuple[Any, ...]:
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def snapshot(codec: Any) -> dict[str, Any]:
    finished = outcome(codec.finish)
    state = codec.state
    return {
        "finish": finished,
        "done": state.done,
        "finish_reason": state.finish_reason,
        "reason": state.reason,
        "model": state.model,
        "response_id": state.response_id,
        "usage": state.usage,
        "tool_calls": state.tool_call_list(),
        "reasoning": state.reasoning_parts,
        "refusal": state.refusal_parts,
        "provider_data": state.provider_data,
        "out": [repr(part) for part in state.out or ()],
    }


def _prefill(codec: Any) -> None:  # an Anthropic JSON-mode answer prefilled with "{"
    codec.lead_text = "{"
    codec._lead_pending = True


def _logprobs(codec: Any) -> None:  # the request asked for logprobs
    codec._logprobs = True


# Bedrock Converse: event names come from the frames' :event-type headers; every
# payload carries a "p" padding field.
PROTOCOLS["bedrock-converse"] = {
    "codec": BedrockConverseCodec,
    "lead": [("messageStart", {"role": "assistant", "p": "abcdefghijkl"})],
    "text": ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}, "p": "abcd"}),
    "names": [
        "text",
        "delta",
        "toolUse",
        "reasoningContent",
        "contentBlockIndex",
        "input",
        "signature",
        "start",
        "stopReason",
        "usage",
        "p",
    ],
}

# Codec settings that change how a text event is read.
SETUPS: dict[str, list[Any]] = {
    "bedrock-converse": [None],
    "openai-chat": [None, _logprobs],
    "anthropic-messages": [None, _prefill],
    "openai-responses": [None, _logprobs],
    "gemini": [None],
}


def run_both(protocol: str, events: list[tuple[str | None, bytes]], setup: Any = None) -> None:
    spec = PROTOCOLS[protocol]
    fast = spec["codec"](record=True)
    general = spec["codec"](record=True)
    general.decode = general._decode  # every event through the general path
    if setup is not None:
        setup(fast)
        setup(general)
    for event, data in events:
        got, want = outcome(fast.decode, event, data), outcome(general.decode, event, data)
        assert got == want, (event, data)
        if got[0] == "error":
            return
    assert snapshot(fast) == snapshot(general)


def encode(obj: Any, draw: Any) -> bytes:
    if draw(st.integers(0, 30)) == 0:  # now and then, bytes that are not (valid) JSON
        raw = json.dumps(obj).encode()
        return draw(st.sampled_from([raw[:-1], raw + b"x", b"\xff" + raw, b"[DONE]", b""]))
    return json.dumps(obj, ensure_ascii=draw(st.booleans())).encode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PROTOCOLS)), st.data())
def test_the_fast_path_decodes_what_the_general_path_does(protocol: str, data: Any) -> None:
    spec = PROTOCOLS[protocol]
    draw = data.draw
    events = [(name, json.dumps(obj).encode()) for name, obj in spec["lead"]]
    name, text_event = spec["text"]
    for _ in range(draw(st.integers(1, 4))):
        obj = text_event if draw(st.booleans()) else mutate(text_event, draw, spec["names"])
        events.append((name, encode(obj, draw)))
    run_both(protocol, events, draw(st.sampled_from(SETUPS[protocol])))


VALUES: list[Any] = [
    None,
    True,
    0,
    1,
    -1,
    1.5,
    "",
    "Hi",
    "{",
    "STOP",
    "text_delta",
    [],
    {},
    [{}],
    {"text": "x"},
    [{"text": "x"}],
]


def single_changes(value: Any, names: list[str]) -> Any:
    """Every copy of ``value`` with one change: a field dropped, a value replaced,
    a field added (from ``names``), an item added to a list."""
    if isinstance(value, dict):
        for key in value:
            yield {k: v for k, v in value.items() if k != key}
            for other in [*VALUES, *single_changes(value[key], names)]:
                yield {**value, key: other}
        for name in names:
            for other in VALUES:
                yield {**value, name: other}
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for other in single_changes(item, names):
                yield [*value[:i], other, *value[i + 1 :]]
        for other in VALUES:
            yield [*value, other]


def test_every_single_change_to_the_text_event_decodes_as_the_general_path() -> None:
    for protocol, spec in PROTOCOLS.items():
        lead = [(name, json.dumps(obj).encode()) for name, obj in spec["lead"]]
        name, text_event = spec["text"]
        count = 0
        for changed in single_changes(text_event, spec["names"]):
            data = json.dumps(changed).encode()
            for setup in SETUPS[protocol]:
                # The changed event alone, and before a plain text event.
                run_both(protocol, [*lead, (name, data)], setup)
                run_both(
                    protocol, [*lead, (name, data), (name, json.dumps(text_event).encode())], setup
                )
            count += 1
        assert count > 200, (protocol, count)


def test_the_fast_shape_is_taken_and_reads_the_text() -> None:
    """The reference events above are of the fast shape: each decodes to its text
    without the general path (so the property test above compares the fast path)."""
    for protocol, spec in PROTOCOLS.items():
        codec = spec["codec"]()
        for name, obj in spec["lead"]:
            codec.decode(name, json.dumps(obj).encode())

        def refuse(*args: Any, protocol: str = protocol) -> None:
            raise AssertionError(f"{protocol}: the text event took the general path")

        codec._decode = refuse
        name, obj = spec["text"]
        assert codec.decode(name, json.dumps(obj).encode()) == "Hi", protocol


def test_gemini_usage_kept_as_bytes_that_orjson_refuses_is_a_typed_error() -> None:
    """msgspec skips a field it does not read without converting it, so an event with a
    number no float holds (1e999) passes the fast path; its usage, parsed at the end
    by orjson, must then fail as InvalidResponseError, not as orjson's own error."""
    from steer_llm_sdk.errors import InvalidResponseError

    codec = GeminiCodec()
    name, lead = PROTOCOLS["gemini"]["lead"][0]
    codec.decode(name, json.dumps(lead).encode())
    event = json.dumps(PROTOCOLS["gemini"]["text"][1]).encode()[:-1] + b', "x": 1e999}'
    assert codec.decode(None, event) == "Hi"
    try:
        codec.finish()
    except InvalidResponseError as exc:
        assert "not JSON" in str(exc)
    else:
        raise AssertionError("finish() accepted usage orjson cannot parse")


def test_fast_path_structs_are_not_tracked_by_the_garbage_collector() -> None:
    """The structs a text event is read into hold only strings, numbers and other such
    structs (no cycle is possible): gc=False spares their allocation the collector's
    bookkeeping, about a tenth of the fast path's time per event."""
    import gc
    import importlib

    events = {
        "openai_chat": b'{"choices":[{"index":0,"delta":{"content":"Hi"}}]}',
        "anthropic": b'{"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}',
        "openai_responses": b'{"type":"response.output_text.delta","delta":"Hi"}',
        "gemini": b'{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},'
        b'"index":0}],"usageMetadata":{"promptTokenCount":1}}',
    }
    for name, data in events.items():
        module = importlib.import_module(f"steer_llm_sdk.providers.{name}")
        event = module._fast_decode(data)
        structs = [event]
        while structs:
            struct = structs.pop()
            assert not gc.is_tracked(struct), (name, type(struct).__name__)
            for field in struct.__struct_fields__:
                value = getattr(struct, field)
                for item in value if isinstance(value, list) else [value]:
                    if hasattr(item, "__struct_fields__"):
                        structs.append(item)
