"""The exact response cache against the emulator over real sockets: a hit replays
the same chunks and parts with no request; misses, errors, interruptions, early
stops, cache=False, TTL and a restart behave as the README says."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from steer_llm_sdk import ResponseCache, SteerLLMClient, StreamingOptions
from steer_llm_sdk.errors import BadRequestError, ConfigurationError, StreamInterruptedError
from steer_llm_sdk.testing import Emulator, Fault, Reply

from .conftest import MODELS

PNG = (
    b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00\x00\x00\x01" * 2 + b"\x08\x02\x00\x00\x00"
)


def _posts(emulator: Emulator) -> int:
    return sum(r.method == "POST" for r in emulator.requests)


@pytest.fixture
async def cached(guide_env: Emulator, tmp_path: Path) -> AsyncIterator[SteerLLMClient]:
    async with SteerLLMClient(response_cache=ResponseCache(str(tmp_path / "c.db"))) as c:
        yield c


async def _chunks(client: SteerLLMClient, prompt: Any, model: str, **kw: Any) -> list[str]:
    return [chunk async for chunk in client.stream(prompt, model=model, **kw)]


@pytest.mark.parametrize("model", list(MODELS.values()))
async def test_a_hit_replays_the_same_chunks_without_a_request(
    cached: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    first = await _chunks(cached, "Tell me about lighthouses", model)
    assert _posts(guide_env) == 1
    second = await _chunks(cached, "Tell me about lighthouses", model)
    assert second == first and len(first) > 1  # the same chunks, not one joined string
    assert _posts(guide_env) == 1  # no second request

    live = await cached.stream_with_usage("Another prompt", model=model)
    hit = await cached.stream_with_usage("Another prompt", model=model)
    assert _posts(guide_env) == 2
    assert (live.cached, hit.cached) == (False, True)
    assert hit.text == live.text and hit.finish_reason == live.finish_reason
    assert hit.cost_usd == 0.0 and hit.usage["total_tokens"] == 0
    assert hit.cached_usage == live.usage and live.usage["completion_tokens"] > 0
    assert hit.attempts == 0 and hit.provider == live.provider and hit.model == live.model
    # generate() and stream() share entries: the same answer either way.
    again = await cached.generate("Another prompt", model=model)
    assert again.cached and again.text == live.text and _posts(guide_env) == 2


async def test_events_replay_tool_calls_and_reasoning_in_order(
    cached: SteerLLMClient, guide_env: Emulator
) -> None:
    guide_env.enqueue(
        Reply(
            text="Let me check.",
            reasoning="The user wants weather.",
            tool_calls=[{"name": "weather", "arguments": {"city": "Oslo"}, "id": "call_1"}],
        )
    )
    tools = [{"name": "weather", "description": "w", "parameters": {"type": "object"}}]

    async def run() -> list[Any]:
        return [
            p
            async for p in cached.stream_events(
                "Weather?", model="claude-3-haiku-20240307", tools=tools
            )
        ]

    live = await run()
    hit = await run()
    assert _posts(guide_env) == 1
    shape = lambda parts: [(p.type, getattr(p, "text", None)) for p in parts[:-1]]  # noqa: E731
    assert shape(hit) == shape(live)
    assert {p.type for p in live} >= {"reasoning-delta", "text-delta", "tool-call-end", "finish"}
    end = next(p for p in hit if p.type == "tool-call-end")
    assert end.call.name == "weather" and end.call.args == {"city": "Oslo"}
    finish = hit[-1]
    assert finish.type == "finish" and finish.reason == "tool_calls"
    assert finish.response.cached and finish.response.tool_calls[0].id == "call_1"
    assert finish.response.reasoning_text == "The user wants weather."


async def test_it_survives_a_restart(guide_env: Emulator, tmp_path: Path) -> None:
    path = str(tmp_path / "cache.db")
    async with SteerLLMClient(response_cache=ResponseCache(path)) as client:
        first = await client.stream_with_usage("Persist me", model="gpt-4o-mini")
    async with SteerLLMClient(response_cache=ResponseCache(path)) as client:
        second = await client.stream_with_usage("Persist me", model="gpt-4o-mini")
    assert second.cached and second.text == first.text and _posts(guide_env) == 1


def _with_image(data: bytes) -> list[dict[str, Any]]:
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    content = [
        {"type": "text", "text": "Same words"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    return [{"role": "user", "content": content}]


async def test_what_shapes_the_answer_is_in_the_key(
    cached: SteerLLMClient, guide_env: Emulator
) -> None:
    model = "gpt-4o-mini"
    await cached.generate("Same words", model=model)
    await cached.generate("Same words", model=model, temperature=0.3)
    await cached.generate("Same words", model="gpt-4o")
    await cached.generate(
        [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Same words"}],
        model=model,
    )
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 20
    await cached.generate(_with_image(PNG), model=model)
    await cached.generate(_with_image(jpeg), model=model)
    assert _posts(guide_env) == 6  # every one a miss
    await cached.generate(_with_image(PNG), model=model)
    await cached.generate("Same words", model=model, temperature=0.3)
    assert _posts(guide_env) == 6  # and each one a hit the second time
    # StreamingOptions do not shape the answer: same key.
    await cached.generate(
        "Same words", model=model, streaming_options=StreamingOptions(read_timeout=5)
    )
    assert _posts(guide_env) == 6


async def test_errors_interruptions_and_early_stops_are_not_stored(
    cached: SteerLLMClient, guide_env: Emulator
) -> None:
    model = "gpt-4o-mini"
    guide_env.enqueue(Reply(status=400, error_message="bad"))
    with pytest.raises(BadRequestError):
        await cached.generate("Q1", model=model)
    await cached.generate("Q1", model=model)
    assert _posts(guide_env) == 2  # the error was not cached

    guide_env.enqueue(Reply(fault=Fault.drop_after(2)))
    opts = StreamingOptions(max_reconnect_attempts=0)
    with pytest.raises(StreamInterruptedError):
        await _chunks(cached, "Q2 is long enough", model, streaming_options=opts)
    done = await _chunks(cached, "Q2 is long enough", model, streaming_options=opts)
    assert _posts(guide_env) == 4 and done  # the interrupted answer was not cached

    stream = cached.stream("Q3 tell a story", model=model)
    async for _ in stream:
        break  # the caller stops after one chunk
    await stream.aclose()
    await _chunks(cached, "Q3 tell a story", model)
    assert _posts(guide_env) == 6  # an answer the caller did not take whole is not stored
    await _chunks(cached, "Q3 tell a story", model)
    assert _posts(guide_env) == 6


async def test_cache_false_bypasses_it(cached: SteerLLMClient, guide_env: Emulator) -> None:
    model = "gpt-4o-mini"
    await cached.generate("Fresh please", model=model, cache=False)
    await cached.generate("Fresh please", model=model)
    assert _posts(guide_env) == 2  # cache=False neither read nor wrote
    hit = await cached.generate("Fresh please", model=model)
    fresh = await cached.generate("Fresh please", model=model, cache=False)
    assert hit.cached and not fresh.cached and _posts(guide_env) == 3
    with pytest.raises(ConfigurationError, match="cache="):
        await cached.generate("x", model=model, cache="yes")
    body = guide_env.requests[-1].json
    assert "cache" not in body  # never sent to the provider


async def test_ttl(guide_env: Emulator, tmp_path: Path) -> None:
    cache = ResponseCache(str(tmp_path / "t.db"), ttl=0.3)
    async with SteerLLMClient(response_cache=cache) as client:
        await client.generate("Short lived", model="gpt-4o-mini")
        assert (await client.generate("Short lived", model="gpt-4o-mini")).cached
        await asyncio.sleep(0.4)
        assert not (await client.generate("Short lived", model="gpt-4o-mini")).cached
    assert _posts(guide_env) == 2
    with pytest.raises(ConfigurationError, match="ttl"):
        ResponseCache(":memory:", ttl=-1)


class City(BaseModel):
    name: str
    population: int


async def test_structured_output_is_validated_on_a_hit(
    cached: SteerLLMClient, guide_env: Emulator
) -> None:
    guide_env.enqueue(Reply(text='{"name": "Oslo", "population": 700000}'))
    live = await cached.stream_with_usage("A city", model="gpt-4o-mini", output=City)
    hit = await cached.stream_with_usage("A city", model="gpt-4o-mini", output=City)
    assert hit.cached and isinstance(hit.output, City) and hit.output == live.output


async def test_callbacks_run_on_a_hit_and_a_broken_cache_never_breaks_a_call(
    guide_env: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    done: list[str] = []
    opts = StreamingOptions(on_delta=seen.append, on_complete=done.append)
    async with SteerLLMClient(response_cache=ResponseCache(":memory:")) as client:
        live = await client.stream_with_usage(
            "Callbacks", model="gpt-4o-mini", streaming_options=opts
        )
        seen.clear()
        hit = await client.stream_with_usage(
            "Callbacks", model="gpt-4o-mini", streaming_options=opts
        )
    assert hit.cached and "".join(seen) == live.text and done == [live.text, live.text]

    class Broken:
        async def get(self, key: str) -> bytes | None:
            raise OSError("disk gone")

        async def put(self, key: str, value: bytes) -> None:
            raise OSError("disk gone")

    with caplog.at_level(logging.WARNING, logger="steer_llm_sdk"):
        async with SteerLLMClient(response_cache=Broken()) as client:
            response = await client.stream_with_usage("Still works", model="gpt-4o-mini")
    assert response.text and not response.cached
    assert "response cache: read failed" in caplog.text
    with pytest.raises(ConfigurationError, match="response_cache"):
        SteerLLMClient(response_cache="cache.db")


# -- Redis, against a real redis-server started here ------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip(
            "redis-server is not installed (Debian package redis-server; .ci/run installs it)"
        )
    pytest.importorskip("redis", reason="the redis extra is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [
            server,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_redis_shares_answers_between_clients(guide_env: Emulator, redis_url: str) -> None:
    from steer_llm_sdk.cache import RedisResponseCache

    one = RedisResponseCache(redis_url, ttl=60)
    two = RedisResponseCache(redis_url, ttl=60)
    async with SteerLLMClient(response_cache=one) as a, SteerLLMClient(response_cache=two) as b:
        first = await a.stream_with_usage("Shared", model="gpt-4o-mini")
        second = await b.stream_with_usage("Shared", model="gpt-4o-mini")
    assert second.cached and second.text == first.text and _posts(guide_env) == 1
    import redis

    conn = redis.Redis.from_url(redis_url)
    keys = conn.keys("steer-llm:response:*")
    assert len(keys) == 1 and 0 < conn.ttl(keys[0]) <= 60  # every key carries the TTL
    conn.close()
    await one.aclose()
    await two.aclose()
    assert "127.0.0.1" not in repr(one)


def test_import_does_not_load_sqlite() -> None:
    code = "import sys, steer_llm_sdk; print('sqlite3' in sys.modules, 'hashlib' in sys.modules)"
    out = subprocess.run(
        [os.sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,  # type: ignore[attr-defined]
    ).stdout.split()
    assert out[0] == "False"


async def test_cli_cache_answers_the_second_time_from_the_data_directory(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    from .test_cli import run_cli

    args = ("stream", "-m", "gpt-4o-mini", "--cache", "Tell me about owls")
    code, first, err = await run_cli(*args, env=cli_env)
    assert code == 0, err
    code, second, err = await run_cli(*args, env=cli_env)
    assert code == 0, err
    assert second == first and first.strip()
    assert _posts(emulator) == 1
    assert (Path(cli_env["XDG_DATA_HOME"]) / "steer-llm" / "response-cache.db").exists()
    code, _, err = await run_cli("stream", "-m", "gpt-4o-mini", "Tell me about owls", env=cli_env)
    assert code == 0 and _posts(emulator) == 2  # without --cache: a model call


async def test_images_and_audio_of_an_answer_replay_whole(
    cached: SteerLLMClient, guide_env: Emulator
) -> None:
    from steer_llm_sdk import AudioDelta, FileOutput

    png = PNG + b"\x00" * 64
    guide_env.enqueue(Reply(text="A picture:", files=[("image/png", png)]))
    draw: dict[str, Any] = {"model": "gemini-2.5-flash-image", "modalities": ["text", "image"]}
    live = [p async for p in cached.stream_events("Draw", **draw)]
    hit = [p async for p in cached.stream_events("Draw", **draw)]
    assert _posts(guide_env) == 1
    files = [p.file for p in hit if isinstance(p, FileOutput)]
    assert [(f.media_type, f.data) for f in files] == [("image/png", png)]
    assert [p.type for p in hit] == [p.type for p in live]
    assert hit[-1].response.cached and hit[-1].response.files[0].data == png

    audio = b"\x01\x02" * 6000
    guide_env.enqueue(
        Reply(audio=audio, transcript="Hello"), Reply(audio=audio, transcript="Hello")
    )
    kw: dict[str, Any] = {
        "modalities": ["text", "audio"],
        "audio": {"voice": "alloy", "format": "pcm16"},
    }
    live_r = await cached.stream_with_usage("Speak", model="gpt-4o-audio-preview", **kw)
    parts = [p async for p in cached.stream_events("Speak", model="gpt-4o-audio-preview", **kw)]
    again = await cached.stream_with_usage("Speak", model="gpt-4o-audio-preview", **kw)
    assert again.cached and again.transcript == live_r.transcript == "Hello"
    assert (
        again.files[0].data == live_r.files[0].data
        and again.files[0].media_type == live_r.files[0].media_type
    )
    # stream_events is its own entry (typed parts): a miss, then parts of the same audio
    assert b"".join(p.data for p in parts if isinstance(p, AudioDelta)) == audio
