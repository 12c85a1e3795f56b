"""The emulator is faithful: the official openai and anthropic SDKs read it as they
read the real APIs (text, usage, finish reasons, typed errors, retries)."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from steer_llm_sdk.testing import Emulator, Fault, Reply

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_openai_sdk_reads_the_stream(emulator: Emulator) -> None:
    emulator.enqueue(
        Reply(chunks=["Hel", "lo", " world"], usage={"prompt_tokens": 9, "cached_tokens": 4})
    )
    client = openai.AsyncOpenAI(base_url=emulator.openai_base_url, api_key="sk-x", max_retries=0)
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.choices:
            texts.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "".join(texts) == "Hello world" and finish == "stop"
    assert usage is not None and usage.prompt_tokens == 9 and usage.completion_tokens == 3
    assert usage.prompt_tokens_details.cached_tokens == 4
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 3
    await client.close()


async def test_anthropic_sdk_reads_the_stream(emulator: Emulator) -> None:
    emulator.enqueue(Reply(chunks=["Hi", " there"]))
    client = anthropic.AsyncAnthropic(
        base_url=emulator.anthropic_base_url, api_key="k", max_retries=0
    )
    async with client.messages.stream(
        model="claude-3-haiku-20240307",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        message = await stream.get_final_message()
    assert text == "Hi there" and message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 2
    assert message.usage.cache_creation_input_tokens > 0  # first sight of the cached prefix
    again = await client.messages.create(
        model="claude-3-haiku-20240307",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert again.usage.cache_read_input_tokens > 0 and again.usage.cache_creation_input_tokens == 0
    await client.close()


async def test_official_sdks_map_errors_and_retry(emulator: Emulator) -> None:
    emulator.enqueue(Reply(status=429, headers={"retry-after": "0"}), Reply(chunks=["ok"]))
    client = openai.AsyncOpenAI(base_url=emulator.openai_base_url, api_key="sk-x", max_retries=1)
    done = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}]
    )
    assert done.choices[0].message.content == "ok"
    await client.close()
    emulator.enqueue(Reply(status=529))
    ac = anthropic.AsyncAnthropic(base_url=emulator.anthropic_base_url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as info:
        await ac.messages.create(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 529
    emulator.enqueue(Reply(fault=Fault.error_event_after(1, "overloaded_error")))
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        async with ac.messages.stream(
            model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            async for _ in stream:
                pass
    await ac.close()


async def test_anthropic_prefill_continues_and_refuses_trailing_space(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        body = {"model": "m", "max_tokens": 500, "messages": [{"role": "user", "content": "story"}]}
        full = (await http.post("/v1/messages", json=body)).json()["content"][0]["text"]
        prefix = full[:20].rstrip()
        body["messages"].append({"role": "assistant", "content": prefix})
        rest = (await http.post("/v1/messages", json=body)).json()["content"][0]["text"]
        assert prefix + rest == full
        body["messages"][-1]["content"] = prefix + " "
        refused = await http.post("/v1/messages", json=body)
        assert refused.status_code == 400 and "trailing whitespace" in refused.text


async def test_faults_on_the_wire(emulator: Emulator) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}
    async with httpx.AsyncClient(base_url=emulator.openai_base_url) as http:
        emulator.enqueue(Reply(fault=Fault.drop_after(2)))
        with pytest.raises(httpx.RemoteProtocolError):
            async with http.stream("POST", "/chat/completions", json=body) as r:
                async for _ in r.aiter_raw():
                    pass
        emulator.enqueue(Reply(fault=Fault.garbage()))
        r = await http.post("/chat/completions", json=body)
        assert r.status_code == 200 and b"data:" not in r.content
        emulator.enqueue(Reply(chunks=["a", "b"], fault=Fault.one_byte_per_write()))
        pieces = []
        async with http.stream("POST", "/chat/completions", json=body) as r:
            async for raw in r.aiter_raw():
                pieces.append(raw)
        assert b"".join(pieces).endswith(b"data: [DONE]\n\n") and len(pieces) > 50
        emulator.enqueue(Reply(fault=Fault.stall_after(1, 5.0)))
        with pytest.raises(httpx.ReadTimeout):
            async with http.stream("POST", "/chat/completions", json=body, timeout=0.3) as r:
                async for _ in r.aiter_raw():
                    pass
    assert emulator.requests[-1].json["stream"] is True


# -- the server -----------------------------------------------------------------------
async def test_rules_answer_every_protocol(emulator: Emulator) -> None:
    """``add_rule`` answers every request whose body holds the match, on every protocol
    (Responses and Gemini requests used to pass it by)."""
    emulator.add_rule("poisoned", Reply(status=400, error_message="refused by rule"))
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        answers = [
            await http.post(
                "/v1/chat/completions",
                json={"model": "m", "messages": [{"role": "user", "content": "poisoned"}]},
            ),
            await http.post(
                "/v1/messages",
                json={
                    "model": "m",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "poisoned"}],
                },
            ),
            await http.post("/v1/responses", json={"model": "m", "input": "poisoned"}),
            await http.post(
                "/v1beta/models/gemini-2.5-flash:generateContent",
                json={"contents": [{"role": "user", "parts": [{"text": "poisoned"}]}]},
                headers={"x-goog-api-key": "k"},
            ),
        ]
        clean = await http.post("/v1/responses", json={"model": "m", "input": "fine"})
    assert [a.status_code for a in answers] == [400] * 4
    assert all("refused by rule" in a.text for a in answers)
    assert clean.status_code == 200


def test_the_emulator_stands_alone_without_cycles() -> None:
    """Every module of steer_llm_sdk.testing imports only the standard library and its
    siblings (never the SDK it checks), with no import cycle among them, counting
    imports inside functions and under TYPE_CHECKING."""
    import ast
    import sys
    from pathlib import Path

    import steer_llm_sdk.testing as package

    folder = Path(package.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in folder.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{path.name} imports from outside testing/"
                deps.add(node.module or "__init__")
            elif isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for name in names:
                    top = name.split(".")[0]
                    assert top in sys.stdlib_module_names, f"{path.name} imports {name}"
        graph[path.stem] = deps

    def visit(module: str, trail: list[str]) -> None:
        for dep in graph.get(module, ()):
            assert dep not in trail, f"import cycle: {' -> '.join([*trail, dep])}"
            visit(dep, [*trail, dep])

    for module in graph:
        visit(module, [module])
