"""Cost in USD from the SDK's unified usage, via the maintained ``genai-prices`` data.

``genai-prices`` computes offline from the snapshot bundled with the installed version
(the SDK never calls its auto-update). Its ``input_tokens`` counts all input tokens,
cache reads and writes included, exactly like the SDK's ``prompt_tokens``, so the
mapping is direct: ``prompt_tokens → input_tokens``, ``cache_info.cached_tokens →
cache_read_tokens``, ``cache_info.cache_creation_tokens → cache_write_tokens``,
``completion_tokens → output_tokens``. The library prices each kind at its own rate.

User prices win over the data: per client (``SteerLLMClient(prices={...})``) or for
the whole process (:func:`set_price`). An unknown model gives ``None`` and one warning;
never a made-up number. Local models cost 0.0.

Prices come from the data only for the providers that bill at them (``_PROVIDER_IDS``:
OpenAI, Anthropic, xAI, Groq, ...). A model on any other server (one registered with
``providers=``/``NAME_BASE_URL``, or the ollama/vllm/lmstudio/llamacpp presets) costs
``None`` unless the user gave it a price: a local server or a proxy that happens to
serve a model named ``gpt-4o-mini`` does not bill OpenAI's price.

genai-prices takes about 0.2 ms a call; a model whose price is a flat set of per-token
rates (no tiers by prompt size, no dated or time-of-day prices) has its rates worked
out once per price data (:func:`_rates_for`, exact Decimals, checked on two usages),
and its cost is their sum: the same float as the full calculation, in about 3 µs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PriceOverride", "clear_prices", "compute_batch_cost", "compute_cost", "set_price"]

# The providers' published batch discount (OpenAI Batch API, Anthropic Message Batches,
# Gemini batch mode: 50% of the standard price), used where genai-prices has no batch
# price for a model and for prices the user set.
BATCH_DISCOUNT = 0.5

logger = logging.getLogger("steer_llm_sdk")

# The SDK's provider names → genai-prices provider ids (None: match by model name).
_PROVIDER_IDS: dict[str, str | None] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "xai": "x-ai",
    "groq": "groq",
    "openrouter": "openrouter",
    "deepseek": "deepseek",
    "mistral": "mistral",
    "together": "together",
    "bedrock": "aws",
    "vertex": "google",  # Vertex AI: Gemini at Google's prices, Claude at Anthropic's
}
# Clouds whose model names say nothing of the model (an Azure deployment): priced only
# when the caller names the model behind it (pricing_model=, pricing_models=).
_NAMED_ONLY: dict[str, str] = {"azure": "azure"}
_FREE_PROVIDERS = frozenset({"local"})


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """Prices in USD per million tokens. Cache prices default to the input price."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None
    cache_write_per_mtok: float | None = None

    def cost(self, usage: Mapping[str, Any]) -> float:
        prompt, read, write, completion = _counts(usage)
        uncached = max(0, prompt - read - write)
        read_price = (
            self.input_per_mtok if self.cache_read_per_mtok is None else self.cache_read_per_mtok
        )
        write_price = (
            self.input_per_mtok if self.cache_write_per_mtok is None else self.cache_write_per_mtok
        )
        return (
            uncached * self.input_per_mtok
            + read * read_price
            + write * write_price
            + completion * self.output_per_mtok
        ) / 1_000_000


_overrides: dict[str, PriceOverride] = {}
_warned: set[tuple[str, str]] = set()


def set_price(
    model: str,
    *,
    input_per_mtok: float,
    output_per_mtok: float,
    cache_read_per_mtok: float | None = None,
    cache_write_per_mtok: float | None = None,
    provider: str | None = None,
) -> None:
    """Set the price of ``model`` (optionally only for ``provider``) for this process."""
    key = f"{provider}/{model}" if provider else model
    _overrides[key] = PriceOverride(
        input_per_mtok, output_per_mtok, cache_read_per_mtok, cache_write_per_mtok
    )


def clear_prices() -> None:
    """Forget every price set with :func:`set_price`."""
    _overrides.clear()


