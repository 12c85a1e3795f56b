"""Side-by-side streaming benchmark: client CPU per chunk, against a floor.

    python benchmarks/bench.py                 # every protocol, default sizes
    python benchmarks/bench.py --quick         # a fast smoke run

Starts the package's emulator in its own process (precomputed bodies, so it costs
the client nothing), then runs, interleaved over several rounds:

- floor: raw httpx + a minimal SSE split (Bedrock: event-stream frame split) +
  json.loads (what any client must do);
- steer stream(): this SDK's text chunks;
- steer stream_with_usage(): with usage, cost and callbacks on;
- the official openai / anthropic / google-genai SDKs, and LiteLLM when installed.

The CPU table covers OpenAI chat, Anthropic, Gemini, OpenAI Responses and Bedrock
(Converse, SigV4-signed); the other sections OpenAI and Anthropic.

It prints CPU per chunk (µs, median of rounds) and the ratio to the floor (median of
the rounds' ratios; each round starts at another contender), time to
first chunk on a warm client, 1,000 concurrent streams, import times and memory per
open stream. Figures depend on the machine: compare ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

PROMPT = "Tell me a long story"
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-haiku-20240307",
    "gemini": "gemini-2.5-flash",
    "responses": "openai-responses/gpt-4o-mini",
    "bedrock": "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
}
# Bedrock: the SDK signs with SigV4 (botocore) using the emulator's test credentials;
# the floor sends the emulator's test Bedrock API key (no signing cost at all).
BEDROCK_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAEMULATOR00000000",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY0",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
BEDROCK_API_KEY = "ABSKZW11bGF0b3ItYmVkcm9jay1rZXk="
GEMINI_KEY = "AIzaSyBENCH-0000000000000000000000000000"
SECTIONS = ("cpu", "ttfc", "per_call", "concurrency", "linearity", "partial", "import")


# -- the emulator, in its own process ------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulator(words: int, delay: float = 0.0) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "steer_llm_sdk.testing",
        "--port",
        str(port),
        "--reply-words",
        str(words),
    ]
    if delay:
        cmd += ["--delay", str(delay)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the emulator did not start")


def load_baseline(path: str) -> Any:
    """The package of another checkout (``path``: e.g. main's) imported as
    ``steer_llm_sdk_baseline``, to be measured beside this one in the same rounds
    (paired ratios: the machine's drift hits both alike). Its imports are relative."""
    import importlib.util

    package = os.path.join(os.path.abspath(path), "steer_llm_sdk")
    spec = importlib.util.spec_from_file_location(
        "steer_llm_sdk_baseline",
        os.path.join(package, "__init__.py"),
        submodule_search_locations=[package],
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["steer_llm_sdk_baseline"] = module
    spec.loader.exec_module(module)
    return module


def steer_client(port: int, max_connections: int = 1000, package: Any = None) -> Any:
    SteerLLMClient = (package or importlib.import_module("steer_llm_sdk")).SteerLLMClient
    for name, value in BEDROCK_ENV.items():
        os.environ.setdefault(name, value)
    return SteerLLMClient(
        api_keys={"openai": "sk-bench", "anthropic": "sk-bench", "gemini": GEMINI_KEY},
        base_urls={
            "openai": f"http://127.0.0.1:{port}/v1",
            "anthropic": f"http://127.0.0.1:{port}",
            "gemini": f"http://127.0.0.1:{port}",
            "bedrock": f"http://127.0.0.1:{port}",
        },
        max_connections=max_connections,
    )


# -- contenders: each returns the number of chunks it received ---------------------
Runner = Callable[[], Awaitable[int]]


def make_floor(
    protocol: str, port: int, max_connections: int = 100
) -> tuple[Runner, Callable[[], Awaitable[None]]]:
    client = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=max_connections))
    if protocol == "bedrock":
        return _bedrock_floor(client, port), client.aclose
    if protocol == "openai":
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {
            "model": MODELS["openai"],
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        headers = {"authorization": "Bearer sk-bench"}
    elif protocol == "responses":
        url = f"http://127.0.0.1:{port}/v1/responses"
        body = {"model": "gpt-4o-mini", "input": PROMPT, "stream": True}
        headers = {"authorization": "Bearer sk-bench"}
    elif protocol == "gemini":
        url = (
            f"http://127.0.0.1:{port}/v1beta/models/{MODELS['gemini']}"
            ":streamGenerateContent?alt=sse"
        )
        body = {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}
        headers = {"x-goog-api-key": GEMINI_KEY}
    else:
        url = f"http://127.0.0.1:{port}/v1/messages"
        body = {
            "model": MODELS["anthropic"],
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 4096,
            "stream": True,
        }
        headers = {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"}

    async def run() -> int:
        n = 0
        async with client.stream("POST", url, json=body, headers=headers) as response:
            buf = b""
            async for raw in response.aiter_raw():
                buf += raw
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if not line.startswith(b"data: ") or line == b"data: [DONE]":
                        continue
                    obj = json.loads(line[6:])
                    if protocol == "openai":
                        choices = obj.get("choices")
                        text = choices[0]["delta"].get("content") if choices else None
                    elif protocol == "responses":
                        text = (
                            obj.get("delta")
                            if obj.get("type") == "response.output_text.delta"
                            else None
                        )
                    elif protocol == "gemini":
                        candidates = obj.get("candidates")
                        text = (
                            candidates[0]["content"]["parts"][0].get("text") if candidates else None
                        )
                    else:
                        text = (
                            obj["delta"].get("text")
                            if obj.get("type") == "content_block_delta"
                            else None
                        )
                    if text:
                        n += 1
        return n

    return run, client.aclose


def _bedrock_floor(client: httpx.AsyncClient, port: int) -> Runner:
    """Raw httpx, a minimal event-stream frame split (no CRC check) and json.loads."""
    import struct

    model = MODELS["bedrock"].split("/", 1)[1].replace(":", "%3A")
    url = f"http://127.0.0.1:{port}/model/{model}/converse-stream"
    body = {"messages": [{"role": "user", "content": [{"text": PROMPT}]}]}
    headers = {"authorization": f"Bearer {BEDROCK_API_KEY}"}
    unpack = struct.Struct("!II").unpack_from

    async def run() -> int:
        n = 0
        async with client.stream("POST", url, json=body, headers=headers) as response:
            buf = b""
            async for raw in response.aiter_raw():
                buf += raw
                pos, size = 0, len(buf)
                while size - pos >= 12:
                    total, hlen = unpack(buf, pos)
                    if size - pos < total:
                        break
                    head = buf[pos + 12 : pos + 12 + hlen]
                    if b"contentBlockDelta" in head:
                        obj = json.loads(buf[pos + 12 + hlen : pos + total - 4])
                        if obj["delta"].get("text"):
                            n += 1
                    pos += total
                buf = buf[pos:]
        return n

    return run


def make_steer(
    protocol: str, port: int, *, with_usage: bool, options: Any = None, package: Any = None
) -> tuple[Runner, Callable[[], Awaitable[None]]]:
    from steer_llm_sdk.models.streaming import StreamingOptions

    client = steer_client(port, package=package)
    model = MODELS[protocol]
    if with_usage:
        seen = [0]

        def on_delta(text: str) -> None:
            seen[0] += 1

        def on_usage(usage: dict[str, Any]) -> None:
            pass

        def on_complete(text: str) -> None:
            pass

        opts = options or StreamingOptions(
            on_delta=on_delta, on_usage=on_usage, on_complete=on_complete
        )

        async def run() -> int:
            seen[0] = 0
            response = await client.stream_with_usage(PROMPT, model, streaming_options=opts)
            assert response.cost_usd is not None and response.usage["total_tokens"] > 0
            return seen[0] if options is None else len(response.text.split())

    elif options == "route":  # a one-entry route: model=[name]
        route = [model]

        async def run() -> int:
            n = 0
            async for _ in client.stream(PROMPT, route):
                n += 1
            return n

    elif options == "events":

        async def run() -> int:
            n = 0
            async for part in client.stream_events(PROMPT, model):
                n += part.type == "text-delta"
            return n

    else:

        async def run() -> int:
            n = 0
            async for _ in client.stream(PROMPT, model):
                n += 1
            return n

    return run, client.aclose


def make_official(protocol: str, port: int) -> tuple[Runner, Callable[[], Awaitable[None]]]:
    if protocol == "responses":
        import openai

        oar = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-bench")

        async def run_responses() -> int:
            n = 0
            stream = await oar.responses.create(model="gpt-4o-mini", input=PROMPT, stream=True)
            async for event in stream:
                if event.type == "response.output_text.delta" and event.delta:
                    n += 1
            return n

        return run_responses, oar.close
    if protocol == "gemini":
        from google import genai
        from google.genai import types

        gc_client = genai.Client(
            api_key=GEMINI_KEY,
            http_options=types.HttpOptions(
                base_url=f"http://127.0.0.1:{port}", api_version="v1beta"
            ),
        )

        async def run_gemini() -> int:
            n = 0
            stream = await gc_client.aio.models.generate_content_stream(
                model=MODELS["gemini"], contents=PROMPT
            )
            async for chunk in stream:
                if chunk.text:
                    n += 1
            return n

        async def close_gemini() -> None:
            await gc_client.aio.aclose()

        return run_gemini, close_gemini
    if protocol == "openai":
        import openai

        oa = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-bench")

        async def run() -> int:
            n = 0
            stream = await oa.chat.completions.create(
                model=MODELS["openai"],
                messages=[{"role": "user", "content": PROMPT}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    n += 1
            return n

        return run, oa.close
    import anthropic

    an = anthropic.AsyncAnthropic(base_url=f"http://127.0.0.1:{port}", api_key="sk-bench")

    async def run_raw() -> int:
        n = 0
        stream = await an.messages.create(
            model=MODELS["anthropic"],
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=4096,
            stream=True,
        )
        async for event in stream:
            if event.type == "content_block_delta" and getattr(event.delta, "text", None):
                n += 1
        return n

    return run_raw, an.close


def make_litellm(protocol: str, port: int) -> tuple[Runner, Callable[[], Awaitable[None]]] | None:
    # LiteLLM fetches its price map from the web at import unless told not to.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import litellm
    except ImportError:
        return None
    litellm.suppress_debug_info = True
    if protocol not in ("openai", "anthropic"):
        return None
    model = (
        f"openai/{MODELS['openai']}" if protocol == "openai" else f"anthropic/{MODELS['anthropic']}"
    )
    base = f"http://127.0.0.1:{port}" + ("/v1" if protocol == "openai" else "")

    async def run() -> int:
        n = 0
        response = await litellm.acompletion(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            api_base=base,
            api_key="sk-bench",
            max_tokens=4096,
        )
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                n += 1
        return n

    async def close() -> None:
        return None

    return run, close


# -- measurements --------------------------------------------------------------------
async def cpu_per_chunk(run: Runner, streams: int) -> tuple[float, int]:
    gc.collect()
    start = time.process_time()
    chunks = 0
    for _ in range(streams):
        chunks += await run()
    return (time.process_time() - start) / chunks * 1e6, chunks


async def bench_protocol(
    protocol: str,
    port: int,
    rounds: int,
    streams: int,
    baseline: Any = None,
    official: bool = True,
) -> list[dict[str, Any]]:
    from steer_llm_sdk.models.streaming import HIGH_THROUGHPUT_OPTIONS

    contenders: dict[str, tuple[Runner, Callable[[], Awaitable[None]]]] = {
        "floor (httpx + json.loads)": make_floor(protocol, port),
        "steer stream()": make_steer(protocol, port, with_usage=False),
    }
    if baseline is not None:
        contenders["baseline stream() (--baseline)"] = make_steer(
            protocol, port, with_usage=False, package=baseline
        )
    contenders["steer stream() one-entry route [model]"] = make_steer(
        protocol, port, with_usage=False, options="route"
    )
    contenders["steer stream_events()"] = make_steer(
        protocol, port, with_usage=False, options="events"
    )
    contenders["steer stream_with_usage() + callbacks"] = make_steer(
        protocol, port, with_usage=True
    )
    contenders["steer stream_with_usage() HIGH_THROUGHPUT"] = make_steer(
        protocol, port, with_usage=True, options=HIGH_THROUGHPUT_OPTIONS
    )
    if official and protocol != "bedrock":  # boto3 is synchronous: not in this table
        contenders[f"official {protocol} SDK"] = make_official(protocol, port)
    lite = make_litellm(protocol, port) if official else None
    if lite is not None:
        contenders["litellm"] = lite
    results: dict[str, list[float]] = {name: [] for name in contenders}
    counts: dict[str, int] = {}
    for run, _ in contenders.values():  # warm up: connections, imports, caches
        await run()
    names = list(contenders)
    for r in range(rounds):
        # Each round starts at another contender, so none always runs right after the
        # heaviest one (the official SDKs leave the heap and caches busier).
        for name in names[r % len(names) :] + names[: r % len(names)]:
            us, n = await cpu_per_chunk(contenders[name][0], streams)
            results[name].append(us)
            counts[name] = n // streams
    for _, close in contenders.values():
        await close()
    floor = results["floor (httpx + json.loads)"]
    rows = []
    for name, values in results.items():
        rows.append(
            {
                "protocol": protocol,
                "contender": name,
                "us_per_chunk": statistics.median(values),
                # The ratio of each round (measured minutes apart at most), then the
                # median: robust to a shared machine that drifts between rounds.
                "ratio": statistics.median(v / f for v, f in zip(values, floor, strict=True)),
                "chunks_per_stream": counts[name],
            }
        )
    return rows


async def time_to_first_chunk(protocol: str, port: int, samples: int) -> dict[str, float]:
    _, floor_close = make_floor(protocol, port)

    client = steer_client(port)
    http = httpx.AsyncClient(timeout=60)
    if protocol == "openai":
        url, body, headers = (
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {
                "model": MODELS["openai"],
                "messages": [{"role": "user", "content": PROMPT}],
                "stream": True,
            },
            {"authorization": "Bearer sk-bench"},
        )
    else:
        url, body, headers = (
            f"http://127.0.0.1:{port}/v1/messages",
            {
                "model": MODELS["anthropic"],
                "messages": [{"role": "user", "content": PROMPT}],
                "max_tokens": 4096,
                "stream": True,
            },
            {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"},
        )

    async def floor_first() -> float:
        start = time.perf_counter()
        async with http.stream("POST", url, json=body, headers=headers) as response:
            buf = b""
            async for raw in response.aiter_raw():
                buf += raw
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if (line.startswith(b"data: ") and b'"text' in line) or b'"content":"' in line:
                        json.loads(line[6:])
                        return time.perf_counter() - start
        return time.perf_counter() - start

    async def steer_first() -> float:
        start = time.perf_counter()
        stream = client.stream(PROMPT, MODELS[protocol])
        async for _ in stream:
            elapsed = time.perf_counter() - start
            await stream.aclose()
            return elapsed
        return time.perf_counter() - start

    floor_t, steer_t = [], []
    for _ in range(3):
        await floor_first()
        await steer_first()
    for _ in range(samples):
        floor_t.append(await floor_first())
        steer_t.append(await steer_first())
    await http.aclose()
    await client.aclose()
    await floor_close()
    f, s = statistics.median(floor_t) * 1000, statistics.median(steer_t) * 1000
    return {"floor_ms": f, "steer_ms": s, "over_floor_ms": s - f}


async def concurrency(protocol: str, port: int, n: int, package: Any = None) -> dict[str, float]:
    floor_run, floor_close = make_floor(protocol, port)
    client = steer_client(port, max_connections=n, package=package)
    expected: list[str] = []

    async def one() -> str:
        return "".join([c async for c in client.stream(PROMPT, MODELS[protocol])])

    expected.append(await one())
    gc.collect()
    start = time.process_time()
    texts = await asyncio.gather(*(one() for _ in range(n)))
    steer_cpu = time.process_time() - start
    exact = all(t == expected[0] for t in texts)
    chunks = n * len(expected[0].split())  # about one chunk a word
    await floor_run()
    gc.collect()
    start = time.process_time()
    counts = await asyncio.gather(*(floor_run() for _ in range(n)))
    floor_cpu = time.process_time() - start
    floor_chunks = sum(counts)
    # Memory per open stream: all n open at once, measured with tracemalloc.
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    streams = [client.stream(PROMPT, MODELS[protocol]) for _ in range(n)]
    firsts = await asyncio.gather(*(s.__anext__() for s in streams))
    snap = tracemalloc.take_snapshot()
    per_stream = sum(s.size_diff for s in snap.compare_to(base, "filename")) / n
    tracemalloc.stop()
    for s in streams:
        await s.aclose()
    await client.aclose()
    await floor_close()
    return {
        "streams": n,
        "exact_text": float(exact and all(firsts)),
        "steer_us_per_chunk": steer_cpu / chunks * 1e6,
        "floor_us_per_chunk": floor_cpu / floor_chunks * 1e6,
        "ratio": (steer_cpu / chunks) / (floor_cpu / floor_chunks),
        "kib_per_open_stream": per_stream / 1024,
    }


async def per_call(protocol: str, port: int) -> dict[str, float]:
    """CPU of one whole call on a short answer: the per-request cost."""
    from steer_llm_sdk.models.streaming import StreamingOptions

    floor, floor_close = make_floor(protocol, port)
    client = steer_client(port)
    opts = StreamingOptions(enable_json_stream_handler=True, on_delta=lambda t: None)

    async def stream() -> int:
        return len([c async for c in client.stream(PROMPT, MODELS[protocol])])

    async def with_usage() -> int:
        await client.stream_with_usage(PROMPT, MODELS[protocol], streaming_options=opts)
        return 1

    runners = {"floor": floor, "stream()": stream, "stream_with_usage()": with_usage}
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():
        for _ in range(10):
            await run()
    for _ in range(5):
        for name, run in runners.items():
            gc.collect()
            start = time.process_time()
            for _ in range(100):
                await run()
            samples[name].append((time.process_time() - start) / 100 * 1e6)
    await client.aclose()
    await floor_close()
    return {name: statistics.median(values) for name, values in samples.items()}


async def partial_output_linearity(protocol: str, size: int = 200_000) -> dict[str, float]:
    """A ~200 KB structured output streamed with PartialOutput parts: client time per
    chunk over the first and the last tenth of the stream (linear: the same)."""
    from pydantic import BaseModel

    from steer_llm_sdk.testing import Emulator, Reply

    class Item(BaseModel):
        id: int
        title: str
        tags: list[str]
        score: float

    class Catalog(BaseModel):
        items: list[Item]

    items = []
    i = 0
    while len(json.dumps({"items": items})) < size:
        items.append(
            {
                "id": i,
                "title": f"item number {i} of the catalogue",
                "tags": ["a", "bc"],
                "score": i / 7,
            }
        )
        i += 1
    text = json.dumps({"items": items})
    chunks = [text[j : j + 16] for j in range(0, len(text), 16)]
    async with Emulator() as emu:
        client = steer_client(emu.port)
        emu.enqueue(Reply(chunks=chunks))
        marks: list[float] = []
        partials = 0
        n = 0
        async for part in client.stream_events(PROMPT, MODELS[protocol], output=Catalog):
            if part.type == "text-delta":
                n += 1
                if n % 100 == 0:
                    marks.append(time.process_time())
            elif part.type == "partial-output":
                partials += 1
            elif part.type == "finish":
                assert len(part.response.output.items) == len(items)
        await client.aclose()
    tenth = max(2, len(marks) // 10)
    start = (marks[tenth] - marks[0]) / (tenth * 100) * 1e6
    end = (marks[-1] - marks[-1 - tenth]) / (tenth * 100) * 1e6
    return {
        "bytes": len(text),
        "chunks": len(chunks),
        "partials": partials,
        "start_us_per_chunk": start,
        "end_us_per_chunk": end,
        "ratio": end / start,
    }


def compile_package() -> None:
    """Write the package's .pyc files, as a regular (non-editable) install does: an
    editable checkout with PYTHONDONTWRITEBYTECODE would otherwise compile every import."""
    import compileall

    import steer_llm_sdk

    compileall.compile_dir(os.path.dirname(steer_llm_sdk.__file__), quiet=1)


def import_time(module: str, samples: int = 7) -> float:
    code = f"import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"
    times = []
    for _ in range(samples):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        times.append(float(out.stdout))
    return statistics.median(times) * 1000


async def linearity(ports: list[int], protocol: str) -> list[tuple[int, float]]:
    """(chunks, CPU µs per call) of stream_with_usage (JSON handler and callbacks on)
    for answers of several lengths. The marginal cost per chunk between two lengths
    is the same when no per-chunk work grows with the text so far."""
    from steer_llm_sdk.models.streaming import StreamingOptions

    seen = [0]

    def on_delta(text: str) -> None:
        seen[0] += 1

    opts = StreamingOptions(enable_json_stream_handler=True, on_delta=on_delta)
    points = []
    for port in ports:
        client = steer_client(port)
        # max_tokens above the longest answer, so no protocol default caps it
        call = dict(streaming_options=opts, max_tokens=20000)
        await client.stream_with_usage(PROMPT, MODELS[protocol], **call)
        samples = []
        for _ in range(5):
            gc.collect()
            seen[0] = 0
            start = time.process_time()
            await client.stream_with_usage(PROMPT, MODELS[protocol], **call)
            samples.append(time.process_time() - start)
        points.append((seen[0], statistics.median(samples) * 1e6))
        await client.aclose()
    return sorted(points)


Ports = dict[str, int]


def section_cpu(args: argparse.Namespace, ports: Ports, results: dict[str, Any]) -> None:
    rows = []
    baseline = load_baseline(args.baseline) if args.baseline else None
    for protocol in args.protocols:
        rows += asyncio.run(
            bench_protocol(
                protocol, ports["chunks"], args.rounds, args.streams, baseline, args.official
            )
        )
    results["cpu"] = rows
    print(f"\nCPU per chunk ({args.chunks}-chunk streams, median of {args.rounds} rounds)")
    print(f"{'protocol':<10} {'contender':<44} {'µs/chunk':>9} {'× floor':>8}")
    for r in rows:
        print(
            f"{r['protocol']:<10} {r['contender']:<44} {r['us_per_chunk']:>9.2f} {r['ratio']:>8.2f}"
        )
    print("\nA one-entry route against a plain call, CPU per chunk (target <= 1.15x)")
    for protocol in args.protocols:
        by = {r["contender"]: r for r in rows if r["protocol"] == protocol}
        plain = by["steer stream()"]
        route = by["steer stream() one-entry route [model]"]
        print(
            f"{protocol:<10} plain {plain['us_per_chunk']:.2f} µs, route "
            f"{route['us_per_chunk']:.2f} µs: {route['ratio'] / plain['ratio']:.2f}x"
        )


def section_ttfc(args: argparse.Namespace, ports: Ports, results: dict[str, Any]) -> None:
    print("\nTime to first chunk, warm client (20-chunk answers, median)")
    results["ttfc"] = {}
    for protocol in ("openai", "anthropic"):
        t = asyncio.run(time_to_first_chunk(protocol, ports["small"], 50))
        results["ttfc"][protocol] = t
        print(
            f"{protocol:<10} floor {t['floor_ms']:.3f} ms, steer {t['steer_ms']:.3f} ms, "
            f"over floor {t['over_floor_ms']:+.3f} ms"
        )


def section_per_call(args: argparse.Namespace, ports: Ports, results: dict[str, Any]) -> None:
    print("\nCPU per call, warm client (20-chunk answers, median of 5 × 100 calls)")
    results["per_call"] = {}
    for protocol in ("openai", "anthropic"):
        calls = asyncio.run(per_call(protocol, ports["small"]))
        results["per_call"][protocol] = calls
        print(f"{protocol:<10} " + ", ".join(f"{name} {us:.0f} µs" for name, us in calls.items()))


def section_concurrency(args: argparse.Namespace, ports: Ports, results: dict[str, Any]) -> None:
    print(f"\n{args.concurrency} concurrent streams on one event loop (250-chunk answers)")
    results["concurrency"] = {}
    baseline = load_baseline(args.baseline) if args.baseline else None
    runs = [("", None)] if baseline is None else [("baseline ", baseline), ("", None)] * 2
    for protocol in ("openai", "anthropic"):
        for label, package in runs:
            c = asyncio.run(concurrency(protocol, ports["short"], args.concurrency, package))
            results["concurrency"].setdefault(label + protocol, []).append(c)
            print(
                f"{label + protocol:<18} exact text: {'yes' if c['exact_text'] else 'NO'}, "
                f"steer {c['steer_us_per_chunk']:.2f} µs/chunk "
                f"vs floor {c['floor_us_per_chunk']:.2f} "
                f"(× {c['ratio']:.2f}), {c['kib_per_open_stream']:.1f} KiB per open stream"
            )


def section_linearity(args: argparse.Namespace, ports: Ports, results: dict[str, Any]) -> None:
    print("\nLinearity: stream_with_usage (JSON handler on), marginal µs per chunk")
    results["linearity"] = {}
    for protocol in ("openai", "anthropic"):
        points = asyncio.run(linearity([ports["short"], ports["chunks"], ports["long"]], protocol))
        results["linearity"][protocol] = points
        (n1, t1), (n2, t2), (n3, t3) = points
        first = (t2 - t1) / (n2 - n1)
        second = (t3 - t2) / (n3 - n2)
        print(
            f"{protocol:<10} {n1}→{n2} chunks: {first:.2f}, {n2}→{n3} chunks: {second:.2f} "
            f"(× {second / first:.2f})"
        )


def section_partial(args: argparse.Namespace, ports: Ports, results: dict[str, Any]) -> None:
    print("\nStructured output (~200 KB, PartialOutput per read), µs per chunk")
    results["partial_output"] = {}
    for protocol in ("openai", "anthropic"):
        po = asyncio.run(partial_output_linearity(protocol))
        results["partial_output"][protocol] = po
        print(
            f"{protocol:<10} {po['bytes']} bytes, {po['chunks']} chunks, "
            f"{po['partials']} partials: first tenth {po['start_us_per_chunk']:.2f}, "
            f"last tenth {po['end_us_per_chunk']:.2f} (× {po['ratio']:.2f})"
        )


def section_import(args: argparse.Namespace, ports: Ports, results: dict[str, Any]) -> None:
    compile_package()
    print("\nCold import (median of 7 fresh interpreters, .pyc compiled)")
    modules = ["httpx", "steer_llm_sdk", "openai", "anthropic"]
    if importlib.util.find_spec("litellm") is not None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        modules.append("litellm")
    imports = {m: import_time(m) for m in modules}
    results["import_ms"] = imports
    for m, ms in imports.items():
        print(f"{m:<15} {ms:7.1f} ms  (× {ms / imports['httpx']:.2f} httpx)")


SECTION_RUNNERS: dict[str, Callable[[argparse.Namespace, Ports, dict[str, Any]], None]] = {
    "cpu": section_cpu,
    "ttfc": section_ttfc,
    "per_call": section_per_call,
    "concurrency": section_concurrency,
    "linearity": section_linearity,
    "partial": section_partial,
    "import": section_import,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=2000, help="chunks per stream")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--streams", type=int, default=4, help="streams per round")
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these sections (default: all)",
    )
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also measure stream() of the package in this checkout (e.g. main's), "
        "in the same rounds: before/after figures from one run",
    )
    parser.add_argument(
        "--no-official",
        dest="official",
        action="store_false",
        help="leave the official SDKs and LiteLLM out of the CPU table (a faster run)",
    )
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=list(MODELS),
        default=list(MODELS),
        help="the CPU table's protocols (default: all five)",
    )
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.rounds, args.streams, args.concurrency = 500, 2, 3, 100

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    emulators = {
        "chunks": start_emulator(args.chunks),
        "small": start_emulator(20),
        "short": start_emulator(250),
        "long": start_emulator(8000),
    }
    ports = {name: port for name, (_, port) in emulators.items()}
    results: dict[str, Any] = {}
    try:
        for section in args.only:
            SECTION_RUNNERS[section](args, ports, results)
    finally:
        for proc, _ in emulators.values():
            proc.kill()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
