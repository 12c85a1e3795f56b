"""The official Vercel AI SDK (`ai` 6.x, from npm, run by Node) reads this SDK's UI
message stream: its own chat (what `useChat` wraps) sends the request, parses every
chunk with its schema and builds the message. Needs `node` and `npm install` in
tests/js (`.ci/run` does it)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("starlette", reason="the web extra (starlette, uvicorn) is not installed")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steer_llm_sdk import SteerLLMClient, StreamingOptions
from steer_llm_sdk.testing import Emulator, Fault, Reply
from steer_llm_sdk.web import SQLiteStore, from_ui_messages, resume_response, stream_response

from .web_servers import uvicorn_app

JS = Path(__file__).resolve().parents[1] / "js"
NODE = shutil.which("node")
if NODE is None:
    pytest.skip("node is not installed (Node 20 runs the ai package)", allow_module_level=True)
if not (JS / "node_modules" / "ai" / "package.json").exists():
    pytest.skip("tests/js has no node_modules: run `npm ci` in tests/js", allow_module_level=True)

KEY = "sk-test-ai-sdk-0123456789abcdef"


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"{city}: 21C, sunny"


async def chat(mode: str, api: str, chat_id: str, arg: str) -> dict[str, Any]:
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(JS / "chat.mjs"),
        mode,
        api,
        chat_id,
        arg,
        cwd=JS,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return dict(json.loads(out))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[str, Emulator]]:
    """/api/chat on stream_tools (a Python tool) or, for the chat id "file", a source
    with a file part; resumable, SQLite store."""
    store = SQLiteStore(tmp_path / "s.db")
    async with Emulator(reply_words=40, delay_between_chunks=0.01) as emu:
        client = SteerLLMClient(openai_api_key=KEY, openai_base_url=emu.openai_base_url)

        async def files() -> AsyncIterator[Any]:
            yield SimpleNamespace(type="text-delta", text="Here it is:")
            pixel = SimpleNamespace(media_type="image/png", data=b"\x89PNG\r\n", url=None)
            yield SimpleNamespace(type="file", file=pixel)

        async def post(request: Request) -> Response:
            body = await request.json()
            if body["id"] == "file":
                return stream_response(files())
            messages = from_ui_messages(body)
            opts = StreamingOptions(max_reconnect_attempts=0)
            stream = client.stream_tools(
                messages, model="gpt-4o-mini", tools=[get_weather], streaming_options=opts
            )
            return stream_response(stream, resumable=True, chat_id=body["id"], store=store)

        async def resume(request: Request) -> Response:
            return resume_response(request.path_params["chat_id"], store=store)

        app = Starlette(
            routes=[
                Route("/api/chat", post, methods=["POST"]),
                Route("/api/chat/{chat_id}/stream", resume),
            ]
        )
        async with uvicorn_app(app) as url:
            yield f"{url}/api/chat", emu
        await client.aclose()


async def test_the_ai_sdk_builds_text_reasoning_and_a_tool_call_with_its_output(
    server: tuple[str, Emulator],
) -> None:
    api, emu = server
    call = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_9"}
    emu.enqueue(
        Reply(reasoning="The user wants weather.", tool_calls=[call]),
        Reply(chunks=["It is ", "sunny."]),
    )
    result = await chat("send", api, "c1", "Weather in Paris?")
    assert result["status"] == "ready" and result["error"] is None
    user, answer = result["messages"]
    assert user["role"] == "user" and user["parts"] == [
        {"type": "text", "text": "Weather in Paris?"}
    ]
    assert answer["role"] == "assistant"
    parts = [p for p in answer["parts"]]
    kinds = [p["type"] for p in parts]
    assert kinds == ["step-start", "reasoning", "tool-get_weather", "step-start", "text"]
    assert parts[1]["text"] == "The user wants weather." and parts[1]["state"] == "done"
    tool = parts[2]
    assert tool["toolCallId"] == "call_9" and tool["state"] == "output-available"
    assert tool["input"] == {"city": "Paris"} and tool["output"] == "Paris: 21C, sunny"
    assert parts[4] == {"type": "text", "text": "It is sunny.", "state": "done"}
    assert answer["metadata"]["usage"]["total_tokens"] > 0
    # The follow-up request carries that message back, as useChat sends it.
    second = emu.requests[1].json["messages"]
    assert second[-1]["role"] == "tool" and second[-1]["content"] == "Paris: 21C, sunny"


async def test_the_ai_sdk_reads_a_file_part(server: tuple[str, Emulator]) -> None:
    api, _ = server
    result = await chat("send", api, "file", "A picture?")
    answer = result["messages"][-1]
    assert result["error"] is None
    assert answer["parts"][-1] == {
        "type": "file",
        "mediaType": "image/png",
        "url": "data:image/png;base64,iVBORw0K",
    }


async def test_the_ai_sdk_reports_an_error_part(server: tuple[str, Emulator]) -> None:
    api, emu = server
    emu.enqueue(Reply(chunks=["partial ", "answer ", "more"], fault=Fault.error_event_after(2)))
    result = await chat("send", api, "c2", "hi")
    assert result["status"] == "error"
    assert result["error"] and KEY not in result["error"]
    text = [p for p in result["messages"][-1]["parts"] if p["type"] == "text"]
    assert text[0]["text"] == "partial answer "


async def test_the_ai_sdk_resumes_a_stream_and_builds_the_same_message(
    server: tuple[str, Emulator],
) -> None:
    api, emu = server
    words = [f"w{i} " for i in range(60)]
    emu.enqueue(Reply(chunks=words, delay_between_chunks=0.02))
    user = {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "count"}]}
    first = asyncio.create_task(chat("send", api, "c3", "count"))
    await asyncio.sleep(0.6)  # mid-answer: the resume replays from the start
    resumed = await chat("resume", api, "c3", json.dumps([user]))
    sent = await first
    assert resumed["error"] is None and resumed["status"] == "ready"
    answer = resumed["messages"][-1]
    assert answer["role"] == "assistant"
    text = "".join(p["text"] for p in answer["parts"] if p["type"] == "text")
    assert text == "".join(words)
    assert answer["id"] == sent["messages"][-1]["id"]  # the same message, not a second one
    assert len(resumed["messages"]) == 2
    assert len(emu.requests) == 1
    none = await chat("resume", api, "c3", json.dumps([user]))  # finished: 204
    assert none["messages"] == [user] and none["error"] is None
