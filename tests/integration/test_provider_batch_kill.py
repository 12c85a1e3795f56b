"""Provider batch mode killed with SIGKILL and resumed with the same journal: at each
point of a submission's life (the intent committed, Gemini's input file uploaded but
the batch not created, the batch created but its id not written, polling, half-way
through downloading) and at random times. Every item is
in the output exactly once and no item is ever submitted twice (the emulator's
record of every batch created proves it)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

from steer_llm_sdk.testing import Emulator

ROOT = str(Path(__file__).resolve().parents[2])
N_ITEMS = 20
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-haiku-20240307",
    "gemini": "gemini-2.5-flash",
}

CHILD = r"""
import asyncio, json, os, signal, sys
from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.batch import provider_apis, provider_gemini, recorder, submissions

point = os.environ.get("KILL_AT", "")
provider_apis.OpenAIBatches.max_requests = 8  # several batches per job
provider_apis.AnthropicBatches.max_requests = 8
provider_gemini.GeminiBatches.max_requests = 8
if os.environ.get("FILE_ROUTE"):  # Gemini: an uploaded JSONL file, never inline
    provider_gemini.GeminiBatches.inline_bytes = 100
recorder._COMMIT_ROWS = 5  # commits part-way through a download


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def after(cls, name, times=1):
    original = getattr(cls, name)
    seen = [0]

    def count():
        seen[0] += 1
        if seen[0] >= times:
            die()

    if asyncio.iscoroutinefunction(original):
        async def patched(self, *args):
            result = await original(self, *args)
            count()
            return result
    else:
        def patched(self, *args):
            result = original(self, *args)
            count()
            return result
    setattr(cls, name, patched)


if point == "intent":  # committed, nothing submitted yet
    after(submissions.Submissions, "intent")
elif point == "upload":  # Gemini: the input file uploaded, the batch not created
    after(provider_gemini.GeminiBatches, "_upload")
elif point == "submit":  # the batch exists; its id is not written
    for cls in (provider_apis.OpenAIBatches, provider_apis.AnthropicBatches,
                provider_gemini.GeminiBatches):
        after(cls, "submit")
elif point == "poll":
    for cls in (provider_apis.OpenAIBatches, provider_apis.AnthropicBatches,
                provider_gemini.GeminiBatches):
        after(cls, "status")
elif point.startswith("download"):
    after(recorder.Recorder, "record", int(point.split(":")[1]))


async def main():
    client = SteerLLMClient(
        openai_api_key="sk-kill-test", anthropic_api_key="sk-ant-kill-test",
        openai_base_url=os.environ["EMU_OPENAI"], anthropic_base_url=os.environ["EMU_ANTHROPIC"],
        api_keys={"gemini": "gemini-kill-test"}, base_urls={"gemini": os.environ["EMU_GEMINI"]},
    )
    items = [{"custom_id": "bad", "messages": 5}]  # fails before any submit
    items += [{"custom_id": f"c{i}", "prompt": f"item {i}: a story"} for i in range(20)]
    job = client.batch(
        items, model=os.environ["MODEL"], mode="provider", poll_interval=0.05,
        journal=os.environ["JOURNAL"], output_path=os.environ["OUTPUT"], max_tokens=8,
    )
    summary = await job.run()
    await client.aclose()
    print(json.dumps({"succeeded": summary.succeeded, "skipped": summary.skipped}))


asyncio.run(main())
"""


async def _child(
    emu: Emulator, tmp: Path, model: str, point: str, file_route: bool = False
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "FILE_ROUTE": "1" if file_route else "",
        "PYTHONPATH": ROOT,
        "KILL_AT": point,
        "MODEL": model,
        "EMU_OPENAI": emu.openai_base_url,
        "EMU_ANTHROPIC": emu.anthropic_base_url,
        "EMU_GEMINI": emu.gemini_base_url,
        "JOURNAL": str(tmp / "job.journal"),
        "OUTPUT": str(tmp / "out.jsonl"),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(tmp / "child.py"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _check_exactly_once(emu: Emulator, tmp: Path) -> None:
    submitted: Counter[str] = Counter()
    for batch in emu.batches.submitted:
        for body in batch["bodies"]:
            submitted.update(re.findall(r"item (\d+):", json.dumps(body)))
    assert submitted == Counter({str(i): 1 for i in range(N_ITEMS)}), "an item went twice"
    lines = [json.loads(line) for line in (tmp / "out.jsonl").read_text().splitlines()]
    out = Counter(line["custom_id"] for line in lines)
    assert out == Counter({"bad": 1, **{f"c{i}": 1 for i in range(N_ITEMS)}})
    assert [line["custom_id"] for line in lines if line["error"]] == ["bad"]
    with sqlite3.connect(tmp / "job.journal") as db:
        rows = db.execute("SELECT count(*) FROM items WHERE state = 1").fetchone()[0]
        states = {r[0] for r in db.execute("SELECT state FROM submissions")}
    assert rows == N_ITEMS
    assert states <= {2, 3}  # every batch downloaded (or an intent never submitted)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "gemini-file"])
async def test_killed_at_each_point_then_resumed(provider: str, tmp_path: Path) -> None:
    (tmp_path / "child.py").write_text(CHILD)
    file_route = provider == "gemini-file"
    model = MODELS[provider.removesuffix("-file")]
    points = ["intent", "submit", "poll", "download:12"]
    if file_route:  # also between the upload and the create
        points[1:1] = ["upload"]
    async with Emulator(batch_delay=0.3) as emu:
        for point in points:
            proc = await _child(emu, tmp_path, model, point, file_route)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == -signal.SIGKILL, (point, err.decode()[-2000:])
        assert len(emu.batches.submitted) >= 1
        proc = await _child(emu, tmp_path, model, "", file_route)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
        _check_exactly_once(emu, tmp_path)
        if file_route:
            assert {b["input"] for b in emu.batches.submitted} == {"file"}
            # every input file (the one never used too) and responses file deleted
            assert [f for f in emu.files.values() if f.api == "gemini"] == []


@pytest.mark.timeout(120)
async def test_killed_at_random_times_then_resumed(tmp_path: Path) -> None:
    (tmp_path / "child.py").write_text(CHILD)
    rng = random.Random(20)
    async with Emulator(batch_delay=0.4) as emu:
        for _ in range(3):
            proc = await _child(emu, tmp_path, MODELS["openai"], "")
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        proc = await _child(emu, tmp_path, MODELS["openai"], "")
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-2000:]
        _check_exactly_once(emu, tmp_path)
