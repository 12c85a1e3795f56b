"""The default local model answers as a new user expects: in English, without echoing
the prompt, JSON mode that parses, every example of the user guide running on it, and
the README's first command printing a story."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.models.streaming import (
    HIGH_THROUGHPUT_OPTIONS,
    JSON_MODE_OPTIONS,
    LOW_LATENCY_OPTIONS,
    StreamingOptions,
)

from .conftest import LOCAL_MODEL, skip_without_local_model

pytestmark = pytest.mark.e2e

PROMPTS = [
    "Tell me a story about a lighthouse keeper",
    "Tell me a story",
    "Explain why the sky is blue.",
    "Write a short poem about the sea.",
    "Give me three tips for learning to cook.",
]


def latin_share(text: str) -> float:
    """The share of letters in ``text`` that are Latin script."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    latin = sum(1 for c in letters if unicodedata.name(c, "").startswith("LATIN"))
    return latin / len(letters)


def test_latin_share_tells_scripts_apart() -> None:
    assert latin_share("Once upon a time, café") == 1.0
    assert latin_share("Once ที่ไหน 灯塔") < 0.6


@pytest.mark.parametrize("prompt", PROMPTS)
async def test_answers_are_english_and_do_not_echo_the_prompt(
    local_base_url: str, prompt: str
) -> None:
    async with SteerLLMClient() as client:
        response = await client.stream_with_usage(prompt, LOCAL_MODEL, max_tokens=160, seed=1)
    text = response.text
    assert len(text.split()) >= 10, text
    assert prompt.rstrip(".").lower() not in text.lower(), text
    assert latin_share(text) >= 0.95, text


async def test_json_mode_parses_in_nine_of_ten(local_base_url: str) -> None:
    parsed = 0
    async with SteerLLMClient() as client:
        for seed in range(10):
            response = await client.stream_with_usage(
                "Generate a product listing with name, price, and description",
                LOCAL_MODEL,
                max_tokens=300,
                seed=seed,
                response_format={"type": "json_object"},
                streaming_options=JSON_MODE_OPTIONS,
            )
            try:
                data = response.get_json()
            except Exception:
                continue
            parsed += isinstance(data, dict) and bool(data)
    assert parsed >= 9


