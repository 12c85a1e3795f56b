"""`steer-llm batch` as a real subprocess against the emulator: SIGKILL at random
points then resume, Ctrl-C (once and twice), and the output file exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import pytest

from steer_llm_sdk.testing import Emulator

# With 5 ms between chunks and 16 in flight the emulator serves at most ~350 items/s:
# three runs killed within 2 s each can never finish the job, even on a fast machine.
N_ITEMS = 3000


def _write_input(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"custom_id": f"k{i}", "prompt": f"item {i}: summarise"}) + "\n")


def _env(emu: Emulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(OPENAI_API_KEY="sk-test-batch-cli-000", OPENAI_BASE_URL=emu.openai_base_url)
    return env


async def _start(emu: Emulator, tmp: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        "batch",
        str(tmp / "in.jsonl"),
        "-o",
        str(tmp / "out.jsonl"),
        "-m",
        "gpt-4o-mini",
        "--max-tokens",
        "8",
        "--concurrency",
        "16",
        *extra,
        env=_env(emu),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


def _done_ids(journal: Path) -> set[str]:
    if not journal.exists():
        return set()
    with sqlite3.connect(journal) as db:
        return {row[0] for row in db.execute("SELECT id FROM items WHERE state = 1")}


def _id_of(body: bytes) -> str:
    text = json.loads(body)["messages"][-1]["content"]
    return "k" + text.split(":")[0].removeprefix("item ")


def _output_ids(path: Path) -> Counter[str]:
    with path.open() as f:
        return Counter(json.loads(line)["custom_id"] for line in f)


@pytest.mark.timeout(180)
async def test_sigkill_at_random_points_then_resume(tmp_path: Path) -> None:
    _write_input(tmp_path / "in.jsonl", N_ITEMS)
    journal = tmp_path / "out.jsonl.journal"
    rng = random.Random(1234)
    async with Emulator(delay_between_chunks=0.005) as emu:
        finished: set[str] = set()
        kills = 0
        for _ in range(3):
            proc = await _start(emu, tmp_path)
            start = len(emu.requests)
            await asyncio.sleep(rng.uniform(0.8, 2.0))
            assert proc.returncode is None, "the job ended before it could be killed"
            proc.kill()  # SIGKILL: no cleanup at all
            await proc.wait()
            kills += 1
            # Nothing that had finished (committed) before this run was asked again.
            again = {_id_of(r.body) for r in emu.requests[start:]} & finished
            assert again == set()
            now_done = _done_ids(journal)
            assert finished <= now_done and len(now_done) < N_ITEMS
            finished = now_done
        assert kills == 3 and len(finished) > 0
        proc = await _start(emu, tmp_path)
        start = len(emu.requests)
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
        assert {_id_of(r.body) for r in emu.requests[start:]} & finished == set()
        assert f"{len(finished)} already done" in err.decode()
    out = _output_ids(tmp_path / "out.jsonl")
    assert len(out) == N_ITEMS and set(out.values()) == {1}
    assert _done_ids(journal) == {f"k{i}" for i in range(N_ITEMS)}


@pytest.mark.timeout(120)
async def test_ctrl_c_finishes_in_flight_and_resumes(tmp_path: Path) -> None:
    _write_input(tmp_path / "in.jsonl", N_ITEMS)
    journal = tmp_path / "out.jsonl.journal"
    async with Emulator(delay_between_chunks=0.005) as emu:
        proc = await _start(emu, tmp_path)
        await asyncio.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 130, err.decode()
        text = err.decode()
        assert "stopping; waiting for" in text and "interrupted" in text
        # In-flight requests finished and were recorded: the output matches the journal.
        done = _done_ids(journal)
        out = _output_ids(tmp_path / "out.jsonl")
        assert 0 < len(done) < N_ITEMS
        assert set(out) == done and set(out.values()) == {1}
        answered = {_id_of(r.body) for r in emu.requests}
        assert answered == done  # every request sent was let finish

        # Twice: stops at once, in-flight requests are dropped (they rerun later).
        proc = await _start(emu, tmp_path)
        await asyncio.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 130, err.decode()

        proc = await _start(emu, tmp_path)
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
    out = _output_ids(tmp_path / "out.jsonl")
    assert len(out) == N_ITEMS and set(out.values()) == {1}


async def test_cli_refuses_to_overwrite_and_reports_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('"a prompt"\nnot json\n\n["bad", 1]\n')
    async with Emulator() as emu:
        (tmp_path / "out.jsonl").write_text("someone's file\n")
        proc = await _start(emu, tmp_path)
        _, err = await proc.communicate()
        assert proc.returncode == 2
        assert "exists and has no journal" in err.decode()
        (tmp_path / "out.jsonl").unlink()
        proc = await _start(emu, tmp_path)
        _, err = await proc.communicate()
        assert proc.returncode == 1, err.decode()  # some items failed
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    by_id = {line["custom_id"]: line for line in lines}
    assert len(lines) == 3
    assert "line 2 is not JSON" in by_id["line:2"]["error"]["message"]
    ok = [line for line in lines if line["error"] is None]
    assert len(ok) == 1 and ok[0]["text"]
    bad = [line for line in lines if line["error"] and line["custom_id"] != "line:2"]
    assert bad[0]["error"]["type"] == "ConfigurationError"  # ["bad", 1]: not messages


async def test_cli_schema_and_system(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('"describe a lamp"\n{"prompt": "another lamp"}\n')
    (tmp_path / "schema.json").write_text(
        json.dumps({"type": "object", "properties": {"name": {"type": "string"}}})
    )
    async with Emulator() as emu:
        proc = await _start(
            emu,
            tmp_path,
            "--schema",
            str(tmp_path / "schema.json"),
            "--system",
            "Be terse",
            "--max-tokens",  # the last one wins: room for the whole JSON answer
            "200",
        )
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        bodies = [json.loads(r.body) for r in emu.requests]
    assert len(bodies) == 2
    for body in bodies:
        assert body["response_format"]["type"] == "json_schema"
        assert body["messages"][0] == {"role": "system", "content": "Be terse"}
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [line["output"]["name"] for line in lines] == ["Aurora Desk Lamp"] * 2


def test_importing_the_sdk_loads_no_batch_machinery() -> None:
    code = (
        "import sys, steer_llm_sdk, steer_llm_sdk.cli; steer_llm_sdk.cli._parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'pyarrow', "
        "'sqlite3') or m in ('steer_llm_sdk.batch.runner', "
        "'steer_llm_sdk.batch.journal', 'steer_llm_sdk.batch.ray_engine')))"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
