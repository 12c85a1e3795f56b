"""Batch job benchmark: throughput, memory and resume time against the emulator.

    .venv/bin/python benchmarks/batch_bench.py                  # everything, full size
    .venv/bin/python benchmarks/batch_bench.py --items 10000 --lines 100000 --done 90000

1. Throughput: N short items (default 100,000) through ``client.batch`` (journal on,
   as a real job) and the same items done the common hand-written way: the official
   ``openai`` SDK's ``AsyncOpenAI`` under an ``asyncio.Semaphore`` at the same
   concurrency. Items per second and client CPU per item (this process's CPU time;
   the emulator runs in its own process).
2. Memory and resume: an input of L lines (default 1,000,000) whose journal already
   holds D finished items (default 900,000): the time from start to the first new
   request, and the runner's peak RSS (in a child process) reading all L lines, next
   to its peak RSS on a 10,000-line input: flat means the two are about equal.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

MODEL = "gpt-4o-mini"
KEY = "sk-bench-key-000000"


class EmulatorProcess:
    def __init__(self, *flags: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "steer_llm_sdk.testing", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.openai_base_url = self.proc.stdout.readline().split()[-1]
        self.url = self.openai_base_url.removesuffix("/v1")

    def requests(self) -> int:
        with urllib.request.urlopen(self.url + "/emulator/stats", timeout=10) as response:
            return int(json.loads(response.read())["requests"])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def _prompt(i: int) -> str:
    return f"item {i}: label this ticket"


async def steer_job(base_url: str, n: int, concurrency: int, journal: str) -> dict[str, float]:
    from steer_llm_sdk import SteerLLMClient

    client = SteerLLMClient(api_keys={"openai": KEY}, base_urls={"openai": base_url})
    items = ({"custom_id": f"b{i}", "prompt": _prompt(i)} for i in range(n))
    cpu, wall = time.process_time(), time.perf_counter()
    summary = await client.batch(
        items, model=MODEL, max_tokens=8, concurrency=concurrency, journal=journal
    ).run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.aclose()
    assert summary.succeeded == n, summary
    return {"items_per_s": n / wall, "cpu_us_per_item": cpu / n * 1e6, "seconds": wall}


async def openai_loop(base_url: str, n: int, concurrency: int) -> dict[str, float]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=KEY, base_url=base_url)
    semaphore = asyncio.Semaphore(concurrency)
    done = 0

    async def one(i: int) -> None:
        nonlocal done
        async with semaphore:
            response = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": _prompt(i)}], max_tokens=8
            )
            assert response.choices[0].message.content
            done += 1

    cpu, wall = time.process_time(), time.perf_counter()
    # The usual script: a task per item, bounded by the semaphore (in slices of 10,000
    # so that the script's own memory stays sane at 100,000 items).
    for start in range(0, n, 10_000):
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 10_000))))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    assert done == n
    return {"items_per_s": n / wall, "cpu_us_per_item": cpu / n * 1e6, "seconds": wall}


# -- memory and resume (in a child process, so that its peak RSS is its own) -----------
def child(args: argparse.Namespace) -> None:
    """Run the job over the input file until ``--stop-after`` new results; print JSON."""
    from steer_llm_sdk import SteerLLMClient
    from steer_llm_sdk.batch.cli import _read_items

    async def main() -> dict[str, Any]:
        client = SteerLLMClient(api_keys={"openai": KEY}, base_urls={"openai": args.base_url})
        new = 0
        job: Any = None

        def on_result(_: Any) -> None:
            nonlocal new
            new += 1
            if new >= args.stop_after:
                job.stop()

        began = time.perf_counter()
        job = client.batch(
            _read_items(args.input),
            model=MODEL,
            max_tokens=8,
            concurrency=32,
            journal=args.journal,
            on_result=on_result,
        )
        summary = await job.run()
        await client.aclose()
        return {
            "seconds": time.perf_counter() - began,
            "read": summary.read,
            "skipped": summary.skipped,
            "succeeded": summary.succeeded,
        }

    result = asyncio.run(main())
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage: ru_maxrss survives exec, so a child
    would report its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_input(path: str, lines: int) -> None:
    with open(path, "w") as f:
        for i in range(lines):
            f.write(f'{{"custom_id": "m{i}", "prompt": "{_prompt(i)}"}}\n')


def prefill_journal(path: str, done: int) -> float:
    """A journal of this job with ``done`` finished items (m0 ... m{done-1})."""
    import orjson

    from steer_llm_sdk.batch import Journal
    from steer_llm_sdk.batch.items import fingerprint

    began = time.perf_counter()
    journal = Journal(path)
    journal.check_fingerprint(fingerprint(MODEL, None, {"max_tokens": 8}))
    journal.new_run()
    usage = {"prompt_tokens": 11, "completion_tokens": 8, "total_tokens": 19}
    for start in range(0, done, 50_000):
        rows = []
        for i in range(start, min(done, start + 50_000)):
            result = {"custom_id": f"m{i}", "text": "done before", "usage": usage, "error": None}
            rows.append((f"m{i}", 1, 1, 1, 0.0000066, 11, 8, orjson.dumps(result)))
        journal.record_many(rows)
        journal.commit()
    journal.close()
    return time.perf_counter() - began


def run_child(
    emu: EmulatorProcess, input_path: str, journal: str, stop_after: int
) -> dict[str, Any]:
    # Each stats poll is itself a request the emulator counts: subtract the polls.
    before = emu.requests()
    polls = 0
    proc = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            "--base-url",
            emu.openai_base_url,
            "--input",
            input_path,
            "--journal",
            journal,
            "--stop-after",
            str(stop_after),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    began = time.perf_counter()
    first = None
    while proc.poll() is None:
        if first is None:
            polls += 1
            if emu.requests() - before - polls > 0:
                first = time.perf_counter() - began
        time.sleep(0.01)
    assert proc.stdout is not None
    result = dict(json.loads(proc.stdout.read()))
    result["first_request_s"] = first
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000, help="throughput items")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds")
    parser.add_argument("--lines", type=int, default=1_000_000, help="resume input lines")
    parser.add_argument("--done", type=int, default=900_000, help="finished in the journal")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-resume", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--journal", help=argparse.SUPPRESS)
    parser.add_argument("--stop-after", type=int, default=2000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    emu = EmulatorProcess("--reply-words", "8")
    tmp = tempfile.mkdtemp(prefix="steer-batch-bench-")
    try:
        if not args.skip_throughput:
            n, c, rounds = args.items, args.concurrency, args.rounds
            print(f"\n{n:,} short items (8-token answers), concurrency {c}, {rounds} rounds:")
            # Interleaved rounds of n/rounds items each: a busy machine slows both alike.
            per = n // rounds
            totals: dict[str, list[float]] = {"steer": [0.0, 0.0], "openai": [0.0, 0.0]}
            for r in range(rounds):
                db = os.path.join(tmp, f"t{r}.db")
                steer = asyncio.run(steer_job(emu.openai_base_url, per, c, db))
                base = asyncio.run(openai_loop(emu.openai_base_url, per, c))
                for name, got in (("steer", steer), ("openai", base)):
                    totals[name][0] += got["seconds"]
                    totals[name][1] += got["cpu_us_per_item"] * per / 1e6
                print(
                    f"  round {r + 1}: steer {steer['items_per_s']:.0f} items/s, "
                    f"openai {base['items_per_s']:.0f} items/s",
                    flush=True,
                )
            items = per * rounds
            for name, label in (
                ("steer", "steer client.batch (journal on)"),
                ("openai", "openai AsyncOpenAI + Semaphore"),
            ):
                seconds, cpu = totals[name]
                print(
                    f"  {label:<34} {items / seconds:8.0f} items/s  "
                    f"{cpu / items * 1e6:7.0f} µs CPU/item  ({seconds:.1f}s)"
                )
            ratio = totals["openai"][0] / totals["steer"][0]
            cpu_ratio = totals["openai"][1] / totals["steer"][1]
            print(f"  ratio: {ratio:.2f}x items/s, {cpu_ratio:.2f}x less CPU per item")
        if not args.skip_resume:
            small = os.path.join(tmp, "small.jsonl")
            write_input(small, 10_000)
            base_run = run_child(emu, small, os.path.join(tmp, "small.db"), 10_000)
            print(
                f"\nmemory: 10,000-line input, all run: peak RSS {base_run['peak_rss_mb']:.0f} MB "
                f"({base_run['seconds']:.1f}s)"
            )
            big = os.path.join(tmp, "big.jsonl")
            began = time.perf_counter()
            write_input(big, args.lines)
            made = time.perf_counter() - began
            journal = os.path.join(tmp, "big.db")
            filled = prefill_journal(journal, args.done)
            print(
                f"resume: {args.lines:,}-line input ({os.path.getsize(big) / 1e6:.0f} MB, "
                f"written in {made:.1f}s), journal with {args.done:,} finished items "
                f"({os.path.getsize(journal) / 1e6:.0f} MB, filled in {filled:.1f}s)"
            )
            new = min(20_000, args.lines - args.done)
            result = run_child(emu, big, journal, new)
            print(
                f"  first new request after {result['first_request_s']:.2f}s; "
                f"read {result['read']:,} lines, skipped {result['skipped']:,}, "
                f"ran {result['succeeded']:,} new items; peak RSS {result['peak_rss_mb']:.0f} MB "
                f"({result['seconds']:.1f}s in all)"
            )
    finally:
        emu.close()


if __name__ == "__main__":
    main()
