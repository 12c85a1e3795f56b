"""Batch jobs (client.batch) against the emulator over real sockets, with a real SQLite
journal: limits, 429s, budget, resume, fingerprint, duplicates, poisoned items."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steer_llm_sdk import ConfigurationError, SteerLLMClient
from steer_llm_sdk.batch import BatchResult
from steer_llm_sdk.pricing import PriceOverride
from steer_llm_sdk.testing import Emulator, Reply

MODEL = "gpt-4o-mini"


class EmulatorProcess:
    """The emulator in its own process (``python -m steer_llm_sdk.testing``), so that
    its measurements do not share the job's event loop."""

    def __init__(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "steer_llm_sdk.testing", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.openai_base_url = self.proc.stdout.readline().split()[-1]
        self.url = self.openai_base_url.removesuffix("/v1")

    def post(self, path: str, data: Any) -> None:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(data).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/emulator/stats", timeout=10) as response:
            return dict(json.loads(response.read()))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def client_for() -> Iterator[Any]:
    made: list[SteerLLMClient] = []

    def make(base_url: str, **kwargs: Any) -> SteerLLMClient:
        client = SteerLLMClient(
            api_keys={"openai": "sk-test-batch-key-0000"}, base_urls={"openai": base_url}, **kwargs
        )
        made.append(client)
        return client

    yield make


def _prompt(i: int) -> str:
    return f"item {i}: classify this ticket"


def _item_of(body: dict[str, Any]) -> int:
    text = body["messages"][-1]["content"]
    return int(text.split(":")[0].removeprefix("item "))


@pytest.mark.timeout(240)
async def test_10k_items_under_the_limits_with_429s(client_for: Any, tmp_path: Path) -> None:
    """10,000 items, limits on both sides: every item exactly once, the emulator never
    saw a request over its limits, and scripted 429s cost no item."""
    rpm, tpm = 21_000, 480_000  # ~350 requests/s, ~8,000 tokens/s (about 280 items/s)
    window = 15  # seconds: the job's 3% headroom absorbs up to 0.45 s of event-loop lag
    emu = EmulatorProcess("--rpm", str(rpm), "--tpm", str(tpm), "--rate-window", str(window))
    try:
        # The first requests are answered 429 (with and without Retry-After) and 529.
        emu.post(
            "/emulator/enqueue",
            [{"status": 429, "headers": {"retry-after": "1"}}] * 6
            + [{"status": 529}, {"status": 429}],
        )
        client = client_for(emu.openai_base_url)
        items = ({"custom_id": f"t{i}", "prompt": _prompt(i)} for i in range(10_000))
        seen: Counter[str] = Counter()
        job = client.batch(
            items,
            model=MODEL,
            max_tokens=16,
            concurrency=48,
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
            journal=tmp_path / "job.sqlite",
        )
        async for result in job:
            assert result.error is None, result.error
            seen[result.custom_id] += 1
        await client.aclose()
        summary = job.summary
        stats = emu.stats()["rate_limits"]["sk-test-batch-key-0000"]
    finally:
        emu.close()
    assert len(seen) == 10_000 and set(seen.values()) == {1}
    assert summary.succeeded == 10_000 and summary.failed == 0
    assert summary.rate_limited == 8  # the scripted ones; none from the limiter
    assert summary.lowest_concurrency < 48  # 429s lowered the concurrency
    assert stats["requests"] == 10_000  # accepted, besides the 8 scripted answers
    assert stats["limited"] == 0  # no request ever arrived over the limits
    assert stats["peak_requests"] <= rpm * window / 60
    assert stats["peak_tokens"] <= tpm * window / 60
    # The measured rate (items per second over the whole job) is under the limits.
    assert summary.succeeded / summary.elapsed <= rpm / 60
    print(
        f"\n10k job: {summary.elapsed:.1f}s, {summary.succeeded / summary.elapsed:.0f} items/s; "
        f"peak {stats['peak_requests']} requests (limit {rpm * window / 60:.0f}) and "
        f"{stats['peak_tokens']} tokens (limit {tpm * window / 60:.0f}) per {window}s"
    )


@pytest.mark.timeout(120)
async def test_limits_enforced_only_by_the_server(client_for: Any) -> None:
    """No limits set on the job: the emulator's 429s (with Retry-After) pause the job and
    lower its concurrency; no item fails and each runs once."""
    async with Emulator(requests_per_minute=6000, rate_window=2.0) as emu:
        client = client_for(emu.openai_base_url)
        job = client.batch([_prompt(i) for i in range(1500)], model=MODEL, concurrency=64)
        summary = await job.run()
        await client.aclose()
        stats = emu.stats()["rate_limits"]["sk-test-batch-key-0000"]
        counts = Counter(_item_of(r.json) for r in emu.requests)
    assert summary.succeeded == 1500 and summary.failed == summary.retryable_failed == 0
    assert stats["limited"] > 0 and summary.rate_limited == stats["limited"]
    assert summary.lowest_concurrency < 64
    assert stats["peak_requests"] <= 200
    # Every item reached the emulator; retries only after a 429.
    assert len(counts) == 1500
    assert sum(counts.values()) == 1500 + stats["limited"]
    # The job backs off instead of hammering: far fewer 429s than items.
    assert stats["limited"] < 1500


async def test_resume_skips_finished_items_and_refuses_a_changed_job(
    client_for: Any, tmp_path: Path
) -> None:
    journal = tmp_path / "job.sqlite"
    items = [{"custom_id": f"r{i}", "prompt": _prompt(i)} for i in range(300)]
    async with Emulator() as emu:
        client = client_for(emu.openai_base_url)
        first = client.batch(items[:200], model=MODEL, max_tokens=8, journal=journal)
        assert (await first.run()).succeeded == 200
        before = len(emu.requests)
        second = client.batch(items, model=MODEL, max_tokens=8, journal=journal)
        summary = await second.run()
        assert summary.skipped == 200 and summary.succeeded == 100
        assert len(emu.requests) - before == 100
        assert {_item_of(r.json) for r in emu.requests[before:]} == set(range(200, 300))
        with pytest.raises(ConfigurationError) as info:
            await client.batch(items, model=MODEL, max_tokens=9, journal=journal).run()
        assert "max_tokens: 8 -> 9" in str(info.value)
        with pytest.raises(ConfigurationError) as info:
            await client.batch(
                items, model="gpt-4o", max_tokens=8, temperature=0.2, journal=journal
            ).run()
        message = str(info.value)
        assert "model: 'gpt-4o-mini' -> 'gpt-4o'" in message
        assert "params.temperature: (unset) -> 0.2" in message
        assert len(emu.requests) - before == 100  # refused before any request
        await client.aclose()
    with sqlite3.connect(journal) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM items WHERE state = 1").fetchone()[0] == 300


async def test_duplicates_run_once(client_for: Any) -> None:
    items: list[Any] = [
        "same prompt",
        "same prompt",
        [{"role": "user", "content": "same prompt"}],  # other content: another item
        {"custom_id": "a", "prompt": "first"},
        {"custom_id": "a", "prompt": "second, same id"},
        {"prompt": "no id"},
        {"prompt": "no id"},
    ]
    async with Emulator() as emu:
        client = client_for(emu.openai_base_url)
        results: list[BatchResult] = []
        job = client.batch(items, model=MODEL, on_result=results.append)
        summary = await job.run()
        await client.aclose()
        assert len(emu.requests) == 4
    assert summary.duplicates == 3 and summary.succeeded == 4
    ids = [r.custom_id for r in results]
    assert len(ids) == len(set(ids)) == 4
    assert "a" in ids and all(i == "a" or i.startswith("sha256:") for i in ids)


async def test_poisoned_and_bad_items_fail_alone(client_for: Any, tmp_path: Path) -> None:
    journal = tmp_path / "job.sqlite"
    items: list[Any] = [{"custom_id": f"p{i}", "prompt": _prompt(i)} for i in range(50)]
    items += [{"custom_id": "no-prompt"}, 42]
    async with Emulator() as emu:
        emu.add_rule("item 7:", Reply(status=400, error_message="this prompt is poisoned"))
        emu.add_rule("item 9:", Reply(status=500))  # fails every time, but may pass later
        client = client_for(emu.openai_base_url)
        results = {r.custom_id: r async for r in client.batch(items, model=MODEL, journal=journal)}
        item7 = [r for r in emu.requests if b"item 7:" in r.body]
        item9 = [r for r in emu.requests if b"item 9:" in r.body]
        assert len(item7) == 1  # a 400 is never retried
        assert len(item9) == 5  # max_attempts
        emu._rules.clear()  # the server recovers: a new run retries only item 9
        again = await client.batch(items, model=MODEL, journal=journal).run()
        await client.aclose()
    assert results["p7"].error is not None
    assert results["p7"].error["type"] == "BadRequestError"
    assert "poisoned" in results["p7"].error["message"]
    assert results["p7"].error["retryable"] is False
    assert results["p9"].error is not None and results["p9"].error["retryable"] is True
    assert results["p9"].attempts == 5
    assert results["no-prompt"].error is not None
    assert "neither 'messages' nor 'prompt'" in results["no-prompt"].error["message"]
    assert results["invalid:51"].error is not None
    assert sum(r.ok for r in results.values()) == 48
    assert again.succeeded == 1 and again.skipped == 51


async def test_budget_stops_dispatch_and_holds(client_for: Any, tmp_path: Path) -> None:
    journal = tmp_path / "job.sqlite"
    prices = {MODEL: PriceOverride(input_per_mtok=1000.0, output_per_mtok=1000.0)}
    items = [_prompt(i) for i in range(400)]
    async with Emulator() as emu:
        client = client_for(emu.openai_base_url, prices=prices)
        # Worst case per item: (13 prompt + 16 max_tokens) tokens at $0.001 = $0.029.
        job = client.batch(items, model=MODEL, max_tokens=16, budget_usd=1.0, journal=journal)
        summary = await job.run()
        assert summary.stopped == "budget"
        assert summary.total_cost_usd <= 1.0
        assert summary.succeeded + summary.remaining == 400  # type: ignore[operator]
        assert 30 <= summary.succeeded <= 45
        assert len(emu.requests) == summary.succeeded
        # The same job with a larger budget resumes and counts what was spent.
        more = await client.batch(
            items, model=MODEL, max_tokens=16, budget_usd=2.0, journal=journal
        ).run()
        assert more.skipped == summary.succeeded
        assert more.total_cost_usd <= 2.0 and more.stopped == "budget"
        await client.aclose()


async def test_budget_with_an_unknown_price_is_refused_at_the_start(client_for: Any) -> None:
    async with Emulator() as emu:
        client = client_for(emu.openai_base_url)
        client.register_provider("mine", {"base_url": emu.openai_base_url})
        job = client.batch(["a", "b"], model="mine/house-model", max_tokens=5, budget_usd=1.0)
        with pytest.raises(ConfigurationError) as info:
            await job.run()
        assert "no price is known for mine/house-model" in str(info.value)
        assert emu.requests == []
        await client.aclose()


async def test_structured_output_per_item(client_for: Any) -> None:
    pydantic = pytest.importorskip("pydantic", reason="pydantic comes with the openai SDK (dev)")

    class Product(pydantic.BaseModel):
        name: str
        price: float

    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    items = [
        {"custom_id": "schema", "prompt": "describe a lamp", "output": schema},
        {"custom_id": "model", "prompt": "describe a lamp", "output": Product},
        {"custom_id": "plain", "prompt": "describe a lamp"},
    ]
    async with Emulator() as emu:
        client = client_for(emu.openai_base_url)
        results = {r.custom_id: r async for r in client.batch(items, model=MODEL)}
        await client.aclose()
        formats = [r.json.get("response_format") for r in emu.requests]
    assert results["schema"].output["name"] == "Aurora Desk Lamp"
    assert isinstance(results["model"].output, Product)
    assert results["model"].output.price == 49.99
    assert results["plain"].output is None
    assert sum(1 for f in formats if f and f["type"] == "json_schema") == 2


async def test_breaking_out_of_the_iteration_stops_the_job(client_for: Any, tmp_path: Path) -> None:
    journal = tmp_path / "job.sqlite"
    async with Emulator(delay_between_chunks=0.001) as emu:
        client = client_for(emu.openai_base_url)
        job = client.batch((_prompt(i) for i in range(5000)), model=MODEL, journal=journal)
        got = 0
        async for _ in job:
            got += 1
            if got == 20:
                break
        await asyncio.sleep(0.1)
        sent = len(emu.requests)
        await asyncio.sleep(0.3)
        assert len(emu.requests) == sent  # nothing more is sent
        assert sent < 200
        await client.aclose()
    with sqlite3.connect(journal) as db:
        done = db.execute("SELECT count(*) FROM items").fetchone()[0]
    assert done >= 20


async def test_bad_options_are_clear_errors(client_for: Any) -> None:
    client = client_for("http://127.0.0.1:9/v1")
    for kwargs, words in [
        ({"concurrency": 0}, "concurrency=0"),
        ({"requests_per_minute": -5}, "requests_per_minute=-5"),
        ({"budget_usd": "ten"}, "budget_usd='ten'"),
        ({"max_attempts": 0}, "max_attempts=0"),
    ]:
        with pytest.raises(ConfigurationError, match=words):
            client.batch(["x"], model=MODEL, **kwargs)
    await client.aclose()


def test_readme_batch_example_runs(tmp_path: Path) -> None:
    """The README's batch example, run as written (in a scratch directory)."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Batch jobs", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    script = tmp_path / "example.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 501 and "500 succeeded, 0 failed" in lines[-1]
    assert (tmp_path / "tickets.sqlite").exists()


async def test_a_slow_reader_holds_back_requests(client_for: Any) -> None:
    """Results wait for the reader while holding their slots: requests do not run ahead
    of `async for` by more than the queue and the slots (memory stays bounded)."""
    async with Emulator() as emu:
        client = client_for(emu.openai_base_url)
        job = client.batch((_prompt(i) for i in range(300)), model=MODEL, concurrency=4)
        got = 0
        async for _ in job:
            got += 1
            if got <= 5:
                await asyncio.sleep(0.2)
                assert len(emu.requests) <= got + 2 * 4 + 4
        assert got == 300 and len(emu.requests) == 300
        await client.aclose()


@pytest.mark.timeout(60)
async def test_insufficient_quota_fails_each_item_at_once(client_for: Any) -> None:
    """A 429 whose code is insufficient_quota will not pass later: the item fails at
    once, not retryable, without the job pausing as for a rate limit."""
    from .replay import ReplayServer

    body = (
        b'{"error": {"message": "You exceeded your current quota", '
        b'"type": "insufficient_quota", "param": null, "code": "insufficient_quota"}}'
    )
    items = [{"custom_id": f"q{i}", "prompt": _prompt(i)} for i in range(3)]
    async with ReplayServer(body=body, status=429, content_type="application/json") as server:
        client = client_for(server.url + "/v1")
        started = asyncio.get_running_loop().time()
        results = [r async for r in client.batch(items, model=MODEL)]
        elapsed = asyncio.get_running_loop().time() - started
        await client.aclose()
    assert len(server.requests) == 3  # one request per item
    assert all(r.error is not None and r.error["retryable"] is False for r in results)
    assert all(r.error["type"] == "RateLimitError" for r in results)
    assert elapsed < 5
