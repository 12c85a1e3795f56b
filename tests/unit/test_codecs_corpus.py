"""Every OpenAI-chat and Anthropic stream of the recorded corpus decodes to what the
official SDKs computed from it (manifest.json's ``expected``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from steer_llm_sdk.errors import SteerError
from steer_llm_sdk.parts import (
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)
from steer_llm_sdk.providers.anthropic import AnthropicCodec
from steer_llm_sdk.providers.anthropic import normalize_usage as anthropic_usage
from steer_llm_sdk.providers.openai_chat import OpenAIChatCodec
from steer_llm_sdk.transport.sse import SSEDecoder

CORPUS = Path(__file__).parent.parent / "fixtures" / "streams"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
ENTRIES = [
    e
    for e in MANIFEST
    if e["protocol"] in ("openai-chat", "anthropic-messages") and (CORPUS / e["file"]).exists()
]


def expected_calls(entry: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(id, name, arguments) of the manifest's tool calls. An Anthropic tool streamed
    with no input at all is ``input: {}`` in the official SDK: its arguments are "{}"
    (issue #22), not the empty concatenation of no partial_json."""
    expected = entry["expected"]
    out = []
    for call in expected["tool_calls"]:
        arguments = call["arguments"]
        if (
            entry["protocol"] == "anthropic-messages"
            and not arguments.strip()
            and call.get("arguments_json") == {}
            and expected["finish_reason"] != "max_tokens"
        ):
            arguments = "{}"
        out.append((call["id"], call["name"], arguments))
    return out


def decode(
    entry: dict[str, Any], split: int | None = None, *, record: bool = False
) -> tuple[Any, str, Exception | None]:
    state, text, error, _ = decode_parts(entry, split, record=record)
    return state, text, error


def decode_parts(
    entry: dict[str, Any], split: int | None = None, *, record: bool = True
) -> tuple[Any, str, Exception | None, list[Any]]:
    """Decode a recorded stream as the pipeline does: text from decode(), and with
    record=True the typed parts the codec recorded, drained after every event."""
    body = (CORPUS / entry["file"]).read_bytes()
    codec: Any = (
        OpenAIChatCodec(record=record)
        if entry["protocol"] == "openai-chat"
        else AnthropicCodec(record=record)
    )
    sse = SSEDecoder()
    parts: list[str] = []
    events: list[Any] = []
    out = codec.state.out
    error: Exception | None = None
    pieces = [body] if split is None else [body[i : i + split] for i in range(0, len(body), split)]

    def take(event: str | None, data: bytes) -> None:
        text = codec.decode(event, data)
        if out:
            events.extend(out)
            out.clear()
        if text:
            parts.append(text)
            events.append(TextDelta(text))

    try:
        for piece in pieces:
            for event, data in sse.feed(piece):
                take(event, data)
        for event, data in sse.close():
            take(event, data)
        codec.finish()
        if out:
            events.extend(out)
            out.clear()
    except SteerError as exc:
        error = exc
    return codec.state, "".join(parts), error, events


