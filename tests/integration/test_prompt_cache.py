"""cache_prompt="auto": each protocol's prompt-cache markers, checked in the requests
the emulator receives (whose prompt caches behave as the real APIs'), and the reads
reported back."""

from __future__ import annotations

import logging
from typing import Any

import pydantic
import pytest
from anthropic.types.message_create_params import MessageCreateParamsStreaming

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.errors import ConfigurationError
from steer_llm_sdk.testing import Emulator, Reply

LONG = "Reference manual, section after section of stable facts. " * 200  # ~2,900 tokens
SHORT = "Be brief."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up. " * 300,  # a long tool list: its own breakpoint
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    }
]
SONNET = "claude-sonnet-4-5-20250929"


def _last_body(emulator: Emulator) -> dict[str, Any]:
    return emulator.requests[-1].json


def _markers(body: dict[str, Any]) -> list[str]:
    where = ["top"] if body.get("cache_control") else []
    where += ["tools" for t in body.get("tools") or [] if t.get("cache_control")]
    system = body.get("system")
    if isinstance(system, list):
        where += ["system" for b in system if b.get("cache_control")]
    for i, m in enumerate(body["messages"]):
        content = m["content"] if isinstance(m["content"], list) else []
        where += [f"message{i}" for b in content if b.get("cache_control")]
    return where


_PARAMS = pydantic.TypeAdapter(MessageCreateParamsStreaming)


async def test_anthropic_auto_marks_tools_system_and_conversation(
    client: SteerLLMClient, guide_env: Emulator
) -> None:
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "What is X?"}]
    first = await client.stream_with_usage(messages, model=SONNET, tools=TOOLS, cache_prompt="auto")
    body = _last_body(guide_env)
    _PARAMS.validate_python(body)  # the official request type takes it
    assert sorted(_markers(body)) == ["system", "tools", "top"]
    assert body["cache_control"] == {"type": "ephemeral"}
    assert first.usage["cache_info"]["cache_creation_tokens"] > 0
    assert first.cache_hit_ratio == 0.0

    second = await client.stream_with_usage(
        messages, model=SONNET, tools=TOOLS, cache_prompt="auto"
    )
    assert second.usage["cache_info"]["cached_tokens"] > 0  # the emulator read the prefix
    assert 0.9 < second.cache_hit_ratio <= 1.0

    # The next turn reads the whole earlier conversation (the API looks back for it).
    turn2 = [
        *messages,
        {"role": "assistant", "content": second.text},
        {"role": "user", "content": "And Y?"},
    ]
    third = await client.stream_with_usage(turn2, model=SONNET, tools=TOOLS, cache_prompt="auto")
    assert third.usage["cache_info"]["cached_tokens"] >= second.usage["cache_info"]["cached_tokens"]
    assert third.usage["cache_info"]["cache_creation_tokens"] > 0  # the new turn written


async def test_never_under_the_models_minimum(client: SteerLLMClient, guide_env: Emulator) -> None:
    await client.generate(SHORT, model=SONNET, cache_prompt="auto")
    assert _markers(_last_body(guide_env)) == []  # nothing passes 1,024 tokens
    # ~2,900 tokens: enough for Sonnet 4.5 (1,024), not for Haiku 4.5 (4,096).
    await client.generate(
        [{"role": "system", "content": LONG}, {"role": "user", "content": "Q"}],
        model="claude-haiku-4-5",
        cache_prompt="auto",
    )
    assert _markers(_last_body(guide_env)) == []
    await client.generate(
        [{"role": "system", "content": LONG}, {"role": "user", "content": "Q"}],
        model=SONNET,
        cache_prompt="auto",
    )
    assert sorted(_markers(_last_body(guide_env))) == ["system", "top"]


def _marked(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}


async def test_never_a_fifth_breakpoint(client: SteerLLMClient, guide_env: Emulator) -> None:
    # Three of the caller's own: one left, and the conversation's comes first.
    own = [
        {
            "role": "system",
            "content": [_marked(LONG), _marked("More rules."), _marked("Even more.")],
        },
        {"role": "user", "content": "Question?"},
    ]
    await client.generate(own, model=SONNET, tools=TOOLS, cache_prompt="auto")
    body = _last_body(guide_env)
    assert len(_markers(body)) == 4 and "top" in _markers(body) and "tools" not in _markers(body)
    # Four of their own: none added.
    four = [own[0], {"role": "user", "content": [_marked("Question?")]}]
    await client.generate(four, model=SONNET, tools=TOOLS, cache_prompt="auto")
    assert len(_markers(_last_body(guide_env))) == 4
    # Five: refused before anything is sent (the API's 400), with or without auto.
    five = [own[0], {"role": "user", "content": [_marked("A"), _marked("B")]}]
    sent = len(guide_env.requests)
    for mode in ("auto", None):
        with pytest.raises(ConfigurationError, match="5 cache_control markers"):
            await client.generate(five, model=SONNET, cache_prompt=mode)
    assert len(guide_env.requests) == sent
    # The emulator refuses a fifth as the API does (the official SDK sending it).
    import anthropic

    official = anthropic.AsyncAnthropic(
        base_url=guide_env.anthropic_base_url, api_key="k", max_retries=0
    )
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4"):
        await official.messages.create(model=SONNET, max_tokens=10, messages=five)
    await official.close()