def _counts(usage: Mapping[str, Any]) -> tuple[int, int, int, int]:
    cache = usage.get("cache_info") or {}
    return (
        int(usage.get("prompt_tokens") or 0),
        int(cache.get("cached_tokens") or 0),
        int(cache.get("cache_creation_tokens") or 0),
        int(usage.get("completion_tokens") or 0),
    )


def _find_override(
    provider: str, model: str, overrides: Mapping[str, Any] | None
) -> PriceOverride | None:
    for table in (overrides or {}, _overrides):
        for key in (f"{provider}/{model}", model):
            found = table.get(key)
            if found is not None:
                if isinstance(found, Mapping):
                    found = PriceOverride(**found)
                return found
    return None


def compute_cost(
    provider: str,
    model: str,
    usage: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    priced_as: str | None = None,
) -> float | None:
    """USD cost of ``usage``; None when the price of the model is not known.
    ``priced_as``: the model to price (the model behind an Azure deployment)."""
    override = _find_override(provider, model, overrides)
    if override is None and priced_as:
        override = _find_override(provider, priced_as, overrides)
    if override is not None:
        return override.cost(usage)
    if provider in _FREE_PROVIDERS:
        return 0.0
    if provider in _NAMED_ONLY:
        if not priced_as:
            _warn_once(
                provider,
                model,
                f"cost_usd is None for {provider}/{model}: a deployment's name does not say "
                "which model it serves. Name it with pricing_model='gpt-4o-mini' (per call) "
                f"or SteerLLMClient(pricing_models={{'{provider}/{model}': ...}}), or prices=",
            )
            return None
        provider_id: str | None = _NAMED_ONLY[provider]
        model = priced_as
    elif priced_as:
        model = priced_as
        provider_id = _PROVIDER_IDS.get(provider)
    else:
        provider_id = _PROVIDER_IDS.get(provider)
    if provider == "vertex":
        model = model.partition("@")[0]  # claude-sonnet-4-5@20250929: the version after @
    if provider not in _PROVIDER_IDS and provider not in _NAMED_ONLY:
        _warn_once(
            provider,
            model,
            f"cost_usd is None for {provider}/{model}: {provider} is a server whose "
            "prices the SDK cannot know. Set one with steer_llm_sdk.pricing.set_price("
            f"{model!r}, provider={provider!r}, input_per_mtok=..., output_per_mtok=...) "
            "or SteerLLMClient(prices=...)",
        )
        return None
    prompt, read, write, completion = _counts(usage)
    if read + write <= prompt:
        rates = _rates_for(model, provider_id)
        if rates is not None:
            return rates.cost(prompt, read, write, completion)
    from genai_prices import Usage, calc_price  # lazy: its data takes ~150 ms to load

    price_usage = Usage(
        input_tokens=prompt,
        cache_read_tokens=read,
        cache_write_tokens=write,
        output_tokens=completion,
    )
    try:
        result = calc_price(price_usage, model, provider_id=provider_id)
    except LookupError:
        if provider_id is not None:  # e.g. an OpenRouter name genai-prices lists elsewhere
            try:
                result = calc_price(price_usage, model)
            except LookupError:
                result = None
        else:
            result = None
    except Exception as exc:  # a pricing library fault must never break a response
        logger.warning("could not price %s/%s: %s", provider, model, exc)
        return None
    if result is None:
        _warn_once(
            provider,
            model,
            f"no price known for {provider}/{model}: cost_usd is None. Set one with "
            f"steer_llm_sdk.pricing.set_price({model!r}, input_per_mtok=..., output_per_mtok=...)",
        )
        return None
    return float(result.total_price)


class _Rates:
    """A model's genai-prices rates as exact Decimals: the price of a call with no
    tokens, and of one uncached input, cache read, cache write and output token."""

    __slots__ = ("base", "input", "output", "read", "write")

    def __init__(self, base: Any, input: Any, read: Any, write: Any, output: Any) -> None:
        self.base, self.input, self.read, self.write, self.output = (
            base,
            input,
            read,
            write,
            output,
        )

    def exact(self, prompt: int, read: int, write: int, completion: int) -> Any:
        return (
            self.base
            + (prompt - read - write) * self.input
            + read * self.read
            + write * self.write
            + completion * self.output
        )

    def cost(self, prompt: int, read: int, write: int, completion: int) -> float:
        return float(self.exact(prompt, read, write, completion))


