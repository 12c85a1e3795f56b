"""What the codecs send, and how they read error responses."""

from __future__ import annotations

import httpx
import pytest

from steer_llm_sdk.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from steer_llm_sdk.providers.anthropic import AnthropicCodec
from steer_llm_sdk.providers.base import ChatRequest
from steer_llm_sdk.providers.openai_chat import OpenAIChatCodec

CACHED = [
    {"role": "system", "content": "You are helpful", "cache_control": {"type": "ephemeral"}},
    {"role": "user", "content": "Hello"},
]


def test_anthropic_maps_system_and_cache_control() -> None:
    http = AnthropicCodec().encode(ChatRequest("claude-3-haiku-20240307", CACHED), "sk-ant-x")
    assert http.path == "/v1/messages"
    assert http.headers["x-api-key"] == "sk-ant-x"
    assert http.headers["anthropic-version"] == "2023-06-01"
    body = http.json
    assert body["system"] == [
        {"type": "text", "text": "You are helpful", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["messages"] == [{"role": "user", "content": "Hello"}]
    assert body["max_tokens"] == 4096 and body["stream"] is True


def test_anthropic_params_mapping(caplog: pytest.LogCaptureFixture) -> None:
    request = ChatRequest(
        "claude-3-haiku-20240307",
        [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}],
        params={"max_tokens": 50, "stop": "END", "temperature": 0.2, "seed": 7, "top_p": 0.9},
    )
    with caplog.at_level("WARNING", logger="steer_llm_sdk"):
        body = AnthropicCodec().encode(request, None).json
    assert body["system"] == "a"
    assert body["max_tokens"] == 50 and body["stop_sequences"] == ["END"]
    assert body["temperature"] == 0.2 and body["top_p"] == 0.9
    assert "seed" not in body


def test_anthropic_user_cache_control_images_and_tools() -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
            "cache_control": {"type": "ephemeral"},
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "42"},
    ]
    body = AnthropicCodec().encode(ChatRequest("claude-3-haiku-20240307", messages), None).json
    first, second, third = body["messages"]
    assert first["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
        "cache_control": {"type": "ephemeral"},
    }
    assert second["content"] == [{"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}]
    assert third == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"}],
    }


def test_anthropic_json_object_prefills_where_the_model_allows() -> None:
    request = ChatRequest(
        "claude-3-haiku-20240307",
        [{"role": "user", "content": "data"}],
        params={"response_format": {"type": "json_object"}},
    )
    codec = AnthropicCodec()
    body = codec.encode(request, None).json
    assert body["messages"][-1] == {"role": "assistant", "content": "{"}
    assert "JSON" in body["system"] and codec.lead_text == "{"
    assert "response_format" not in body

    request.model = "claude-opus-4-6"
    codec = AnthropicCodec()
    body = codec.encode(request, None).json
    assert body["messages"][-1]["role"] == "user" and codec.lead_text == ""


def test_anthropic_json_schema_uses_structured_outputs() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = ChatRequest(
        "claude-sonnet-4-5",
        [{"role": "user", "content": "x"}],
        params={"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}},
    )
    body = AnthropicCodec().encode(request, None).json
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_anthropic_resume_prefix_replaces_the_prefill() -> None:
    request = ChatRequest(
        "claude-3-haiku-20240307",
        [{"role": "user", "content": "x"}],
        params={"response_format": {"type": "json_object"}},
        prefix='{"name": "La',
    )
    codec = AnthropicCodec()
    body = codec.encode(request, None).json
    assert body["messages"][-1] == {"role": "assistant", "content": '{"name": "La'}
    assert codec.lead_text == ""


def test_openai_request() -> None:
    request = ChatRequest(
        "gpt-4o-mini",
        CACHED,
        params={"max_tokens": 10, "temperature": 0.5, "seed": 3, "response_format": None},
        extra_body={"logprobs": True},
    )
    http = OpenAIChatCodec(max_tokens_field="max_completion_tokens").encode(request, "sk-x")
    assert http.path == "/chat/completions"
    assert http.headers["authorization"] == "Bearer sk-x"
    body = http.json
    assert body["messages"][0] == {"role": "system", "content": "You are helpful"}
    assert body["max_completion_tokens"] == 10 and "max_tokens" not in body
    assert body["stream_options"] == {"include_usage": True}
    assert body["logprobs"] is True and body["seed"] == 3 and "response_format" not in body
    compatible = OpenAIChatCodec().encode(request, None)
    assert compatible.json["max_tokens"] == 10 and "authorization" not in compatible.headers


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, b'{"error": {"message": "bad", "type": "invalid_request_error"}}', BadRequestError),
        (
            401,
            b'{"error": {"message": "no key", "type": "invalid_request_error"}}',
            AuthenticationError,
        ),
        (403, b"{}", PermissionDeniedError),
        (404, b'{"error": {"message": "no model"}}', NotFoundError),
        (422, b"not json", BadRequestError),
        (429, b'{"error": {"message": "slow down"}}', RateLimitError),
        (500, b'{"error": {"message": "oops", "type": "invalid_request_error"}}', ServerError),
        (529, b"{}", OverloadedError),
    ],
)
def test_openai_error_statuses(status: int, body: bytes, cls: type) -> None:
    headers = httpx.Headers({"x-request-id": "req_1", "retry-after": "3"})
    error = OpenAIChatCodec.parse_error(status, headers, body)
    assert type(error) is cls
    assert error.status_code == status and error.request_id == "req_1"
    if cls is RateLimitError:
        assert error.retry_after == 3.0  # type: ignore[attr-defined]


def test_anthropic_error_types() -> None:
    body = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'
    error = AnthropicCodec.parse_error(529, httpx.Headers({"request-id": "req_9"}), body)
    assert isinstance(error, OverloadedError) and error.request_id == "req_9"
    assert "Overloaded" in str(error)
    rate = AnthropicCodec.parse_error(
        429,
        httpx.Headers({"retry-after-ms": "1500"}),
        b'{"type":"error","error":{"type":"rate_limit_error","message":"r"}}',
    )
    assert isinstance(rate, RateLimitError) and rate.retry_after == 1.5


def test_openai_null_error_field_is_not_an_error() -> None:
    codec = OpenAIChatCodec()
    chunk = b'{"choices":[{"index":0,"delta":{"content":"hi"}}],"error":null}'
    assert codec.decode(None, chunk) == "hi"
    with pytest.raises(BadRequestError, match="boom"):
        codec.decode(None, b'{"error":{"message":"boom","type":"invalid_request_error"}}')
