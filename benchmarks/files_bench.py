"""A 10 MB file in a call: base64 made once per call, whatever the attempts.

    python benchmarks/files_bench.py            # 10 MB, 3 attempts (2 retried 503s)
    python benchmarks/files_bench.py --mb 50

Starts the package's emulator in a child process, answers the first two attempts
of each call with a 503 (retried by the SDK) and the third with text, and sends a
PNG-headed file (PDF-headed to Anthropic, whose images stop at 5 MB) of ``--mb``
megabytes to each protocol. It prints, per protocol: the wall time of the call, the
time spent in base64 encoding (counted by wrapping ``base64.b64encode``), the number
of encodings (1 per call: the part keeps its text across attempts), the peak of
Python allocations during the call (tracemalloc, after a warm-up call: imports and
price tables are not counted) and how much the process's maximum resident size grew
during the call (the first row: later rows stay under the first's maximum). The
request body is built per attempt (JSON with the base64 inside). tracemalloc
overstates one allocation: orjson reserves about 9.5 times a long string's length
for the body and gives the untouched rest back (the body's real pages are its
size), which tracemalloc still counts; the RSS column is what the machine holds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import resource
import time
import tracemalloc
from typing import Any

from steer_llm_sdk import File, SteerLLMClient
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator, Reply

MODELS = {
    "openai-chat": "gpt-4o-mini",
    "openai-responses": "openai-responses/gpt-4o",
    "anthropic-messages": "claude-3-haiku-20240307",
    "gemini": "gemini-2.5-flash",
}


class Counted:
    """base64.b64encode, counted and timed."""

    def __init__(self) -> None:
        self.calls = 0
        self.seconds = 0.0
        self.original = base64.b64encode

    def __call__(self, data: Any, *args: Any) -> bytes:
        started = time.perf_counter()
        out = self.original(data, *args)
        self.seconds += time.perf_counter() - started
        if len(data) > 1024 * 1024:
            self.calls += 1
        return out


def serve(conn: Any) -> None:
    """The emulator in a child process (its memory and CPU are not the client's):
    each message from the parent enqueues 503, 503, then text."""
    emu = Emulator.start_in_thread()
    conn.send((emu.openai_base_url, emu.anthropic_base_url, emu.gemini_base_url))
    while conn.recv():
        emu.enqueue(Reply(status=503), Reply(status=503), Reply(chunks=["seen"]))
        conn.send(True)
    emu.stop()


async def one(protocol: str, data: bytes, counted: Counted, conn: Any, urls: Any) -> dict[str, Any]:
    client = SteerLLMClient(
        api_keys={"openai": "sk-bench-00000000", "anthropic": "sk-ant-bench-0000", "gemini": "k"},
        base_urls={"openai": urls[0], "anthropic": urls[1], "gemini": urls[2]},
    )
    await client.stream_with_usage("warm up", MODELS[protocol])  # imports, prices, pool
    conn.send(True)
    conn.recv()
    options = StreamingOptions(max_reconnect_attempts=3, reconnect_delay=0.0)
    counted.calls, counted.seconds = 0, 0.0
    head = b"%PDF-" if protocol == "anthropic-messages" else b"\x89PNG\r\n\x1a\n"
    data = head + data[len(head) :]  # Anthropic: images up to 5 MB, PDFs 32 MB
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    tracemalloc.reset_peak()
    started = time.perf_counter()
    response = await client.stream_with_usage(
        ["What is this?", File(data=data)], MODELS[protocol], streaming_options=options
    )
    wall = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - max_rss) * 1024
    await client.aclose()
    assert response.text == "seen", response.text
    return {
        "wall": wall,
        "b64": counted.seconds,
        "encodings": counted.calls,
        "peak": peak,
        "rss": grown,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=10)
    args = parser.parse_args()
    size = args.mb * 1024 * 1024
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * (size // 256)
    data = data[:size]
    counted = Counted()
    base64.b64encode = counted  # type: ignore[assignment]
    print(f"a {args.mb} MB file, each call answered 503, 503, then text (3 attempts)")
    print(f"{'protocol':<20}{'attempts':>9}{'encodings':>10}{'b64 ms':>9}{'call ms':>9}"
          f"{'traced MB':>10}{'max RSS +MB':>12}")  # fmt: skip
    import multiprocessing

    conn, child_end = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=serve, args=(child_end,))
    child.start()
    urls = conn.recv()
    for protocol in MODELS:
        row = await one(protocol, data, counted, conn, urls)
        print(
            f"{protocol:<20}{3:>9}{row['encodings']:>10}"
            f"{row['b64'] * 1000:>9.1f}{row['wall'] * 1000:>9.0f}"
            f"{row['peak'] / 1e6:>10.1f}{row['rss'] / 1e6:>12.1f}"
        )
    conn.send(False)
    child.join(10)


if __name__ == "__main__":
    asyncio.run(main())
