"""The codec contract: protocol modules load on first use; what a protocol cannot
send is a warning of that call (on the response, logged once per call), not a
process-wide warn-once that silences every later call."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.providers import PROTOCOLS, codec_class
from steer_llm_sdk.providers.codec import CodecBase
from steer_llm_sdk.testing import Emulator, Reply


def test_import_loads_no_protocol_module() -> None:
    code = (
        "import sys, steer_llm_sdk\n"
        "loaded = [m for m in sys.modules if m.startswith('steer_llm_sdk.providers.')]\n"
        "print(sorted(loaded))\n"
        "print('msgspec' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    modules, msgspec = out.stdout.splitlines()
    for module, _ in PROTOCOLS.values():
        assert f"steer_llm_sdk.providers.{module}" not in modules
    assert msgspec == "False"


def test_every_protocol_is_a_typed_codec_class() -> None:
    for protocol in PROTOCOLS:
        cls = codec_class(protocol)
        assert issubclass(cls, CodecBase) and cls.protocol == protocol
        codec = cls.factory(None if protocol != "openai-chat" else _Spec(), "m")(record=True)
        assert codec.state.out == [] and codec.warnings == [] and codec.lead_text == ""


class _Spec:
    max_tokens_field = "max_tokens"


@pytest.mark.parametrize(
    ("model", "params", "said"),
    [
        ("claude-3-haiku-20240307", {"seed": 7}, "Anthropic does not support 'seed'"),
        (
            "gemini-2.5-flash",
            {
                "parallel_tool_calls": False,
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object", "properties": {}},
                        },
                    }
                ],
            },
            "parallel_tool_calls",
        ),
    ],
)
async def test_a_warning_belongs_to_its_call(
    model: str, params: dict, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with Emulator() as emu:
        client = SteerLLMClient(
            api_keys={"anthropic": "sk-ant-test-0000", "gemini": "AIzaTEST000000000000"},
            base_urls={"anthropic": emu.anthropic_base_url, "gemini": emu.gemini_base_url},
        )
        async with client:
            with caplog.at_level(logging.WARNING, logger="steer_llm_sdk"):
                responses = []
                for _ in range(2):
                    emu.enqueue(Reply(status=503), Reply(text="ok"))  # a retry: 2 attempts
                    responses.append(await client.stream_with_usage("hi", model, **params))
    for response in responses:
        assert response.attempts == 2
        assert len(response.warnings) == 1 and said in response.warnings[0]
    logged = [r for r in caplog.records if said in r.getMessage()]
    assert len(logged) == 2  # once per call (not per attempt, not once per process)
