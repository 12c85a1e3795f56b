"""Pure rules of issue 10: caller mistakes, redaction, caps, 408, prices."""

from __future__ import annotations

import datetime
import logging

import pytest

from steer_llm_sdk import ConfigurationError, SteerLLMClient
from steer_llm_sdk.errors import (
    APIStatusError,
    BadRequestError,
    RateLimitError,
    SteerError,
    redact,
    register_secret,
)
from steer_llm_sdk.models.response import StreamingResponse
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.pricing import compute_cost
from steer_llm_sdk.providers.base import error_for
from steer_llm_sdk.transport.http import backoff_delay, is_retryable

KEY = "sk-unit-hardening-0123456789abcdef"


def client() -> SteerLLMClient:
    return SteerLLMClient(api_keys={"openai": KEY, "anthropic": KEY})


# -- caller mistakes: typed errors naming the argument -----------------------------------
@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-3-haiku-20240307"])
@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"temperature": object()}, "temperature"),
        ({"metadata": {"when": {1, 2}}}, "metadata"),
        ({"extra_body": {"x": b"bytes"}}, "parameter x"),
        ({"extra_body": "not a dict"}, "extra_body must be a dict"),
        ({"extra_body": [("a", 1)]}, "extra_body must be a dict"),
        ({"stop": 5}, "stop=5 must be a string or a list of strings"),
        ({"stop": ["ok", 3]}, "list of strings"),
    ],
)
def test_bad_parameters_are_configuration_errors(model: str, kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        client().stream("Hi", model, **kwargs)


def test_content_that_is_not_json_names_the_message() -> None:
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "user", "content": "Hello", "name": datetime.date.today},
    ]
    with pytest.raises(ConfigurationError, match=r"messages\[1\] cannot be sent as JSON"):
        client().stream(messages, "gpt-4o-mini")
    # a content part's own fields are checked when the part is read, named
    bad = [{"role": "user", "content": [{"type": "text", "text": datetime.date.today}]}]
    with pytest.raises(ConfigurationError, match=r"messages\[0\]\.content\[0\]: a text part"):
        client().stream(bad, "gpt-4o-mini")


def test_json_serialisable_odd_values_still_pass() -> None:
    # orjson sends dates, tuples and dataclass-free dicts: those are not mistakes.
    client().stream(
        "Hi", "gpt-4o-mini", stop=("a", "b"), extra_body={"when": datetime.date(2026, 1, 1)}
    )


async def test_a_closed_client_raises_at_the_call() -> None:
    c = client()
    await c.aclose()
    with pytest.raises(ConfigurationError, match="closed SteerLLMClient"):
        c.stream("Hi", "gpt-4o-mini")
    with pytest.raises(ConfigurationError, match="closed"):
        await c.generate("Hi", "gpt-4o-mini")


# -- redaction: every field, before any cut -------------------------------------------------
def test_every_exposed_field_is_redacted() -> None:
    register_secret(KEY)
    error = APIStatusError(f"bad key {KEY}", request_id=KEY, body="x" * 480 + KEY)
    error.request_id = f"req-{KEY}"  # set later, as codecs may do
    for text in (str(error), repr(error), error.request_id, error.body, *map(str, error.args)):
        assert KEY[:8] not in str(text)


@pytest.mark.parametrize("cut", [6, 10, 20, len(KEY) - 1])
def test_a_key_cut_at_the_end_of_an_excerpt_is_redacted(cut: int) -> None:
    register_secret(KEY)
    for text in (f"HTTP 400: {KEY[:cut]}", f"not JSON: b'...{KEY[:cut]}'"):
        error = SteerError(text)
        assert KEY[:cut] not in str(error)
        assert "[REDACTED]" in str(error)


def test_a_short_known_key_inside_a_longer_key_leaves_nothing_of_it() -> None:
    """A client given a short key ("sk-ant" in a test, a prefix of a rotated key in
    life) must not turn another key into "[REDACTED]<the rest of the key>"."""
    register_secret("sk-ant")
    register_secret("zz-custom-key-01")
    register_secret("zz-custom-key-0123456789")  # both known: the longer goes whole
    text = redact("x sk-ant-api03-abcdefghijkl y zz-custom-key-0123456789 z")
    assert "abcdefghijkl" not in text and "23456789" not in text
    assert text.startswith("x [REDACTED] y [REDACTED]") and text.endswith(" z")


def test_key_shaped_strings_cut_short_are_redacted() -> None:
    assert "sk-pro" not in str(SteerError("echo: sk-pro"))
    assert "plain words stay" in str(SteerError("plain words stay"))


def test_a_response_never_shows_an_echoed_key() -> None:
    register_secret(KEY)
    response = StreamingResponse(
        text="hi",
        usage={},
        cost_usd=None,
        model="m",
        provider="p",
        finish_reason="stop",
        request_id=KEY,
        response_model=KEY,
    )
    assert KEY not in repr(response) and KEY not in str(response.to_dict())


# -- waits and caps ------------------------------------------------------------------------
def test_retry_after_is_capped_by_default_and_by_option() -> None:
    assert backoff_delay(1, 0.5, 3600) == 60.0
    assert backoff_delay(1, 0.0, 3600, max_retry_after=2.0) == 2.0
    assert backoff_delay(1, 0.0, 1.5) == 1.5


def test_a_batch_pause_is_capped_although_errors_carry_the_servers_retry_after() -> None:
    from steer_llm_sdk.batch.limits import ProviderGate

    gate = ProviderGate("p", concurrency=4, clock=lambda: 100.0)
    gate.on_rate_limited(4_000_000_000.0)  # Retry-After: Fri, 31 Dec 2099
    assert gate.paused_until == 160.0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"max_retry_after": -1}, "max_retry_after"),
        ({"max_retry_after": "60"}, "max_retry_after"),
        ({"max_event_bytes": 10}, "max_event_bytes"),
        ({"max_error_body_bytes": None}, "max_error_body_bytes"),
    ],
)
def test_limits_are_validated(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        StreamingOptions(**kwargs)


def test_408_is_classified_by_status() -> None:
    error = error_for(408, "timed out", error_type="invalid_request_error")
    assert type(error) is APIStatusError and not isinstance(error, BadRequestError)
    assert is_retryable(error)
    assert isinstance(error_for(429, "slow", retry_after=5.0), RateLimitError)


# -- prices only where the provider bills at them ------------------------------------------
USAGE = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}


@pytest.mark.parametrize("provider", ["mine", "mocksrv", "ollama", "vllm", "lmstudio", "llamacpp"])
def test_no_invented_price_on_other_servers(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="steer_llm_sdk"):
        assert compute_cost(provider, "gpt-4o-mini", USAGE) is None
    overrides = {f"{provider}/gpt-4o-mini": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}}
    assert compute_cost(provider, "gpt-4o-mini", USAGE, overrides) == pytest.approx(0.002)


def test_billing_providers_keep_their_prices() -> None:
    assert (compute_cost("openai", "gpt-4o-mini", USAGE) or 0) > 0
    assert (compute_cost("anthropic", "claude-3-haiku-20240307", USAGE) or 0) > 0
    assert compute_cost("local", "gemma-3-270m", USAGE) == 0.0
