"""The recorded Gemini streams served byte for byte over a real socket, through the whole
client: ``stream()``, ``stream_with_usage()`` and ``stream_events()`` give the manifest's
text, finish reason, function calls and usage."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from steer_llm_sdk import Finish, ReasoningDelta, SteerLLMClient, TextDelta, ToolCallEnd
from steer_llm_sdk.parts import FINISH_REASONS

from ..unit.test_codecs_corpus import CORPUS
from ..unit.test_gemini_corpus import ENTRIES, expected_usage
from .replay import ReplayServer

KEY = "AIzaSyTEST-corpus-key-0000000000000000"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
async def test_recorded_gemini_stream_through_the_client(entry: dict[str, Any]) -> None:
    body = (CORPUS / entry["file"]).read_bytes()
    expected = entry["expected"]
    model = entry["request"]["model"]
    async with (
        ReplayServer(body=body) as server,
        SteerLLMClient(api_keys={"gemini": KEY}, base_urls={"gemini": server.url}) as client,
    ):
        chunks = [c async for c in client.stream("hi", model)]
        response = await client.stream_with_usage("hi", model)
        events = [p async for p in client.stream_events("hi", model)]
        path, headers, _ = server.requests[0]
    assert path == f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
    assert headers["x-goog-api-key"] == KEY and "authorization" not in headers
    assert "".join(chunks) == expected["text"] and all(chunks)
    assert response.text == expected["text"]
    assert response.raw_finish_reason == expected["finish_reason"]
    assert response.finish_reason in FINISH_REASONS
    assert response.finish_reason == ("tool_calls" if expected["tool_calls"] else "stop")
    want = expected_usage(entry)
    assert {k: response.usage[k] for k in want} == want
    assert "estimated" not in response.usage
    assert response.reasoning_text == (expected.get("thinking_text") or None)
    assert [(c.name, c.args) for c in response.tool_calls] == [
        (c["name"], c["arguments_json"]) for c in expected["tool_calls"]
    ]
    assert response.response_model == model and response.provider == "gemini"
    # cost from genai-prices, for the returned usage (None only for a model it lacks)
    if response.cost_usd is not None:
        assert response.cost_usd > 0
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == response.finish_reason
    assert finish.raw_reason == expected["finish_reason"]
    assert "".join(p.text for p in events if isinstance(p, TextDelta)) == expected["text"]
    assert "".join(p.text for p in events if isinstance(p, ReasoningDelta)) == (
        expected.get("thinking_text") or ""
    )
    ended = [p.call for p in events if isinstance(p, ToolCallEnd)]
    assert [(c.name, orjson.loads(c.arguments)) for c in ended] == [
        (c["name"], c["arguments_json"]) for c in expected["tool_calls"]
    ]
    assert finish.response.usage == response.usage
