"""steer_llm_sdk.web over real sockets: the SDK's client against the emulator, the
response served by uvicorn, read by httpx or a raw socket."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("starlette", reason="the web extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the web extra (starlette, uvicorn) is not installed")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from steer_llm_sdk import SteerLLMClient, StreamingOptions, TextDelta
from steer_llm_sdk.errors import ConfigurationError
from steer_llm_sdk.testing import Emulator, Fault, Reply
from steer_llm_sdk.web import (
    SQLiteStore,
    error_status,
    from_ui_messages,
    resume_response,
    stream_response,
)

from .web_servers import IdleProxy, sse_events, ui_chunks, ui_text, uvicorn_app, wait_until

KEY = "sk-test-web-0123456789abcdef0123456789"
NO_RETRY = StreamingOptions(max_reconnect_attempts=0)


@pytest.fixture
async def client(emulator: Emulator) -> AsyncIterator[SteerLLMClient]:
    async with SteerLLMClient(openai_api_key=KEY, openai_base_url=emulator.openai_base_url) as c:
        yield c


def app_of(make: Any) -> Starlette:
    async def endpoint(request: Request) -> Response:
        return await make(request)

    async def resume(request: Request) -> Response:
        return resume_response(
            request.path_params["chat_id"],
            store=request.app.state.store,
            last_event_id=request.headers.get("last-event-id"),
        )

    app = Starlette(
        routes=[
            Route("/chat", endpoint, methods=["POST", "GET"]),
            Route("/chat/{chat_id}/stream", resume),
        ]
    )
    return app


def ask(text: str = "hi") -> dict[str, Any]:
    return {
        "id": "chat-1",
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}],
    }


async def test_ui_stream_text_reasoning_and_a_tool_call(
    client: SteerLLMClient, emulator: Emulator
) -> None:
    emulator.enqueue(
        Reply(
            reasoning="Think first.",
            chunks=["Hello", " there"],
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_1"}],
        )
    )

    async def make(request: Request) -> Response:
        messages = from_ui_messages(await request.json())
        tools = [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
        return stream_response(client.stream_events(messages, model="gpt-4o-mini", tools=tools))

    async with uvicorn_app(app_of(make)) as url, httpx.AsyncClient() as http:
        r = await http.post(f"{url}/chat", json=ask())
    assert r.status_code == 200
    assert r.headers["x-vercel-ai-ui-message-stream"] == "v1"
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = ui_chunks(r.text)
    types = [c["type"] for c in chunks]
    assert types[:2] == ["start", "start-step"]
    assert types[-3:] == ["finish-step", "finish", "[DONE]"]
    assert "".join(c["delta"] for c in chunks if c["type"] == "reasoning-delta") == "Think first."
    assert ui_text(chunks) == "Hello there"
    assert types.index("reasoning-end") < types.index("text-start")
    start = next(c for c in chunks if c["type"] == "tool-input-start")
    assert start == {"type": "tool-input-start", "toolCallId": "call_1", "toolName": "get_weather"}
    args = "".join(c["inputTextDelta"] for c in chunks if c["type"] == "tool-input-delta")
    assert json.loads(args) == {"city": "Paris"}
    done = next(c for c in chunks if c["type"] == "tool-input-available")
    assert done["input"] == {"city": "Paris"} and done["toolName"] == "get_weather"
    finish = chunks[-2]
    assert finish["finishReason"] == "tool-calls"
    assert finish["messageMetadata"]["usage"]["total_tokens"] > 0


async def test_openai_and_sse_encodings(client: SteerLLMClient, emulator: Emulator) -> None:
    emulator.enqueue(Reply(chunks=["a", "b", "c"]), Reply(chunks=["x", "y"]))
    encoding = iter(["openai", "sse"])

    async def make(request: Request) -> Response:
        stream = client.stream_events("hi", model="gpt-4o-mini")
        return stream_response(stream, next(encoding), model="gpt-4o-mini")

    async with uvicorn_app(app_of(make)) as url, httpx.AsyncClient() as http:
        openai_body = (await http.post(f"{url}/chat")).text
        sse_body = (await http.post(f"{url}/chat")).text
    events = [e["data"] for e in sse_events(openai_body)]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(d) for d in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        == "abc"
    )
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    typed = sse_events(sse_body)
    assert [e["event"] for e in typed] == ["text-delta", "text-delta", "finish", "done"]
    assert json.loads(typed[2]["data"])["text"] == "xy"


async def test_plain_text_stream_in_every_encoding(
    client: SteerLLMClient, emulator: Emulator
) -> None:
    """``stream()`` yields strings: each encoding wraps them as text."""
    emulator.enqueue(*[Reply(chunks=["p", "q"]) for _ in range(3)])
    encoding = iter(["ui", "openai", "sse"])

    async def make(request: Request) -> Response:
        return stream_response(client.stream("hi", model="gpt-4o-mini"), next(encoding))

    async with uvicorn_app(app_of(make)) as url, httpx.AsyncClient() as http:
        ui, oa, typed = [(await http.post(f"{url}/chat")).text for _ in range(3)]
    chunks = ui_chunks(ui)
    assert ui_text(chunks) == "pq" and chunks[-2] == {"type": "finish"}
    deltas = [json.loads(e["data"]) for e in sse_events(oa) if e["data"] != "[DONE]"]
    assert "".join(d["choices"][0]["delta"].get("content", "") for d in deltas) == "pq"
    assert deltas[-1]["choices"][0]["finish_reason"] == "stop"
    assert [json.loads(e["data"]) for e in sse_events(typed)][:2] == [{"text": "p"}, {"text": "q"}]


@pytest.mark.parametrize(
    ("reply", "status", "retry_after"),
    [
        (Reply(status=429, headers={"retry-after": "7"}, error_type="rate_limit_error"), 429, "7"),
        (
            Reply(status=401, error_type="invalid_api_key", error_message=f"bad key {KEY}"),
            502,
            None,
        ),
        (Reply(status=500, error_type="server_error"), 502, None),
        (Reply(status=400, error_type="invalid_request_error"), 400, None),
    ],
)
async def test_errors_before_the_first_byte_get_real_statuses(
    client: SteerLLMClient, emulator: Emulator, reply: Reply, status: int, retry_after: str | None
) -> None:
    emulator.enqueue(reply)

    async def make(request: Request) -> Response:
        opts = StreamingOptions(max_reconnect_attempts=0, max_retry_after=1)
        return stream_response(
            client.stream_events("hi", model="gpt-4o-mini", streaming_options=opts)
        )

    async with uvicorn_app(app_of(make)) as url, httpx.AsyncClient() as http:
        r = await http.post(f"{url}/chat")
    assert r.status_code == status, r.text
    assert r.headers.get("retry-after") == retry_after
    assert KEY not in r.text and "sk-test" not in r.text and "Traceback" not in r.text
    assert r.text  # a message the page can show


@pytest.mark.parametrize(("resumable", "keepalive"), [(False, None), (True, 15.0), (True, None)])
async def test_a_rate_limit_is_a_429_with_or_without_keepalives_and_resume(
    client: SteerLLMClient, emulator: Emulator, store: SQLiteStore, resumable: bool, keepalive: Any
) -> None:
    emulator.enqueue(Reply(status=429, headers={"retry-after": "9"}, error_type="rate_limit_error"))

    async def make(request: Request) -> Response:
        opts = StreamingOptions(max_reconnect_attempts=0, max_retry_after=1)
        stream = client.stream_events("hi", model="gpt-4o-mini", streaming_options=opts)
        return stream_response(
            stream, keepalive=keepalive, resumable=resumable, chat_id="c", store=store
        )

    async with uvicorn_app(app_of(make)) as url, httpx.AsyncClient() as http:
        r = await http.post(f"{url}/chat")
    assert (r.status_code, r.headers.get("retry-after")) == (429, "9")


def test_error_status_mapping_names_no_provider_401() -> None:
    from steer_llm_sdk.errors import AuthenticationError, RateLimitError

    status, message, _ = error_status(
        AuthenticationError(f"Incorrect API key {KEY}", status_code=401)
    )
    assert status == 502 and KEY not in message
    assert error_status(RateLimitError("slow", retry_after=2.2))[2] == {"retry-after": "3"}
    assert error_status(ValueError("secret internals"))[:2] == (500, "internal server error")


async def test_an_error_mid_stream_is_an_error_part_with_a_redacted_message(
    client: SteerLLMClient, emulator: Emulator
) -> None:
    emulator.enqueue(Reply(chunks=["one ", "two ", "three"], fault=Fault.error_event_after(2)))

    async def make(request: Request) -> Response:
        stream = client.stream_events("hi", model="gpt-4o-mini", streaming_options=NO_RETRY)
        return stream_response(stream)

    async with uvicorn_app(app_of(make)) as url, httpx.AsyncClient() as http:
        r = await http.post(f"{url}/chat")
    assert r.status_code == 200
    chunks = ui_chunks(r.text)
    assert ui_text(chunks) == "one two "
    assert [c["type"] for c in chunks][-3:] == ["text-end", "error", "[DONE]"]
    assert "Traceback" not in r.text and KEY not in r.text
    assert chunks[-2]["errorText"]


async def test_a_client_leaving_cancels_the_upstream_call_within_a_second(
    client: SteerLLMClient,
) -> None:
    async with Emulator(reply_words=400, delay_between_chunks=0.02) as emu:
        c = SteerLLMClient(openai_api_key=KEY, openai_base_url=emu.openai_base_url)

        async def make(request: Request) -> Response:
            return stream_response(c.stream_events("hi", model="gpt-4o-mini"))

        async with uvicorn_app(app_of(make)) as url, httpx.AsyncClient() as http:
            async with http.stream("POST", f"{url}/chat") as r:
                seen = 0
                async for line in r.aiter_lines():
                    seen += "text-delta" in line
                    if seen == 5:
                        break
                assert emu.open_connections == 1
            await wait_until(lambda: not emu.open_connections, 1.0)
            assert emu.open_connections == 0, "the provider's response is still open"
            requests = len(emu.requests)
        await c.aclose()
    assert requests == 1  # not retried


async def test_keepalives_carry_a_stream_through_a_proxy_that_drops_idle_connections(
    client: SteerLLMClient, emulator: Emulator
) -> None:
    """The model is silent for 2 s; the proxy drops connections idle 1 s (30 s in
    production, scaled down). With keep-alives every 0.3 s the answer arrives whole;
    without them the proxy cuts it."""
    stall = Fault.stall_after(2, 2.0, then="continue")
    emulator.enqueue(Reply(chunks=["a ", "b ", "c ", "d"], fault=stall))
    emulator.enqueue(Reply(chunks=["a ", "b ", "c ", "d"], fault=stall))
    keepalive = iter([0.3, None])

    async def make(request: Request) -> Response:
        stream = client.stream_events("hi", model="gpt-4o-mini", streaming_options=NO_RETRY)
        return stream_response(stream, keepalive=next(keepalive))

    async with uvicorn_app(app_of(make)) as url, IdleProxy(int(url.rsplit(":", 1)[1]), 1.0) as p:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"http://127.0.0.1:{p.port}/chat")
            assert ui_text(ui_chunks(r.text)) == "a b c d"
            assert any(e.get("comment") == "keepalive" for e in sse_events(r.text))
            assert p.dropped == 0
            cut = ""
            try:
                async with http.stream("POST", f"http://127.0.0.1:{p.port}/chat") as r2:
                    async for text in r2.aiter_text():
                        cut += text
            except httpx.HTTPError:
                pass
    assert p.dropped == 1 and "[DONE]" not in cut


async def test_a_client_that_stops_reading_does_not_make_the_server_buffer_the_stream() -> None:
    """10,000 parts of 8 KiB behind a client that reads nothing: the source is read
    only as far as the socket buffers allow; then every part arrives, in order."""
    produced = 0
    piece = "x" * 8192

    async def parts() -> AsyncIterator[Any]:
        nonlocal produced
        for i in range(10_000):
            produced += 1
            yield TextDelta(f"{i:05d}{piece}")

    async def make(request: Request) -> Response:
        return stream_response(parts(), keepalive=None)

    async with uvicorn_app(app_of(make)) as url:
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /chat HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1.5)
        stalled_at = produced
        await asyncio.sleep(0.5)
        assert produced == stalled_at, "the source is still being read"
        assert produced < 1_000, f"{produced} parts ({produced * 8} KiB) buffered"
        body = bytearray()
        while b"data: [DONE]" not in body[-200:]:
            data = await reader.read(1 << 20)
            assert data
            body += data
        writer.close()
    text = body.decode()
    assert produced == 10_000
    assert text.count('"type":"text-delta"') == 10_000
    assert text.index('"delta":"00000') < text.index('"delta":"09999')


def test_from_ui_messages_text_files_and_tools() -> None:
    body = {
        "id": "c",
        "messages": [
            {"id": "s", "role": "system", "parts": [{"type": "text", "text": "Be brief."}]},
            {
                "id": "u",
                "role": "user",
                "parts": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "file",
                        "mediaType": "image/png",
                        "url": "data:image/png;base64,iVBORw0KGgo=",
                    },
                    {
                        "type": "file",
                        "mediaType": "application/pdf",
                        "url": "data:application/pdf;base64,JVBERi0=",
                        "filename": "a.pdf",
                    },
                ],
            },
            {
                "id": "a",
                "role": "assistant",
                "parts": [
                    {"type": "step-start"},
                    {"type": "reasoning", "text": "hmm"},
                    {"type": "text", "text": "Let me look."},
                    {
                        "type": "tool-get_weather",
                        "toolCallId": "call_1",
                        "state": "output-available",
                        "input": {"city": "Paris"},
                        "output": {"temp": 21},
                    },
                    {"type": "step-start"},
                    {"type": "text", "text": "21 degrees."},
                ],
            },
            {"id": "u2", "role": "user", "parts": [{"type": "text", "text": "Thanks"}]},
        ],
    }
    assert from_ui_messages(body) == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {
                    "type": "file",
                    "file": {
                        "file_data": "data:application/pdf;base64,JVBERi0=",
                        "filename": "a.pdf",
                    },
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "assistant", "content": "21 degrees."},
        {"role": "user", "content": "Thanks"},
    ]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages[0]"),
        ({"messages": [{"role": "user", "parts": [{"type": "text"}]}]}, "messages[0].parts[0]"),
        ({"messages": [{"role": "robot", "parts": []}]}, "messages[0]"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "parts": [
                            {
                                "type": "file",
                                "url": "https://x/y.pdf",
                                "mediaType": "application/pdf",
                            }
                        ],
                    }
                ]
            },
            "messages[0].parts[0]",
        ),
    ],
)
def test_from_ui_messages_names_what_is_wrong(body: Any, where: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(where)):
        from_ui_messages(body)


# -- resumable ---------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "streams.db")


async def test_resume_replays_the_whole_answer_and_last_event_id_gives_exactly_the_rest(
    store: SQLiteStore,
) -> None:
    async with Emulator(reply_words=80, delay_between_chunks=0.02) as emu:
        c = SteerLLMClient(openai_api_key=KEY, openai_base_url=emu.openai_base_url)

        async def make(request: Request) -> Response:
            stream = c.stream_events("hi", model="gpt-4o-mini")
            return stream_response(stream, resumable=True, chat_id="chat-1", store=store)

        app = app_of(make)
        app.state.store = store
        async with uvicorn_app(app) as url, httpx.AsyncClient(timeout=10) as http:
            first = ""
            async with http.stream("POST", f"{url}/chat") as r:
                async for line in r.aiter_lines():
                    first += line + "\n"
                    if first.count("text-delta") == 10:
                        break
            last_id = [e["id"] for e in sse_events(first) if "id" in e][-1]
            rest = await http.get(f"{url}/chat/chat-1/stream", headers={"last-event-id": last_id})
            whole = await http.get(f"{url}/chat/chat-1/stream")  # done by now: nothing active
            assert whole.status_code == 204
            assert len(emu.requests) == 1  # no second model call
        await c.aclose()
    firsts = ui_chunks(first)
    rests = ui_chunks(rest.text)
    assert rests[0]["type"] == "text-delta" and rests[-1]["type"] == "[DONE]"
    text = ui_text(firsts) + ui_text(rests)
    assert len(text.split()) == 80
    ids = [
        int(e["id"].rsplit(":", 1)[1]) for e in sse_events(first + "\n" + rest.text) if "id" in e
    ]
    assert ids == list(range(1, len(ids) + 1))


async def test_a_reconnecting_client_gets_the_whole_answer_replayed_from_the_start(
    store: SQLiteStore,
) -> None:
    async with Emulator(reply_words=60, delay_between_chunks=0.02) as emu:
        c = SteerLLMClient(openai_api_key=KEY, openai_base_url=emu.openai_base_url)

        async def make(request: Request) -> Response:
            stream = c.stream_events("hi", model="gpt-4o-mini")
            return stream_response(stream, resumable=True, chat_id="chat-2", store=store)

        app = app_of(make)
        app.state.store = store
        async with uvicorn_app(app) as url, httpx.AsyncClient(timeout=10) as http:
            async with http.stream("POST", f"{url}/chat") as r:
                async for line in r.aiter_lines():
                    if "text-delta" in line:
                        break
            whole = await http.get(f"{url}/chat/chat-2/stream")
            none = await http.get(f"{url}/chat/other/stream")
        await c.aclose()
    assert whole.status_code == 200 and none.status_code == 204
    chunks = ui_chunks(whole.text)
    assert [c["type"] for c in chunks[:3]] == ["start", "start-step", "text-start"]
    assert chunks[-1]["type"] == "[DONE]" and len(ui_text(chunks).split()) == 60
    assert len(emu.requests) == 1


async def test_the_first_client_leaving_does_not_break_a_resumed_stream(
    store: SQLiteStore,
) -> None:
    # A reload: the resume GET is already waiting for the next part when the first
    # request's client goes away (its response cancelled). Both waited on one shared
    # future; the first one's cancellation must not end the second response unfinished.
    async with Emulator(reply_words=60, delay_between_chunks=0.03) as emu:
        c = SteerLLMClient(openai_api_key=KEY, openai_base_url=emu.openai_base_url)

        async def make(request: Request) -> Response:
            stream = c.stream_events("hi", model="gpt-4o-mini")
            return stream_response(stream, resumable=True, chat_id="chat-4", store=store)

        app = app_of(make)
        app.state.store = store
        async with uvicorn_app(app) as url, httpx.AsyncClient(timeout=10) as http:
            resumed = ""
            got_some = asyncio.Event()

            async def resume() -> None:
                nonlocal resumed
                async with http.stream("GET", f"{url}/chat/chat-4/stream") as r:
                    async for line in r.aiter_lines():
                        resumed += line + "\n"
                        if "text-delta" in line:
                            got_some.set()

            async with http.stream("POST", f"{url}/chat") as r:
                lines = r.aiter_lines()
                async for line in lines:
                    if "text-delta" in line:
                        break
                task = asyncio.ensure_future(resume())
                await asyncio.wait_for(got_some.wait(), 10)
                async for _ in lines:  # both wait for the same next part now
                    break
            # the first client left (its response closed) while the resume waits
            await asyncio.wait_for(task, 15)
        await c.aclose()
    chunks = ui_chunks(resumed)
    assert chunks[-1]["type"] == "[DONE]" and len(ui_text(chunks).split()) == 60
    assert len(emu.requests) == 1


async def test_an_unlistened_answer_runs_on_for_resume_timeout_then_is_cancelled(
    store: SQLiteStore,
) -> None:
    async with Emulator(reply_words=2000, delay_between_chunks=0.01) as emu:
        c = SteerLLMClient(openai_api_key=KEY, openai_base_url=emu.openai_base_url)

        async def make(request: Request) -> Response:
            stream = c.stream_events("hi", model="gpt-4o-mini")
            return stream_response(
                stream, resumable=True, chat_id="chat-3", store=store, resume_timeout=1.0
            )

        app = app_of(make)
        app.state.store = store
        async with uvicorn_app(app) as url, httpx.AsyncClient(timeout=10) as http:
            async with http.stream("POST", f"{url}/chat") as r:
                async for line in r.aiter_lines():
                    if "text-delta" in line:
                        break
            left = time.monotonic()
            await asyncio.sleep(0.5)
            assert emu.open_connections == 1  # runs on while nobody listens
            await wait_until(lambda: not emu.open_connections, 2.5)
            gone = time.monotonic() - left
            assert emu.open_connections == 0
            assert 1.0 <= gone < 2.6, gone
            after = await http.get(f"{url}/chat/chat-3/stream")
        await c.aclose()
    assert after.status_code == 204
