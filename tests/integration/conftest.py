"""Integration fixtures: the package's emulator on 127.0.0.1 and a client pointed at it
the way a user would (environment variables), for each wire protocol."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.testing import Emulator
from steer_llm_sdk.testing._bedrock import TEST_ACCESS_KEY, TEST_SECRET_KEY

# The model each protocol's guide examples run with.
# "o3-pro" exists only on OpenAI's Responses API: the SDK routes it there by itself.
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-haiku-20240307",
    "responses": "o3-pro",
    "gemini": "gemini-2.5-flash",
}


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        yield emu


@pytest.fixture
def guide_env(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """Point the provider environment variables at the emulator, like a user would."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-key-000000")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key-000000")
    monkeypatch.setenv("OPENAI_BASE_URL", emulator.openai_base_url)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", emulator.anthropic_base_url)
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyTEST-gemini-key-00000000000000000")
    monkeypatch.setenv("GEMINI_BASE_URL", emulator.gemini_base_url)
    return emulator


@pytest.fixture(params=list(MODELS))
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def model(protocol: str) -> str:
    return MODELS[protocol]


@pytest.fixture
async def client(guide_env: Emulator) -> AsyncIterator[SteerLLMClient]:
    async with SteerLLMClient() as c:
        yield c


@pytest.fixture
def cli_env(emulator: Emulator, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.pop("STEER_LLM_DATA_DIR", None)
    env.pop("STEER_DEFAULT_MODEL", None)
    env.update(
        XDG_DATA_HOME=str(tmp_path / "data"),  # the log goes here, not into the real home
        OPENAI_API_KEY="sk-test-cli",
        OPENAI_BASE_URL=emulator.openai_base_url,
        ANTHROPIC_API_KEY="sk-ant-test-cli",
        ANTHROPIC_BASE_URL=emulator.anthropic_base_url,
    )
    return env


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A clean AWS environment: no real profile files, no instance metadata."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "BEDROCK_BASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    return {"dir": str(tmp_path)}
