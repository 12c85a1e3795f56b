"""cache_prompt= on Bedrock Converse: ``cachePoint`` blocks placed by the same rules as
Anthropic's breakpoints, checked in the requests the emulator receives (which keeps
prompt caches and refuses what Bedrock refuses), and botocore's own request model
taking the same body."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.errors import ConfigurationError
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator

boto3 = pytest.importorskip("boto3", reason="boto3 (the dev extra) checks the emulator")
botocore_config = pytest.importorskip("botocore.config")

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_37 = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
NOVA = "us.amazon.nova-pro-v1:0"
LLAMA = "us.meta.llama3-3-70b-instruct-v1:0"
REGION = "us-east-1"
LONG = "Reference manual, section after section of stable facts. " * 200  # ~2,900 tokens
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up. " * 300,  # a long tool list: its own point
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    }
]
POINT = {"cachePoint": {"type": "default"}}


@pytest.fixture
async def emu() -> Any:
    async with Emulator(reply_words=6) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator, aws_env: dict[str, str]) -> Any:
    async with SteerLLMClient(
        base_urls={"bedrock": emu.bedrock_base_url},
        default_options=StreamingOptions(reconnect_delay=0.01),
    ) as c:
        yield c


def _points(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Where the cachePoint blocks are, with their settings."""
    out = [("tools", b["cachePoint"]) for b in (body.get("toolConfig") or {}).get("tools", [])
           if "cachePoint" in b]  # fmt: skip
    out += [("system", b["cachePoint"]) for b in body.get("system", []) if "cachePoint" in b]
    for i, m in enumerate(body["messages"]):
        out += [(f"message{i}", b["cachePoint"]) for b in m["content"] if "cachePoint" in b]
    return out


def _boto_converse(emu: Emulator, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """The same body sent by boto3 (botocore validates it against Bedrock's model)."""
    boto = boto3.session.Session().client(
        "bedrock-runtime",
        region_name=REGION,
        endpoint_url=emu.bedrock_base_url,
        config=botocore_config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    fields = {k: v for k, v in body.items() if k in ("messages", "system", "toolConfig")}
    return boto.converse(modelId=model, **fields)


async def test_auto_places_points_after_tools_system_and_conversation(
    emu: Emulator, client: Any
) -> None:
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "What is X?"}]
    first = await client.stream_with_usage(
        messages, model=f"bedrock/{SONNET}", tools=TOOLS, cache_prompt="auto"
    )
    body = emu.requests[-1].json
    assert _points(body) == [("tools", POINT["cachePoint"]), ("system", POINT["cachePoint"]),
                             ("message0", POINT["cachePoint"])]  # fmt: skip
    assert body["messages"][0]["content"][-1] == POINT  # after the question
    assert first.usage["cache_info"]["cache_creation_tokens"] > 2000
    # The next question reads the tools + system prefix back.
    second = await client.stream_with_usage(
        [messages[0], {"role": "user", "content": "And Y?"}],
        model=f"bedrock/{SONNET}",
        tools=TOOLS,
        cache_prompt="auto",
    )
    assert second.usage["cache_info"]["cached_tokens"] > 2000
    assert second.cache_hit_ratio is not None and second.cache_hit_ratio > 0.8
    # botocore's request model takes the body the SDK built, and the emulator agrees.
    answer = await asyncio.to_thread(_boto_converse, emu, SONNET, body)
    assert answer["usage"]["cacheReadInputTokens"] > 2000
    # Off unless asked.
    await client.generate(messages, model=f"bedrock/{SONNET}", tools=TOOLS)
    assert _points(emu.requests[-1].json) == []


async def test_short_prompts_and_models_without_caching_get_none(
    emu: Emulator, client: Any
) -> None:
    await client.generate("Hi", model=f"bedrock/{SONNET}", cache_prompt="auto")
    assert _points(emu.requests[-1].json) == []  # under the 1,024-token minimum
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "Q"}]
    await client.generate(messages, model=f"bedrock/{LLAMA}", cache_prompt="auto")
    assert _points(emu.requests[-1].json) == []  # Bedrock refuses a cachePoint there
    # Nova caches system and messages, never tools.
    await client.generate(messages, model=f"bedrock/{NOVA}", tools=TOOLS, cache_prompt="auto")
    assert [where for where, _ in _points(emu.requests[-1].json)] == ["system", "message0"]
    # The emulator refuses what Bedrock refuses (boto3 sending it).
    with pytest.raises(Exception, match="prompt caching"):
        await asyncio.to_thread(
            _boto_converse,
            emu,
            LLAMA,
            {"messages": [{"role": "user", "content": [{"text": "Q"}, POINT]}]},
        )


async def test_long_mode_asks_one_hour_where_offered(emu: Emulator, client: Any) -> None:
    own = [
        {
            "role": "system",
            "content": [{"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}],
        },
        {"role": "user", "content": "Q"},
    ]
    await client.generate(own, model=f"bedrock/{SONNET}", tools=TOOLS, cache_prompt="long")
    points = _points(emu.requests[-1].json)
    assert [w for w, _ in points] == ["tools", "system", "message0"]  # system: the caller's
    assert all(p == {"type": "default", "ttl": "1h"} for _, p in points)  # the caller's too
    assert "ttl" not in str(own)  # the caller's messages unchanged
    # Claude 3.7 has no 1-hour cache on Bedrock: default points.
    await client.generate(own, model=f"bedrock/{SONNET_37}", cache_prompt="long")
    assert all(p == {"type": "default"} for _, p in _points(emu.requests[-1].json))


async def test_never_a_fifth_point(emu: Emulator, client: Any) -> None:
    def marked(text: str) -> dict[str, Any]:
        return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}

    three = [
        {"role": "system", "content": [marked(LONG), marked("More."), marked("Even more.")]},
        {"role": "user", "content": "Question?"},
    ]
    await client.generate(three, model=f"bedrock/{SONNET}", tools=TOOLS, cache_prompt="auto")
    body = emu.requests[-1].json
    assert [w for w, _ in _points(body)] == ["system"] * 3 + ["message0"]
    five = [three[0], {"role": "user", "content": [marked("A"), marked("B")]}]
    sent = len(emu.requests)
    for mode in ("auto", None):
        with pytest.raises(ConfigurationError, match="5 cachePoint"):
            await client.generate(five, model=f"bedrock/{SONNET}", cache_prompt=mode)
    assert len(emu.requests) == sent  # refused before sending
    # The emulator refuses five as Bedrock does.
    bad = {"messages": [{"role": "user", "content": [{"text": "x"}, POINT] * 5}]}
    with pytest.raises(Exception, match="maximum of 4"):
        await asyncio.to_thread(_boto_converse, emu, SONNET, bad)
    # ... and a caller's point with a 1h TTL after a 5-minute one.
    later = {"messages": [{"role": "user", "content": [
        {"text": "a"}, POINT, {"text": "b"}, {"cachePoint": {"type": "default", "ttl": "1h"}},
    ]}]}  # fmt: skip
    with pytest.raises(Exception, match="1h ttl"):
        await asyncio.to_thread(_boto_converse, emu, SONNET, later)
