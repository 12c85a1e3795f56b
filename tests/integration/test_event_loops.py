"""One client used from several event loops (several asyncio.run() calls)."""

from __future__ import annotations

import asyncio

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.testing import Emulator


def test_one_client_across_asyncio_run_calls() -> None:
    server = Emulator.start_in_thread()
    try:
        client = SteerLLMClient(
            api_keys={"openai": "sk-test", "anthropic": "sk-ant"},
            base_urls={"openai": server.openai_base_url, "anthropic": server.anthropic_base_url},
        )

        async def ask(model: str) -> str:
            return (await client.stream_with_usage("Tell me a story", model)).text

        first = asyncio.run(ask("gpt-4o-mini"))
        second = asyncio.run(ask("gpt-4o-mini"))  # a new loop: the pool follows it
        third = asyncio.run(ask("claude-3-haiku-20240307"))
        assert first == second and third
        asyncio.run(client.aclose())
    finally:
        server.stop()
