"""Every example of docs/streaming-guide.md, run as written against the emulator over
real sockets, once with each protocol's model (OpenAI, Anthropic, Gemini: conftest.MODELS).

The client is configured only through the environment (keys and base URLs), as a
user following the guide would; the examples' code is copied verbatim apart from the
model name, which is the parameter."""

from __future__ import annotations

from typing import Any

import pytest
from genai_prices import Usage, calc_price

from steer_llm_sdk import SteerLLMClient, StreamInterruptedError
from steer_llm_sdk.models.streaming import (
    HIGH_THROUGHPUT_OPTIONS,
    JSON_MODE_OPTIONS,
    LOW_LATENCY_OPTIONS,
    StreamingOptions,
)
from steer_llm_sdk.testing import Emulator, Fault, Reply

STORY = ["Once", " upon", " a", " time", " there", " was", " a", " lighthouse."]


def expected_cost(model: str, usage: dict[str, Any]) -> float:
    cache = usage.get("cache_info") or {}
    return float(
        calc_price(
            Usage(
                input_tokens=usage["prompt_tokens"],
                output_tokens=usage["completion_tokens"],
                cache_read_tokens=cache.get("cached_tokens", 0),
                cache_write_tokens=cache.get("cache_creation_tokens", 0),
            ),
            model,
        ).total_price
    )