# (genai-prices provider id, model) → (the price data it was worked out from, its rates
# or None: not linear, not found, or priced by time: the full calculation each call).
_rates: dict[tuple[str | None, str], tuple[object, _Rates | None]] = {}
_MAX_RATES = 1024


def _rates_for(model: str, provider_id: str | None) -> _Rates | None:
    """The rates of ``model``, worked out once per model and price data (genai-prices
    takes 0.2 ms a call): its price is a sum of rate x tokens, in Decimals, so the same
    cost comes out to the last digit. None: price it with the full calculation."""
    try:
        from genai_prices.data_snapshot import get_snapshot

        snapshot = get_snapshot()  # another one when the user updates the prices
    except Exception:  # another genai-prices version: the full calculation
        return None
    key = (provider_id, model)
    entry = _rates.get(key)
    if entry is not None and entry[0] is snapshot:
        return entry[1]
    rates = _work_out_rates(model, provider_id)
    if len(_rates) >= _MAX_RATES:
        _rates.clear()
    _rates[key] = (snapshot, rates)
    return rates


def _work_out_rates(model: str, provider_id: str | None) -> _Rates | None:
    """Probe genai-prices with one token of each kind; keep the rates only for a price
    with no tiers and no dates, and only when they price two other usages exactly."""
    try:
        from genai_prices import Usage, calc_price
        from genai_prices.types import ModelPrice, TieredPrices

        def price(prompt: int, read: int, write: int, completion: int) -> Any:
            usage = Usage(
                input_tokens=prompt,
                cache_read_tokens=read,
                cache_write_tokens=write,
                output_tokens=completion,
            )
            return calc_price(usage, model, provider_id=provider_id)

        zero = price(0, 0, 0, 0)
        if not isinstance(zero.model.prices, ModelPrice) or any(
            isinstance(value, TieredPrices) for value in vars(zero.model_price).values()
        ):
            return None  # priced by date or time of day, or by prompt size: each call
        base = zero.total_price
        rates = _Rates(
            base,
            price(1, 0, 0, 0).total_price - base,
            price(1, 1, 0, 0).total_price - base,
            price(1, 0, 1, 0).total_price - base,
            price(0, 0, 0, 1).total_price - base,
        )
        for probe in ((1000, 300, 200, 77), (987_654, 12_345, 6_789, 54_321)):
            if rates.exact(*probe) != price(*probe).total_price:
                return None
    except Exception:  # not found, or a fault: the full calculation says so
        return None
    return rates


def _warn_once(provider: str, model: str, message: str) -> None:
    if (provider, model) not in _warned:
        _warned.add((provider, model))
        logger.warning("%s", message)


def compute_batch_cost(
    provider: str,
    model: str,
    usage: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> float | None:
    """USD cost of ``usage`` through the provider's batch API: genai-prices' batch price
    (``processing: batch``) where it has one, else the standard price times
    :data:`BATCH_DISCOUNT`; None when no price is known."""
    standard = compute_cost(provider, model, usage, overrides)
    if standard is None or _find_override(provider, model, overrides) is not None:
        return None if standard is None else standard * BATCH_DISCOUNT
    provider_id = _PROVIDER_IDS.get(provider)
    if provider_id is not None:
        from genai_prices import Usage, calc_price

        prompt, read, write, completion = _counts(usage)
        price_usage = Usage(
            input_tokens=prompt,
            cache_read_tokens=read,
            cache_write_tokens=write,
            output_tokens=completion,
        )
        try:
            batch = calc_price(
                price_usage, model, provider_id=provider_id, price_context={"processing": "batch"}
            )
            if float(batch.total_price) < standard:
                return float(batch.total_price)
        except Exception:  # no batch price (or a pricing fault): the published discount
            pass
    return standard * BATCH_DISCOUNT
