"""One item's requests, the same on both engines: its plan (provider, token estimate,
worst-case cost) and the attempt loop.

Retries belong here, not to the client: each call runs with the client's own retries
off, because a 429 must pause every request to the provider (the shared windows), not
only the one that got it, and lower the concurrency. An item is retried on 429/529 up
to 20 times (they mean "later", not "never") and on other retryable failures (5xx,
connection errors, timeouts, a stream cut short) up to ``max_attempts`` HTTP requests,
with the transport's jittered exponential backoff.

What the loop needs of a client is :class:`BatchClient` (``SteerLLMClient`` is one);
of the rate windows, :class:`RateWindows`: the local engine's are its gates' own
(:class:`GateWindows`), the Ray engine's a coordinator actor shared by every worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import (
    ConfigurationError,
    OverloadedError,
    RateLimitError,
    SteerError,
    StreamInterruptedError,
)
from ..transport.http import backoff_delay, is_retryable
from .items import BatchResult, Item, error_result, prompt_tokens
from .limits import ProviderGate

if TYPE_CHECKING:
    from ..catalog import Target
    from ..models.streaming import StreamingOptions
    from ..results import StreamingResponse

__all__ = ["BatchClient", "Calls", "GateWindows", "Plan", "RateWindows", "run_item"]

RATE_LIMIT_RETRIES = 20
DEFAULT_COMPLETION_ESTIMATE = 256  # tokens, when max_tokens is not set
_RATE_LIMIT_BASE = 1.0  # seconds: the pause after a 429 without Retry-After (doubling)
_RETRY_BASE = 0.5  # seconds: the wait before another try after a 5xx (doubling)


class BatchClient(Protocol):
    """What a batch job uses of a client (:class:`~steer_llm_sdk.SteerLLMClient`)."""

    @property
    def default_options(self) -> StreamingOptions: ...

    def resolve(self, model: str) -> Target: ...

    def cost_usd(self, route: Target, usage: Mapping[str, Any]) -> float | None: ...

    async def stream_with_usage(
        self, messages: Any = None, model: str | None = None, **params: Any
    ) -> StreamingResponse: ...

    def worker_config(self) -> dict[str, Any]:
        """Keyword arguments that build an equivalent client in a Ray worker."""
        ...


class RateWindows(Protocol):
    """The rate limits an attempt passes: charge before the request, settle after."""

    async def charge(self, tokens: float) -> Any: ...

    async def settle(self, ticket: Any, tokens: float) -> None: ...

    async def paused(self, seconds: float) -> None:
        """A 429/529 asked every request to the provider to wait ``seconds``."""


class GateWindows:
    """The local engine's windows: the provider gate's own (it already paused)."""

    __slots__ = ("gate",)

    def __init__(self, gate: ProviderGate) -> None:
        self.gate = gate

    async def charge(self, tokens: float) -> Any:
        return await self.gate.rate(tokens)

    async def settle(self, ticket: Any, tokens: float) -> None:
        self.gate.settle(ticket, tokens)

    async def paused(self, seconds: float) -> None:
        return None


@dataclass(slots=True)
class Price:
    """USD per prompt and per completion token."""

    input: float
    output: float


@dataclass(slots=True)
class Plan:
    """How an item runs: its provider, the tokens charged to the windows before the
    answer says, and the worst-case cost reserved from the budget (0 without one)."""

    provider: str
    tokens: int
    worst: float


class Calls:
    """A job's calls: the per-model facts it asks of the client (route, price; cached),
    each item's :class:`Plan`, and the parameters of its requests."""

    def __init__(
        self,
        client: BatchClient,
        params: Mapping[str, Any],
        options: StreamingOptions | None,
        *,
        budget: bool,
    ) -> None:
        self.client = client
        self.params = params  # the job's parameters (an item's own win)
        self.budget = budget
        self._options = options
        self._options_source: StreamingOptions | None = None
        self._options_made: StreamingOptions | None = None
        self._routes: dict[str, Target] = {}
        self._prices: dict[str, Price | None] = {}

    def route(self, model: str) -> Target:
        route = self._routes.get(model)
        if route is None:
            route = self._routes[model] = self.client.resolve(model)
        return route

    def price(self, model: str) -> Price | None:
        if model in self._prices:
            return self._prices[model]
        route = self.route(model)
        per_input = self.client.cost_usd(route, {"prompt_tokens": 1_000_000})
        per_output = self.client.cost_usd(route, {"completion_tokens": 1_000_000})
        price = (
            None
            if per_input is None or per_output is None
            else Price(per_input / 1e6, per_output / 1e6)
        )
        self._prices[model] = price
        return price

    def no_price_error(self, model: str) -> ConfigurationError:
        route = self.route(model)
        provider, name = route.provider.name, route.model
        return ConfigurationError(
            f"budget_usd is set but no price is known for {provider}/{name}, so the budget "
            "cannot be enforced: set one with SteerLLMClient(prices={"
            f"{name!r}: PriceOverride(input_per_mtok=..., output_per_mtok=...)}}) or "
            f"steer_llm_sdk.pricing.set_price({name!r}, input_per_mtok=..., "
            "output_per_mtok=...), or drop budget_usd"
        )

    def check_job_price(self, model: str | None) -> None:
        """With a budget, refuse at the start a job model whose price is unknown."""
        if self.budget and model is not None and self.price(model) is None:
            raise self.no_price_error(model)

    def plan(self, item: Item) -> Plan | BatchResult:
        """The item's plan, or its result when it fails before any request (invalid,
        an unknown model, no price or no max_tokens under a budget)."""
        if item.invalid is not None:
            return error_result(item, ConfigurationError(item.invalid))
        try:
            provider = self.route(item.model).provider.name
        except SteerError as exc:
            return error_result(item, exc)
        max_tokens = item.params.get("max_tokens", self.params.get("max_tokens"))
        estimate = prompt_tokens(item.messages)
        completion = max_tokens if isinstance(max_tokens, int) else DEFAULT_COMPLETION_ESTIMATE
        worst = 0.0
        if self.budget:
            price = self.price(item.model)
            if price is None:
                return error_result(item, self.no_price_error(item.model))
            if not isinstance(max_tokens, int):
                error = ConfigurationError(
                    "budget_usd needs max_tokens (for the job or the item) to bound the "
                    "worst case of each request"
                )
                return error_result(item, error)
            worst = estimate * price.input + max_tokens * price.output
        return Plan(provider, estimate + completion, worst)

    def call_params(self, item: Item) -> dict[str, Any]:
        """The keyword arguments of the item's ``stream_with_usage`` call."""
        params = {**self.params, **item.params}
        options = params.pop("streaming_options", None) or self._options
        if options is None:
            options = self.client.default_options
        if options is not self._options_source:  # frozen: made once per options
            self._options_source = options
            self._options_made = options.replace(
                retry_on_connection_error=False,
                max_reconnect_attempts=0,
                preserve_partial_response=True,  # a broken attempt's usage counts in the budget
            )
        params["streaming_options"] = self._options_made
        return params

    def cost_of(self, model: str, usage: Mapping[str, Any]) -> float:
        """The cost of a failed attempt's partial usage (counted under a budget)."""
        price = self.price(model) if self.budget else None
        if price is None:
            return 0.0
        return (
            int(usage.get("prompt_tokens") or 0) * price.input
            + int(usage.get("completion_tokens") or 0) * price.output
        )


