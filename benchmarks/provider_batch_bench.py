"""Provider batch mode benchmark: items per second for N items (default 100,000)
through ``client.batch(mode="provider")`` against the emulator's batch APIs.

    .venv/bin/python benchmarks/provider_batch_bench.py
    .venv/bin/python benchmarks/provider_batch_bench.py --items 20000 --provider anthropic
    .venv/bin/python benchmarks/provider_batch_bench.py --provider gemini --gemini-route file

The emulator runs in its own process with a short batch delay. Printed: the submit
phase (reading the items, building every line with the request layer and the codec,
writing the intents, uploading the files and creating the batches), the collect
phase (downloading the results, reading each with the codec, journaling it and
writing the output), their sum, and items per second over that sum (the time the
emulator spends answering the lines, and the batch delay, are not in it). The
client's CPU time is printed too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-haiku-20240307",
    "gemini": "gemini-2.5-flash",
}


class EmulatorProcess:
    def __init__(self, delay: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "steer_llm_sdk.testing", "--port", "0", "--reply-words", "12",
             "--batch-delay", str(delay)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.openai_base_url = self.proc.stdout.readline().split()[-1]
        self.anthropic_base_url = self.proc.stdout.readline().split()[-1]
        self.gemini_base_url = self.proc.stdout.readline().split()[-1]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


async def run(
    n: int, provider: str, emu: EmulatorProcess, workdir: str, route: str = "auto"
) -> dict[str, float]:
    from steer_llm_sdk import SteerLLMClient
    from steer_llm_sdk.batch import provider as provider_job
    from steer_llm_sdk.batch.provider_gemini import GeminiBatches

    if route == "file":  # Gemini: an uploaded JSONL file whatever the size
        GeminiBatches.inline_bytes = 0

    client = SteerLLMClient(
        openai_api_key="sk-bench",
        anthropic_api_key="sk-ant-bench",
        openai_base_url=emu.openai_base_url,
        anthropic_base_url=emu.anthropic_base_url,
        api_keys={"gemini": "gemini-bench"},
        base_urls={"gemini": emu.gemini_base_url},
    )
    marks: dict[str, float] = {}
    first_result: list[float] = []
    collect = provider_job._Collecting._download

    async def timed_download(self: object, *args: object) -> None:
        began = time.perf_counter()
        cpu = time.process_time()
        await collect(self, *args)  # type: ignore[arg-type]
        marks["collect"] = marks.get("collect", 0.0) + time.perf_counter() - began
        marks["collect_cpu"] = marks.get("collect_cpu", 0.0) + time.process_time() - cpu

    provider_job._Collecting._download = timed_download  # type: ignore[method-assign]
    submit = provider_job._Submitting._submit_items

    async def timed_submit(self: object) -> None:
        began = time.perf_counter()
        cpu = time.process_time()
        await submit(self)  # type: ignore[arg-type]
        marks["submit"] = time.perf_counter() - began
        marks["submit_cpu"] = time.process_time() - cpu

    provider_job._Submitting._submit_items = timed_submit  # type: ignore[method-assign]
    items = ({"custom_id": f"c{i}", "prompt": f"item {i}: label this ticket"} for i in range(n))
    job = client.batch(
        items,
        model=MODELS[provider],
        mode="provider",
        poll_interval=0.2,
        journal=os.path.join(workdir, "job.sqlite"),
        output_path=os.path.join(workdir, "out.jsonl"),
        max_tokens=16,
        on_result=lambda r: first_result or first_result.append(time.perf_counter()),
    )
    began = time.perf_counter()
    summary = await job.run()
    marks["wall"] = time.perf_counter() - began
    marks["succeeded"] = summary.succeeded
    marks["batches"] = job.batches
    marks["cost"] = summary.cost_usd
    await client.aclose()
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--provider", choices=sorted(MODELS), default="openai")
    parser.add_argument("--delay", type=float, default=1.0, help="emulator batch delay (s)")
    parser.add_argument(
        "--gemini-route",
        choices=("auto", "file"),
        default="auto",
        help="Gemini: inline up to 20 MB, else a file (auto), or always an uploaded file",
    )
    args = parser.parse_args()
    emu = EmulatorProcess(args.delay)
    try:
        with tempfile.TemporaryDirectory() as workdir:
            marks = asyncio.run(run(args.items, args.provider, emu, workdir, args.gemini_route))
    finally:
        emu.close()
    n = args.items
    work = marks["submit"] + marks["collect"]
    route = f" ({args.gemini_route} route)" if args.provider == "gemini" else ""
    print(
        f"provider batch mode, {args.provider}{route}, {n:,} items, {int(marks['batches'])} batches"
    )
    print(f"  succeeded:        {int(marks['succeeded']):,}  (cost ${marks['cost']:.4f})")
    print(
        f"  submit (build + intents + upload + create): {marks['submit']:.2f} s "
        f"({marks['submit_cpu']:.2f} s CPU)"
    )
    print(
        f"  collect (download + decode + journal + output): {marks['collect']:.2f} s "
        f"({marks['collect_cpu']:.2f} s CPU)"
    )
    print(f"  items per second (submit + collect): {n / work:,.0f}")
    print(f"  wall, batch delay and emulator included: {marks['wall']:.2f} s")


if __name__ == "__main__":
    main()
