"""Every OpenAI Responses stream of the recorded corpus decodes to what the official
openai SDK computed from it (manifest.json's ``expected``), whole and split at 1, 7
and 64 bytes, as text and as typed parts."""

from __future__ import annotations

from typing import Any

import pytest

from steer_llm_sdk.parts import ReasoningDelta, TextDelta, ToolCallEnd, ToolCallStart
from steer_llm_sdk.providers.openai_responses import OpenAIResponsesCodec
from steer_llm_sdk.transport.sse import SSEDecoder

from .test_codecs_corpus import CORPUS, MANIFEST

ENTRIES = [e for e in MANIFEST if e["protocol"] == "openai-responses"]


def decode(entry: dict[str, Any], split: int | None) -> tuple[Any, str, list[Any]]:
    body = (CORPUS / entry["file"]).read_bytes()
    codec = OpenAIResponsesCodec(record=True)
    sse = SSEDecoder()
    out = codec.state.out
    assert out is not None
    texts: list[str] = []
    parts: list[Any] = []
    pieces = [body] if split is None else [body[i : i + split] for i in range(0, len(body), split)]
    events = [e for piece in pieces for e in sse.feed(piece)] + sse.close()
    for event, data in events:
        text = codec.decode(event, data)
        parts.extend(out)
        out.clear()
        if text:
            texts.append(text)
            parts.append(TextDelta(text))
    codec.finish()
    return codec.state, "".join(texts), parts


def test_the_responses_corpus_is_here() -> None:
    assert len(ENTRIES) == 7


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
@pytest.mark.parametrize("split", [None, 1, 7, 64])
def test_stream_decodes_to_expected(entry: dict[str, Any], split: int | None) -> None:
    expected = entry["expected"]
    state, text, parts = decode(entry, split)
    assert state.done
    assert text == expected["text"] == expected["text_from_deltas"]
    assert state.finish_reason == expected["finish_reason"]
    want_calls = [(c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]]
    assert [(c.id, c.name, c.arguments) for c in state.tool_calls] == want_calls
    assert state.reason == ("tool_calls" if want_calls else "stop")
    ends = [p.call for p in parts if isinstance(p, ToolCallEnd)]
    assert [(c.id, c.name, c.arguments) for c in ends] == want_calls
    starts = [p for p in parts if isinstance(p, ToolCallStart)]
    assert [(s.id, s.name) for s in starts] == [(c[0], c[1]) for c in want_calls]
    for call, raw in zip(state.tool_calls, expected["tool_calls"], strict=True):
        assert call.args == raw["arguments_json"]
    usage = expected["usage"]
    got = state.usage
    assert got["prompt_tokens"] == usage["input_tokens"]
    assert got["completion_tokens"] == usage["output_tokens"]
    assert got["total_tokens"] == usage["total_tokens"]
    assert got["cache_info"]["cached_tokens"] == usage["cached_tokens"]
    assert got["reasoning_tokens"] == usage["reasoning_tokens"]
    reasoning = "".join(p.text for p in parts if isinstance(p, ReasoningDelta))
    assert reasoning == state.reasoning_text
    if "reasoning" in expected["output_item_types"]:
        # the reasoning items are kept, in order, for the next turn
        kept = state.provider_data["openai_output"]
        assert [i["type"] for i in kept] == [
            t
            for t in expected["output_item_types"]
            if t in ("reasoning", "function_call", "message")
        ]
