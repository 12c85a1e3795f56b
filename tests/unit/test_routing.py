"""The route pieces without a socket: the breaker's states, the balancer's choices,
rate-limit headers, the context-window mapping and the checks on what a user writes."""

from __future__ import annotations

import time

import httpx
import pytest

from steer_llm_sdk import Balance, Cooldown, Route
from steer_llm_sdk.errors import (
    BadRequestError,
    ConfigurationError,
    ContextWindowError,
    OverloadedError,
    ReadTimeoutError,
    StreamInterruptedError,
    TotalTimeoutError,
)
from steer_llm_sdk.providers.base import error_for
from steer_llm_sdk.routing import Deployment, Router, budget_wait, entries_of, is_health_failure


def test_breaker_opens_after_n_failures_within_the_window() -> None:
    d = Deployment("m", Cooldown(failures=3, window=10.0, seconds=5.0))
    d.failed(0.0)
    d.failed(20.0)  # the first is outside the window now
    d.failed(25.0)
    assert not d.cooling(25.0)
    d.failed(26.0)  # three within 10 s
    assert d.cooling(26.0) and d.cooling(30.9) and not d.cooling(31.1)


def test_half_open_lets_one_probe_through_then_closes_or_reopens() -> None:
    d = Deployment("m", Cooldown(failures=1, window=10.0, seconds=5.0))
    d.failed(0.0)
    assert d.cooling(1.0) and not d.cooling(5.5)
    d.probing = True  # a call took the probe (Chain._use)
    assert d.cooling(5.5)  # everyone else still skips it
    d.failed(6.0)  # the probe failed: open again for `seconds`
    assert not d.probing and d.cooling(10.9) and not d.cooling(11.1)
    d.probing = True
    d.succeeded()
    assert not d.cooling(11.2) and d.open_until == 0.0 and not d.failures


def test_health_failures() -> None:
    assert is_health_failure(OverloadedError("x"))
    assert is_health_failure(ReadTimeoutError("x"))
    assert not is_health_failure(TotalTimeoutError("x"))  # the call's budget, not the server
    assert not is_health_failure(ContextWindowError("x", status_code=400))
    broke = StreamInterruptedError("x", cause=OverloadedError("y"))
    assert is_health_failure(broke)


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"x-ratelimit-remaining-requests": "12"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20ms"}, 0.02),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1m30s"}, 60.0),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6s"}, 6.0),
        ({"x-ratelimit-remaining-requests": "0"}, 1.0),  # no reset said: a second
        ({"anthropic-ratelimit-requests-remaining": "3"}, None),
        ({}, None),
    ],
)
def test_rate_limit_headers(headers: dict[str, str], wait: float | None) -> None:
    got = budget_wait(httpx.Headers(headers))
    if wait is None:
        assert got is None
    else:
        assert got == pytest.approx(wait)


def test_anthropic_reset_is_a_date() -> None:
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 10))
    headers = {
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": soon,
    }
    wait = budget_wait(httpx.Headers(headers))
    assert wait is not None and 8.0 < wait <= 10.5


def _candidates(balance: Balance, router: Router) -> list[tuple[int, Deployment]]:
    return [(i, router.deployment(m, balance)) for i, m in enumerate(balance.members)]


def test_strategies_choose() -> None:
    router = Router()
    busy = Balance(["a", "b", "c"])
    candidates = _candidates(busy, router)
    candidates[0][1].in_flight = 4
    candidates[1][1].in_flight = 1
    candidates[2][1].in_flight = 2
    assert busy.choose(candidates) == 1
    rr = Balance(["a", "b", "c"], strategy="round-robin")
    assert [rr.choose(_candidates(rr, router)) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    weighted = Balance(["a", "b"], strategy="weighted", weights=[3, 1])
    picks = [weighted.choose(_candidates(weighted, router)) for _ in range(8)]
    assert picks.count(0) == 6 and picks.count(1) == 2 and picks[:4].count(1) == 1
    fast = Balance(["a", "b"], strategy="latency")
    router.deployment(fast.members[0]).latency = 0.5
    router.deployment(fast.members[1]).latency = 0.1
    assert fast.choose(_candidates(fast, router)) == 1


def test_one_deployment_state_per_model_name() -> None:
    router = Router(routes={"smart": ["gpt-4o", Route("gpt-4o", temperature=0)]})
    a, b = router.named["smart"]
    assert isinstance(a, Route) and isinstance(b, Route)
    assert router.deployment(a) is router.deployment(b)
    assert router.first_model("smart") == "gpt-4o"


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 128000 tokens. However, you requested 130000",
        "prompt is too long: 210345 tokens > 200000 maximum",
        "input length and `max_tokens` exceed context limit: 199000 + 8192 > 200000",
        "The input token count (1200000) exceeds the maximum number of tokens allowed",
    ],
)
def test_context_window_errors_are_typed(message: str) -> None:
    error = error_for(400, message, error_type="invalid_request_error")
    assert type(error) is ContextWindowError and isinstance(error, BadRequestError)


def test_other_400s_stay_bad_requests() -> None:
    error = error_for(400, "messages.0.role: Input should be 'user'", error_type=None)
    assert type(error) is BadRequestError
    coded = error_for(400, "too long", body='{"error": {"code": "context_length_exceeded"}}')
    assert type(coded) is ContextWindowError


def test_what_a_user_writes_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="failures"):
        Cooldown(failures=0)
    with pytest.raises(ConfigurationError, match="seconds"):
        Cooldown(seconds=-1)
    with pytest.raises(ConfigurationError, match="model name"):
        Route("")
    with pytest.raises(ConfigurationError, match="weights"):
        Balance(["a", "b"], weights=[1])
    with pytest.raises(ConfigurationError, match="list"):
        Balance("a")
    with pytest.raises(ConfigurationError, match="fallback_on"):
        Router(fallback_on="BadRequestError")
    with pytest.raises(ConfigurationError):
        entries_of({"model": "a"})
    assert repr(Route("gpt-4o", temperature=0.2, api_key="sk-secret-0000")) == (
        "Route('gpt-4o', temperature=..., api_key=...)"
    )
