"""engine="ray" on a real local Ray cluster (a head and a worker node, each its own
raylet and worker processes) against the emulator: shared limits, a worker process
killed mid-job, Parquet in and out, resume by custom_id. Runs when the `ray` extra is
installed (pip install -e '.[ray]'); skipped with that reason otherwise."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.testing import Emulator

ray = pytest.importorskip("ray", reason="the `ray` extra is not installed: pip install '.[ray]'")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install '.[ray]'")

pytestmark = pytest.mark.ray
MODEL = "gpt-4o-mini"
KEY = "sk-test-ray-key-000000"


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=2)  # the worker node: its own raylet and workers
    ray.init(address=cluster.address, namespace="steer-llm-sdk", log_to_driver=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def _client(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(api_keys={"openai": KEY}, base_urls={"openai": emu.openai_base_url})


def _id_of(body: bytes) -> str:
    text = json.loads(body)["messages"][-1]["content"]
    return "r" + text.split(":")[0].removeprefix("item ")


def _done(journal: Path) -> set[str]:
    if not journal.exists():
        return set()
    with sqlite3.connect(journal) as db:
        return {row[0] for row in db.execute("SELECT id FROM items WHERE state = 1")}


@pytest.mark.timeout(300)
async def test_ray_shared_limits_and_a_killed_worker(ray_cluster: Any, tmp_path: Path) -> None:
    n = 600
    rpm, window = 2400, 10  # 40 requests/s for the whole cluster
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    items = [{"custom_id": f"r{i}", "prompt": f"item {i}: tag this"} for i in range(n)]
    items.append({"custom_id": "r5", "prompt": "item 5: tag this"})  # a duplicate
    async with Emulator(requests_per_minute=rpm, rate_window=window) as emu:
        client = _client(emu)
        job: Any = client.batch(
            items,
            model=MODEL,
            engine="ray",
            output_path=out,
            num_actors=2,
            concurrency=8,
            batch_size=50,
            requests_per_minute=rpm,
            max_tokens=8,
        )
        running = asyncio.create_task(job.run())
        while len(_done(journal)) < 150:  # well into the job
            assert not running.done(), running
            await asyncio.sleep(0.1)
        coordinator = ray.get_actor(job.coordinator_name, namespace="steer-llm-sdk")
        pids = await coordinator.worker_pids.remote()
        assert len(pids) == 2
        finished = _done(journal)
        at_kill = len(emu.requests)
        os.kill(pids[0], signal.SIGKILL)  # a worker process, mid-batch
        summary = await asyncio.wait_for(running, 240)
        later = Counter(_id_of(r.body) for r in emu.requests[at_kill:])
        stats = emu.stats()["rate_limits"][KEY]
        await client.aclose()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    ids = Counter(row["custom_id"] for row in rows)
    assert len(ids) == n and set(ids.values()) == {1}  # every item exactly once
    assert all(row["error"] is None and row["text"] for row in rows)
    assert summary.succeeded == n and summary.failed == 0
    assert set(later) & finished == set()  # nothing finished was asked again
    assert stats["limited"] == 0  # the two actors together kept to the shared limit
    assert stats["peak_requests"] <= rpm * window / 60
    assert len(job.worker_pids) >= 3  # the killed actor was restarted (a new process)


@pytest.mark.timeout(300)
async def test_ray_parquet_in_and_out_and_resume(ray_cluster: Any, tmp_path: Path) -> None:
    import pyarrow
    import pyarrow.parquet as pq

    source = tmp_path / "in.parquet"
    table = pyarrow.table(
        {
            "custom_id": [f"r{i}" for i in range(120)],
            "prompt": [f"item {i}: tag this" for i in range(120)],
            "max_tokens": [4 if i % 2 else None for i in range(120)],
        }
    )
    pq.write_table(table, source)
    out = tmp_path / "out.parquet"
    async with Emulator() as emu:
        client = _client(emu)
        first: Any = client.batch(
            str(source), model=MODEL, engine="ray", output_path=out, max_tokens=8
        )
        summary = await first.run()
        assert summary.succeeded == 120 and len(emu.requests) == 120
        sent = [json.loads(r.body) for r in emu.requests]
        assert sorted(b.get("max_completion_tokens") for b in sent)[0] == 4
        again: Any = client.batch(
            str(source), model=MODEL, engine="ray", output_path=out, max_tokens=8
        )
        resumed = await again.run()
        assert resumed.skipped == 120 and resumed.succeeded == 0
        assert len(emu.requests) == 120  # resume by custom_id: no request
        await client.aclose()
    result = pq.read_table(out).to_pylist()
    assert sorted(row["custom_id"] for row in result) == sorted(f"r{i}" for i in range(120))
    assert all(row["text"] and row["error"] is None for row in result)