def test_corpus_is_intact() -> None:
    assert len(ENTRIES) == 53  # 30 openai-chat + 17 anthropic recorded + 6 hand-made
    assert sum(e["recorded"] for e in ENTRIES) == 47
    for entry in ENTRIES:
        body = (CORPUS / entry["file"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], entry["file"]


def expected_usage(entry: dict[str, Any]) -> dict[str, Any] | None:
    raw = entry["expected"]["usage"]
    if raw is None:
        return None
    if entry["protocol"] == "anthropic-messages":
        return anthropic_usage(raw)
    usage: dict[str, Any] = {
        "prompt_tokens": raw["prompt_tokens"],
        "completion_tokens": raw["completion_tokens"],
        "total_tokens": raw["prompt_tokens"] + raw["completion_tokens"],
    }
    return usage


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
@pytest.mark.parametrize("split", [None, 1, 7, 64])
def test_stream_decodes_to_expected(entry: dict[str, Any], split: int | None) -> None:
    expected = entry["expected"]
    state, text, error = decode(entry, split)

    assert text == (expected["text"] or "")
    if expected.get("error"):
        assert error is not None, "an in-band error must raise, not end quietly"
        assert expected["error"]["stream_error"]["message"] in str(error) or (
            expected["error"]["stream_error"].get("error", {}).get("message", "") in str(error)
        )
        return
    assert error is None, error
    assert state.finish_reason == expected["finish_reason"]

    want = expected_usage(entry)
    if want is None:
        assert state.usage is None
    else:
        got = dict(state.usage)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert got[key] == want[key], key
        raw = expected["usage"]
        if entry["protocol"] == "openai-chat":
            if raw.get("cached_tokens") is not None:
                assert got["cache_info"]["cached_tokens"] == raw["cached_tokens"]
            if raw.get("reasoning_tokens") is not None:
                assert got["reasoning_tokens"] == raw["reasoning_tokens"]
        elif raw.get("cache_read_input_tokens") is not None:
            assert got["cache_info"] == want["cache_info"]

    calls = state.tool_call_list()
    assert [(c["id"], c["name"], c["arguments"]) for c in calls] == expected_calls(entry)
    if expected.get("reasoning_text") is not None:
        assert state.reasoning_text == expected["reasoning_text"]
    if expected.get("thinking_text") is not None:
        assert state.reasoning_text == expected["thinking_text"]
    if entry["protocol"] == "openai-chat" and expected.get("refusal"):
        assert state.refusal_text == expected["refusal"]
        assert state.reason == "refusal"
    # A stream that ran to its end is complete (and one cut short would not be).
    assert state.done


UNIFIED = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "tool_use": "tool_calls",
    "refusal": "refusal",
}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
@pytest.mark.parametrize("split", [None, 1, 7, 64])
def test_stream_events_match_expected(entry: dict[str, Any], split: int | None) -> None:
    """The typed parts of every recorded stream: text deltas make the text, tool calls
    start, grow and end exactly as the manifest says, reasoning deltas make the
    reasoning, at every byte split."""
    expected = entry["expected"]
    state, _text, error, events = decode_parts(entry, split)
    if expected.get("error"):
        assert error is not None
        return
    assert error is None, error
    assert "".join(e.text for e in events if type(e) is TextDelta) == (expected["text"] or "")
    reasoning = expected.get("reasoning_text") or expected.get("thinking_text")
    if reasoning is not None:
        assert "".join(e.text for e in events if type(e) is ReasoningDelta) == reasoning

    want = expected_calls(entry)
    starts = [e for e in events if type(e) is ToolCallStart]
    ends = [e for e in events if type(e) is ToolCallEnd]
    assert [(s.id, s.name) for s in starts] == [(w[0], w[1]) for w in want]
    for index, (_, _, arguments) in enumerate(want):
        deltas = [e.arguments for e in events if type(e) is ToolCallDelta and e.index == index]
        assert "".join(deltas) == arguments
        first = events.index(starts[index])
        assert all(
            events.index(e) > first
            for e in events
            if type(e) in (ToolCallDelta, ToolCallEnd) and e.index == index
        )
    reason = state.reason
    if expected["finish_reason"] in ("length", "max_tokens"):
        # A call cut by max_tokens is not a complete call: no ToolCallEnd for it.
        assert reason == "length"
        assert ends == []
    else:
        assert [(e.call.id, e.call.name, e.call.arguments) for e in ends] == want
        assert [e.index for e in ends] == list(range(len(want)))
        if expected["finish_reason"] in UNIFIED:
            assert reason == UNIFIED[expected["finish_reason"]] or (
                reason == "refusal" and expected.get("refusal")
            )
    for call in state.tool_calls:
        if reason != "length":
            assert isinstance(call.args, dict)  # "" means {}
