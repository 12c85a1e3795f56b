"""Response cache benchmark: time to first chunk of a hit next to a miss.

    .venv/bin/python benchmarks/cache_bench.py [--rounds 200]

The emulator runs in this process (a real socket on 127.0.0.1, no pacing), the cache
is a SQLite file in a temporary directory. A miss is a call with a new prompt (a
request to the emulator, then the answer stored); a hit is the same call again
(looked up, replayed). Medians of ``--rounds`` calls each; the whole call too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from steer_llm_sdk import ResponseCache, SteerLLMClient
from steer_llm_sdk.testing import Emulator


async def _timed(client: SteerLLMClient, prompt: str) -> tuple[float, float]:
    start = time.perf_counter()
    first = None
    async for _ in client.stream(prompt, model="gpt-4o-mini"):
        if first is None:
            first = time.perf_counter() - start
    return first or 0.0, time.perf_counter() - start


async def main(rounds: int) -> None:
    async with Emulator() as emu:
        os.environ.update(OPENAI_API_KEY="sk-bench-000000", OPENAI_BASE_URL=emu.openai_base_url)
        with tempfile.TemporaryDirectory() as tmp:
            cache = ResponseCache(os.path.join(tmp, "cache.db"))
            async with SteerLLMClient(response_cache=cache) as client:
                await _timed(client, "warm up")
                misses = [await _timed(client, f"Prompt number {i}") for i in range(rounds)]
                hits = [await _timed(client, f"Prompt number {i}") for i in range(rounds)]
            async with SteerLLMClient() as plain:
                await _timed(plain, "warm up")
                plains = [await _timed(plain, f"Prompt number {i}") for i in range(rounds)]
    ms = lambda xs, k: statistics.median(x[k] for x in xs) * 1000  # noqa: E731
    print(f"response cache, {rounds} calls each, medians (ms):")
    print(f"  no cache : first chunk {ms(plains, 0):7.3f}   whole call {ms(plains, 1):7.3f}")
    print(f"  miss     : first chunk {ms(misses, 0):7.3f}   whole call {ms(misses, 1):7.3f}")
    print(f"  hit      : first chunk {ms(hits, 0):7.3f}   whole call {ms(hits, 1):7.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    asyncio.run(main(parser.parse_args().rounds))
