"""The per-model price rates (pricing._rates_for): the same cost as genai-prices' full
calculation to the last digit, and never in the way of a price that changed."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import pytest
from genai_prices import data_snapshot
from genai_prices.types import ModelPrice

from steer_llm_sdk import SteerLLMClient, pricing
from steer_llm_sdk.pricing import PriceOverride, compute_cost, set_price
from steer_llm_sdk.testing import Emulator


def usage(prompt: int, completion: int, read: int = 0, write: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cache_info": {"cached_tokens": read, "cache_creation_tokens": write},
    }


def full_calculation(provider: str, model: str, use: dict[str, Any]) -> float | None:
    """compute_cost as it was before the rates: genai-prices on every call."""
    saved = pricing._rates_for
    pricing._rates_for = lambda *_: None  # type: ignore[assignment]
    try:
        return compute_cost(provider, model, use)
    finally:
        pricing._rates_for = saved


@pytest.fixture(autouse=True)
def fresh_rates() -> Iterator[None]:
    pricing._rates.clear()
    yield
    pricing._rates.clear()
    data_snapshot.set_custom_snapshot(None)


def test_every_priced_model_costs_the_same_to_the_last_digit() -> None:
    # Every model genai-prices lists for the SDK's providers, usages from empty to past
    # the 200k tiers, with and without cache reads and writes: float-equal, not approx.
    names: dict[str, str] = {}
    for name, provider_id in pricing._PROVIDER_IDS.items():
        if provider_id is not None:
            names.setdefault(provider_id, name)
    rng = random.Random(20)
    checked = by_rates = 0
    for provider in data_snapshot.get_snapshot().providers:
        name = names.get(provider.id)
        if name is None:
            continue
        for model in provider.models:
            for _ in range(4):
                prompt = rng.choice([0, 9, 1_500, 199_999, 250_000]) + rng.randrange(500)
                read = rng.randrange(prompt + 1) if rng.random() < 0.5 else 0
                write = rng.randrange(prompt - read + 1) if rng.random() < 0.5 else 0
                use = usage(prompt, rng.randrange(30_000), read, write)
                expected = full_calculation(name, model.id, use)
                assert compute_cost(name, model.id, use) == expected, (name, model.id, use)
                checked += 1
                by_rates += pricing._rates.get((provider.id, model.id), (None, None))[1] is not None
    assert checked > 1000
    assert by_rates > checked // 2  # most models are priced from their rates


def test_rates_are_worked_out_once_and_used() -> None:
    first = compute_cost("openai", "gpt-4o-mini", usage(1_000_000, 1_000_000, read=400_000))
    entry = pricing._rates[("openai", "gpt-4o-mini")]
    assert entry[1] is not None
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per MTok
    assert first == pytest.approx(0.6 * 0.15 + 0.4 * 0.075 + 0.60)
    assert compute_cost("openai", "gpt-4o-mini", usage(11, 8)) == full_calculation(
        "openai", "gpt-4o-mini", usage(11, 8)
    )
    assert pricing._rates[("openai", "gpt-4o-mini")] is entry


def test_tiered_and_dated_prices_take_the_full_calculation() -> None:
    # gemini-2.5-pro costs more per token past 200k prompt tokens: no flat rates.
    small = compute_cost("gemini", "gemini-2.5-pro", usage(1_000, 0))
    large = compute_cost("gemini", "gemini-2.5-pro", usage(300_000, 0))
    assert pricing._rates[("google", "gemini-2.5-pro")][1] is None
    assert small is not None and large is not None
    assert large / 300 > small  # the higher tier, as genai-prices prices it
    assert large == full_calculation("gemini", "gemini-2.5-pro", usage(300_000, 0))


def test_more_cache_than_prompt_takes_the_full_calculation() -> None:
    odd = usage(100, 10, read=80, write=50)  # a server's odd figures: as before
    assert compute_cost("anthropic", "claude-3-haiku-20240307", odd) == full_calculation(
        "anthropic", "claude-3-haiku-20240307", odd
    )


def test_prices_the_user_sets_after_the_rates_win() -> None:
    use = usage(1_000_000, 1_000_000)
    data_price = compute_cost("openai", "gpt-4o-mini", use)
    assert pricing._rates[("openai", "gpt-4o-mini")][1] is not None
    overrides = {"gpt-4o-mini": PriceOverride(input_per_mtok=1.0, output_per_mtok=2.0)}
    assert compute_cost("openai", "gpt-4o-mini", use, overrides) == 3.0
    set_price("gpt-4o-mini", input_per_mtok=5.0, output_per_mtok=5.0, provider="openai")
    try:
        assert compute_cost("openai", "gpt-4o-mini", use) == 10.0
    finally:
        pricing.clear_prices()
    assert compute_cost("openai", "gpt-4o-mini", use) == data_price


def test_new_price_data_is_not_masked_by_old_rates() -> None:
    # Updated price data (genai-prices' UpdatePrices installs a new snapshot): the
    # rates are worked out again from it.
    use = usage(1_000_000, 0)
    assert compute_cost("openai", "gpt-4o-mini", use) == pytest.approx(0.15)
    bundled = data_snapshot.get_snapshot()
    providers = copy.deepcopy(bundled.providers)
    openai = next(p for p in providers if p.id == "openai")
    model = next(m for m in openai.models if m.id == "gpt-4o-mini")
    assert isinstance(model.prices, ModelPrice)
    model.prices.input_mtok = type(model.prices.input_mtok)("0.5")
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=providers, from_auto_update=True)
    )
    assert compute_cost("openai", "gpt-4o-mini", use) == pytest.approx(0.5)
    data_snapshot.set_custom_snapshot(None)
    assert compute_cost("openai", "gpt-4o-mini", use) == pytest.approx(0.15)


async def test_client_prices_win_over_rates_on_a_real_call() -> None:
    async with Emulator() as emu:
        plain = SteerLLMClient(api_keys={"openai": "k"}, base_urls={"openai": emu.openai_base_url})
        priced = SteerLLMClient(
            api_keys={"openai": "k"},
            base_urls={"openai": emu.openai_base_url},
            prices={"openai/gpt-4o-mini": PriceOverride(input_per_mtok=1e6, output_per_mtok=0)},
        )
        async with plain, priced:
            first = await plain.generate("Hello there", model="gpt-4o-mini", max_tokens=5)
            assert first.cost_usd == full_calculation("openai", "gpt-4o-mini", first.usage)
            second = await priced.generate("Hello there", model="gpt-4o-mini", max_tokens=5)
            assert second.cost_usd == float(second.usage["prompt_tokens"])
