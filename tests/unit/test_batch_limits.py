"""The batch runner's limiters, adaptive concurrency, budget and fingerprint diff, with
a hand-driven clock (no sleeping)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import MappingProxyType

import pytest

from steer_llm_sdk.batch.journal import describe_changes
from steer_llm_sdk.batch.limits import HEADROOM, Budget, ProviderGate, WindowLimiter, gate_of


def test_window_limiter_holds_over_one_second_windows() -> None:
    limiter = WindowLimiter(6000)  # 100 per second, 97 with the headroom
    assert limiter.window == 1.0 and limiter.allowance == 100 * HEADROOM
    now = 10.0
    for _ in range(97):
        assert limiter.wait_time(1, now) == 0.0
        limiter.charge(1, now)
    assert limiter.wait_time(1, now) == 1.0  # the oldest leaves the window in 1 s
    assert limiter.wait_time(1, now + 0.5) == 0.5
    assert limiter.wait_time(1, now + 1.0) == 0.0


def test_low_limits_get_a_longer_window() -> None:
    limiter = WindowLimiter(10)  # one request per 6.2 seconds (with the headroom)
    assert limiter.window > 6 and limiter.allowance == 1.0
    limiter.charge(1, 0.0)
    assert limiter.wait_time(1, 3.0) > 3.0


def test_settle_adjusts_inside_the_window_and_charges_excess_after_it() -> None:
    limiter = WindowLimiter(60_000)  # 970 tokens per second
    entry = limiter.charge(900, 0.0)
    assert limiter.wait_time(200, 0.1) > 0
    limiter.settle(entry, 300, 0.2)  # the real usage was lower: room again
    assert limiter.wait_time(200, 0.2) == 0.0
    late = limiter.charge(100, 0.3)
    limiter.settle(late, 1500, 5.0)  # after its window: the excess is charged now
    assert limiter.total == 1400
    assert limiter.wait_time(1, 5.0) > 0


def test_a_request_larger_than_the_allowance_goes_alone() -> None:
    limiter = WindowLimiter(600)  # 9.7 tokens per second
    assert limiter.wait_time(500, 0.0) == 0.0
    limiter.charge(500, 0.0)
    assert limiter.wait_time(1, 0.5) == 0.5


async def test_429_pauses_halves_once_and_recovers_step_by_step() -> None:
    now = [100.0]
    gate = ProviderGate("p", concurrency=8, requests_per_minute=600, clock=lambda: now[0])
    gate.on_rate_limited(2.0)
    gate.on_rate_limited(2.0)  # the same burst: halved only once
    assert gate.limit == 4 and gate.paused_until == 102.0 and gate.rate_limited == 2
    for _ in range(4):
        gate.on_success()
    assert gate.limit == 5
    for _ in range(5 + 6 + 7):
        gate.on_success()
    assert gate.limit == 8
    gate.on_success()
    assert gate.limit == 8  # never above the job's concurrency


async def test_slots_follow_the_limit_and_retries_go_first() -> None:
    gate = ProviderGate("p", concurrency=2)
    await gate.slot()
    await gate.slot()
    order: list[str] = []

    async def take(name: str, priority: bool) -> None:
        await gate.slot(priority=priority)
        order.append(name)

    waiting = [asyncio.create_task(take("new", False)), asyncio.create_task(take("retry", True))]
    await asyncio.sleep(0)
    gate.release()
    await asyncio.sleep(0)
    assert order == ["retry"]
    gate.release()
    await asyncio.gather(*waiting)
    assert order == ["retry", "new"] and gate.in_use == 2


async def test_budget_waits_for_in_flight_then_stops() -> None:
    budget = Budget(1.0, spent=0.2)
    assert await budget.reserve(0.5)
    waiter = asyncio.create_task(budget.reserve(0.5))  # 0.2 + 0.5 + 0.5 > 1: wait
    await asyncio.sleep(0)
    assert not waiter.done()
    budget.settle(0.5, 0.1)  # the first cost far less than its worst case
    assert await waiter is True
    budget.settle(0.5, 0.4)
    assert budget.spent == pytest.approx(0.7) and budget.reserved == 0.0
    assert await budget.reserve(0.5) is False  # nothing in flight, still no room


def test_describe_changes_names_each_difference() -> None:
    old = {"model": "a", "params": {"max_tokens": 10, "seed": 1}, "output": None}
    new = {"model": "b", "params": {"max_tokens": 20}, "output": {"type": "object"}}
    assert describe_changes(old, new) == [
        "model: 'a' -> 'b'",
        "output: (unset) -> {'type': 'object'}",
        "params.max_tokens: 10 -> 20",
        "params.seed: 1 -> (unset)",
    ]


def test_ray_rows_become_items_without_the_nulls_of_struct_columns() -> None:
    from steer_llm_sdk.batch.ray_engine import _row_item

    row = {
        "custom_id": "a",
        "prompt": None,
        "max_tokens": None,
        "messages": [{"role": "user", "content": "hi", "name": None}],
    }
    assert _row_item(row) == {"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}
    assert _row_item({"item": '["x"]'}) == ["x"]


async def test_both_engines_make_each_providers_gate_once_from_the_same_limits(
    tmp_path: Path,
) -> None:
    """rpm/tpm per provider (any mapping) or one number for all, the same on the local
    runner and the Ray coordinator (which took only a dict before)."""
    from steer_llm_sdk.batch.ray_engine import Coordinator

    rpm = MappingProxyType({"openai": 60.0})
    gates: dict[str, ProviderGate] = {}
    local = gate_of(gates, "openai", 4, rpm, 6000)
    assert gate_of(gates, "openai", 4, rpm, 6000) is local and local.max_concurrency == 4
    coordinator = Coordinator(str(tmp_path / "job.journal"), 1, rpm, 6000, None)
    await coordinator.acquire("openai", 10)
    await coordinator.acquire("anthropic", 10)
    shared = coordinator.gates["openai"]
    assert shared.max_concurrency == 1
    for gate in (local, shared):
        assert gate.requests is not None and gate.tokens is not None
        assert gate.requests.window == WindowLimiter(60).window
        assert gate.tokens.allowance == WindowLimiter(6000).allowance
    other = coordinator.gates["anthropic"]
    assert other.requests is None and other.tokens is not None
