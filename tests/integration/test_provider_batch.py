"""Provider batch mode (client.batch(mode="provider")) against the emulator's batch
APIs over real sockets, with a real SQLite journal: OpenAI and Anthropic end to end
(results shaped as online, output= and tools in the lines, the batch price), the
official SDKs' batch calls, cancel, unknown options, auto by deadline, retry_online
and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from steer_llm_sdk import ConfigurationError, SteerLLMClient
from steer_llm_sdk.batch import BatchResult
from steer_llm_sdk.batch.provider import ProviderBatchJob
from steer_llm_sdk.batch.runner import BatchJob
from steer_llm_sdk.pricing import compute_cost
from steer_llm_sdk.testing import Emulator, Reply

ROOT = str(Path(__file__).resolve().parents[2])
OPENAI = "gpt-4o-mini"
ANTHROPIC = "claude-3-haiku-20240307"
GEMINI = "gemini-2.5-flash"


class City(BaseModel):
    name: str
    population: int


def _client(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(
        openai_api_key="sk-test-batch-key-123456",
        anthropic_api_key="sk-ant-test-batch-key-123456",
        openai_base_url=emu.openai_base_url,
        anthropic_base_url=emu.anthropic_base_url,
        api_keys={"gemini": "gemini-test-batch-key-123456"},
        base_urls={"gemini": emu.gemini_base_url},
    )


def _items(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"c{i}", "prompt": f"item {i}: tell me a story"} for i in range(n)]


def _shape(result: BatchResult) -> dict[str, Any]:
    doc = result.to_dict()
    doc["usage"] = sorted(doc["usage"])
    doc.pop("cost_usd")
    return doc


def get_weather(city: str) -> str:
    """The weather in a city."""
    return "sunny"


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC, GEMINI])
async def test_provider_results_are_the_online_results_at_half_price(
    model: str, tmp_path: Path
) -> None:
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        items = _items(6)
        online = {r.custom_id: r async for r in client.batch(items, model=model, max_tokens=12)}
        before = len(emu.requests)
        job = client.batch(
            items,
            model=model,
            mode="provider",
            poll_interval=0.02,
            journal=tmp_path / "j.sqlite",
            output_path=tmp_path / "out.jsonl",
            max_tokens=12,
        )
        assert isinstance(job, ProviderBatchJob)
        got = {r.custom_id: r async for r in job}
        # no request of its own: the batch API only
        paths = {r.path.split("?")[0] for r in emu.requests[before:]}
        assert not paths & {"/v1/chat/completions", "/v1/messages"}
        assert set(got) == set(online)
        for cid, result in got.items():
            assert result.ok, result.error
            assert _shape(result) == _shape(online[cid])
            route = client.resolve(model)
            full = compute_cost(route.provider.name, route.model, result.usage)
            assert full and result.cost_usd == pytest.approx(full / 2)
        assert job.summary.succeeded == 6 and job.summary.failed == 0
        lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        assert sorted(x["custom_id"] for x in lines) == sorted(online)
        (record,) = emu.batches.submitted
        for body in record["bodies"]:  # max_tokens, in each protocol's own words
            limit = body.get("max_tokens") or body.get("max_completion_tokens")
            limit = limit or body.get("generationConfig", {}).get("maxOutputTokens")
            assert limit == 12
        assert not any(body.get("stream") for body in record["bodies"])


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC, GEMINI])
async def test_output_and_tools_mean_the_same_in_a_batch_line(model: str) -> None:
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        job = client.batch(_items(3), model=model, mode="provider", poll_interval=0.02, output=City)
        results = [r async for r in job]
        assert len(results) == 3
        for result in results:
            assert result.ok, result.error
            assert isinstance(result.output, City)
        online = await client.stream_with_usage("item 0: tell me a story", model, output=City)
        assert {r.custom_id: r.output for r in results}["c0"] == online.output
        bodies = emu.batches.submitted[0]["bodies"]
        schema_text = json.dumps(bodies[0])
        assert "population" in schema_text  # the output schema went in the line
        tool_job = client.batch(
            _items(2), model=model, mode="provider", poll_interval=0.02, tools=[get_weather]
        )
        assert all(r.ok for r in [r async for r in tool_job])
        tool_body = emu.batches.submitted[1]["bodies"][0]
        assert "get_weather" in json.dumps(tool_body.get("tools"))
        assert "population" not in json.dumps(tool_body)  # each job's own parameters


async def test_a_failed_line_is_a_failed_result_and_an_expired_one_retryable(
    tmp_path: Path,
) -> None:
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        emu.add_rule("item 1:", Reply(status=400, error_message="bad item"))
        emu.batches.expire.add("item 2:")
        job = client.batch(
            _items(4), model=OPENAI, mode="provider", poll_interval=0.02, journal=tmp_path / "j"
        )
        results = {r.custom_id: r async for r in job}
        assert results["c0"].ok and results["c3"].ok
        assert results["c1"].error is not None and results["c1"].error["retryable"] is False
        assert "bad item" in results["c1"].error["message"]
        assert results["c2"].error is not None and results["c2"].error["retryable"] is True
        assert "expired" in results["c2"].error["message"]
        assert job.summary.failed == 1 and job.summary.retryable_failed == 1
        # the same job again: only the expired item is submitted again
        emu.batches.expire.clear()
        again = client.batch(
            _items(4), model=OPENAI, mode="provider", poll_interval=0.02, journal=tmp_path / "j"
        )
        summary = await again.run()
        assert summary.succeeded == 1 and summary.skipped == 3
        assert len(emu.batches.submitted[-1]["custom_ids"]) == 1


async def test_retry_online_runs_errored_and_expired_items_online(tmp_path: Path) -> None:
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        emu.batches.expire.add("item 2:")
        emu.enqueue(Reply(status=500))  # the batch's first line: a server error
        job = client.batch(
            _items(5),
            model=ANTHROPIC,
            mode="provider",
            poll_interval=0.02,
            retry_online=True,
            journal=tmp_path / "j",
            output_path=tmp_path / "out.jsonl",
            max_tokens=10,
        )
        before = len(emu.requests)
        results = [r async for r in job]
        online = [r for r in emu.requests[before:] if r.path == "/v1/messages"]
        assert len(online) == 2  # the 500 and the expired item, once each
        assert job.summary.succeeded == 5 and job.summary.retryable_failed == 0
        final = {r.custom_id: r for r in results if r.ok}
        assert set(final) == {f"c{i}" for i in range(5)}
        out = Counter(
            json.loads(x)["custom_id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()
        )
        assert out == Counter({f"c{i}": 1 for i in range(5)})


async def test_cancel_cancels_the_provider_batch(tmp_path: Path) -> None:
    async with Emulator(batch_delay=60) as emu, _client(emu) as client:
        job = client.batch(
            _items(4), model=OPENAI, mode="provider", poll_interval=0.02, journal=tmp_path / "j"
        )
        run = asyncio.create_task(job.run())
        for _ in range(200):
            if job.batches:
                break
            await asyncio.sleep(0.02)
        job.cancel()
        summary = await asyncio.wait_for(run, 10)
        (batch,) = emu.batches.openai.values()
        assert batch["status"] == "cancelled"
        assert summary.retryable_failed == 4 and summary.succeeded == 0


async def test_abort_returns_at_once_and_a_new_run_collects(tmp_path: Path) -> None:
    async with Emulator(batch_delay=0.3) as emu, _client(emu) as client:
        kwargs: dict[str, Any] = {
            "model": ANTHROPIC, "mode": "provider", "poll_interval": 0.02,
            "journal": tmp_path / "j", "output_path": tmp_path / "out.jsonl",
        }  # fmt: skip
        job = client.batch(_items(3), **kwargs)
        job.stop()  # before it starts: submits nothing
        assert (await job.run()).stopped == "interrupted"
        assert emu.batches.submitted == []
        job = client.batch(_items(3), **kwargs)
        run = asyncio.create_task(job.run())
        for _ in range(500):
            if job.batches:
                break
            await asyncio.sleep(0.01)
        job.abort()
        await asyncio.wait_for(run, 5)
        (batch,) = emu.batches.anthropic.values()
        assert batch["cancel_initiated_at"] is not None
        summary = await client.batch(_items(3), **kwargs).run()
        assert summary.retryable_failed == 3  # cancelled: recorded once, by the new run
        assert len(emu.batches.submitted) == 1


async def test_unknown_options_are_refused_and_never_sent() -> None:
    async with Emulator() as emu, _client(emu) as client:
        with pytest.raises(ConfigurationError, match="poll_interval"):
            client.batch(_items(1), model=OPENAI, poll_intervall=3)
        with pytest.raises(ConfigurationError, match="mode="):
            client.batch(_items(1), model=OPENAI, mode="batch")
        with pytest.raises(ConfigurationError, match="mode='provider' or 'auto'"):
            client.batch(_items(1), model=OPENAI, poll_interval=3)
        with pytest.raises(ConfigurationError, match="mode='auto'"):
            client.batch(_items(1), model=OPENAI, mode="provider", deadline=60)
        with pytest.raises(ConfigurationError, match="budget_usd"):
            client.batch(_items(1), model=OPENAI, mode="provider", budget_usd=1.0)
        with pytest.raises(ConfigurationError, match="engine"):
            client.batch(_items(1), model=OPENAI, mode="provider", engine="ray")
        with pytest.raises(ConfigurationError, match="poll_interval"):
            client.batch(_items(1), model=OPENAI, mode="provider", poll_interval=0)
        assert emu.requests == []
        # mode= is the job's, never a field of the request
        summary = await client.batch(_items(2), model=OPENAI, mode="online").run()
        assert summary.succeeded == 2
        assert all("mode" not in json.loads(r.body) for r in emu.requests)


async def test_auto_chooses_by_deadline() -> None:
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        soon = client.batch(_items(2), model=OPENAI, mode="auto", deadline=timedelta(hours=1))
        assert isinstance(soon, BatchJob)
        later = client.batch(_items(2), model=OPENAI, mode="auto", deadline=timedelta(days=2))
        assert isinstance(later, ProviderBatchJob)
        assert isinstance(client.batch(_items(2), model=OPENAI, mode="auto"), ProviderBatchJob)
        seconds = client.batch(_items(2), model=ANTHROPIC, mode="auto", deadline=90_000)
        assert isinstance(seconds, ProviderBatchJob)
        # a provider without a batch API: online
        assert isinstance(client.batch(_items(1), model="local/smollm2", mode="auto"), BatchJob)
        # auto going online drops the provider mode's options
        online = client.batch(_items(2), model=OPENAI, mode="auto", deadline=60, poll_interval=1)
        assert isinstance(online, BatchJob)
        assert (await online.run()).succeeded == 2
        assert (await later.run()).succeeded == 2


async def test_split_by_the_provider_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from steer_llm_sdk.batch.provider_apis import OpenAIBatches

    monkeypatch.setattr(OpenAIBatches, "max_requests", 4)
    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        summary = await client.batch(
            _items(10), model=OPENAI, mode="provider", poll_interval=0.02
        ).run()
        assert summary.succeeded == 10
        assert [len(b["custom_ids"]) for b in emu.batches.submitted] == [4, 4, 2]
        monkeypatch.setattr(OpenAIBatches, "max_bytes", 500)
        summary = await client.batch(
            _items(6), model=OPENAI, mode="provider", poll_interval=0.02, max_tokens=5
        ).run()
        sizes = [len(b["custom_ids"]) for b in emu.batches.submitted[3:]]
        assert summary.succeeded == 6 and sum(sizes) == 6 and len(sizes) > 2


async def test_keys_stay_out_of_errors() -> None:
    key = "sk-secret-never-shown-42"

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = next(
            (
                int(x.split(":")[1])
                for x in head.split("\r\n")
                if x.lower().startswith("content-length")
            ),
            0,
        )
        await reader.readexactly(length)
        auth = next(x for x in head.split("\r\n") if x.lower().startswith("authorization"))
        body = json.dumps({"error": {"message": f"bad key: {auth}"}}).encode()
        writer.write(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = SteerLLMClient(openai_api_key=key, openai_base_url=f"http://127.0.0.1:{port}/v1")
    try:
        job = client.batch(_items(2), model=OPENAI, mode="provider")
        results = [r async for r in job]
        assert [r.error and r.error["status_code"] for r in results] == [401, 401]
        for result in results:
            assert key not in json.dumps(result.to_dict())
    finally:
        server.close()
        await client.aclose()


def test_the_official_sdks_batch_calls_work_against_the_emulator() -> None:
    openai = pytest.importorskip("openai")
    anthropic = pytest.importorskip("anthropic")
    emu = Emulator.start_in_thread(batch_delay=0.05)
    try:
        oc = openai.OpenAI(base_url=emu.openai_base_url, api_key="sk-x")
        lines = [
            json.dumps({
                "custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                "body": {"model": OPENAI, "messages": [{"role": "user", "content": f"hi {i}"}]},
            })
            for i in range(3)
        ]  # fmt: skip
        upload = oc.files.create(file=("in.jsonl", "\n".join(lines).encode()), purpose="batch")
        batch = oc.batches.create(
            input_file_id=upload.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={"job": "t"},
        )
        assert batch.status == "in_progress" and batch.metadata == {"job": "t"}
        import time

        time.sleep(0.1)
        batch = oc.batches.retrieve(batch.id)
        assert batch.status == "completed" and batch.request_counts.completed == 3
        content = oc.files.content(batch.output_file_id).text
        answers = [json.loads(x) for x in content.splitlines()]
        assert sorted(a["custom_id"] for a in answers) == ["r0", "r1", "r2"]
        assert answers[0]["response"]["body"]["object"] == "chat.completion"
        assert [b.id for b in oc.batches.list(limit=10).data] == [batch.id]
        other = oc.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        assert oc.batches.cancel(other.id).status in ("cancelling", "cancelled")
        ac = anthropic.Anthropic(base_url=emu.anthropic_base_url, api_key="sk-ant-x")
        params = {"model": ANTHROPIC, "max_tokens": 20}
        mb = ac.messages.batches.create(
            requests=[
                {"custom_id": f"a{i}", "params": {**params, "messages": [
                    {"role": "user", "content": f"hi {i}"}]}}
                for i in range(2)
            ]
        )  # fmt: skip
        assert mb.processing_status == "in_progress"
        time.sleep(0.1)
        mb = ac.messages.batches.retrieve(mb.id)
        assert mb.processing_status == "ended" and mb.request_counts.succeeded == 2
        results = list(ac.messages.batches.results(mb.id))
        assert [r.custom_id for r in results] == ["a0", "a1"]
        assert results[0].result.type == "succeeded"
        assert results[0].result.message.content[0].text
        assert [b.id for b in ac.messages.batches.list(limit=5).data] == [mb.id]
        two = ac.messages.batches.create(
            requests=[{"custom_id": "z", "params": {**params, "messages": [
                {"role": "user", "content": "x"}]}}]
        )  # fmt: skip
        assert ac.messages.batches.cancel(two.id).processing_status in ("canceling", "ended")
    finally:
        emu.stop()


def test_google_genai_batch_calls_work_against_the_emulator() -> None:
    genai = pytest.importorskip("google.genai")
    import time

    emu = Emulator.start_in_thread(batch_delay=0.05)
    try:
        client = genai.Client(
            api_key="g-key", http_options=genai.types.HttpOptions(base_url=emu.gemini_base_url)
        )
        src = [{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}]
        job = client.batches.create(model=GEMINI, src=src, config={"display_name": "tag-1"})
        assert job.display_name == "tag-1" and job.state.name == "JOB_STATE_RUNNING"
        time.sleep(0.1)
        job = client.batches.get(name=job.name)
        assert job.state.name == "JOB_STATE_SUCCEEDED"
        assert job.dest.inlined_responses[0].response.text
        assert [j.name for j in client.batches.list(config={"page_size": 5})] == [job.name]
        other = client.batches.create(model=GEMINI, src=src)
        client.batches.cancel(name=other.name)
        assert client.batches.get(name=other.name).state.name == "JOB_STATE_CANCELLED"
    finally:
        emu.stop()


async def test_cli_mode_provider(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(item) + "\n" for item in _items(5)))
    async with Emulator(batch_delay=0.05) as emu:
        env = {
            **os.environ,
            "OPENAI_API_KEY": "sk-cli-key",
            "OPENAI_BASE_URL": emu.openai_base_url,
            "PYTHONPATH": ROOT,
        }
        args = [
            sys.executable, "-m", "steer_llm_sdk.cli", "batch", str(tmp_path / "in.jsonl"),
            "-o", str(tmp_path / "out.jsonl"), "-m", OPENAI, "--max-tokens", "8",
            "--mode", "provider", "--poll-interval", "0.05",
        ]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert "5 succeeded" in err.decode()
        assert len(emu.batches.submitted) == 1
    out = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(x["custom_id"] for x in out) == [f"c{i}" for i in range(5)]


async def test_responses_api_lines_and_cli_progress_figures() -> None:
    from steer_llm_sdk.batch.cli import _figures

    async with Emulator(batch_delay=0.05) as emu, _client(emu) as client:
        items = _items(3)
        online = {
            r.custom_id: r
            async for r in client.batch(items, model=OPENAI, api="responses", max_tokens=10)
        }
        job = client.batch(
            items, model=OPENAI, api="responses", mode="provider", poll_interval=0.02,
            max_tokens=10,
        )  # fmt: skip
        got = {r.custom_id: r async for r in job}
        assert {k: _shape(v) for k, v in got.items()} == {k: _shape(v) for k, v in online.items()}
        (batch,) = emu.batches.openai.values()
        assert batch["endpoint"] == "/v1/responses"
        done, detail = _figures(job)
        assert done == 3
        assert "3 submitted" in detail and "0 in progress" in detail and "0 failed" in detail
        assert f"${job.summary.cost_usd:.4f}" in detail


@pytest.mark.timeout(90)
async def test_cli_first_ctrl_c_waits_second_cancels(tmp_path: Path) -> None:
    import signal

    (tmp_path / "in.jsonl").write_text("".join(json.dumps(i) + "\n" for i in _items(4)))
    async with Emulator(batch_delay=60) as emu:
        env = {
            **os.environ,
            "ANTHROPIC_API_KEY": "sk-ant-cli-key",
            "ANTHROPIC_BASE_URL": emu.anthropic_base_url,
            "PYTHONPATH": ROOT,
        }
        args = [
            sys.executable, "-m", "steer_llm_sdk.cli", "batch", str(tmp_path / "in.jsonl"),
            "-o", str(tmp_path / "out.jsonl"), "-m", ANTHROPIC, "--mode", "provider",
            "--poll-interval", "0.05",
        ]  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(600):
            if emu.batches.submitted:
                break
            await asyncio.sleep(0.05)
        (batch,) = emu.batches.anthropic.values()
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(1.0)
        assert proc.returncode is None  # still waiting for the submitted batch
        assert batch["processing_status"] == "in_progress"
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 130, err.decode()
        assert "Ctrl-C again to cancel" in err.decode()
        assert batch["cancel_initiated_at"] is not None
        assert len(emu.batches.submitted) == 1


async def test_results_url_on_another_host_gets_no_key(tmp_path: Path) -> None:
    async with Emulator(batch_delay=0.05) as emu, Emulator() as other, _client(emu) as client:
        emu.batches.base_url = lambda: other.url  # a results_url pointing elsewhere
        job = client.batch(_items(2), model=ANTHROPIC, mode="provider", poll_interval=0.02)
        with pytest.raises(Exception, match="another host"):
            await job.run()
        assert other.requests == []  # nothing, and no key, went to the other host


@pytest.mark.parametrize("where", ["client", "job"])
async def test_cache_prompt_places_markers_in_batch_lines(where: str) -> None:
    system = "You label support tickets. " + "Rules: be brief and exact. " * 400
    async with Emulator(batch_delay=0.05) as emu:
        client = SteerLLMClient(
            anthropic_api_key="sk-ant-test",
            anthropic_base_url=emu.anthropic_base_url,
            cache_prompt="auto" if where == "client" else None,
        )
        options: dict[str, Any] = {"cache_prompt": "auto"} if where == "job" else {}
        job = client.batch(
            _items(2), model="claude-sonnet-4-5", mode="provider", poll_interval=0.02,
            system=system, max_tokens=10, **options,
        )  # fmt: skip
        assert all(r.ok for r in [r async for r in job])
        for body in emu.batches.submitted[0]["bodies"]:
            assert "cache_control" in json.dumps(body)
        await client.aclose()
