"""Per-event CPU of the decoding layers, without the network: SSE split, each codec's
fast path, its general path, and the floor's ``json.loads``.

    python benchmarks/codec_bench.py

Takes one 2,000-chunk answer per protocol from the package's emulator, cuts it into
64 KiB reads (what httpcore hands over) and decodes it again and again in memory,
alternating the contenders; prints the best of the rounds in µs per event (CPU time of
this thread). ``bench.py`` measures the same layers end to end, over real sockets.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench import GEMINI_KEY, start_emulator

from steer_llm_sdk.providers import codec_class as protocol_codec
from steer_llm_sdk.transport.sse import SSEDecoder

REQUESTS = {
    "openai-chat": (
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": True},
        {"authorization": "Bearer sk-bench"},
    ),
    "anthropic-messages": (
        "/v1/messages",
        {
            "model": "claude-3-haiku-20240307",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 4096,
            "stream": True,
        },
        {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"},
    ),
    "openai-responses": (
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": "x", "stream": True},
        {"authorization": "Bearer sk-bench"},
    ),
    "gemini": (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        {"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
        {"x-goog-api-key": GEMINI_KEY},
    ),
}


def best(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.thread_time()
        fn()
        times.append(time.thread_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    proc, port = start_emulator(args.chunks)
    try:
        bodies = {
            protocol: httpx.post(f"http://127.0.0.1:{port}{path}", json=body, headers=headers)
            .raise_for_status()
            .content
            for protocol, (path, body, headers) in REQUESTS.items()
        }
    finally:
        proc.kill()
    print(f"µs per event, best of {args.rounds} rounds ({args.chunks}-chunk answers)")
    print(f"{'protocol':<20}{'SSE':>8}{'fast':>8}{'general':>9}{'× less':>8}{'json.loads':>12}")
    contenders: dict[str, dict[str, Callable[[], None]]] = {}
    sizes: dict[str, int] = {}
    for protocol, body in bodies.items():
        reads = [body[i : i + 65536] for i in range(0, len(body), 65536)]
        decoder = SSEDecoder()
        events = [e for read in reads for e in decoder.feed(read)] + decoder.close()
        payloads = [data for _, data in events if data != b"[DONE]"]
        codec_class = protocol_codec(protocol)
        sizes[protocol] = len(events)

        def split(reads: Any = reads) -> None:
            decoder = SSEDecoder()
            for read in reads:
                decoder.feed(read)

        def fast(codec_class: Any = codec_class, events: Any = events) -> None:
            decode = codec_class().decode
            for event, data in events:
                decode(event, data)

        def general(codec_class: Any = codec_class, events: Any = events) -> None:
            decode = codec_class()._decode
            for event, data in events:
                decode(event, data)

        def floor(payloads: Any = payloads) -> None:
            loads = json.loads
            for data in payloads:
                loads(data)

        contenders[protocol] = {"sse": split, "fast": fast, "general": general, "floor": floor}
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(3):  # alternate, so that drift hits every contender alike
        for protocol, fns in contenders.items():
            for name, fn in fns.items():
                us = best(fn, max(1, args.rounds // 3)) / sizes[protocol] * 1e6
                results.setdefault((protocol, name), []).append(us)
    for protocol in contenders:
        sse, f, g, fl = (min(results[protocol, k]) for k in ("sse", "fast", "general", "floor"))
        print(f"{protocol:<20}{sse:>8.3f}{f:>8.3f}{g:>9.3f}{g / f:>8.2f}{fl:>12.3f}")


if __name__ == "__main__":
    main()
