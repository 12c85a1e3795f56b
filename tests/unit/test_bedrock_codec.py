"""The Bedrock codecs without a socket: paths, error mapping and retry rules,
tool calls cut by max_tokens, usage, and where a bearer key may go."""

from __future__ import annotations

import json

import pytest

from steer_llm_sdk.errors import (
    APIStatusError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from steer_llm_sdk.providers.base import ChatRequest
from steer_llm_sdk.providers.bedrock import (
    BedrockConverseCodec,
    BedrockInvokeCodec,
    model_path,
    parse_bedrock_error,
)
from steer_llm_sdk.transport.http import is_retryable


def test_model_ids_are_encoded_as_botocore_encodes_them() -> None:
    utils = pytest.importorskip("botocore.utils")
    for model in (
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/x y",
        "amazon.nova-lite-v1:0",
    ):
        assert model_path(model, "converse") == f"/model/{utils.percent_encode(model)}/converse"


@pytest.mark.parametrize(
    ("kind", "cls", "status", "retried"),
    [
        ("throttlingException", RateLimitError, 429, True),
        ("serviceUnavailableException", ServerError, 503, True),
        ("internalServerException", ServerError, 500, True),
        ("modelTimeoutException", APIStatusError, 408, True),
        ("modelStreamErrorException", APIStatusError, 424, False),
        ("validationException", BadRequestError, 400, False),
    ],
)
def test_exception_frames_are_typed_with_their_retry_rule(
    kind: str, cls: type, status: int, retried: bool
) -> None:
    codec = BedrockConverseCodec()
    with pytest.raises(cls) as caught:
        codec.decode(f"exception:{kind}", json.dumps({"message": "boom"}).encode())
    assert caught.value.status_code == status
    assert is_retryable(caught.value) is retried
    assert f"{kind}: boom" in str(caught.value)


def test_http_errors_are_named_by_their_error_type() -> None:
    headers = {"x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/"}
    error = parse_bedrock_error(400, headers, b'{"message":"bad"}')
    assert isinstance(error, BadRequestError) and not is_retryable(error)
    assert str(error).startswith("ValidationException: bad")
    error = parse_bedrock_error(404, {}, b'{"__type":"x#ResourceNotFoundException","Message":"no"}')
    assert isinstance(error, NotFoundError) and "no" in str(error)
    error = parse_bedrock_error(403, {"x-amzn-errortype": "AccessDeniedException"}, b"{}")
    assert isinstance(error, PermissionDeniedError)
    error = parse_bedrock_error(429, {"retry-after": "2"}, b"not json")
    assert isinstance(error, RateLimitError) and error.retry_after == 2


def _events(*items: tuple[str, dict]) -> list[tuple[str, bytes]]:
    return [(name, json.dumps(obj).encode()) for name, obj in items]


def test_a_tool_call_cut_by_max_tokens_never_ends() -> None:
    codec = BedrockConverseCodec(record=True)
    start = {"toolUse": {"toolUseId": "t1", "name": "f"}}
    for name, data in _events(
        ("messageStart", {"role": "assistant"}),
        ("contentBlockStart", {"contentBlockIndex": 0, "start": start}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": '{"a": '}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "max_tokens"}),
        ("metadata", {"usage": {"inputTokens": 3, "outputTokens": 4}}),
    ):
        codec.decode(name, data)
    codec.finish()
    state = codec.state
    assert state.done and state.reason == "length"
    assert state.tool_calls[0].arguments == '{"a": '
    assert not [p for p in state.out or () if type(p).__name__ == "ToolCallEnd"]


def test_usage_adds_cache_reads_and_writes_and_stop_reasons_unify() -> None:
    codec = BedrockConverseCodec()
    usage = {"inputTokens": 5, "outputTokens": 7, "cacheReadInputTokens": 100,
             "cacheWriteInputTokens": 20}  # fmt: skip
    for name, data in _events(
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}),
        ("messageStop", {"stopReason": "guardrail_intervened"}),
        ("metadata", {"usage": usage}),
    ):
        codec.decode(name, data)
    assert codec.state.usage == {
        "prompt_tokens": 125,
        "completion_tokens": 7,
        "total_tokens": 132,
        "cache_info": {"cached_tokens": 100, "cache_creation_tokens": 20},
    }
    assert codec.state.reason == "content_filter"


def test_invoke_body_is_anthropic_without_model_and_stream() -> None:
    codec = BedrockInvokeCodec()
    request = ChatRequest(
        model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        messages=[{"role": "user", "content": "hi"}],
        params={"max_tokens": 10},
    )
    http = codec.encode(request, None)
    assert http.path.endswith("v1%3A0/invoke-with-response-stream")
    assert "model" not in http.json and "stream" not in http.json
    assert next(iter(http.json)) == "anthropic_version" and http.json["max_tokens"] == 10
    assert "x-api-key" not in http.headers and "anthropic-version" not in http.headers
    with pytest.raises(Exception, match="bytes"):
        codec.decode("chunk", b'{"bytes": "not base64!"}')


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://bedrock-runtime.us-east-1.amazonaws.com", True),
        ("http://127.0.0.1:8080", True),
        ("http://127.5.0.1", True),
        ("http://localhost:9", True),
        ("http://[::1]:9", True),
        ("http://10.0.0.1", False),
        ("http://bedrock-runtime.us-east-1.amazonaws.com", False),
    ],
)
def test_a_bearer_key_goes_only_to_tls_or_loopback(url: str, allowed: bool) -> None:
    from steer_llm_sdk.auth.aws import _bearer_allowed

    assert _bearer_allowed(url) is allowed
