"""`steer-llm serve` in a child process, against the emulator: the official `openai`
SDK on /v1/chat/completions, the bearer token, the log, and resume across two
server processes sharing a real redis-server."""

from __future__ import annotations

import asyncio
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("uvicorn", reason="the web extra (starlette, uvicorn) is not installed")

from steer_llm_sdk.testing import Emulator, Reply

from .web_servers import child_env, serve_process, sse_events, ui_chunks, ui_text

KEY = "sk-test-serve-0123456789abcdef"
ASK = {
    "id": "chat-1",
    "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
}


def serve_env(emu: Emulator, tmp_path: Path) -> dict[str, str]:
    return child_env(
        OPENAI_API_KEY=KEY, OPENAI_BASE_URL=emu.openai_base_url, XDG_DATA_HOME=str(tmp_path)
    )


async def test_the_openai_sdk_streams_text_usage_and_tool_calls(
    emulator: Emulator, tmp_path: Path
) -> None:
    openai = pytest.importorskip("openai")
    emulator.enqueue(
        Reply(
            chunks=["Hello", " from", " serve"], usage={"prompt_tokens": 7, "completion_tokens": 3}
        ),
        Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}, "id": "call_a"}]),
        Reply(text="plain answer", usage={"prompt_tokens": 4, "completion_tokens": 2}),
        Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}, "id": "call_b"}]),
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    with serve_process(["-m", "gpt-4o-mini"], serve_env(emulator, tmp_path)) as url:
        oa = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused")
        stream = await oa.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage, finish = "", None, None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        assert text == "Hello from serve" and finish == "stop"
        assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (7, 3)

        stream = await oa.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "w?"}],
            tools=tools,
            stream=True,
        )
        calls: dict[int, dict[str, str]] = {}
        async for chunk in stream:
            for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                c = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                c["id"] += tc.id or ""
                c["name"] += (tc.function.name or "") if tc.function else ""
                c["arguments"] += (tc.function.arguments or "") if tc.function else ""
                finish = chunk.choices[0].finish_reason
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
        assert calls == {
            0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Oslo"}'}
        }
        assert finish == "tool_calls"

        done = await oa.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
        assert done.choices[0].message.content == "plain answer"
        assert done.usage is not None and done.usage.total_tokens == 6
        done = await oa.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "w?"}], tools=tools
        )
        call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
        assert (call.id, call.function.name) == ("call_b", "get_weather")  # type: ignore[union-attr]
        assert done.choices[0].finish_reason == "tool_calls"
        await oa.close()
    # The upstream request carried the tools, translated by the SDK.
    assert emulator.requests[1].json["tools"][0]["function"]["name"] == "get_weather"
    rows = sqlite3.connect(tmp_path / "steer-llm" / "logs.db").execute(
        "SELECT prompt, response, total_tokens FROM responses ORDER BY id"
    )
    logged = list(rows)
    assert logged[0] == ("hi", "Hello from serve", 10)
    assert len(logged) == 4


async def test_the_api_wants_the_token_the_page_does_not(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.enqueue(Reply(text="ok"))
    with serve_process(
        ["-m", "gpt-4o-mini", "--token", "s3cret", "-n"], serve_env(emulator, tmp_path)
    ) as url:
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(f"{url}/")
            assert page.status_code == 200 and "<script>" in page.text
            assert 'src="http' not in page.text and "cdn" not in page.text.lower()
            for path in ("/api/chat", "/v1/chat/completions"):
                denied = await http.post(f"{url}{path}", json=ASK)
                assert denied.status_code == 401
            bad = await http.post(
                f"{url}/api/chat", json={"messages": []}, headers={"authorization": "Bearer s3cret"}
            )
            assert bad.status_code == 400 and "messages" in bad.text
            ok = await http.post(
                f"{url}/api/chat", json=ASK, headers={"authorization": "Bearer s3cret"}
            )
            assert ok.status_code == 200 and ui_text(ui_chunks(ok.text)) == "ok"


def test_another_host_gets_a_generated_token(emulator: Emulator, tmp_path: Path) -> None:
    env = serve_env(emulator, tmp_path)
    # 127.0.0.2 is a loopback address that is not 127.0.0.1: serve treats it as another host.
    cmd = ["-m", "gpt-4o-mini", "--host", "127.0.0.2", "-n"]
    with serve_process(cmd, env) as url:
        r = httpx.post(f"{url}/api/chat", json=ASK, timeout=10)
        assert r.status_code == 401


# -- Redis ---------------------------------------------------------------------------


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    pytest.importorskip("redis", reason="the redis extra is not installed")
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        import redis

        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                import time

                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_resume_across_two_server_processes_sharing_redis(
    tmp_path: Path, redis_url: str
) -> None:
    import redis.asyncio as aioredis

    async with Emulator(reply_words=120, delay_between_chunks=0.02) as emu:
        env = serve_env(emu, tmp_path)
        args = ["-m", "gpt-4o-mini", "--resumable", "--redis", redis_url, "-n"]
        with serve_process(args, env) as a, serve_process(args, env) as b:
            async with httpx.AsyncClient(timeout=20) as http:
                first = ""
                async with http.stream("POST", f"{a}/api/chat", json=ASK) as r:
                    async for line in r.aiter_lines():
                        first += line + "\n"
                        if first.count("text-delta") == 20:
                            break
                last_id = [e["id"] for e in sse_events(first) if "id" in e][-1]
                rest_task = asyncio.create_task(
                    http.get(f"{b}/api/chat/chat-1/stream", headers={"last-event-id": last_id})
                )
                whole = await http.get(f"{b}/api/chat/chat-1/stream")
                rest = await rest_task
                after = await http.get(f"{b}/api/chat/chat-1/stream")
        db = aioredis.from_url(redis_url)
        keys = await db.keys("*")
        ttls = [await db.ttl(k) for k in keys]
        await db.aclose()
    assert whole.status_code == 200 and rest.status_code == 200
    replayed = ui_chunks(whole.text)
    assert replayed[0]["type"] == "start" and replayed[-1]["type"] == "[DONE]"
    assert len(ui_text(replayed).split()) == 120
    assert ui_text(ui_chunks(first)) + ui_text(ui_chunks(rest.text)) == ui_text(replayed)
    assert after.status_code == 204
    assert len(emu.requests) == 1  # one model call for the three readings
    assert keys and all(0 < t <= 3600 for t in ttls), dict(zip(keys, ttls, strict=True))


def test_the_cli_parser_loads_no_web_machinery() -> None:
    """`steer-llm` registers `serve` without importing Starlette, uvicorn, Redis or sqlite3."""
    import sys

    code = (
        "import sys, steer_llm_sdk.cli; steer_llm_sdk.cli._parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'redis', 'sqlite3', 'anyio')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