async def test_long_mode_uses_one_hour_markers(client: SteerLLMClient, guide_env: Emulator) -> None:
    messages = [{"role": "system", "content": [_marked(LONG)]}, {"role": "user", "content": "Q"}]
    await client.generate(messages, model=SONNET, tools=TOOLS, cache_prompt="long")
    body = _last_body(guide_env)
    _PARAMS.validate_python({**body, "stream": True})
    marks = [
        body["cache_control"],
        body["tools"][-1]["cache_control"],
        body["system"][-1]["cache_control"],
    ]
    assert all(m == {"type": "ephemeral", "ttl": "1h"} for m in marks)  # the caller's too
    assert messages[0]["content"][0]["cache_control"] == {"type": "ephemeral"}  # not changed


async def test_openai_prompt_cache_key(client: SteerLLMClient, guide_env: Emulator) -> None:
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "What is X?"}]
    first = await client.stream_with_usage(messages, model="gpt-4o-mini", cache_prompt="auto")
    key = _last_body(guide_env)["prompt_cache_key"]
    assert key.startswith("steer-") and "prompt_cache_retention" not in _last_body(guide_env)
    second = await client.stream_with_usage(
        [messages[0], {"role": "user", "content": "Another question"}],
        model="gpt-4o-mini",
        cache_prompt="auto",
    )
    assert _last_body(guide_env)["prompt_cache_key"] == key  # same stable prefix, same key
    assert first.usage.get("cache_info", {}).get("cached_tokens", 0) == 0
    assert second.usage["cache_info"]["cached_tokens"] % 128 == 0
    assert second.usage["cache_info"]["cached_tokens"] >= 1024 and second.cache_hit_ratio > 0.5
    await client.generate(
        [{"role": "system", "content": "Other"}, messages[1]],
        model="gpt-4o-mini",
        cache_prompt="auto",
    )
    assert _last_body(guide_env)["prompt_cache_key"] != key
    await client.generate("Hi", model="gpt-4.1-mini", cache_prompt="long")
    assert _last_body(guide_env)["prompt_cache_retention"] == "24h"
    await client.generate("Hi", model="gpt-4o-mini", prompt_cache_key="mine", cache_prompt="auto")
    assert _last_body(guide_env)["prompt_cache_key"] == "mine"  # the caller's own wins
    await client.generate("Hi", model="gpt-4o-mini")
    assert "prompt_cache_key" not in _last_body(guide_env)  # off unless asked


async def test_responses_api_gets_the_key_and_gemini_needs_nothing(
    client: SteerLLMClient, guide_env: Emulator
) -> None:
    await client.generate("Hi", model="o3-pro", cache_prompt="auto")
    assert _last_body(guide_env)["prompt_cache_key"].startswith("steer-")
    await client.generate("Hi", model="gemini-2.5-flash", cache_prompt="auto")
    body = _last_body(guide_env)  # implicit caching: nothing to mark, nothing unknown sent
    assert "cache_prompt" not in str(body) and "prompt_cache_key" not in body


async def test_compatible_servers_get_no_openai_fields(guide_env: Emulator) -> None:
    async with SteerLLMClient(
        providers={"mine": {"base_url": guide_env.openai_base_url, "api_key": "k-123456789"}}
    ) as client:
        await client.generate("Hi", model="mine/some-model", cache_prompt="auto")
    assert "prompt_cache_key" not in _last_body(guide_env)


async def test_client_default_and_per_call_override(guide_env: Emulator) -> None:
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "Q"}]
    async with SteerLLMClient(cache_prompt="auto") as client:
        await client.generate(messages, model=SONNET)
        assert "top" in _markers(_last_body(guide_env))
        await client.generate(messages, model=SONNET, cache_prompt=False)
        assert _markers(_last_body(guide_env)) == []
    with pytest.raises(ConfigurationError, match="cache_prompt"):
        SteerLLMClient(cache_prompt="always")
    async with SteerLLMClient() as client:
        with pytest.raises(ConfigurationError, match="cache_prompt"):
            await client.generate("Q", model=SONNET, cache_prompt="yes")


async def test_writes_never_read_warn_once_per_client(
    guide_env: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    usage = {"prompt_tokens": 3000, "completion_tokens": 5, "cache_creation_tokens": 2900}
    with caplog.at_level(logging.WARNING, logger="steer_llm_sdk"):
        async with SteerLLMClient() as client:
            for _ in range(5):
                guide_env.enqueue(Reply(text="ok", usage=usage))
                await client.generate("Q", model=SONNET)
        async with SteerLLMClient() as other:  # a new client starts afresh
            for _ in range(2):
                guide_env.enqueue(Reply(text="ok", usage=usage))
                await other.generate("Q", model=SONNET)
    warnings = [r for r in caplog.records if "prompt cache" in r.getMessage()]
    assert len(warnings) == 1 and "3 calls wrote" in warnings[0].getMessage()
