"""`steer-llm` features as a user meets them: real subprocesses against the emulator,
a pseudo-terminal for `chat`, a real SQLite log in a temporary data directory."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import signal
import socket
import sqlite3
import sys
import termios
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from steer_llm_sdk.catalog import PROVIDERS, resolve_model
from steer_llm_sdk.cli import parse_schema
from steer_llm_sdk.testing import Emulator, Reply

from .test_cli import STORY, run_cli

CLI = [sys.executable, "-m", "steer_llm_sdk.cli"]


def _last_user(request_json: dict) -> str:
    return [m for m in request_json["messages"] if m["role"] == "user"][-1]["content"]


async def _logs(env: dict[str, str], *args: str) -> list[dict]:
    code, out, err = await run_cli("logs", "--json", *args, env=env)
    assert code == 0, err
    return list(json.loads(out))


# -- options and input ---------------------------------------------------------------


async def test_options_reach_the_request(emulator: Emulator, cli_env: dict[str, str]) -> None:
    code, _, err = await run_cli(
        "stream",
        "-m",
        "gpt-4o-mini",
        "--top-p",
        "0.5",
        "--stop",
        "END",
        "--stop",
        "FIN",
        "--seed",
        "7",
        "-t",
        "0.2",
        "-o",
        "presence_penalty",
        "0.3",
        "-o",
        "user",
        "cli-test",
        "-o",
        "logit_bias",
        '{"50256": -100}',
        "Hello",
        env=cli_env,
    )
    assert code == 0, err
    sent = emulator.requests[-1].json
    assert sent["top_p"] == 0.5 and sent["stop"] == ["END", "FIN"] and sent["seed"] == 7
    assert sent["temperature"] == 0.2 and sent["presence_penalty"] == 0.3
    assert sent["user"] == "cli-test" and sent["logit_bias"] == {"50256": -100}


async def test_stream_is_the_default_command(emulator: Emulator, cli_env: dict[str, str]) -> None:
    emulator.enqueue(Reply(chunks=STORY))
    code, out, err = await run_cli("-m", "gpt-4o-mini", "Tell me a story", env=cli_env)
    assert code == 0, err
    assert out == "".join(STORY) + "\n"


async def test_prompt_then_piped_text(emulator: Emulator, cli_env: dict[str, str]) -> None:
    code, _, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "Summarise this:", env=cli_env, stdin=b"line one\nline two"
    )
    assert code == 0, err
    assert _last_user(emulator.requests[-1].json) == "Summarise this:\n\nline one\nline two"
    # Only a prompt (stdin empty): the prompt alone; only stdin: stdin alone.
    await run_cli("stream", "-m", "gpt-4o-mini", "Just this", env=cli_env, stdin=b"")
    assert _last_user(emulator.requests[-1].json) == "Just this"
    await run_cli("stream", "-m", "gpt-4o-mini", env=cli_env, stdin=b"From the pipe")
    assert _last_user(emulator.requests[-1].json) == "From the pipe"


async def test_version(cli_env: dict[str, str]) -> None:
    from importlib.metadata import version

    code, out, _ = await run_cli("--version", env=cli_env)
    assert code == 0 and out.strip() == f"steer-llm {version('steer-llm-sdk')}"


async def test_connection_error_names_the_url(cli_env: dict[str, str]) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    code, _, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "--base-url", url, "hi", env=cli_env
    )
    assert code == 1 and "Traceback" not in err
    assert f"{url}/chat/completions" in err and "ConnectionError" in err


async def test_base_url_for_any_openai_compatible_server(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    code, _, err = await run_cli(
        "stream",
        "-m",
        "my-own-model",
        "--base-url",
        emulator.openai_base_url,
        "hi",
        env=cli_env,
    )
    assert code == 0, err
    assert emulator.requests[-1].json["model"] == "my-own-model"


def test_every_listed_model_resolves() -> None:
    for spec in PROVIDERS.values():
        for example in spec.examples:
            assert resolve_model(example).provider.name == spec.name, example


async def test_models_lists_the_local_default(cli_env: dict[str, str]) -> None:
    code, out, _ = await run_cli("models", env=cli_env)
    assert code == 0 and "local/smollm2-135m" in out
    assert "groq/llama-3.3-70b-versatile" in out and "ollama/llama3.2" in out


# -- schemas ---------------------------------------------------------------------------


def test_short_schema_form() -> None:
    schema = parse_schema("name str, age int, score float, ok bool, bio: a short biography")
    assert schema["properties"] == {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": "number"},
        "ok": {"type": "boolean"},
        "bio": {"type": "string", "description": "a short biography"},
    }
    assert schema["required"] == ["name", "age", "score", "ok", "bio"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("bad", ["name date", "", "a b c", "{not json"])
def test_bad_schemas_are_usage_errors(bad: str) -> None:
    from steer_llm_sdk.cli import UsageError

    with pytest.raises(UsageError, match="--schema"):
        parse_schema(bad)


async def test_schema_from_short_form_and_file(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, out, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "--schema", "name str, price float", "A lamp", env=cli_env
    )
    assert code == 0, err
    assert json.loads(out)["name"] == "Aurora Desk Lamp"  # the emulator's JSON answer
    fmt = emulator.requests[-1].json["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["price"] == {"type": "number"}

    schema_file = tmp_path / "product.json"
    schema_file.write_text(json.dumps({"type": "object", "properties": {"name": {}}}))
    code, out, err = await run_cli(
        "stream", "-m", "claude-3-haiku-20240307", "--schema", str(schema_file), "A lamp",
        env=cli_env,
    )  # fmt: skip
    assert code == 0, err
    sent = emulator.requests[-1].json
    assert sent["output_config"]["format"]["schema"] == {
        "type": "object",
        "properties": {"name": {}},
    }
    code, _, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "--schema", "name date", "x", env=cli_env
    )
    assert code == 2 and "unknown type 'date'" in err and "Traceback" not in err


# -- the log and -c ------------------------------------------------------------------


async def test_log_continue_search_and_off(emulator: Emulator, cli_env: dict[str, str]) -> None:
    emulator.enqueue(Reply(chunks=STORY, usage={"prompt_tokens": 10, "completion_tokens": 4}))
    code, _, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "-s", "Be brief", "Tell me a story", env=cli_env
    )
    assert code == 0, err
    db = Path(cli_env["XDG_DATA_HOME"]) / "steer-llm" / "logs.db"
    assert db.is_file()
    (row,) = await _logs(cli_env)
    assert row["prompt"] == "Tell me a story" and row["response"] == "".join(STORY)
    assert row["system"] == "Be brief" and row["model"] == "gpt-4o-mini"
    assert row["prompt_tokens"] == 10 and row["completion_tokens"] == 4
    assert row["cost_usd"] > 0 and row["duration"] > 0 and row["finish_reason"] == "stop"
    assert row["time_to_first_token"] is not None and row["error"] is None

    # -c sends the earlier exchange (and its system prompt) before the new prompt.
    code, _, err = await run_cli("-c", "Shorter, please", env=cli_env)
    assert code == 0, err
    sent = emulator.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"] == "".join(STORY) and sent[3]["content"] == "Shorter, please"
    rows = await _logs(cli_env, "-n", "0")
    assert len(rows) == 2 and rows[0]["conversation_id"] == rows[1]["conversation_id"]

    # A new prompt starts a new conversation; search finds by text.
    await run_cli("stream", "-m", "gpt-4o-mini", "About a lighthouse", env=cli_env)
    rows = await _logs(cli_env, "-n", "0")
    assert len(rows) == 3 and rows[2]["conversation_id"] != rows[0]["conversation_id"]
    found = await _logs(cli_env, "-q", "ABOUT A L", "-n", "0")  # any case
    assert [r["prompt"] for r in found] == ["About a lighthouse"]
    assert (await _logs(cli_env, "--id", str(rows[0]["id"])))[0]["prompt"] == "Tell me a story"
    code, out, _ = await run_cli("logs", "-n", "1", env=cli_env)
    assert "## Prompt\n\nAbout a lighthouse" in out

    # Off: nothing more is logged, until on again.
    code, out, _ = await run_cli("logs", "off", env=cli_env)
    assert code == 0 and "off" in out
    await run_cli("stream", "-m", "gpt-4o-mini", "Not logged", env=cli_env)
    assert len(await _logs(cli_env, "-n", "0")) == 3
    await run_cli("logs", "on", env=cli_env)
    await run_cli("stream", "-m", "gpt-4o-mini", "Logged again", env=cli_env)
    assert (await _logs(cli_env, "-n", "1"))[0]["prompt"] == "Logged again"
    with sqlite3.connect(db) as conn:  # a real SQLite file anyone can query
        assert conn.execute("SELECT count(*) FROM responses").fetchone() == (4,)


async def test_continue_without_a_log_is_a_clear_error(cli_env: dict[str, str]) -> None:
    code, _, err = await run_cli("-c", "more", env=cli_env)
    assert code == 2 and "no logged conversation" in err


async def test_a_failed_exchange_is_logged_with_its_error(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    emulator.enqueue(Reply(status=400, error_message="bad request here"))
    code, _, err = await run_cli("stream", "-m", "gpt-4o-mini", "hi", env=cli_env)
    assert code == 1 and "bad request here" in err
    (row,) = await _logs(cli_env)
    assert row["prompt"] == "hi" and "BadRequestError" in row["error"]


# -- pipes and signals -----------------------------------------------------------------


async def test_closed_pipe_is_quiet(emulator: Emulator, cli_env: dict[str, str]) -> None:
    emulator.enqueue(Reply(chunks=[f"line {i}\n" for i in range(3000)]))
    read_fd, write_fd = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "stream",
        "-m",
        "gpt-4o-mini",
        "count",
        stdout=write_fd,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=cli_env,
    )
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as reader:  # like `| head -c 20`
        head = await asyncio.to_thread(reader.read, 20)
    assert head.startswith(b"line 0")
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert "Traceback" not in err.decode() and "BrokenPipe" not in err.decode()
    assert proc.returncode == 0


# -- chat in a pseudo-terminal ---------------------------------------------------------


class Terminal:
    """A subprocess on a pseudo-terminal: type into it, wait for what it prints."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc = proc
        self.master = master
        self.output = b""
        self._seen = 0
        self._more = asyncio.Event()
        asyncio.get_running_loop().add_reader(master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self.master)
        self.output += data
        self._more.set()

    async def expect(self, text: str, wait: float = 20) -> str:
        """Wait until ``text`` appears after what earlier calls matched; return what
        came before it."""
        needle = text.encode()
        async with asyncio.timeout(wait):
            while (at := self.output.find(needle, self._seen)) < 0:
                self._more.clear()
                if self.proc.returncode is not None:
                    break
                await self._more.wait()
        if at < 0:
            raise AssertionError(f"{text!r} never came; got {self.output[self._seen :]!r}")
        before = self.output[self._seen : at].decode(errors="replace")
        self._seen = at + len(needle)
        return before

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.master)
        with contextlib.suppress(OSError):
            os.close(self.master)


