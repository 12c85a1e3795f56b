"""The recorded corpus served byte for byte over a real socket, through the whole
client: the text of ``stream()`` and the response of ``stream_with_usage()`` match what
the official SDKs computed."""

from __future__ import annotations

from typing import Any

import pytest

from steer_llm_sdk import (
    Finish,
    SteerError,
    SteerLLMClient,
    StreamInterruptedError,
    TextDelta,
    ToolCallEnd,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.parts import FINISH_REASONS

from ..unit.test_codecs_corpus import CORPUS as CORPUS_DIR
from ..unit.test_codecs_corpus import ENTRIES, expected_calls, expected_usage
from .replay import ReplayServer

NO_RETRY = StreamingOptions(retry_on_connection_error=False, preserve_partial_response=True)


def model_for(entry: dict[str, Any]) -> str:
    return (
        "anthropic/claude-test" if entry["protocol"] == "anthropic-messages" else "openai/gpt-test"
    )


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["file"] for e in ENTRIES])
async def test_recorded_stream_through_the_client(entry: dict[str, Any]) -> None:
    body = (CORPUS_DIR / entry["file"]).read_bytes()
    expected = entry["expected"]
    async with ReplayServer(body=body) as server:
        async with SteerLLMClient(
            api_keys={"openai": "sk-test", "anthropic": "sk-ant-test"},
            base_urls={"openai": server.url + "/v1", "anthropic": server.url},
        ) as client:
            if expected.get("error"):
                with pytest.raises(SteerError) as info:
                    await client.stream_with_usage(
                        "hi", model_for(entry), streaming_options=NO_RETRY
                    )
                error = info.value
                if isinstance(error, StreamInterruptedError):
                    assert error.partial_text == (expected["text"] or "")
                return
            chunks = [c async for c in client.stream("hi", model_for(entry))]
            assert "".join(chunks) == (expected["text"] or "")
            assert all(chunks), "no empty chunks are yielded"
            response = await client.stream_with_usage("hi", model_for(entry))
            events = [p async for p in client.stream_events("hi", model_for(entry))]
    assert response.get_text() == (expected["text"] or "")
    assert response.raw_finish_reason == expected["finish_reason"]
    assert response.finish_reason in FINISH_REASONS
    # stream_events(): the same answer, as typed parts, ending with Finish.
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.reason == response.finish_reason
    assert finish.raw_reason == expected["finish_reason"]
    assert "".join(p.text for p in events if isinstance(p, TextDelta)) == response.text
    assert finish.response.usage == response.usage
    ended = [p.call for p in events if isinstance(p, ToolCallEnd)]
    want_calls = expected_calls(entry)
    if response.finish_reason == "length":
        assert ended == []
    else:
        assert [(c.id, c.name, c.arguments) for c in ended] == want_calls
    assert [(c.id, c.name, c.arguments) for c in finish.response.tool_calls] == want_calls
    want = expected_usage(entry)
    if want is not None:
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert response.usage[key] == want[key]
        assert "estimated" not in response.usage
    else:
        assert response.usage["estimated"] is True
    assert [c.arguments for c in response.tool_calls] == [c[2] for c in want_calls]


async def test_server_that_ignores_stream_true() -> None:
    """Some OpenAI-compatible servers answer stream=true with one JSON body."""
    body = (
        b'{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"Whole answer."},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    )
    async with ReplayServer(body=body, content_type="application/json") as server:
        async with SteerLLMClient(
            api_keys={"openai": "sk-test"}, base_urls={"openai": server.url + "/v1"}
        ) as client:
            chunks = [c async for c in client.stream("hi", "gpt-4o-mini")]
            response = await client.stream_with_usage("hi", "gpt-4o-mini")
    assert chunks == ["Whole answer."]
    assert response.usage["total_tokens"] == 5 and response.finish_reason == "stop"


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("openai/gpt-test", b'data: {"choices": [{"delta": "not an object"}]}\n\n'),
        ("openai/gpt-test", b'data: {"choices": [7]}\n\n'),
        (
            "anthropic/claude-test",
            b'event: content_block_delta\ndata: {"type": "content_block_delta"}\n\n',
        ),
    ],
)
async def test_wrong_shaped_events_are_invalid_responses(model: str, body: bytes) -> None:
    from steer_llm_sdk import InvalidResponseError

    async with ReplayServer(body=body) as server:
        async with SteerLLMClient(
            api_keys={"openai": "sk-test", "anthropic": "sk-ant-test"},
            base_urls={"openai": server.url + "/v1", "anthropic": server.url},
        ) as client:
            with pytest.raises(InvalidResponseError, match="unexpected shape"):
                await client.stream_with_usage("hi", model, streaming_options=NO_RETRY)


async def test_base_url_without_a_scheme_is_a_configuration_error() -> None:
    from steer_llm_sdk import ConfigurationError

    client = SteerLLMClient(api_keys={"openai": "sk"}, base_urls={"openai": "localhost:8080/v1"})
    with pytest.raises(ConfigurationError, match="must start with http"):
        await client.stream_with_usage("hi", "gpt-4o-mini")


async def test_usage_estimated_or_empty_when_the_provider_reports_none() -> None:
    body = (
        b'data: {"choices":[{"index":0,"delta":{"content":"Hello there"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    async with ReplayServer(body=body) as server:
        async with SteerLLMClient(
            api_keys={"openai": "sk-test"}, base_urls={"openai": server.url + "/v1"}
        ) as client:
            estimated = await client.stream_with_usage("Say hello", "gpt-4o-mini")
            off = await client.stream_with_usage(
                "Say hello",
                "gpt-4o-mini",
                streaming_options=StreamingOptions(enable_usage_aggregation=False),
            )
    assert estimated.usage["estimated"] is True
    assert estimated.usage["completion_tokens"] == 2  # "Hello there" in cl100k_base
    assert estimated.cost_usd is not None and estimated.cost_usd > 0
    assert off.usage == {} and off.cost_usd is None and off.text == "Hello there"


@pytest.mark.parametrize(
    ("name", "field"), [("content-logprobs", "content"), ("refusal-logprobs", "refusal")]
)
async def test_logprobs_reach_the_response_and_the_text_deltas(name: str, field: str) -> None:
    body = (CORPUS_DIR / "openai" / f"{name}.sse").read_bytes()
    async with ReplayServer(body=body) as server:
        async with SteerLLMClient(
            api_keys={"openai": "sk-test"}, base_urls={"openai": server.url + "/v1"}
        ) as client:
            response = await client.stream_with_usage("hi", "gpt-4o", logprobs=True, top_logprobs=2)
            parts = [p async for p in client.stream_events("hi", "gpt-4o", logprobs=True)]
        sent = server.requests[0][2]
    assert b'"logprobs":true' in sent and b'"top_logprobs":2' in sent
    assert response.logprobs is not None
    tokens = [item["token"] for item in response.logprobs[field]]
    if field == "content":
        assert "".join(tokens) == response.text == "Foo!"
        deltas = [p for p in parts if isinstance(p, TextDelta)]
        assert [d.logprobs[0]["token"] for d in deltas if d.logprobs] == tokens
        assert all(isinstance(i["logprob"], float) for i in response.logprobs["content"])
    else:
        assert "".join(tokens) == response.refusal
        assert response.finish_reason == "refusal"