async def test_basic_streaming(
    guide_env: Emulator, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    guide_env.enqueue(Reply(chunks=STORY))
    client = SteerLLMClient()

    # Stream text chunks
    async for chunk in client.stream("Tell me a story", model=model):
        print(chunk, end="", flush=True)

    assert capsys.readouterr().out == "".join(STORY)
    sent = guide_env.requests[-1].json
    if guide_env.requests[-1].path.endswith("/responses"):
        assert sent["input"][-1] == {"role": "user", "content": "Tell me a story"}
        assert sent["stream"] is True
    elif model.startswith("gemini"):
        assert sent["contents"][-1] == {"role": "user", "parts": [{"text": "Tell me a story"}]}
        assert guide_env.requests[-1].path.endswith(":streamGenerateContent?alt=sse")
    else:
        assert sent["messages"][-1] == {"role": "user", "content": "Tell me a story"}
        assert sent["stream"] is True
    await client.aclose()


async def test_streaming_with_usage(
    guide_env: Emulator, client: SteerLLMClient, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    guide_env.enqueue(Reply(chunks=STORY, usage={"prompt_tokens": 12, "completion_tokens": 8}))
    # Get complete response with usage information
    response = await client.stream_with_usage("Explain quantum computing", model=model)

    print(f"Response: {response.get_text()}")
    print(f"Tokens: {response.usage['total_tokens']}")
    print(f"Cost: ${response.cost_usd:.4f}")

    out = capsys.readouterr().out
    assert f"Response: {''.join(STORY)}" in out and "Tokens: 20" in out
    assert response.usage["prompt_tokens"] == 12 and response.usage["completion_tokens"] == 8
    assert "estimated" not in response.usage
    assert response.cost_usd == pytest.approx(expected_cost(model, response.usage))
    assert response.cost_usd > 0
    assert response.model == model and response.provider in ("openai", "anthropic", "gemini")
    assert response.finish_reason in ("stop", "end_turn")
    assert response.time_to_first_token is not None
    assert 0 < response.time_to_first_token <= response.duration


async def test_configuration(guide_env: Emulator, client: SteerLLMClient, model: str) -> None:
    options = StreamingOptions(
        enable_usage_aggregation=True,
        aggregator_type="auto",  # auto, tiktoken, character
        enable_json_stream_handler=True,
        connection_timeout=5.0,
        read_timeout=30.0,
        retry_on_connection_error=True,
        max_reconnect_attempts=3,
    )

    response = await client.stream_with_usage(
        "Generate data", model=model, streaming_options=options
    )
    # "Generate data" yields prose from the emulator: the JSON handler keeps the text and
    # get_json() says clearly why it cannot parse it.
    assert response.get_text()
    from steer_llm_sdk import JSONParseError

    with pytest.raises(JSONParseError) as info:
        response.get_json()
    assert info.value.raw_text == response.get_text()


async def test_presets_json(guide_env: Emulator, client: SteerLLMClient, model: str) -> None:
    # Use preset for JSON streaming
    response = await client.stream_with_usage(
        "Generate product data",
        model=model,
        response_format={"type": "json_object"},
        streaming_options=JSON_MODE_OPTIONS,
    )
    assert response.get_json()["name"]
    sent = guide_env.requests[-1].json
    if model.startswith("gpt"):
        assert sent["response_format"] == {"type": "json_object"}
    elif guide_env.requests[-1].path.endswith("/responses"):
        assert sent["text"] == {"format": {"type": "json_object"}}
    elif model.startswith("gemini"):
        assert sent["generationConfig"] == {"responseMimeType": "application/json"}
    else:  # Anthropic: JSON instruction + "{" prefill, streamed back as the first chunk
        assert sent["messages"][-1] == {"role": "assistant", "content": "{"}
        assert response.get_text().startswith("{")
    assert JSON_MODE_OPTIONS.enable_json_stream_handler  # the preset was not mutated
    for preset in (HIGH_THROUGHPUT_OPTIONS, LOW_LATENCY_OPTIONS):
        again = await client.stream_with_usage("Hi", model=model, streaming_options=preset)
        assert again.get_text()


async def test_event_callbacks(
    guide_env: Emulator, client: SteerLLMClient, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    guide_env.enqueue(Reply(chunks=STORY, usage={"prompt_tokens": 5, "completion_tokens": 8}))
    events: list[tuple[str, Any]] = []

    async def on_start():
        print("Stream started")
        events.append(("start", None))

    async def on_delta(text: str):
        print(f"Received: {text}")
        events.append(("delta", text))

    async def on_usage(usage: dict):
        print(f"Usage: {usage}")
        events.append(("usage", usage))

    async def on_complete(final_text: str):
        print(f"Complete: {final_text}")
        events.append(("complete", final_text))

    async def on_error(error: Exception):
        print(f"Error: {error}")
        events.append(("error", error))

    options = StreamingOptions(
        on_start=on_start,
        on_delta=on_delta,
        on_usage=on_usage,
        on_complete=on_complete,
        on_error=on_error,
    )

    await client.stream_with_usage("Tell me a joke", model=model, streaming_options=options)

    kinds = [kind for kind, _ in events]
    assert kinds == ["start"] + ["delta"] * len(STORY) + ["usage", "complete"]
    assert [v for k, v in events if k == "delta"] == STORY
    assert events[-2][1]["total_tokens"] == 13
    assert events[-1][1] == "".join(STORY)
    out = capsys.readouterr().out
    assert out.startswith("Stream started\nReceived: Once\n")


async def test_json_mode_streaming(
    guide_env: Emulator, client: SteerLLMClient, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    response = await client.stream_with_usage(
        "Generate a product listing with name, price, and description",
        model=model,
        response_format={"type": "json_object"},
        streaming_options=JSON_MODE_OPTIONS,
    )

    # Access parsed JSON
    data = response.get_json()
    print(f"Product: {data['name']} - ${data['price']}")
    assert capsys.readouterr().out == "Product: Aurora Desk Lamp - $49.99\n"


async def test_retry_configuration(
    guide_env: Emulator, client: SteerLLMClient, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    guide_env.enqueue(
        Reply(status=503),
        Reply(fault=Fault.drop_after(0)),
        Reply(chunks=STORY),
    )
    options = StreamingOptions(
        retry_on_connection_error=True,
        max_reconnect_attempts=3,
        reconnect_delay=1.0,
        preserve_partial_response=True,
    )
    options = options.replace(reconnect_delay=0.01)  # keep the test fast

    try:
        response = await client.stream_with_usage(
            "Long running task", model=model, streaming_options=options
        )
    except Exception as e:
        print(f"Streaming failed after retries: {e}")
        raise
    assert response.get_text() == "".join(STORY)
    assert response.attempts == 3 and response.resumptions == 0


async def test_retries_exhausted_keep_partial_text(
    guide_env: Emulator, client: SteerLLMClient, model: str
) -> None:
    guide_env.enqueue(
        Reply(chunks=STORY, fault=Fault.drop_after(3)),
        Reply(status=503),
    )
    options = StreamingOptions(
        retry_on_connection_error=True,
        max_reconnect_attempts=1,
        reconnect_delay=0.01,
        preserve_partial_response=True,
    )
    if not model.startswith("claude"):
        # OpenAI's own API and Gemini cannot continue an answer: the error carries what came.
        with pytest.raises(StreamInterruptedError) as info:
            await client.stream_with_usage(
                "Long running task", model=model, streaming_options=options
            )
        assert info.value.partial_text == "".join(STORY[:3])
        assert info.value.partial_usage["completion_tokens"] > 0
        assert info.value.partial_usage["estimated"] is True
    else:
        # Anthropic can: the resumption is refused here (503, no retries left).
        with pytest.raises(StreamInterruptedError) as info:
            await client.stream_with_usage(
                "Long running task", model=model, streaming_options=options
            )
        assert info.value.partial_text == "".join(STORY[:3])


async def test_timeout_handling(guide_env: Emulator, client: SteerLLMClient, model: str) -> None:
    options = StreamingOptions(
        connection_timeout=5.0,  # Initial connection
        read_timeout=30.0,  # Between chunks
        total_timeout=300.0,  # Overall limit
    )
    response = await client.stream_with_usage("Hi", model=model, streaming_options=options)
    assert response.get_text()


async def test_openai_provider_specific(guide_env: Emulator, client: SteerLLMClient) -> None:
    guide_env.enqueue(Reply(chunks=STORY, usage={"prompt_tokens": 7, "completion_tokens": 8}))
    response = await client.stream_with_usage(
        "Generate code",
        model="gpt-4",
        streaming_options=StreamingOptions(
            enable_usage_aggregation=False  # OpenAI provides usage in stream
        ),
    )
    assert response.usage["total_tokens"] == 15 and "estimated" not in response.usage
    assert guide_env.requests[-1].json["stream_options"] == {"include_usage": True}
    assert response.cost_usd == pytest.approx(expected_cost("gpt-4", response.usage))


@pytest.mark.parametrize("system", ["You are helpful", "You are helpful. " + "House rules. " * 700])
async def test_anthropic_with_caching(
    guide_env: Emulator, client: SteerLLMClient, capsys: pytest.CaptureFixture[str], system: str
) -> None:
    async def call() -> Any:
        return await client.stream_with_usage(
            messages=[
                {
                    "role": "system",
                    "content": system,
                    "cache_control": {"type": "ephemeral"},
                },
                {"role": "user", "content": "Hello"},
            ],
            model="claude-3-haiku-20240307",
        )

    first = await call()
    response = await call()

    # Check cache usage
    if response.usage.get("cache_info"):
        print(f"Cached tokens: {response.usage['cache_info']['cached_tokens']}")

    sent = guide_env.requests[-1].json
    assert sent["system"] == [
        {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
    ]
    cached = response.usage["cache_info"]["cached_tokens"]
    assert capsys.readouterr().out == f"Cached tokens: {cached}\n"
    if len(system) < 4 * 2048:
        # The guide's own prompt is under Claude 3 Haiku's minimum cacheable length
        # (2,048 tokens): the API caches nothing and says so, as the emulator does.
        assert cached == 0 == first.usage["cache_info"]["cache_creation_tokens"]
        return
    assert first.usage["cache_info"]["cache_creation_tokens"] > 0
    assert cached > 0
    # One meaning of prompt_tokens: cached tokens are part of it.
    assert response.usage["prompt_tokens"] >= cached
    assert response.cost_usd == pytest.approx(
        expected_cost("claude-3-haiku-20240307", response.usage)
    )
    assert response.cost_usd < first.cost_usd  # reads are cheaper than writes


async def test_migration_before_raises(client: SteerLLMClient, model: str) -> None:
    with pytest.raises(TypeError, match="stream_with_usage"):
        # Old way - using return_usage parameter
        response = await client.stream(  # type: ignore[misc]
            "Hello, world!",
            model,
            return_usage=True,  # Deprecated
        )
        del response


async def test_migration_after(
    guide_env: Emulator, client: SteerLLMClient, model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    guide_env.enqueue(Reply(chunks=STORY), Reply(chunks=STORY))
    # For pure streaming (yields chunks)
    async for chunk in client.stream("Hello, world!", model):
        print(chunk, end="")

    # For streaming with usage data (awaitable)
    response = await client.stream_with_usage("Hello, world!", model)
    print(response.get_text())
    print(response.usage)
    out = capsys.readouterr().out
    assert out.startswith("".join(STORY) + "".join(STORY) + "\n{'prompt_tokens': ")


async def test_migration_steps(guide_env: Emulator, client: SteerLLMClient, model: str) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    guide_env.enqueue(Reply(chunks=STORY), Reply(chunks=STORY))
    # After
    response = await client.stream_with_usage(messages, model)
    assert response.usage["total_tokens"] > 0

    # After (more efficient)
    text_chunks = []
    async for chunk in client.stream(messages, model):
        text_chunks.append(chunk)
    text = "".join(text_chunks)
    assert text == response.get_text() == "".join(STORY)


async def test_generate_has_the_same_shape(
    guide_env: Emulator, client: SteerLLMClient, model: str
) -> None:
    guide_env.enqueue(Reply(chunks=STORY, usage={"prompt_tokens": 6, "completion_tokens": 8}))
    events: list[str] = []
    options = StreamingOptions(
        on_start=lambda: events.append("start"),
        on_usage=lambda u: events.append("usage"),
        on_complete=lambda t: events.append("complete"),
    )
    response = await client.generate("Hi", model, streaming_options=options)
    assert response.get_text() == "".join(STORY) and response.usage["total_tokens"] == 14
    assert response.cost_usd == pytest.approx(expected_cost(model, response.usage))
    assert events == ["start", "usage", "complete"]
    assert "stream" not in guide_env.requests[-1].json or not guide_env.requests[-1].json["stream"]
    data = await client.generate(
        "Product",
        model,
        response_format={"type": "json_object"},
        streaming_options=JSON_MODE_OPTIONS,
    )
    assert data.get_json()["price"] == 49.99


async def test_client_price_overrides(guide_env: Emulator) -> None:
    from steer_llm_sdk.pricing import PriceOverride

    guide_env.enqueue(Reply(chunks=STORY, usage={"prompt_tokens": 1000, "completion_tokens": 500}))
    async with SteerLLMClient(
        prices={"openai/gpt-4o-mini": PriceOverride(input_per_mtok=10.0, output_per_mtok=20.0)}
    ) as client:
        response = await client.stream_with_usage("Hi", "gpt-4o-mini")
    assert response.cost_usd == pytest.approx((1000 * 10.0 + 500 * 20.0) / 1_000_000)