@contextlib.asynccontextmanager
async def terminal(*args: str, env: dict[str, str]) -> AsyncIterator[Terminal]:
    master, slave = pty.openpty()

    def controlling_terminal() -> None:  # so that Ctrl-C typed there sends SIGINT
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        preexec_fn=controlling_terminal,
    )
    os.close(slave)
    term = Terminal(proc, master)
    try:
        yield term
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        term.close()


async def test_chat_keeps_history_and_ctrl_c_stops_only_the_answer(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    env = {**cli_env, "TERM": "xterm"}
    async with terminal("chat", "-m", "gpt-4o-mini", "-s", "Be kind", env=env) as term:
        await term.expect("Chatting with gpt-4o-mini")
        await term.expect("> ")
        emulator.enqueue(Reply(chunks=["Hi", " there!"]))
        term.type("Hello\r")
        assert "Hi there!" in await term.expect("tokens")
        await term.expect("> ")

        # Multi-line input between """ lines is one message.
        emulator.enqueue(Reply(chunks=["Two", " lines", " read."]))
        term.type('"""\rfirst line\rsecond line\r"""\r')
        assert "Two lines read." in await term.expect("tokens")
        sent = emulator.requests[-1].json["messages"]
        assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
        assert sent[2]["content"] == "Hi there!"
        assert sent[3]["content"] == "first line\nsecond line"
        await term.expect("> ")

        # Ctrl-C in the middle of a long answer stops that answer, not the chat.
        emulator.enqueue(Reply(chunks=["word "] * 400, delay_between_chunks=0.05))
        term.type("Tell me a long story\r")
        await term.expect("word word")
        started = time.monotonic()
        term.type("\x03")
        await term.expect("(answer stopped)")
        assert time.monotonic() - started < 2.0
        await term.expect("> ")
        assert term.proc.returncode is None

        # The stopped answer is not in the history; the chat goes on.
        emulator.enqueue(Reply(chunks=["Still", " here."]))
        term.type("Are you there?\r")
        assert "Still here." in await term.expect("tokens")
        sent = emulator.requests[-1].json["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == [
            "Hello",
            "first line\nsecond line",
            "Are you there?",
        ]
        await term.expect("> ")
        term.type("/exit\r")
        assert await asyncio.wait_for(term.proc.wait(), 10) == 0
        assert "Traceback" not in term.output.decode(errors="replace")

    rows = await _logs(cli_env, "-n", "0")
    assert [r["prompt"] for r in rows] == [
        "Hello",
        "first line\nsecond line",
        "Tell me a long story",
        "Are you there?",
    ]
    assert rows[2]["error"] == "interrupted" and rows[2]["response"].startswith("word")
    assert len({r["conversation_id"] for r in rows}) == 1

    # chat -c picks the conversation up again.
    async with terminal("chat", "-c", env=env) as term:
        await term.expect("continuing conversation")
        await term.expect("> ")
        emulator.enqueue(Reply(chunks=["Welcome", " back."]))
        term.type("Back again\r")
        await term.expect("Welcome back.")
        sent = emulator.requests[-1].json["messages"]
        assert sent[0] == {"role": "system", "content": "Be kind"}
        assert sent[-1]["content"] == "Back again" and len(sent) == 8
        await term.expect("> ")
        term.type("\x04")  # Ctrl-D leaves too
        assert await asyncio.wait_for(term.proc.wait(), 10) == 0


async def test_ctrl_c_while_waiting_for_the_first_byte(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    emulator.enqueue(Reply(chunks=STORY, delay_between_chunks=30))
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "stream",
        "-m",
        "gpt-4o-mini",
        "hi",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env=cli_env,
    )
    deadline = time.monotonic() + 20
    while not emulator.requests and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert emulator.requests  # the request is out; the answer is slow to come
    await asyncio.sleep(0.2)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert time.monotonic() - started < 2.0
    assert proc.returncode == 130 and "Traceback" not in err.decode()


# -- tools -------------------------------------------------------------------------------


async def test_tool_functions_from_a_file_run_and_their_results_go_back(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    tools = tmp_path / "my_tools.py"
    tools.write_text(
        "def add(a: int, b: int) -> int:\n"
        '    """Add two numbers."""\n'
        "    return a + b\n\n"
        "def fail() -> str:\n"
        '    """Always fails."""\n'
        '    raise RuntimeError("no luck")\n\n'
        "def _private() -> None:\n"
        "    pass\n"
    )
    emulator.enqueue(
        Reply(
            tool_calls=[
                {"name": "add", "arguments": {"a": 2, "b": 3}},
                {"name": "fail", "arguments": {}},
            ]
        ),
        Reply(text="The sum is 5."),
    )
    code, out, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "--tool", str(tools), "What is 2 + 3?", env=cli_env
    )
    assert code == 0, err
    assert out.strip() == "The sum is 5."
    assert '[tool] add({"a": 2, "b": 3}) → 5' in err
    assert "[tool] fail({}) error" in err and "no luck" in err
    first, second = (r.json for r in emulator.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["add", "fail"]
    results = [m for m in second["messages"] if m["role"] == "tool"]
    assert results[0]["content"] == "5"
    # only the named function with FILE:NAME; a bad file is a clear error
    emulator.enqueue(Reply(text="ok"))
    code, _, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "--tool", f"{tools}:add", "Hi", env=cli_env
    )
    assert code == 0, err
    assert [t["function"]["name"] for t in emulator.requests[-1].json["tools"]] == ["add"]
    code, _, err = await run_cli(
        "stream", "-m", "gpt-4o-mini", "--tool", str(tmp_path / "nope.py"), "Hi", env=cli_env
    )
    assert code != 0 and "no such Python file" in err and "Traceback" not in err
