"""The cost of serving streams to browsers (steer_llm_sdk.web).

    python benchmarks/web_bench.py [--parts 2000] [--rounds 5] [--clients 1000] [--words 200]

1. CPU per part, side by side in one run (the emulator in a child process, the rest
   in this one, rounds alternated, the best round of each kept):
   - ``stream_events()`` alone, its parts consumed by a loop that does nothing;
   - the same stream through ``stream_response(..., "ui")`` served by uvicorn (in this
     process) and read by a raw socket that only looks for ``[DONE]``: the extra is
     the UI encoding, the ASGI send and the socket write;
   - the UI encoder alone, on those parts in memory.
2. ``--clients`` concurrent browser-like SSE clients (raw sockets: POST /api/chat,
   read to ``[DONE]``) on ``steer-llm serve`` in a child process against the emulator;
   every answer's text is checked exactly; serve's CPU per chunk (from /proc) is
   printed next to the CPU per chunk of the same number of streams consumed by the
   SDK directly (``stream_events()`` in this process), and the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from bench import start_emulator

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.web.encode import UIEncoder

KEY = "sk-bench-web"
ASK = {
    "id": "b",
    "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": "x"}]}],
}


def cpu() -> float:
    return time.process_time()


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def read_sse(port: int, path: str = "/chat", body: bytes = b"{}") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
    writer.write(head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body)
    out = bytearray()
    while b"data: [DONE]" not in out[-64:]:
        data = await reader.read(1 << 16)
        if not data:
            raise RuntimeError("closed before [DONE]")
        out += data
    writer.close()
    return bytes(out)


async def per_part(base_url: str, rounds: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    from steer_llm_sdk.web import stream_response

    client = SteerLLMClient(openai_api_key=KEY, openai_base_url=base_url)

    async def chat(request: Any) -> Any:
        return stream_response(client.stream_events("x", model="gpt-4o-mini"), "ui")

    config = uvicorn.Config(
        Starlette(routes=[Route("/chat", chat, methods=["POST"])]), port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]

    parts: list[Any] = []
    best = {"alone": 1e9, "ui": 1e9, "encoder": 1e9}
    for _ in range(rounds):
        parts = []
        t = cpu()
        async for part in client.stream_events("x", model="gpt-4o-mini"):
            parts.append(part)
        best["alone"] = min(best["alone"], (cpu() - t) / len(parts))
        t = cpu()
        await read_sse(port)
        best["ui"] = min(best["ui"], (cpu() - t) / len(parts))
        t = cpu()
        for _ in range(10):
            enc = UIEncoder()
            for part in parts:
                enc.part(part)
            enc.end()
        best["encoder"] = min(best["encoder"], (cpu() - t) / len(parts) / 10)
    server.should_exit = True
    await task
    await client.aclose()
    n = len(parts)
    print(f"1. CPU per part, {n} parts per answer, best of {rounds} rounds:")
    print(f"   stream_events() alone            {best['alone'] * 1e6:7.2f} µs")
    ui, alone = best["ui"] * 1e6, best["alone"] * 1e6
    print(f"   through stream_response('ui')    {ui:7.2f} µs  (served and read over a socket)")
    print(f"   extra                            {ui - alone:7.2f} µs  ({ui / alone:.2f}x)")
    print(f"   the UI encoder alone             {best['encoder'] * 1e6:7.2f} µs")


async def concurrent(base_url: str, emu_port: int, clients: int, words: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(
        OPENAI_API_KEY=KEY, OPENAI_BASE_URL=base_url, PYTHONPATH=str(Path(__file__).parents[1])
    )
    cmd = [
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        "serve",
        "-m",
        "gpt-4o-mini",
        "--port",
        "0",
        "-n",
    ]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
    assert proc.stderr is not None
    while "ready http://" not in (line := proc.stderr.readline()):
        if not line:
            raise RuntimeError("serve did not start")
    port = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
    try:
        client = SteerLLMClient(openai_api_key=KEY, openai_base_url=base_url)
        expected = await client.stream_with_usage("x", model="gpt-4o-mini")
        body = json.dumps(ASK).encode()
        await read_sse(port, "/api/chat", body)  # warm up

        async def one_sdk() -> int:
            n = 0
            async for _part in client.stream_events("x", model="gpt-4o-mini"):
                n += 1
            return n

        t0, w0 = cpu(), time.perf_counter()
        counts = await asyncio.gather(*(one_sdk() for _ in range(clients)))
        sdk_cpu, sdk_wall = cpu() - t0, time.perf_counter() - w0
        chunks = sum(counts)

        before, w0 = proc_cpu(proc.pid), time.perf_counter()
        bodies = await asyncio.gather(*(read_sse(port, "/api/chat", body) for _ in range(clients)))
        serve_cpu, wall = proc_cpu(proc.pid) - before, time.perf_counter() - w0
        exact = 0
        for raw in bodies:
            text = "".join(
                json.loads(line[6:])["delta"]
                for line in raw.decode().split("\n")
                if line.startswith('data: {"type":"text-delta"')
            )
            exact += text == expected.text
        await client.aclose()
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"2. {clients} concurrent SSE clients on steer-llm serve, {words}-chunk answers:")
    print(f"   exact answers                    {exact}/{clients}")
    print(f"   wall                             {wall:7.2f} s   (the SDK alone: {sdk_wall:.2f} s)")
    print(f"   serve CPU per chunk              {serve_cpu / chunks * 1e6:7.2f} µs")
    alone = sdk_cpu / chunks * 1e6
    print(f"   the SDK alone, CPU per chunk     {alone:7.2f} µs  (stream_events() in-process)")
    print(f"   extra CPU per chunk              {(serve_cpu - sdk_cpu) / chunks * 1e6:7.2f} µs")


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--words", type=int, default=200)
    args = p.parse_args()
    emu, port = start_emulator(args.parts)
    try:
        await per_part(f"http://127.0.0.1:{port}/v1", args.rounds)
    finally:
        emu.terminate()
    emu, port = start_emulator(args.words)
    try:
        await concurrent(f"http://127.0.0.1:{port}/v1", port, args.clients, args.words)
    finally:
        emu.terminate()


if __name__ == "__main__":
    asyncio.run(main())
