"""Load benchmark: the HTTP layer after a burst, and thousands of concurrent streams.

    python benchmarks/load.py                    # SDK's pool, default sizes
    python benchmarks/load.py --pool httpcore    # the same with httpx's own pool
    python benchmarks/load.py --quick            # small sizes, a smoke run

Prints, each against its goal (issue 10):

- burst: median per-call CPU and time to first chunk of 50 sequential calls before
  and right after a burst of 500 concurrent streams (goal: within 1.2x);
- many: N concurrent streams of 200 chunks each on one client and one event loop:
  exact text, wall time, CPU per chunk against the floor (raw httpx + minimal SSE
  split + json.loads, sequential), peak memory per stream (RSS), and the longest
  gap of a 10 ms ticker task (goal < 100 ms);
- sse: one 64 MiB event fed in 64 KiB reads against 64 MiB of small events (goal
  within 2x).

The emulators run in their own processes, so CPU figures are the client's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import MODELS, PROMPT, load_baseline, make_floor, start_emulator

MODEL = MODELS["openai"]


def make_client(port: int, pool: str, max_connections: int, package: Any = None) -> Any:
    import importlib

    package = package or importlib.import_module("steer_llm_sdk")
    Transport = importlib.import_module(package.__name__ + ".transport.http").Transport
    client = package.SteerLLMClient(
        api_keys={"openai": "sk-bench"},
        base_urls={"openai": f"http://127.0.0.1:{port}/v1"},
        max_connections=max_connections,
    )
    client._transport = Transport(max_connections=max_connections, pool=pool)
    return client


async def one_call(client: Any) -> tuple[float, float, str]:
    """(CPU seconds, seconds to first chunk, text) of one stream() call."""
    cpu = time.process_time()
    start = time.perf_counter()
    first = 0.0
    parts = []
    async for chunk in client.stream(PROMPT, MODEL):
        if not parts:
            first = time.perf_counter() - start
        parts.append(chunk)
    return time.process_time() - cpu, first, "".join(parts)


async def sequential(client: Any, n: int) -> tuple[float, float]:
    cpus, firsts = [], []
    for _ in range(n):
        cpu, first, _ = await one_call(client)
        cpus.append(cpu)
        firsts.append(first)
    return statistics.median(cpus), statistics.median(firsts)


async def burst(port: int, pool: str, size: int, calls: int) -> dict[str, float]:
    client = make_client(port, pool, 1000)
    await sequential(client, 10)  # warm: imports, connection
    gc.collect()
    cpu_before, ttft_before = await sequential(client, calls)
    start = time.perf_counter()
    await asyncio.gather(*(one_call(client) for _ in range(size)))
    burst_s = time.perf_counter() - start
    gc.collect()
    cpu_after, ttft_after = await sequential(client, calls)
    await client.aclose()
    return {
        "burst_s": burst_s,
        "cpu_before_ms": cpu_before * 1e3,
        "cpu_after_ms": cpu_after * 1e3,
        "cpu_ratio": cpu_after / cpu_before,
        "ttft_before_ms": ttft_before * 1e3,
        "ttft_after_ms": ttft_after * 1e3,
        "ttft_ratio": ttft_after / ttft_before,
    }


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


async def many(
    port: int, pool: str, streams: int, max_connections: int, package: Any = None
) -> dict[str, float]:
    floor_run, floor_close = make_floor("openai", port)
    await floor_run()
    start = time.process_time()
    chunks = 0
    for _ in range(20):
        chunks += await floor_run()
    floor_us = (time.process_time() - start) / chunks * 1e6
    await floor_close()

    client = make_client(port, pool, max_connections, package)
    _, _, expected = await one_call(client)
    per_stream = len(expected.split())
    await client.aclose()
    client = make_client(port, pool, max_connections, package)  # fresh: no pooled connection

    longest = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal longest
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not stop:
            await asyncio.sleep(0.01)
            now = loop.time()
            longest = max(longest, now - last - 0.01)
            last = now

    peak = 0
    sampling = True

    async def sampler() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_kib())
            await asyncio.sleep(0.05)

    gc.collect()
    base_rss = rss_kib()
    tick = asyncio.create_task(ticker())
    samp = asyncio.create_task(sampler())
    cpu = time.process_time()
    start = time.perf_counter()
    results = await asyncio.gather(*(one_call(client) for _ in range(streams)))
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    stop = True
    sampling = False
    await tick
    await samp
    await client.aclose()
    exact = sum(1 for _, _, text in results if text == expected)
    total_chunks = streams * per_stream
    return {
        "streams": streams,
        "chunks_per_stream": per_stream,
        "exact": exact,
        "wall_s": wall,
        "us_per_chunk": cpu / total_chunks * 1e6,
        "floor_us_per_chunk": floor_us,
        "ratio_to_floor": cpu / total_chunks * 1e6 / floor_us,
        "peak_kib_per_stream": (peak - base_rss) / streams,
        "longest_loop_gap_ms": longest * 1e3,
    }


async def layers(port: int, streams: int, only: str) -> dict[str, str]:
    """The HTTP layers side by side, without the SDK: N concurrent raw streams with a
    minimal SSE split and json.loads, through httpx's own pool, httpx over the SDK's
    pool, and aiohttp (when installed). Wall time, CPU per chunk, longest loop gap."""
    import json

    import httpx

    from steer_llm_sdk.transport.http import _HTTPTransport

    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    headers = {"authorization": "Bearer sk-bench"}
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)

    def count(lines: list[bytes]) -> int:
        n = 0
        for line in lines:
            if line.startswith(b"data: {"):
                obj = json.loads(line[6:])
                if obj["choices"] and obj["choices"][0]["delta"].get("content"):
                    n += 1
        return n

    async def with_httpx(client: httpx.AsyncClient) -> int:
        n, buf = 0, b""
        async with client.stream("POST", url, json=body, headers=headers) as response:
            async for raw in response.aiter_raw():
                *lines, buf = (buf + raw).split(b"\n")
                n += count(lines)
        return n

    contenders: dict[str, Any] = {
        "httpx (httpcore pool)": lambda: httpx.AsyncClient(timeout=60, limits=limits),
        "httpx + SDK pool": lambda: httpx.AsyncClient(timeout=60, transport=_HTTPTransport(limits)),
    }
    try:
        import aiohttp

        contenders["aiohttp"] = lambda: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1000),
            timeout=aiohttp.ClientTimeout(total=None),
        )
    except ImportError:
        pass

    async def with_aiohttp(session: Any) -> int:
        n, buf = 0, b""
        async with session.post(url, json=body, headers=headers) as response:
            async for raw in response.content.iter_any():
                *lines, buf = (buf + raw).split(b"\n")
                n += count(lines)
        return n

    out: dict[str, str] = {}
    for name, make in contenders.items():
        if name != only:
            continue
        client = make()
        run = with_aiohttp if name == "aiohttp" else with_httpx
        longest, stop = 0.0, [False]

        async def ticker(stop: list[bool] = stop) -> None:
            nonlocal longest
            loop = asyncio.get_running_loop()
            last = loop.time()
            while not stop[0]:
                await asyncio.sleep(0.01)
                now = loop.time()
                longest = max(longest, now - last - 0.01)
                last = now

        tick = asyncio.create_task(ticker())
        cpu, start = time.process_time(), time.perf_counter()
        counts = await asyncio.gather(*(run(client) for _ in range(streams)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        chunks = sum(counts)
        out[name] = (
            f"{wall:6.2f} s wall, {cpu / chunks * 1e6:5.2f} us/chunk, "
            f"longest loop gap {longest * 1e3:6.0f} ms"
        )
        stop[0] = True
        await tick
        if name == "aiohttp":
            await client.close()
        else:
            await client.aclose()
    return out


def sse(mib: int = 64) -> dict[str, float]:
    from steer_llm_sdk.transport.sse import SSEDecoder

    size = mib << 20
    big = b"data: " + b"x" * size + b"\n\n"
    small = b'data: {"choices":[{"index":0,"delta":{"content":"hello"}}]}\n\n'
    smalls = small * (size // len(small))
    out = {}
    for name, body in (("one_event_s", big), ("small_events_s", smalls)):
        decoder = SSEDecoder(max_event_bytes=None)
        start = time.perf_counter()
        for i in range(0, len(body), 65536):
            decoder.feed(body[i : i + 65536])
        out[name] = time.perf_counter() - start
    out["ratio"] = out["one_event_s"] / out["small_events_s"]
    return out


def show(title: str, figures: dict[str, float]) -> None:
    print(f"\n{title}")
    for key, value in figures.items():
        if isinstance(value, float):
            print(f"  {key:24} {value:12.3f}")
        else:
            print(f"  {key:24} {value:>12}")


async def run(args: argparse.Namespace) -> None:
    short, port_short = start_emulator(20)
    long, port_long = start_emulator(args.chunks, args.delay)
    try:
        if "burst" in args.only:
            show(
                f"burst of {args.burst} streams ({args.pool} pool), 50 calls before/after",
                await burst(port_short, args.pool, args.burst, 50),
            )
        if "many" in args.only:
            title = (
                f"{args.streams} concurrent streams ({args.pool} pool, "
                f"max_connections={args.max_connections}, {args.delay * 1e3:g} ms between chunks)"
            )
            if args.baseline:  # both in this run, one after the other, each twice
                baseline = load_baseline(args.baseline)
                for label, package in (("baseline", baseline), ("this", None)) * 2:
                    show(
                        f"{title}: {label} ({args.baseline if package else 'this checkout'})",
                        await many(
                            port_long, args.pool, args.streams, args.max_connections, package
                        ),
                    )
            else:
                show(title, await many(port_long, args.pool, args.streams, args.max_connections))
        if "layers" in args.only:
            print(f"\nHTTP layers alone: {args.streams} concurrent raw streams")
            for name in ("httpx (httpcore pool)", "httpx + SDK pool", "aiohttp"):
                # Each in its own process: one that never finishes is killed at --limit.
                cmd = [sys.executable, __file__, "--layer", name, "--streams", str(args.streams)]
                cmd += ["--port", str(port_long)]
                try:
                    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.limit)  # noqa: ASYNC221 - nothing else runs meanwhile
                    print(f"  {name:24} {done.stdout.strip() or done.stderr.strip()[-200:]}")
                except subprocess.TimeoutExpired:
                    print(f"  {name:24} did not finish in {args.limit:g} s")
    finally:
        short.kill()
        long.kill()
    if "sse" in args.only:
        show("SSE: one 64 MiB event vs 64 MiB of small events, 64 KiB reads", sse())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", choices=["steer", "httpcore"], default="steer")
    parser.add_argument("--streams", type=int, default=5000)
    parser.add_argument("--chunks", type=int, default=200, help="words (chunks) per reply")
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="seconds between chunks (0: each body in one write, the worst case)",
    )
    parser.add_argument("--max-connections", type=int, default=1000)
    parser.add_argument("--only", nargs="+", default=["burst", "many", "sse"])
    parser.add_argument("--limit", type=float, default=120.0, help="layers: give up after")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="many: also run the package of this checkout (e.g. main's), alternately, "
        "in the same run: before/after figures",
    )
    parser.add_argument("--layer", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.layer:
        result = asyncio.run(layers(args.port, args.streams, args.layer))
        print(result.get(args.layer, "not installed"))
        return
    if args.quick:
        args.streams, args.burst = 300, 100
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
