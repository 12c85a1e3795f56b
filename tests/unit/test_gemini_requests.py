"""The Gemini codec's request side and error parsing, without a server."""

from __future__ import annotations

import json

import pytest

from steer_llm_sdk.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    RateLimitError,
    ServerError,
)
from steer_llm_sdk.providers.base import ChatRequest
from steer_llm_sdk.providers.gemini import GeminiCodec, convert_messages


def test_the_next_turn_carries_signatures_ids_and_results() -> None:
    messages = [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "steer": {"gemini": {"thoughtSignature": "text-sig"}},
            "tool_calls": [
                {
                    "id": "fc_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    "steer": {"gemini": {"thoughtSignature": "call-sig", "id": "fc_1"}},
                },
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "ping", "arguments": ""},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "fc_1", "content": '["cold", "windy"]'},
        {"role": "tool", "tool_call_id": "call_1", "content": "down", "is_error": True},
        {"role": "user", "content": "And tomorrow?"},
    ]
    system, contents = convert_messages(messages)
    assert system == []
    assert [c["role"] for c in contents] == ["user", "model", "user", "user"]
    assert contents[1]["parts"] == [
        {"text": "Let me check.", "thoughtSignature": "text-sig"},
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}, "id": "fc_1"},
            "thoughtSignature": "call-sig",
        },
        {"functionCall": {"name": "ping", "args": {}}},  # an id Gemini never gave: not sent
    ]
    assert contents[2]["parts"] == [
        {
            "functionResponse": {
                "name": "get_weather",
                "response": {"output": ["cold", "windy"]},
                "id": "fc_1",
            }
        },
        {"functionResponse": {"name": "ping", "response": {"error": "down"}}},
    ]


def test_encode_paths_headers_and_base_url() -> None:
    codec = GeminiCodec()
    request = ChatRequest(
        model="models/gemini-2.5-flash", messages=[{"role": "user", "content": "x"}]
    )
    http = codec.encode(request, "AIza-key")
    assert http.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert http.headers["x-goog-api-key"] == "AIza-key"
    request.stream = False
    assert codec.encode(request, None).path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert GeminiCodec.normalize_base_url("https://g.test/v1beta") == "https://g.test"
    assert GeminiCodec.can_continue("gemini-2.5-flash") is False
    with pytest.raises(ConfigurationError, match="content parts of type 'input_audio'"):
        codec.encode(
            ChatRequest(
                model="gemini-2.5-flash",
                messages=[{"role": "user", "content": [{"type": "input_audio"}]}],
            ),
            None,
        )


def error_body(code: int, status: str, **extra: object) -> bytes:
    return json.dumps({"error": {"code": code, "message": "m", "status": status, **extra}}).encode()


def test_error_bodies_become_typed_errors() -> None:
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]
    error = GeminiCodec.parse_error(429, {}, error_body(429, "RESOURCE_EXHAUSTED", details=retry))
    assert isinstance(error, RateLimitError) and error.retry_after == 37.0
    error = GeminiCodec.parse_error(503, {}, error_body(503, "UNAVAILABLE"))
    assert isinstance(error, ServerError) and "UNAVAILABLE" in str(error)
    # a 5xx stays a server error (retried) whatever its status name says
    assert isinstance(
        GeminiCodec.parse_error(500, {}, error_body(500, "INVALID_ARGUMENT")), ServerError
    )
    bad_key = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]
    error = GeminiCodec.parse_error(400, {}, error_body(400, "INVALID_ARGUMENT", details=bad_key))
    assert isinstance(error, AuthenticationError)
    error = GeminiCodec.parse_error(400, {}, b"<html>Bad gateway thing</html>")
    assert isinstance(error, BadRequestError) and "Bad gateway thing" in str(error)
