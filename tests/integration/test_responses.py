"""OpenAI's Responses API over real sockets: the official openai SDK and this SDK agree
on what the emulator sends; routing; tools, the tool loop, structured output and the
reasoning items a follow-up turn must send back."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from steer_llm_sdk import (
    ConfigurationError,
    Finish,
    PartialOutput,
    ReasoningDelta,
    SteerLLMClient,
    StreamInterruptedError,
    ToolCallEnd,
)
from steer_llm_sdk.catalog import resolve_model
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator, Fault, Reply

from ..unit.test_codecs_corpus import CORPUS, MANIFEST
from .replay import ReplayServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def client_for(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": "sk-test-key-000000"}, base_urls={"openai": emu.openai_base_url}
    )


SCRIPTS = [
    Reply(chunks=["The capital", " of France", " is Paris."]),
    Reply(
        chunks=["Short"], usage={"prompt_tokens": 40, "cached_tokens": 32, "completion_tokens": 1}
    ),
    Reply(text="one two three four five six", finish_reason="length"),
]


@pytest.mark.parametrize("script", range(len(SCRIPTS)))
async def test_official_sdk_and_steer_agree(script: int) -> None:
    async with Emulator() as emu:
        official = openai.AsyncOpenAI(base_url=emu.openai_base_url, api_key="sk-x", max_retries=0)
        emu.enqueue(SCRIPTS[script])
        stream = await official.responses.create(model="gpt-4o", input="Capital?", stream=True)
        deltas: list[str] = []
        final = None
        async for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type in ("response.completed", "response.incomplete"):
                final = event.response
        emu.enqueue(SCRIPTS[script])
        whole = await official.responses.create(model="gpt-4o", input="Capital?")
        await official.close()
        async with client_for(emu) as client:
            emu.enqueue(SCRIPTS[script])
            ours = await client.stream_with_usage("Capital?", "openai-responses/gpt-4o")
            emu.enqueue(SCRIPTS[script])
            generated = await client.generate("Capital?", "gpt-4o", api="responses")
    assert final is not None and final.usage is not None
    assert ours.text == "".join(deltas) == final.output_text == whole.output_text
    assert generated.text == ours.text
    for response in (ours, generated):
        assert response.usage["prompt_tokens"] == final.usage.input_tokens
        assert response.usage["completion_tokens"] == final.usage.output_tokens
        assert (
            response.usage["cache_info"]["cached_tokens"]
            == final.usage.input_tokens_details.cached_tokens
        )
        assert response.raw_finish_reason == final.status
        assert response.finish_reason == ("length" if final.status == "incomplete" else "stop")
        assert response.cost_usd is not None and response.cost_usd > 0


def test_routing() -> None:
    for model in (
        "o3-pro",
        "o1-pro",
        "gpt-5-pro",
        "gpt-5.4-pro",
        "gpt-5-codex",
        "codex-mini-latest",
    ):
        route = resolve_model(model)
        assert route.provider.protocol == "openai-responses", model
        assert route.provider.name == "openai"  # same key, base URL and prices
    for model in ("gpt-4o-mini", "o3-mini", "gpt-5", "o4-mini"):
        assert resolve_model(model).provider.protocol == "openai-chat", model
    assert resolve_model("openai-responses/gpt-4o").provider.protocol == "openai-responses"


async def test_api_parameter_selects_the_endpoint() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        await client.generate("hi", "gpt-4o-mini", api="responses")
        await client.generate("hi", "o3-pro", api="chat")
        paths = [r.path for r in emu.requests]
        with pytest.raises(ConfigurationError, match="applies to OpenAI models"):
            await client.generate("hi", "claude-3-haiku-20240307", api="responses")
        with pytest.raises(ConfigurationError, match="'chat' or 'responses'"):
            await client.generate("hi", "gpt-4o-mini", api="assistants")
    assert paths == ["/v1/responses", "/v1/chat/completions"]


async def test_request_mapping() -> None:
    class Answer(BaseModel):
        city: str

    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(text=json.dumps({"city": "Paris"})))
        response = await client.stream_with_usage(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France?"},
            ],
            "o3-pro",
            output=Answer,
            max_tokens=50,
            temperature=0.5,
            reasoning={"effort": "low", "summary": "auto"},
        )
        sent = emu.requests[-1].json
    assert response.output == Answer(city="Paris")
    assert sent["instructions"] == "Be brief."
    assert sent["input"] == [{"role": "user", "content": "Capital of France?"}]
    assert sent["max_output_tokens"] == 50 and sent["temperature"] == 0.5
    assert sent["reasoning"] == {"effort": "low", "summary": "auto"}
    fmt = sent["text"]["format"]
    assert fmt["type"] == "json_schema" and fmt["strict"] is True and fmt["name"] == "Answer"
    assert fmt["schema"]["additionalProperties"] is False


def lookup(city: str) -> str:
    """Look a city up."""
    return f"{city} has 2 million people"


async def test_tool_loop_with_reasoning_items_sent_back_in_order() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                reasoning="I need both cities.",
                tool_calls=[
                    {"name": "lookup", "arguments": {"city": "Paris"}},
                    {"name": "lookup", "arguments": {"city": "Rome"}},
                ],
            ),
            Reply(text="Both have about 2 million people."),
        )
        parts = [
            p
            async for p in client.stream_tools(
                "Populations?", "o3-pro", tools=[lookup], store=False
            )
        ]
        first, second = (r.json for r in emu.requests)
    assert first["tools"] == [
        {
            "type": "function",
            "name": "lookup",
            "parameters": first["tools"][0]["parameters"],
            "strict": False,
            "description": "Look a city up.",
        }
    ]
    assert first["include"] == ["reasoning.encrypted_content"]  # store=False
    assert "".join(p.text for p in parts if isinstance(p, ReasoningDelta)) == "I need both cities."
    ends = [p.call for p in parts if isinstance(p, ToolCallEnd)]
    assert [c.args for c in ends] == [{"city": "Paris"}, {"city": "Rome"}]
    kinds = [item.get("type") or item.get("role") for item in second["input"]]
    # the reasoning item, directly followed by the calls it led to, then the results
    assert kinds == [
        "user",
        "reasoning",
        "function_call",
        "function_call",
        "function_call_output",
        "function_call_output",
    ]
    assert second["input"][1]["encrypted_content"]
    finish = [p for p in parts if isinstance(p, Finish)][-1]
    assert finish.response.text == "Both have about 2 million people."
    assert finish.response.steps == 2


async def test_the_emulator_rejects_what_the_api_rejects() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        bad_output = [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "call_missing", "content": "42"},
        ]
        with pytest.raises(Exception, match="No tool call found"):
            await client.generate(bad_output, "o3-pro")
        lonely = [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": "",
                "steer": {"openai_output": [{"type": "reasoning", "id": "rs_1", "summary": []}]},
            },
            {"role": "user", "content": "y"},
        ]
        with pytest.raises(Exception, match="without its required following item"):
            await client.generate(lonely, "o3-pro")


async def test_partial_output_and_events() -> None:
    class Item(BaseModel):
        name: str
        tags: list[str]

    text = json.dumps({"name": "lamp", "tags": ["desk", "led"]})
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=[text[i : i + 4] for i in range(0, len(text), 4)]))
        parts = [p async for p in client.stream_events("x", "o3-pro", output=Item)]
    partials = [p for p in parts if isinstance(p, PartialOutput)]
    assert len(partials) >= 1
    finish = parts[-1]
    assert isinstance(finish, Finish) and finish.response.output == Item(
        name="lamp", tags=["desk", "led"]
    )


async def test_a_break_raises_with_the_partial_text() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(text="one two three four five", fault=Fault.drop_after(2)),
            Reply(text="one two three four five", fault=Fault.error_event_after(2)),
        )
        options = StreamingOptions(preserve_partial_response=True, retry_on_connection_error=False)
        for _ in range(2):
            with pytest.raises(StreamInterruptedError) as info:
                await client.stream_with_usage("x", "o3-pro", streaming_options=options)
            assert info.value.partial_text == "one two"
            assert info.value.partial_usage is not None


async def test_http_errors_are_typed() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(status=429, headers={"retry-after": "0"}), Reply(text="ok"))
        response = await client.generate("x", "o3-pro")
        assert response.text == "ok" and response.attempts == 2
        emu.enqueue(Reply(status=401))
        from steer_llm_sdk import AuthenticationError

        with pytest.raises(AuthenticationError):
            await client.stream_with_usage("x", "o3-pro")


RESPONSES_ENTRIES = [e for e in MANIFEST if e["protocol"] == "openai-responses"]


@pytest.mark.parametrize("entry", RESPONSES_ENTRIES, ids=[e["file"] for e in RESPONSES_ENTRIES])
async def test_recorded_responses_streams_through_the_client(entry: dict[str, Any]) -> None:
    body = (CORPUS / entry["file"]).read_bytes()
    expected = entry["expected"]
    async with ReplayServer(body=body) as server:
        async with SteerLLMClient(
            api_keys={"openai": "sk-test"}, base_urls={"openai": server.url + "/v1"}
        ) as client:
            response = await client.stream_with_usage("hi", "openai-responses/gpt-4o")
            parts = [p async for p in client.stream_events("hi", "openai-responses/gpt-4o")]
    assert response.text == expected["text"]
    assert response.raw_finish_reason == expected["finish_reason"]
    assert response.usage["prompt_tokens"] == expected["usage"]["input_tokens"]
    assert response.usage["completion_tokens"] == expected["usage"]["output_tokens"]
    assert [(c.id, c.name, c.arguments) for c in response.tool_calls] == [
        (c["id"], c["name"], c["arguments"]) for c in expected["tool_calls"]
    ]
    assert isinstance(parts[-1], Finish) and parts[-1].response.text == response.text
    assert response.cost_usd is not None
