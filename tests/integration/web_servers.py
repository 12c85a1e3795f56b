"""Helpers of the web tests: an ASGI app under uvicorn on 127.0.0.1 (in the test's
loop), `steer-llm serve` in a child process, an SSE reader and an idle-dropping proxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def uvicorn_app(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` on a free port of 127.0.0.1; yields its base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)


def sse_events(text: str) -> list[dict[str, Any]]:
    """The SSE events of ``text``: dicts with ``event``, ``id``, ``data`` (comments as
    ``{"comment": ...}``), read as the spec says (LF line ends)."""
    out: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        ev: dict[str, Any] = {}
        data: list[str] = []
        for line in block.split("\n"):
            if line.startswith(":"):
                out.append({"comment": line[1:].strip()})
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name in ("event", "id"):
                ev[name] = value
        if data:
            ev["data"] = "\n".join(data)
            out.append(ev)
    return out


def ui_chunks(text: str) -> list[dict[str, Any]]:
    """The UI message stream chunks of an SSE body (``[DONE]`` as ``{"type": "[DONE]"}``)."""
    chunks = []
    for ev in sse_events(text):
        if "data" in ev:
            chunks.append({"type": "[DONE]"} if ev["data"] == "[DONE]" else json.loads(ev["data"]))
    return chunks


def ui_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["delta"] for c in chunks if c["type"] == "text-delta")


@contextlib.contextmanager
def serve_process(args: list[str], env: dict[str, str], timeout: float = 60) -> Iterator[str]:
    """``steer-llm serve --port 0 ARGS`` in a child process; yields its base URL."""
    cmd = [sys.executable, "-m", "steer_llm_sdk.cli", "serve", "--port", "0", *args]
    full_env = {**env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=full_env, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + timeout
        lines = []
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                raise AssertionError(f"serve exited ({proc.wait()}): {''.join(lines)}")
            lines.append(line)
            if "ready http://" in line:
                url = line.split("ready ", 1)[1].strip().rstrip("/")
                break
        else:
            raise AssertionError("serve did not start: " + "".join(lines))
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.pop("STEER_DEFAULT_MODEL", None)
    env.update(extra)
    return env


class IdleProxy:
    """A TCP proxy that drops a connection after ``idle`` seconds with no byte either
    way (what load balancers and reverse proxies do, 30-60 s in production)."""

    def __init__(self, target_port: int, idle: float) -> None:
        self.target_port = target_port
        self.idle = idle
        self.dropped = 0
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> IdleProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        last = [time.monotonic()]

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            while data := await r.read(65536):
                last[0] = time.monotonic()
                w.write(data)
                await w.drain()

        tasks = [asyncio.create_task(pipe(cr, uw)), asyncio.create_task(pipe(ur, cw))]
        try:
            while not all(t.done() for t in tasks):
                await asyncio.sleep(0.05)
                if time.monotonic() - last[0] > self.idle:
                    self.dropped += 1
                    break
        finally:
            for t in tasks:
                t.cancel()
            for w in (cw, uw):
                w.close()


async def wait_until(condition: Any, seconds: float, step: float = 0.01) -> float:
    """Poll ``condition()`` until true or ``seconds`` pass; the seconds waited."""
    start = time.monotonic()
    while not condition() and time.monotonic() - start < seconds:  # noqa: ASYNC110
        await asyncio.sleep(step)
    return time.monotonic() - start
