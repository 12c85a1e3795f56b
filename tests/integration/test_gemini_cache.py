"""cache_prompt= on Gemini: explicit cachedContents made before the call, reused while
alive, deleted by aclose(), dropped when stale; the emulator's cachedContents API
checked with google-genai's own caches calls."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.errors import PermissionDeniedError
from steer_llm_sdk.testing import Emulator

MODEL = "gemini-2.5-flash"
LONG = "Reference manual, section after section of stable facts. " * 200  # ~2,900 tokens
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up.",
            "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
        },
    }
]


def _generate_bodies(emu: Emulator) -> list[dict[str, Any]]:
    return [r.json for r in emu.requests if "enerateContent" in r.path]


def _creates(emu: Emulator) -> list[dict[str, Any]]:
    return [
        r.json for r in emu.requests if r.method == "POST" and r.path.endswith("cachedContents")
    ]


async def test_a_long_prefix_is_cached_once_and_reused(guide_env: Emulator) -> None:
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "What is X?"}]
    async with SteerLLMClient() as client:
        first = await client.stream_with_usage(
            messages, model=MODEL, tools=TOOLS, tool_choice="auto", cache_prompt="auto"
        )
        created = _creates(guide_env)
        assert len(created) == 1
        assert created[0]["model"] == f"models/{MODEL}" and created[0]["ttl"] == "300s"
        assert created[0]["systemInstruction"]["parts"][0]["text"] == LONG
        assert created[0]["tools"] and created[0]["toolConfig"]  # moved into the cache
        body = _generate_bodies(guide_env)[-1]
        name = body["cachedContent"]
        assert name.startswith("cachedContents/")
        assert not {"systemInstruction", "tools", "toolConfig"} & set(body)
        assert body["contents"] == [{"role": "user", "parts": [{"text": "What is X?"}]}]
        info = first.usage["cache_info"]
        assert info["cached_tokens"] > 2000
        # The making is billed with the call that made it, as a cache write.
        made = next(iter(guide_env.cached_contents.stored.values())).tokens
        assert info["cache_creation_tokens"] == made
        assert first.usage["prompt_tokens"] >= made + info["cached_tokens"]
        assert first.get_text()
        # Another question, and a conversation that grew: the same cache.
        second = await client.stream_with_usage(
            [messages[0], {"role": "user", "content": "And Y?"}],
            model=MODEL,
            tools=TOOLS,
            tool_choice="auto",
            cache_prompt="auto",
        )
        turn2 = [*messages, {"role": "assistant", "content": first.get_text()},
                 {"role": "user", "content": "Why?"}]  # fmt: skip
        await client.generate(turn2, model=MODEL, tools=TOOLS, tool_choice="auto",
                              cache_prompt="auto")  # fmt: skip
        assert len(_creates(guide_env)) == 1
        assert _generate_bodies(guide_env)[-1]["cachedContent"] == name
        assert len(_generate_bodies(guide_env)[-1]["contents"]) == 3
        assert second.cache_hit_ratio is not None and second.cache_hit_ratio > 0.8
        assert second.usage["cache_info"]["cache_creation_tokens"] == 0
        assert first.cost_usd and second.cost_usd and first.cost_usd > 2 * second.cost_usd
        # Other tools: another prefix, another cache.
        await client.generate(messages, model=MODEL, cache_prompt="long")
        assert len(_creates(guide_env)) == 2 and _creates(guide_env)[-1]["ttl"] == "3600s"
        assert len(guide_env.cached_contents.stored) == 2
    # aclose() deleted both.
    assert guide_env.cached_contents.stored == {}
    assert name in guide_env.cached_contents.deleted


async def test_short_prompts_and_calls_without_the_switch_make_none(
    client: SteerLLMClient, guide_env: Emulator
) -> None:
    await client.generate("Hi", model=MODEL, cache_prompt="auto")
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "Q"}]
    await client.generate(messages, model=MODEL)
    assert _creates(guide_env) == []
    assert all("cachedContent" not in b for b in _generate_bodies(guide_env))
    # A caller's own cachedContent is left alone (and not dropped when the API has none).
    with pytest.raises(PermissionDeniedError, match="CachedContent not found"):
        await client.generate(
            "Q", model=MODEL, cache_prompt="auto", cachedContent="cachedContents/x"
        )
    assert _creates(guide_env) == []
    assert _generate_bodies(guide_env)[-1]["cachedContent"] == "cachedContents/x"


async def test_concurrent_calls_make_one_cache(client: SteerLLMClient, guide_env: Emulator) -> None:
    async def ask(i: int) -> str:
        messages = [{"role": "system", "content": LONG}, {"role": "user", "content": f"Q{i}"}]
        return await client.generate(messages, model=MODEL, cache_prompt="auto")

    answers = await asyncio.gather(*(ask(i) for i in range(10)))
    assert all(answers)
    assert len(_creates(guide_env)) == 1
    names = {b["cachedContent"] for b in _generate_bodies(guide_env)}
    assert len(names) == 1


async def test_a_stale_cache_is_dropped_and_the_call_sent_whole_once(
    client: SteerLLMClient, guide_env: Emulator
) -> None:
    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "Q"}]
    await client.generate(messages, model=MODEL, cache_prompt="auto")
    guide_env.cached_contents.stored.clear()  # expired (or deleted elsewhere)
    response = await client.stream_with_usage(messages, model=MODEL, cache_prompt="auto")
    assert response.get_text()
    assert any("was gone" in w for w in response.warnings)
    bodies = _generate_bodies(guide_env)
    assert "cachedContent" in bodies[-2] and "cachedContent" not in bodies[-1]  # once
    assert bodies[-1]["systemInstruction"]["parts"][0]["text"] == LONG
    # The next call makes a new one.
    await client.generate(messages, model=MODEL, cache_prompt="auto")
    assert len(_creates(guide_env)) == 2
    assert "cachedContent" in _generate_bodies(guide_env)[-1]


async def test_a_refused_cache_never_fails_the_call(
    client: SteerLLMClient, guide_env: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # Just under the API's 2,048 tokens by its count, just over by the SDK's cautious
    # estimate: the API refuses the cache ("too small"), the call is sent whole.
    edge = "x" * (2048 * 4 - 40)
    messages = [{"role": "system", "content": edge}, {"role": "user", "content": "Q"}]
    with caplog.at_level(logging.WARNING, logger="steer_llm_sdk"):
        response = await client.stream_with_usage(messages, model=MODEL, cache_prompt="auto")
    assert response.get_text()
    assert any("too small" in w for w in response.warnings)
    assert "cachedContent" not in _generate_bodies(guide_env)[-1]
    await client.generate(messages, model=MODEL, cache_prompt="auto")
    assert len(_creates(guide_env)) == 1  # not asked again while it would have lived
    assert "AIzaSy" not in caplog.text  # no key in the warning


async def test_google_genai_caches_work_against_the_emulator(guide_env: Emulator) -> None:
    genai = pytest.importorskip("google.genai", reason="google-genai checks the emulator")
    from google.genai import errors as genai_errors
    from google.genai import types

    client = genai.Client(
        api_key="AIzaSyTEST-gemini-key-00000000000000000",
        http_options=types.HttpOptions(base_url=guide_env.gemini_base_url, api_version="v1beta"),
    )
    cache = await client.aio.caches.create(
        model=MODEL,
        config=types.CreateCachedContentConfig(
            system_instruction=LONG, ttl="120s", display_name="manual"
        ),
    )
    assert cache.name and cache.name.startswith("cachedContents/")
    assert cache.usage_metadata and (cache.usage_metadata.total_token_count or 0) > 2000
    answer = await client.aio.models.generate_content(
        model=MODEL,
        contents="What is X?",
        config=types.GenerateContentConfig(cached_content=cache.name),
    )
    assert answer.text and answer.usage_metadata
    assert (answer.usage_metadata.cached_content_token_count or 0) > 2000
    with pytest.raises(genai_errors.ClientError, match="system_instruction, tools or tool_config"):
        await client.aio.models.generate_content(
            model=MODEL,
            contents="Q",
            config=types.GenerateContentConfig(cached_content=cache.name, system_instruction="x"),
        )
    updated = await client.aio.caches.update(
        name=cache.name, config=types.UpdateCachedContentConfig(ttl="600s")
    )
    assert updated.expire_time and cache.expire_time and updated.expire_time > cache.expire_time
    listed = [c.name async for c in await client.aio.caches.list()]
    assert cache.name in listed
    await client.aio.caches.delete(name=cache.name)
    with pytest.raises(genai_errors.ClientError, match="CachedContent not found"):
        await client.aio.models.generate_content(
            model=MODEL, contents="Q", config=types.GenerateContentConfig(cached_content=cache.name)
        )
    with pytest.raises(genai_errors.ClientError, match="too small"):
        await client.aio.caches.create(
            model=MODEL, config=types.CreateCachedContentConfig(system_instruction="short")
        )


async def test_an_ended_cache_is_made_again_and_forgotten(
    client: SteerLLMClient, guide_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from steer_llm_sdk import provider_caches

    messages = [{"role": "system", "content": LONG}, {"role": "user", "content": "Q"}]
    await client.generate(messages, model=MODEL, cache_prompt="auto")
    first = _generate_bodies(guide_env)[-1]["cachedContent"]
    real = provider_caches.time.monotonic
    # 290 s later: within 15 s of its 5-minute end, so not used; a new one is made.
    monkeypatch.setattr(provider_caches.time, "monotonic", lambda: real() + 290)
    await client.generate(messages, model=MODEL, cache_prompt="auto")
    second = _generate_bodies(guide_env)[-1]["cachedContent"]
    assert second != first and len(_creates(guide_env)) == 2
    registry = client._wiring.provider_caches
    monkeypatch.setattr(provider_caches.time, "monotonic", lambda: real() + 900)
    await client.generate([messages[0], {"role": "user", "content": "R"}], model=MODEL,
                          cache_prompt="auto")  # fmt: skip
    assert len(registry._live) == 1  # the ended ones forgotten
