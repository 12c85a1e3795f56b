"""The AWS event stream decoder's cost per byte, and a cold call's SigV4 signing cost.

    python benchmarks/eventstream_bench.py

Decodes the same bytes fed 1 byte, 4 KiB and a whole frame at a time, for small
(Bedrock-sized, ~150 B) frames and for 1 MiB frames: a linear decoder costs about the
same per byte whatever the frame size, and per call of feed() whatever the read size
(1-byte feeds are dominated by the per-call overhead). Prints ns per byte (best of
the rounds, CPU time of this thread), then botocore's EventStreamBuffer on the same
4 KiB reads for comparison when botocore is installed; and the cost of signing a
Converse request with SigV4 the first time (botocore imported, credentials resolved)
and after.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent))

from steer_llm_sdk.testing._bedrock import event_frame
from steer_llm_sdk.transport.eventstream import EventStreamDecoder

TOTAL = 4 << 20  # bytes decoded per measurement (1-byte feeds: 256 KiB)


def stream(frame_size: int, total: int) -> bytes:
    payload = b'{"contentBlockIndex":0,"delta":{"text":"' + b"w" * frame_size + b'"}}'
    one = event_frame("contentBlockDelta", payload)
    return one * max(1, total // len(one))


def cost(data: bytes, step: int, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        decoder = EventStreamDecoder(max_event_bytes=None)
        feed = decoder.feed
        pieces = [data[i : i + step] for i in range(0, len(data), step)]
        start = time.thread_time()
        for piece in pieces:
            feed(piece)
        best = min(best, time.thread_time() - start)
    return best / len(data) * 1e9


def botocore_cost(data: bytes, step: int) -> float | None:
    try:
        from botocore.eventstream import EventStreamBuffer
    except ImportError:
        return None
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    start = time.thread_time()
    buffer = EventStreamBuffer()
    for piece in pieces:
        buffer.add_data(piece)
        for _ in buffer:
            pass
    return (time.thread_time() - start) / len(data) * 1e9


async def signing() -> tuple[float, float]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "AKIAEMULATOR00000000")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY0")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    from steer_llm_sdk.auth.aws import make

    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse-stream"
    headers = {"content-type": "application/json"}
    body = b'{"messages":[{"role":"user","content":[{"text":"hi"}]}]}'
    start = time.perf_counter()
    signer = make("bedrock", {})
    await signer.sign("POST", url, headers, body)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(200):
        await signer.sign("POST", url, headers, body)
    warm = (time.perf_counter() - start) / 200
    return cold * 1e3, warm * 1e6


def main() -> None:
    print("EventStreamDecoder, ns per byte (best of 3)")
    print(f"{'frames':<16} {'1-byte feeds':>13} {'4 KiB feeds':>12} {'whole frames':>13}")
    for label, size in (("~150 B frames", 100), ("1 MiB frames", 1 << 20)):
        data = stream(size, TOTAL)
        frame = len(event_frame("contentBlockDelta", b"x" * (size + 40)))
        one = cost(data[: 256 << 10], 1, rounds=1)
        print(f"{label:<16} {one:>13.1f} {cost(data, 4096):>12.2f} {cost(data, frame):>13.2f}")
    theirs = botocore_cost(stream(100, TOTAL), 4096)
    if theirs is not None:
        print(f"botocore EventStreamBuffer, ~150 B frames, 4 KiB feeds: {theirs:.2f} ns/byte")
    cold, warm = asyncio.run(signing())
    print(
        f"SigV4 signing: first request {cold:.1f} ms (botocore import, chain), then {warm:.0f} µs"
    )


if __name__ == "__main__":
    main()
