"""The `steer-llm` command, run as a real subprocess against the emulator."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time

import pytest

from steer_llm_sdk.testing import Emulator, Reply

STORY = ["Once", " upon", " a", " time."]


async def run_cli(
    *args: str, env: dict[str, str], stdin: bytes | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    # stdin is closed at once (empty) unless given: piped text is read to its end.
    out, err = await asyncio.wait_for(proc.communicate(stdin or b""), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-3-haiku-20240307"])
async def test_stream_prints_the_answer_and_usage(
    emulator: Emulator, cli_env: dict[str, str], model: str
) -> None:
    emulator.enqueue(Reply(chunks=STORY, usage={"prompt_tokens": 10, "completion_tokens": 4}))
    code, out, err = await run_cli(
        "stream",
        "--model",
        model,
        "--usage",
        "--system",
        "Be brief",
        "--max-tokens",
        "50",
        "Tell me a story",
        env=cli_env,
    )
    assert code == 0, err
    assert out == "".join(STORY) + "\n"
    assert "prompt=10 completion=4 total=14" in err and "cost=$" in err
    sent = emulator.requests[-1].json
    assert "Be brief" in json.dumps(sent) and "Tell me a story" in json.dumps(sent)


async def test_prompt_from_stdin_and_json(emulator: Emulator, cli_env: dict[str, str]) -> None:
    code, out, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "--json", "-", env=cli_env, stdin=b"Give me a product"
    )
    assert code == 0, err
    assert json.loads(out)["name"] == "Aurora Desk Lamp"
    assert emulator.requests[-1].json["response_format"] == {"type": "json_object"}


async def test_default_model_uses_the_key_that_is_set(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    code, out, _ = await run_cli("models", env=cli_env)
    assert code == 0 and "Default model: gpt-4o-mini (because OPENAI_API_KEY is set)" in out
    assert "key set" in out and "local" in out


async def test_errors_are_clear_with_a_non_zero_exit(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    code, _, err = await run_cli("stream", "-m", "llama-70b", "hi", env=cli_env)
    assert code == 2 and "unknown model 'llama-70b'" in err and "Traceback" not in err
    emulator.enqueue(Reply(status=401, error_message="bad key"))
    code, _, err = await run_cli("stream", "-m", "gpt-4o-mini", "hi", env=cli_env)
    assert code == 1 and "AuthenticationError" in err and "bad key" in err
    assert f"url={cli_env['OPENAI_BASE_URL']}/chat/completions" in err  # what was tried
    assert "sk-test-cli" not in err


async def test_ctrl_c_stops_at_once(emulator: Emulator, cli_env: dict[str, str]) -> None:
    emulator.enqueue(Reply(chunks=STORY * 200, delay_between_chunks=0.05))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        "stream",
        "-m",
        "gpt-4o-mini",
        "long story",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env,
    )
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.read(4), 20)  # it is streaming
    assert first
    start = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert time.perf_counter() - start < 2.0
    assert proc.returncode == 130 and "interrupted" in err.decode()
    assert "Traceback" not in err.decode()
