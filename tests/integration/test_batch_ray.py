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
import sys
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
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "object_store_memory": 150 * 1024 * 1024,
        },
    )
    # The worker node: its own raylet and worker processes.
    cluster.add_node(num_cpus=2, object_store_memory=150 * 1024 * 1024)
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


@pytest.mark.timeout(400)
async def test_ray_shared_limits_killed_worker_parquet_and_resume(
    ray_cluster: Any, tmp_path: Path
) -> None:
    """Parquet in, JSONL out; two actors under one shared limit; one actor's process
    killed mid-job; then the CLI resumes the job on the cluster (JSONL in, Parquet out)."""
    import pyarrow
    import pyarrow.parquet as pq

    n = 400
    rpm, window = 2400, 10  # 40 requests/s for the whole cluster
    source = tmp_path / "in.parquet"
    ids = [f"r{i}" for i in range(n)] + ["r5"]  # r5 twice: one result
    pq.write_table(
        pyarrow.table(
            {
                "custom_id": ids,
                "prompt": [f"item {i[1:]}: tag this" for i in ids],
                "max_tokens": [4 if k % 2 else None for k in range(len(ids))],
            }
        ),
        source,
    )
    # The same items as JSONL, for the resume from the command line.
    with (tmp_path / "in.jsonl").open("w") as f:
        for k, i in enumerate(ids):
            row: dict[str, Any] = {"custom_id": i, "prompt": f"item {i[1:]}: tag this"}
            if k % 2:
                row["max_tokens"] = 4
            f.write(json.dumps(row) + "\n")
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    # The emulator allows 4% more than the job's limit, for scheduling lag in the actors
    # on a busy machine; two actors that did not share the limit would send twice it.
    async with Emulator(requests_per_minute=rpm * 1.04, rate_window=window) as emu:
        client = _client(emu)
        job: Any = client.batch(
            str(source),
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
        while len(_done(journal)) < 100:  # well into the job
            assert not running.done(), running
            await asyncio.sleep(0.1)
        coordinator = ray.get_actor(job.coordinator_name, namespace="steer-llm-sdk")
        pids = await coordinator.worker_pids.remote()
        assert len(pids) == 2
        finished = _done(journal)
        at_kill = len(emu.requests)
        os.kill(pids[0], signal.SIGKILL)  # a worker process, mid-batch
        summary = await asyncio.wait_for(running, 300)
        later = Counter(_id_of(r.body) for r in emu.requests[at_kill:])
        stats = emu.stats()["rate_limits"][KEY]
        limits = sorted(json.loads(r.body).get("max_completion_tokens") for r in emu.requests)
        sent = len(emu.requests)

        # The same job again, from the command line on the same cluster: all done.
        env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
        env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=emu.openai_base_url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "steer_llm_sdk.cli",
            "batch",
            str(tmp_path / "in.jsonl"),
            "-o",
            str(tmp_path / "out.parquet"),
            "--journal",
            str(journal),
            "-m",
            MODEL,
            "--max-tokens",
            "8",
            "--engine",
            "ray",
            "--address",
            ray_cluster.address,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 300)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert len(emu.requests) == sent  # resumed by custom_id: no request
        await client.aclose()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    got = Counter(row["custom_id"] for row in rows)
    assert len(got) == n and set(got.values()) == {1}  # every item exactly once
    assert all(row["error"] is None and row["text"] for row in rows)
    assert summary.succeeded == n and summary.failed == 0
    assert set(later) & finished == set()  # nothing finished was asked again
    assert stats["limited"] == 0  # the two actors together kept to the shared limit
    assert stats["peak_requests"] <= rpm * 1.04 * window / 60
    assert stats["requests"] / summary.elapsed <= rpm / 60  # the job's average rate
    assert len(job.worker_pids) >= 3  # the killed actor was restarted (a new process)
    assert limits[0] == 4 and limits[-1] == 8  # per-item max_tokens from a column
    assert "0 succeeded" in err.decode() and "already done" in err.decode()
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert sorted(row["custom_id"] for row in table) == sorted(got)
