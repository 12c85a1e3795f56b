"""Cost from usage (genai-prices, cache-aware, overrides) and token estimates."""

from __future__ import annotations

import logging

import pytest

from steer_llm_sdk import ConfigurationError, pricing
from steer_llm_sdk.pricing import PriceOverride, compute_cost, set_price
from steer_llm_sdk.streaming import estimate
from steer_llm_sdk.streaming.estimate import count_tokens, estimate_usage


def usage(prompt: int, completion: int, read: int = 0, write: int = 0) -> dict:
    u = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if read or write:
        u["cache_info"] = {"cached_tokens": read, "cache_creation_tokens": write}
    return u


def test_anthropic_cache_reads_and_writes_priced_as_billed() -> None:
    # claude-3-haiku: $0.25 input, $1.25 output, $0.03 cache read, $0.30 cache write per MTok
    plain = compute_cost("anthropic", "claude-3-haiku-20240307", usage(1_000_000, 0))
    assert plain == pytest.approx(0.25)
    mixed = compute_cost(
        "anthropic",
        "claude-3-haiku-20240307",
        usage(1_000_000, 1_000_000, read=600_000, write=300_000),
    )
    assert mixed == pytest.approx(0.1 * 0.25 + 0.6 * 0.03 + 0.3 * 0.30 + 1.25)


def test_openai_cached_tokens_are_cheaper() -> None:
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per MTok
    cost = compute_cost(
        "openai", "gpt-4o-mini-2024-07-18", usage(1_000_000, 1_000_000, read=500_000)
    )
    assert cost == pytest.approx(0.5 * 0.15 + 0.5 * 0.075 + 0.60)


def test_unknown_model_is_none_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="steer_llm_sdk"):
        assert compute_cost("openai", "gpt-imaginary-9", usage(10, 10)) is None
        assert compute_cost("openai", "gpt-imaginary-9", usage(10, 10)) is None
    warnings = [r for r in caplog.records if "gpt-imaginary-9" in r.getMessage()]
    assert len(warnings) == 1 and "set_price" in warnings[0].getMessage()


def test_overrides_win_and_local_is_free() -> None:
    overrides = {"gpt-4o-mini": PriceOverride(input_per_mtok=1.0, output_per_mtok=2.0)}
    assert compute_cost("openai", "gpt-4o-mini", usage(1_000_000, 1_000_000), overrides) == 3.0
    by_dict = {"openai/gpt-4o-mini": {"input_per_mtok": 1.0, "output_per_mtok": 0.0}}
    assert compute_cost("openai", "gpt-4o-mini", usage(2_000_000, 5), by_dict) == 2.0
    set_price("my-model", input_per_mtok=2.0, output_per_mtok=4.0, cache_read_per_mtok=0.5)
    try:
        cost = compute_cost("vllm", "my-model", usage(1_000_000, 1_000_000, read=1_000_000))
        assert cost == pytest.approx(0.5 + 4.0)
    finally:
        pricing.clear_prices()
    assert compute_cost("local", "gemma-3-270m", usage(100, 100)) == 0.0


def test_xai_and_compatible_providers_price() -> None:
    assert compute_cost("xai", "grok-4", usage(1000, 1000)) > 0
    assert compute_cost("groq", "llama-3.3-70b-versatile", usage(1000, 1000)) > 0


def test_tiktoken_counts_offline() -> None:
    assert count_tokens("hello world", "gpt-4o-mini", "tiktoken") == (2, "tiktoken")
    assert count_tokens("", "gpt-4o-mini", "tiktoken") == (0, "tiktoken")
    assert count_tokens("hello world", "gpt-4o-mini", "auto")[1] == "tiktoken"


def test_character_heuristic() -> None:
    assert count_tokens("a" * 400, "m", "character") == (100, "character")
    assert count_tokens("漢字かな", "m", "character") == (4, "character")  # dense scripts
    assert count_tokens("", "m", "character") == (0, "character")


def test_tiktoken_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate, "_encoder", None)
    monkeypatch.setattr(estimate, "_encoder_missing", True)
    with pytest.raises(ConfigurationError, match=r"steer-llm-sdk\[tokenizers\]"):
        count_tokens("hi", "m", "tiktoken")
    assert count_tokens("hello world", "m", "auto") == (3, "character")  # auto falls back


def test_estimate_usage_shape() -> None:
    messages = [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ]
    u = estimate_usage(messages, "Hello there", "gpt-4o-mini", "tiktoken")
    assert u["estimated"] is True and u["completion_tokens"] == 2
    assert u["prompt_tokens"] >= 3 + 2 * 4 and u["total_tokens"] == u["prompt_tokens"] + 2
