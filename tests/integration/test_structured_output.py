"""Structured output (``output=``) over real sockets on both protocols: the strict
schema each provider receives, partial objects while streaming, validation."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from steer_llm_sdk import (
    ConfigurationError,
    Finish,
    OutputValidationError,
    PartialOutput,
    SteerLLMClient,
    TextDelta,
)
from steer_llm_sdk.testing import Emulator, Reply


class Address(BaseModel):
    city: str
    postcode: str | None = None


class Person(BaseModel):
    name: str
    age: int
    mood: Literal["happy", "grumpy"]
    hobbies: list[str] = Field(default_factory=list)
    address: Address


PERSON = {
    "name": "Ada Lovelace",
    "age": 36,
    "mood": "happy",
    "hobbies": ["mathematics", "poetry"],
    "address": {"city": "London", "postcode": None},
}
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic-new": "claude-sonnet-4-5",
    "anthropic-old": "claude-3-haiku-20240307",
}


def client_for(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": "sk-test-key-000000", "anthropic": "sk-ant-test-key-0000"},
        base_urls={"openai": emu.openai_base_url, "anthropic": emu.anthropic_base_url},
    )


def person_chunks() -> list[str]:
    text = json.dumps(PERSON)
    return [text[i : i + 5] for i in range(0, len(text), 5)]


@pytest.mark.parametrize("which", list(MODELS))
async def test_output_model_end_to_end(which: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=person_chunks()))
        response = await client.stream_with_usage("Who?", MODELS[which], output=Person)
        emu.enqueue(Reply(chunks=person_chunks()))
        generated = await client.generate("Who?", MODELS[which], output=Person)
        sent = emu.requests[0].json
    for result in (response, generated):
        assert isinstance(result.output, Person)
        assert result.output.address.city == "London"
        assert result.output.address.postcode is None
        assert result.finish_reason == "stop"
    if which == "openai":
        fmt = sent["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        schema = fmt["json_schema"]["schema"]
        assert fmt["json_schema"]["name"] == "Person"
    elif which == "anthropic-new":
        schema = sent["output_config"]["format"]["schema"]
        assert "tools" not in sent
    else:
        # Older Claude models: the schema as a tool the model is made to call.
        assert sent["tool_choice"] == {"type": "tool", "name": "Person"}
        schema = sent["tools"][0]["input_schema"]
    # OpenAI's strict rules: no free keys, every property required (optional → nullable).
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "age", "mood", "hobbies", "address"}
    assert schema["$defs"]["Address"]["additionalProperties"] is False
    assert "null" in schema["properties"]["hobbies"]["type"]


@pytest.mark.parametrize("which", ["openai", "anthropic-new", "anthropic-old"])
async def test_partial_output_grows_while_streaming(which: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=person_chunks(), delay_between_chunks=0.001))
        snapshots: list[str] = []
        finish: Finish | None = None
        async for part in client.stream_events("Who?", MODELS[which], output=Person):
            if isinstance(part, PartialOutput):
                snapshots.append(json.dumps(part.value))
            elif isinstance(part, Finish):
                finish = part
    assert finish is not None and isinstance(finish.response.output, Person)
    assert len(snapshots) > 5, "partial objects arrive before the end"
    assert json.loads(snapshots[-1]) == PERSON
    # A string grows; an enum never shows half-typed; a number appears once whole.
    names = [json.loads(s).get("name") for s in snapshots if "name" in json.loads(s)]
    assert any(n and n != "Ada Lovelace" for n in names)
    moods = {json.loads(s).get("mood") for s in snapshots} - {None}
    assert moods == {"happy"}
    ages = {json.loads(s).get("age") for s in snapshots} - {None}
    assert ages == {36}


async def test_invalid_output_raises_with_raw_text_and_errors() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(text=json.dumps({"name": "Bob", "age": "old", "mood": "sleepy"})))
        errors: list[BaseException] = []
        from steer_llm_sdk.models.streaming import StreamingOptions

        with pytest.raises(OutputValidationError) as info:
            await client.stream_with_usage(
                "Who?",
                "gpt-4o-mini",
                output=Person,
                streaming_options=StreamingOptions(on_error=errors.append),
            )
        emu.enqueue(Reply(text="not json at all"))
        with pytest.raises(OutputValidationError, match="not valid JSON"):
            await client.generate("Who?", "gpt-4o-mini", output=Person)
    error = info.value
    assert "Person" in str(error) and error.raw_text.startswith('{"name": "Bob"')
    locs = {tuple(e["loc"]) for e in error.errors}
    assert ("age",) in locs and ("mood",) in locs and ("address",) in locs
    assert errors == [error]  # on_error saw it too


async def test_other_output_types() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(text=json.dumps({"value": [1, 2, 3]})))
        numbers = await client.generate("Count", "gpt-4o-mini", output=list[int])
        schema = {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
        }
        emu.enqueue(Reply(text=json.dumps({"answer": "yes"})))
        plain = await client.generate("Q", "gpt-4o-mini", output=schema)
        sent = [r.json for r in emu.requests]
    assert numbers.output == [1, 2, 3]
    wrapped = sent[0]["response_format"]["json_schema"]["schema"]
    assert wrapped["properties"]["value"]["type"] == "array"  # a list sent inside an object
    assert plain.output == {"answer": "yes"}
    assert sent[1]["response_format"]["json_schema"]["schema"]["additionalProperties"] is False


class Free(BaseModel):
    scores: dict[str, int]


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (42, "output=42 is not supported"),
        ("Person", "is not supported"),
        (Free, "'scores' is a mapping with free keys"),
        ({"type": "object", "not": {"required": ["a"]}}, "'not' schema"),
    ],
)
def test_bad_output_is_a_typed_error(output: Any, match: str) -> None:
    client = SteerLLMClient(api_keys={"openai": "sk-test-key-000000"})
    with pytest.raises(ConfigurationError, match=match):
        client._prepare("x", "gpt-4o-mini", {"output": output}, stream=True, method="stream")


def test_output_and_response_format_together_is_an_error() -> None:
    client = SteerLLMClient(api_keys={"openai": "sk-test-key-000000"})
    with pytest.raises(ConfigurationError, match="not both"):
        client._prepare(
            "x",
            "gpt-4o-mini",
            {"output": Person, "response_format": {"type": "json_object"}},
            stream=True,
            method="stream",
        )


async def test_text_deltas_still_carry_the_json_text() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(chunks=person_chunks()))
        parts = [p async for p in client.stream_events("Who?", "gpt-4o-mini", output=Person)]
    text = "".join(p.text for p in parts if isinstance(p, TextDelta))
    assert json.loads(text) == PERSON
