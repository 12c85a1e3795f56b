"""The Ray engine's worker rows without a cluster: a real Coordinator (journal, shared
windows, budget) called the way a Ray actor handle is, a real client, the emulator over
real sockets. The rows run the local engine's attempt loop, so they keep its rules:
Retry-After 0 means now, a broken attempt's usage counts, an item that fails before
any request reserves no budget."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.batch.ray_engine import Coordinator, Rows
from steer_llm_sdk.pricing import PriceOverride
from steer_llm_sdk.testing import Emulator, Fault, Reply

MODEL = "gpt-4o-mini"
KEY = "sk-test-ray-rows-0000"


class Handle:
    """A Coordinator called as through a Ray actor handle: ``handle.method.remote(...)``
    returns an awaitable."""

    def __init__(self, actor: Coordinator) -> None:
        self.actor = actor

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace(remote=getattr(self.actor, name))


def _rows(
    tmp_path: Path, client: SteerLLMClient, budget_usd: float | None = None, **params: Any
) -> tuple[Rows, Coordinator]:
    coordinator = Coordinator(str(tmp_path / "job.journal"), 1, None, None, budget_usd)
    rows = Rows(
        Handle(coordinator),
        client,
        MODEL,
        None,
        params,
        None,
        budget=budget_usd is not None,
        concurrency=4,
        max_attempts=2,
    )
    return rows, coordinator


def _client(emu: Emulator, **kwargs: Any) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": KEY}, base_urls={"openai": emu.openai_base_url}, **kwargs
    )


@pytest.mark.timeout(30)
async def test_retry_after_zero_is_no_pause(tmp_path: Path) -> None:
    async with Emulator() as emu:
        emu.enqueue(*[Reply(status=429, headers={"retry-after": "0"})] * 2)
        client = _client(emu)
        rows, coordinator = _rows(tmp_path, client)
        began = time.perf_counter()
        out = await rows.run([{"custom_id": "a", "prompt": "hello"}])
        elapsed = time.perf_counter() - began
        await client.aclose()
        assert len(emu.requests) == 3
    assert out == [{"custom_id": "a", "status": "ok"}]
    # Retry-After: 0 is "now" (it was once taken as unsaid: a 1 s, then 2 s pause).
    assert elapsed < 1.0
    figures = await coordinator.summary()
    assert figures["rate_limited"] == 2 and figures["requests"] == 3
    await coordinator.close()


@pytest.mark.timeout(30)
async def test_an_item_failing_before_any_request_reserves_no_budget(tmp_path: Path) -> None:
    prices = {MODEL: PriceOverride(input_per_mtok=1000.0, output_per_mtok=1000.0)}
    async with Emulator() as emu:
        client = _client(emu, prices=prices)
        rows, coordinator = _rows(tmp_path, client, budget_usd=0.02, max_tokens=8)
        first = await rows.run([{"custom_id": "bad"}])  # neither prompt nor messages
        assert first == [{"custom_id": "bad", "status": "failed"}]
        # Worst case $0.001 per token: far over the budget, with nothing in flight.
        big = {"custom_id": "big", "prompt": "x " * 40, "max_tokens": 8}
        began = time.perf_counter()
        second = await rows.run([big])
        assert time.perf_counter() - began < 2.0  # not a wait for budget never reserved
        await client.aclose()
        assert emu.requests == []
    assert second == [{"custom_id": "big", "status": "not_started"}]
    assert coordinator.budget is not None and coordinator.budget.in_flight == 0
    await coordinator.close()


@pytest.mark.timeout(30)
async def test_a_broken_attempt_counts_its_partial_usage(tmp_path: Path) -> None:
    prices = {MODEL: PriceOverride(input_per_mtok=1.0, output_per_mtok=1.0)}
    async with Emulator() as emu:
        emu.add_rule("cut me", Reply(text="one two three four", fault=Fault.drop_after(2)))
        client = _client(emu, prices=prices)
        rows, coordinator = _rows(tmp_path, client, budget_usd=1.0, max_tokens=16)
        out = await rows.run([{"custom_id": "cut", "prompt": "cut me"}])
        await client.aclose()
        assert len(emu.requests) == 2  # max_attempts
    assert out == [{"custom_id": "cut", "status": "failed"}]
    figures = await coordinator.summary()
    assert figures["retryable_failed"] == 1 and figures["requests"] == 2
    assert figures["cost_usd"] > 0  # the text received before each cut was paid for
    assert coordinator.budget is not None and coordinator.budget.spent == figures["cost_usd"]
    await coordinator.close()


@pytest.mark.timeout(30)
async def test_rows_the_journal_has_need_no_request(tmp_path: Path) -> None:
    """Done or failed for good in an earlier run, or recorded by this run: the row is
    "done_before"; failed with a retryable error in an earlier run: it runs again."""
    from steer_llm_sdk.batch.journal import DONE, FAILED, RETRY, Journal

    journal = Journal(tmp_path / "job.journal")
    journal.record_many(
        [
            ("done", DONE, 1, 1, 0.0, 1, 1, b"{}"),
            ("failed", FAILED, 1, 1, 0.0, 0, 0, b"{}"),
            ("retry-earlier", RETRY, 1, 5, 0.0, 0, 0, b"{}"),
            ("retry-now", RETRY, 2, 5, 0.0, 0, 0, b"{}"),
        ]
    )
    journal.close()
    async with Emulator() as emu:
        client = _client(emu)
        coordinator = Coordinator(str(tmp_path / "job.journal"), 2, None, None, None)
        rows = Rows(
            Handle(coordinator), client, MODEL, None, {}, None,
            budget=False, concurrency=4, max_attempts=2,
        )  # fmt: skip
        ids = ["done", "failed", "retry-earlier", "retry-now", "new"]
        out = await rows.run([{"custom_id": i, "prompt": f"{i}: go"} for i in ids])
        await client.aclose()
        asked = sorted(r.json["messages"][-1]["content"] for r in emu.requests)
    assert [row["status"] for row in out] == ["done_before"] * 2 + ["ok", "done_before", "ok"]
    assert asked == ["new: go", "retry-earlier: go"]
    await coordinator.close()
