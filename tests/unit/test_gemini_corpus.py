"""Every Gemini stream of the recorded corpus decodes to the manifest's ``expected``
(text, thoughts, function calls, finish reason, usage), whole and at byte splits, as
text and as typed parts.

The manifest's Gemini expectations come from the corpus script's own reference
parser (no official accumulator exists): text parts of ``candidates[0]`` concatenated,
``thought`` parts apart, ``functionCall`` parts collected, the last ``finishReason``
and the last ``usageMetadata``."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest

from steer_llm_sdk.errors import SteerError
from steer_llm_sdk.parts import ReasoningDelta, TextDelta, ToolCallDelta, ToolCallEnd, ToolCallStart
from steer_llm_sdk.providers.gemini import GeminiCodec
from steer_llm_sdk.transport.sse import SSEDecoder

from .test_codecs_corpus import CORPUS, MANIFEST

ENTRIES = [e for e in MANIFEST if e["protocol"] == "gemini" and (CORPUS / e["file"]).exists()]
SPLITS = [None, 1, 7, 64]


def decode_parts(
    entry: dict[str, Any], split: int | None = None, *, record: bool = True
) -> tuple[Any, str, Exception | None, list[Any]]:
    """Decode a recorded stream as the pipeline does: text from decode(), and the
    typed parts the codec recorded, drained after every event."""
    body = (CORPUS / entry["file"]).read_bytes()
    codec = GeminiCodec(record=record)
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
    except SteerError as exc:
        error = exc
    return codec.state, "".join(parts), error, events


def expected_usage(entry: dict[str, Any]) -> dict[str, int]:
    """The unified usage the manifest's last usageMetadata means: thoughts are output
    (as Google bills them); the prompt is everything else of totalTokenCount
    (promptTokenCount plus toolUsePromptTokenCount, which the manifest does not list)."""
    raw = entry["expected"]["usage"]
    completion = raw["candidatesTokenCount"] + (raw["thoughtsTokenCount"] or 0)
    return {
        "prompt_tokens": raw["totalTokenCount"] - completion,
        "completion_tokens": completion,
        "total_tokens": raw["totalTokenCount"],
    }


def test_the_gemini_corpus_is_intact() -> None:
    assert len(ENTRIES) == 9
    for entry in ENTRIES:
        body = (CORPUS / entry["file"]).read_bytes()
        assert hashlib.sha256(body).hexdigest() == entry["sha256"], entry["file"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
@pytest.mark.parametrize("split", SPLITS)
def test_gemini_stream_decodes_to_expected(entry: dict[str, Any], split: int | None) -> None:
    expected = entry["expected"]
    state, text, error, _ = decode_parts(entry, split, record=False)
    assert error is None, error
    assert text == expected["text"]
    assert state.finish_reason == expected["finish_reason"]
    assert state.done  # a finishReason, then the end of the body: complete
    want = expected_usage(entry)
    for key, value in want.items():
        assert state.usage[key] == value, key
    assert state.usage["prompt_tokens"] >= expected["usage"]["promptTokenCount"]
    if expected["usage"]["thoughtsTokenCount"] is not None:
        assert state.usage["reasoning_tokens"] == expected["usage"]["thoughtsTokenCount"]
    assert ("cache_info" in state.usage) == (
        expected["usage"]["cachedContentTokenCount"] is not None
    )
    assert state.reasoning_text == (expected.get("thinking_text") or "")
    calls = state.tool_calls
    assert [(c.name, c.args) for c in calls] == [
        (c["name"], c["arguments_json"]) for c in expected["tool_calls"]
    ]
    # Gemini sent no ids: the calls are numbered, and the ids made from the numbers.
    assert [c.id for c in calls] == [f"call_{i}" for i in range(len(calls))]
    assert [c.index for c in calls] == list(range(len(calls)))
    assert state.reason == ("tool_calls" if calls else "stop")
    assert state.model == entry["request"]["model"]
    assert state.response_id


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
@pytest.mark.parametrize("split", SPLITS)
def test_gemini_stream_events_match_expected(entry: dict[str, Any], split: int | None) -> None:
    expected = entry["expected"]
    state, _text, error, events = decode_parts(entry, split)
    assert error is None, error
    assert "".join(e.text for e in events if type(e) is TextDelta) == expected["text"]
    assert "".join(e.text for e in events if type(e) is ReasoningDelta) == (
        expected.get("thinking_text") or ""
    )
    want = [(c["name"], c["arguments_json"]) for c in expected["tool_calls"]]
    starts = [e for e in events if type(e) is ToolCallStart]
    ends = [e for e in events if type(e) is ToolCallEnd]
    assert [s.name for s in starts] == [w[0] for w in want]
    assert [(e.call.name, e.call.args) for e in ends] == want
    for index in range(len(want)):
        deltas = [e for e in events if type(e) is ToolCallDelta and e.index == index]
        # A whole call: one delta with all its arguments, between its start and end.
        assert len(deltas) == 1 and orjson.loads(deltas[0].arguments) == want[index][1]
        assert events.index(starts[index]) < events.index(deltas[0]) < events.index(ends[index])
    if state.reason != "tool_calls":
        assert not starts


def test_thought_signatures_are_kept_for_the_next_turn() -> None:
    by_file = {e["file"]: e for e in ENTRIES}
    state, *_ = decode_parts(by_file["gemini/function-call-thought-signature-gemini3.sse"])
    (call,) = state.tool_calls
    assert call.provider_data is not None
    signature = call.provider_data["gemini"]["thoughtSignature"]
    assert signature.startswith("EpwICpkIAXLI2nx") and len(signature) > 500
    assert "id" not in call.provider_data["gemini"]  # Gemini gave none: none is echoed
    assert call.to_openai()["steer"] == {"gemini": {"thoughtSignature": signature}}
    # A text part's signature (Vertex, code execution) is kept on the response.
    state, *_ = decode_parts(by_file["gemini/vertex-flex-tier.sse"])
    assert state.provider_data["gemini"]["thoughtSignature"].startswith("CiQBjz1r")