async def test_json_schema_on_the_local_model(local_base_url: str) -> None:
    schema = {
        "type": "object",
        # minLength: the 135M model sometimes picks "" (seen once in a full run); the
        # schema, turned into llama.cpp's grammar, rules that out.
        "properties": {"name": {"type": "string", "minLength": 1}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    async with SteerLLMClient() as client:
        response = await client.stream_with_usage(
            "Invent a person.",
            LOCAL_MODEL,
            max_tokens=120,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": schema},
            },
            streaming_options=JSON_MODE_OPTIONS,
        )
    data = response.get_json()
    assert set(data) == {"name", "age"} and isinstance(data["age"], int)
    assert 0 < len(data["name"]) <= 100  # string values are capped for the small model


# -- the user guide's examples, as written, with the local model -----------------------


async def test_guide_examples_run_on_the_local_model(
    local_base_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    model = LOCAL_MODEL
    client = SteerLLMClient()

    # Basic Streaming
    async for chunk in client.stream("Tell me a story", model=model, max_tokens=60):
        print(chunk, end="", flush=True)
    assert capsys.readouterr().out.strip()

    # Streaming with Usage Data
    response = await client.stream_with_usage(
        "Explain quantum computing", model=model, max_tokens=60
    )
    print(f"Response: {response.get_text()}")
    print(f"Tokens: {response.usage['total_tokens']}")
    print(f"Cost: ${response.cost_usd:.4f}")
    out = capsys.readouterr().out
    assert "Cost: $0.0000" in out and response.usage["completion_tokens"] > 0

    # Configuration
    options = StreamingOptions(
        enable_usage_aggregation=True,
        aggregator_type="auto",  # auto, tiktoken, character
        enable_json_stream_handler=True,
        connection_timeout=5.0,
        read_timeout=30.0,
        retry_on_connection_error=True,
        max_reconnect_attempts=3,
    )
    response = await client.stream_with_usage(
        "Generate data", model=model, streaming_options=options, max_tokens=60
    )
    assert response.get_text()

    # Preset Configurations (JSON)
    response = await client.stream_with_usage(
        "Generate product data",
        model=model,
        response_format={"type": "json_object"},
        streaming_options=JSON_MODE_OPTIONS,
    )
    assert isinstance(response.get_json(), dict)
    for preset in (HIGH_THROUGHPUT_OPTIONS, LOW_LATENCY_OPTIONS):
        response = await client.stream_with_usage(
            "Hello", model=model, streaming_options=preset, max_tokens=20
        )
        assert response.get_text()

    # Event Callbacks
    events: list[str] = []

    async def on_start() -> None:
        events.append("start")

    async def on_delta(text: str) -> None:
        events.append("delta")

    async def on_usage(usage: dict[str, Any]) -> None:
        events.append("usage")

    async def on_complete(final_text: str) -> None:
        events.append("complete")

    async def on_error(error: Exception) -> None:
        events.append("error")

    options = StreamingOptions(
        on_start=on_start,
        on_delta=on_delta,
        on_usage=on_usage,
        on_complete=on_complete,
        on_error=on_error,
    )
    await client.stream_with_usage(
        "Tell me a joke", model=model, streaming_options=options, max_tokens=60
    )
    assert events[0] == "start" and events[-2:] == ["usage", "complete"]
    assert "delta" in events and "error" not in events

    # JSON Mode Streaming. A 135M model does not always use the keys the prompt names
    # (about 7 runs in 12 have both): a few seeds, and at least one must.
    for seed in range(6):
        response = await client.stream_with_usage(
            "Generate a product listing with name, price, and description",
            model=model,
            response_format={"type": "json_object"},
            streaming_options=JSON_MODE_OPTIONS,
            seed=seed,
        )
        data = response.get_json()
        if "name" in data and "price" in data:
            break
    print(f"Product: {data['name']} - ${data['price']}")
    assert capsys.readouterr().out.startswith("Product: ")

    # Retry Configuration
    options = StreamingOptions(
        retry_on_connection_error=True,
        max_reconnect_attempts=3,
        reconnect_delay=1.0,
        preserve_partial_response=True,
    )
    response = await client.stream_with_usage(
        "Long running task", model=model, streaming_options=options, max_tokens=40
    )
    assert response.get_text()

    # Timeout Handling
    options = StreamingOptions(connection_timeout=5.0, read_timeout=30.0, total_timeout=300.0)
    response = await client.stream_with_usage(
        "Generate code", model=model, streaming_options=options, max_tokens=40
    )
    assert response.get_text()

    # "OpenAI": usage from the stream, no aggregation
    response = await client.stream_with_usage(
        "Generate code",
        model=model,
        streaming_options=StreamingOptions(enable_usage_aggregation=False),
        max_tokens=40,
    )
    assert response.usage["completion_tokens"] > 0 and "estimated" not in response.usage

    # "Anthropic with Caching": cache_control is dropped for OpenAI-protocol servers.
    response = await client.stream_with_usage(
        messages=[
            {
                "role": "system",
                "content": "You are helpful",
                "cache_control": {"type": "ephemeral"},
            },
            {"role": "user", "content": "Hello"},
        ],
        model=model,
        max_tokens=40,
    )
    if response.usage.get("cache_info"):
        print(f"Cached tokens: {response.usage['cache_info']['cached_tokens']}")
    assert response.get_text()

    # Migration: the split API
    async for chunk in client.stream("Hello, world!", model, max_tokens=20):
        print(chunk, end="")
    response = await client.stream_with_usage("Hello, world!", model, max_tokens=20)
    print(response.get_text())
    print(response.usage)
    assert capsys.readouterr().out.strip()
    await client.aclose()


# -- the CLI with the local model ------------------------------------------------------


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.pop("STEER_DEFAULT_MODEL", None)
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return env


async def test_readme_first_command_prints_a_story(tmp_path: Path) -> None:
    skip_without_local_model()
    prompt = "Tell me a story about a lighthouse keeper"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        "stream",
        "--usage",
        prompt,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_cli_env(tmp_path),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    story, errors = out.decode(), err.decode()
    assert proc.returncode == 0, errors
    assert len(story.split()) >= 60, story
    assert prompt.lower() not in story.lower() and latin_share(story) >= 0.95
    assert "[local/smollm2-135m]" in errors and "cost=$0.000000" in errors
    assert "Traceback" not in errors


async def test_ctrl_c_with_the_local_model_exits_at_once_and_stops_the_server(
    tmp_path: Path,
) -> None:
    skip_without_local_model()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        "stream",
        "--max-tokens",
        "2000",
        "Tell me a very long story",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_cli_env(tmp_path),
    )
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.read(20), 60)  # the story has begun
    children = _children(proc.pid)
    assert children, "llama.cpp runs in a child process"
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert time.monotonic() - started < 2.0
    assert proc.returncode == 130 and "Traceback" not in err.decode()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert not any(_alive(pid) for pid in children), "the llama.cpp server outlived the CLI"


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        pytest.skip("needs /proc to find the server process")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


async def test_chat_history_reaches_the_local_model(tmp_path: Path) -> None:
    """Two turns through `steer-llm -c` against the real model: the second request
    holds the first exchange (the log is real SQLite)."""
    skip_without_local_model()
    env = _cli_env(tmp_path)
    for args in (["stream", "--max-tokens", "40", "My name is Ada."], ["-c", "What is my name?"]):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "steer_llm_sdk.cli",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err.decode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        "logs",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    out, _ = await proc.communicate()
    rows = json.loads(out)
    assert [r["prompt"] for r in rows] == ["My name is Ada.", "What is my name?"]
    assert rows[0]["conversation_id"] == rows[1]["conversation_id"]
    assert rows[1]["prompt_tokens"] > rows[0]["prompt_tokens"] + 5  # the history was sent
    assert all(r["model"] == "local/smollm2-135m" and r["cost_usd"] == 0 for r in rows)


async def test_ctrl_c_while_the_model_loads_exits_at_once(tmp_path: Path) -> None:
    skip_without_local_model()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        "stream",
        "Tell me a story",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_cli_env(tmp_path),
    )
    deadline = time.monotonic() + 30
    children: list[int] = []
    while not children and time.monotonic() < deadline:
        children = _children(proc.pid)  # llama.cpp's process has started loading
        await asyncio.sleep(0.01)
    assert children
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert time.monotonic() - started < 2.0
    assert proc.returncode == 130 and "Traceback" not in err.decode()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert not any(_alive(pid) for pid in children), "the llama.cpp server outlived the CLI"
