"""Routing, keys, base URLs and bad input: clear typed errors before any I/O."""

from __future__ import annotations

import pytest

from steer_llm_sdk import ConfigurationError, SteerLLMClient
from steer_llm_sdk.catalog import resolve_model
from steer_llm_sdk.models.streaming import (
    HIGH_THROUGHPUT_OPTIONS,
    JSON_MODE_OPTIONS,
    LOW_LATENCY_OPTIONS,
    StreamingOptions,
)


@pytest.mark.parametrize(
    ("model", "provider", "name"),
    [
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("o1-preview", "openai", "o1-preview"),
        ("o3-mini", "openai", "o3-mini"),
        ("o4-mini", "openai", "o4-mini"),
        ("chatgpt-4o-latest", "openai", "chatgpt-4o-latest"),
        ("claude-3-haiku-20240307", "anthropic", "claude-3-haiku-20240307"),
        ("grok-4", "xai", "grok-4"),
        ("openai/claude-lookalike", "openai", "claude-lookalike"),
        ("anthropic/gpt-named-claude", "anthropic", "gpt-named-claude"),
        ("openrouter/anthropic/claude-sonnet-4.5", "openrouter", "anthropic/claude-sonnet-4.5"),
        ("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
        ("local/gemma-3-270m", "local", "gemma-3-270m"),
    ],
)
def test_routing(model: str, provider: str, name: str) -> None:
    route = resolve_model(model)
    assert (route.provider.name, route.model) == (provider, name)


def test_unknown_model_lists_how_to_name_a_provider() -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_model("llama-3-70b")
    message = str(info.value)
    assert "provider/model" in message and "anthropic" in message and "groq" in message


def test_missing_key_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    client = SteerLLMClient()
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        client.stream("hi", "claude-3-haiku-20240307")


def test_key_never_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-proj-SECRETSECRETSECRET1234"
    client = SteerLLMClient(openai_api_key=secret)
    assert secret not in repr(client)
    with pytest.raises(ConfigurationError) as info:
        client.stream([{"role": "wizard", "content": secret}], "gpt-4o-mini")
    assert secret not in str(info.value) and secret not in repr(info.value)


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "messages is empty"),
        ("", "empty string"),
        (None, "no prompt"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        ([{"role": "user", "content": 42}], "content must be a string or a list"),
        ([{"role": "user"}], "has no 'content'"),
        (
            [{"role": "user", "content": [{"text": "no type"}]}],
            "must be a string, a File or a dict",
        ),
        ([42], "must be a dict"),  # (a list of strings and Files is a prompt)
        (42, "must be a string or a list"),
    ],
)
def test_bad_messages(messages: object, fragment: str) -> None:
    client = SteerLLMClient(openai_api_key="sk-test")
    with pytest.raises(ConfigurationError, match=fragment):
        client.stream(messages, "gpt-4o-mini")


def test_return_usage_points_to_stream_with_usage() -> None:
    client = SteerLLMClient(openai_api_key="sk-test")
    with pytest.raises(TypeError, match="stream_with_usage"):
        client.stream("Hello, world!", "gpt-4o-mini", return_usage=True)
    with pytest.raises(TypeError, match="stream_with_usage"):
        client.stream("Hello, world!", "gpt-4o-mini", return_usage=False)


async def test_bad_response_format_and_options() -> None:
    client = SteerLLMClient(openai_api_key="sk-test")
    with pytest.raises(ConfigurationError, match="response_format"):
        await client.stream_with_usage("x", "gpt-4o-mini", response_format={"type": "yaml"})
    with pytest.raises(ConfigurationError, match="streaming_options must be a StreamingOptions"):
        await client.stream_with_usage("x", "gpt-4o-mini", streaming_options={"read_timeout": 1})
    with pytest.raises(ConfigurationError, match="max_tokens"):
        await client.generate("x", "gpt-4o-mini", max_tokens=0)
    with pytest.raises(ConfigurationError, match="needs a model"):
        await client.generate("x")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"aggregator_type": "bpe"}, "aggregator_type"),
        ({"read_timeout": 0}, "read_timeout"),
        ({"connection_timeout": -1.0}, "connection_timeout"),
        ({"total_timeout": "30"}, "total_timeout"),
        ({"max_reconnect_attempts": -1}, "max_reconnect_attempts"),
        ({"reconnect_delay": -0.5}, "reconnect_delay"),
        ({"on_delta": "print"}, "on_delta must be a function"),
        ({"on_error": 3}, "on_error must be a function"),
        ({"delta_batch_size": 0}, "delta_batch_size"),
    ],
)
def test_options_are_validated_at_construction(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        StreamingOptions(**kwargs)


def test_presets_are_immutable_and_derivable() -> None:
    with pytest.raises(AttributeError):
        JSON_MODE_OPTIONS.read_timeout = 1.0  # type: ignore[misc]
    assert JSON_MODE_OPTIONS.enable_json_stream_handler
    assert HIGH_THROUGHPUT_OPTIONS.coalesce_deltas and HIGH_THROUGHPUT_OPTIONS.delta_batch_size > 1
    assert LOW_LATENCY_OPTIONS.connection_timeout < StreamingOptions().connection_timeout
    derived = JSON_MODE_OPTIONS.replace(read_timeout=5.0)
    assert derived.read_timeout == 5.0 and JSON_MODE_OPTIONS.read_timeout == 120.0
    with pytest.raises(ConfigurationError):
        JSON_MODE_OPTIONS.replace(read_timeout=-1)


def test_provider_registered_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_LAB_BASE_URL", "http://10.0.0.5:8000/v1")
    route = resolve_model("my-lab/qwen3-8b")
    assert route.provider.name == "my-lab" and route.model == "qwen3-8b"
    assert route.provider.protocol == "openai-chat"
    assert route.provider.key_env == "MY_LAB_API_KEY" and not route.provider.key_required
    monkeypatch.delenv("MY_LAB_BASE_URL")
    with pytest.raises(ConfigurationError, match="NAME_BASE_URL"):
        resolve_model("my-lab/qwen3-8b")