async def run_item(
    calls: Calls,
    item: Item,
    plan: Plan,
    gate: ProviderGate,
    windows: RateWindows,
    max_attempts: int,
) -> tuple[BatchResult, float]:
    """Every request of one item until it succeeds or fails: its result and its cost
    (partial usage of broken attempts included). Called holding a slot of ``gate``;
    returns holding one (a retry waits without it and comes back first in line). A
    bug or a bad parameter fails the item, not the job. Cancelled: raises, holding none."""
    attempts = 0
    cost = 0.0
    holding = True  # the item gives its slot back between tries

    async def tries() -> BatchResult:
        nonlocal attempts, cost, holding
        params = calls.call_params(item)
        rate_limited = failures = 0
        while True:
            if not holding:
                await gate.slot(priority=True)
                holding = True
            ticket = await windows.charge(plan.tokens)
            attempts += 1
            try:
                response = await calls.client.stream_with_usage(item.messages, item.model, **params)
            except (RateLimitError, OverloadedError) as exc:
                await windows.settle(ticket, 0)
                if getattr(exc, "retryable", None) is False:  # insufficient_quota: never
                    return error_result(item, exc, retryable=False)
                rate_limited += 1
                retry_after = getattr(exc, "retry_after", None)  # 0 is "now", not "unsaid"
                if retry_after is None:
                    retry_after = backoff_delay(rate_limited, _RATE_LIMIT_BASE, None)
                gate.on_rate_limited(retry_after)
                await windows.paused(retry_after)
                if rate_limited > RATE_LIMIT_RETRIES:
                    return error_result(item, exc, retryable=True)
                gate.release()
                holding = False
                continue
            except SteerError as exc:
                await windows.settle(ticket, 0)
                partial = getattr(exc, "partial_usage", None)
                if partial:
                    cost += calls.cost_of(item.model, partial)
                retryable = _retryable(exc)
                failures += 1
                if not retryable or failures >= max_attempts:
                    return error_result(item, exc, retryable=retryable)
                gate.release()
                holding = False
                await asyncio.sleep(backoff_delay(failures, _RETRY_BASE, None))
                continue
            usage = response.usage
            await windows.settle(ticket, usage.get("total_tokens") or 0)
            gate.on_success()
            cost += response.cost_usd or 0.0
            return BatchResult(
                custom_id=item.custom_id,
                text=response.text,
                output=response.output,  # validated by the client with output=
                usage=usage,
                cost_usd=response.cost_usd,
                finish_reason=response.finish_reason,
                model=item.model,
            )

    try:
        result = await tries()
    except Exception as exc:  # only ever raised while holding the slot
        result = error_result(item, exc)
    except BaseException:
        if holding:
            gate.release()
        raise
    result.attempts = attempts
    return result, cost


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, StreamInterruptedError):
        return exc.cause is None or is_retryable(exc.cause)
    return is_retryable(exc)
