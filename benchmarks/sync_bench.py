"""The sync client's and telemetry's cost per chunk, against the async stream().

    python benchmarks/sync_bench.py            # both protocols, 2,000-chunk answers
    python benchmarks/sync_bench.py --quick

Starts the emulator in its own process (as benchmarks/bench.py does), then runs,
interleaved over several rounds:

- async ``client.stream()`` (the reference);
- sync ``SteerLLM.stream()``: the same stream pumped from the loop thread through a
  ``queue.SimpleQueue`` to the caller's thread;
- async ``client.stream()`` with ``telemetry=True`` (OpenTelemetry SDK providers: a
  simple span processor whose exporter drops the spans, an in-memory metric reader),
  when the OpenTelemetry SDK is installed.

CPU is ``time.process_time()``, so the sync figure includes both threads. It prints
µs per chunk and per call (the best of the rounds: the least disturbed on a shared
machine), the marginal cost of one more chunk, and each ratio to the async stream().
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench import MODELS, PROMPT, start_emulator


def _kwargs(port: int) -> dict[str, Any]:
    return {
        "api_keys": {"openai": "sk-bench", "anthropic": "sk-bench"},
        "base_urls": {
            "openai": f"http://127.0.0.1:{port}/v1",
            "anthropic": f"http://127.0.0.1:{port}",
        },
    }


def _telemetry() -> Any:
    try:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError:
        return None
    from steer_llm_sdk.telemetry import TelemetryOptions

    class Discard(SpanExporter):  # exported and dropped: memory stays flat
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(Discard()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return TelemetryOptions(tracer_provider=tracer_provider, meter_provider=meter_provider)


def measure(run: Callable[[], int], streams: int) -> tuple[float, float, float]:
    """CPU µs per chunk, wall µs per chunk, CPU µs per call."""
    gc.collect()
    start, wall = time.process_time(), time.perf_counter()
    chunks = sum(run() for _ in range(streams))
    cpu = time.process_time() - start
    return cpu / chunks * 1e6, (time.perf_counter() - wall) / chunks * 1e6, cpu / streams * 1e6


def bench_protocol(protocol: str, port: int, rounds: int, streams: int) -> list[dict[str, Any]]:
    from steer_llm_sdk import SteerLLM, SteerLLMClient

    model = MODELS[protocol]
    loop = asyncio.Runner()
    client = SteerLLMClient(**_kwargs(port))
    telemetry = _telemetry()
    traced = SteerLLMClient(**_kwargs(port), telemetry=telemetry) if telemetry else None
    llm = SteerLLM(**_kwargs(port))

    def async_stream(c: Any) -> Callable[[], int]:
        async def one() -> int:
            n = 0
            async for _ in c.stream(PROMPT, model):
                n += 1
            return n

        return lambda: loop.run(one())

    def sync_stream() -> int:
        n = 0
        for _ in llm.stream(PROMPT, model=model):
            n += 1
        return n

    contenders: dict[str, Callable[[], int]] = {
        "async stream()": async_stream(client),
        "sync SteerLLM.stream()": sync_stream,
    }
    if traced is not None:
        contenders["async stream() telemetry=True"] = async_stream(traced)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in contenders}
    for run in contenders.values():  # warm up: connections, imports, caches
        run()
    for _ in range(rounds):
        for name, run in contenders.items():
            results[name].append(measure(run, streams))
    llm.close()
    loop.run(client.aclose())
    if traced is not None:
        loop.run(traced.aclose())
    loop.close()
    rows = []
    for name, values in results.items():
        rows.append(
            {
                "protocol": protocol,
                "contender": name,
                "us_per_chunk": min(v[0] for v in values),
                "wall_us_per_chunk": min(v[1] for v in values),
                "us_per_call": min(v[2] for v in values),
            }
        )
    for key in ("us_per_chunk", "wall_us_per_chunk", "us_per_call"):
        for row in rows:
            row[key + "_ratio"] = row[key] / rows[0][key]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=2000, help="chunks per stream")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--streams", type=int, default=10, help="streams per round")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.rounds, args.streams = 500, 3, 4
    proc, port = start_emulator(args.chunks)
    short, short_port = start_emulator(20)
    try:
        print(
            f"# {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{args.chunks} chunks/stream, {args.streams} streams x {args.rounds} rounds"
        )
        print("## per chunk (long answers): CPU of both threads, and wall time")
        print(
            f"{'protocol':<10} {'contender':<32} {'CPU us/chunk':>12} {'x async':>8} "
            f"{'wall us/chunk':>13} {'x async':>8}"
        )
        long_rows: dict[tuple[str, str], dict[str, Any]] = {}
        for protocol in ("openai", "anthropic"):
            for row in bench_protocol(protocol, port, args.rounds, args.streams):
                long_rows[protocol, row["contender"]] = row
                print(
                    f"{row['protocol']:<10} {row['contender']:<32} "
                    f"{row['us_per_chunk']:>12.2f} {row['us_per_chunk_ratio']:>8.2f} "
                    f"{row['wall_us_per_chunk']:>13.2f} {row['wall_us_per_chunk_ratio']:>8.2f}"
                )
        print("## per call (20-chunk answers): CPU")
        print(f"{'protocol':<10} {'contender':<32} {'CPU us/call':>12} {'x async':>8}")
        short_rows: dict[tuple[str, str], dict[str, Any]] = {}
        for protocol in ("openai", "anthropic"):
            for row in bench_protocol(protocol, short_port, args.rounds, args.streams * 20):
                short_rows[protocol, row["contender"]] = row
                print(
                    f"{row['protocol']:<10} {row['contender']:<32} "
                    f"{row['us_per_call']:>12.1f} {row['us_per_call_ratio']:>8.2f}"
                )
        print(
            f"## marginal CPU per chunk: (per call at {args.chunks} chunks - per call at 20)"
            f" / {args.chunks - 20}"
        )
        print(f"{'protocol':<10} {'contender':<32} {'us/chunk':>12} {'x async':>8}")
        for protocol in ("openai", "anthropic"):
            reference = None
            for (proto, name), row in long_rows.items():
                if proto != protocol:
                    continue
                short_call = short_rows[proto, name]["us_per_call"]
                marginal = (row["us_per_call"] - short_call) / (args.chunks - 20)
                reference = reference or marginal
                print(f"{protocol:<10} {name:<32} {marginal:>12.2f} {marginal / reference:>8.2f}")
    finally:
        for p in (proc, short):
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
