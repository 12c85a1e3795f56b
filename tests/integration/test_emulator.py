"""The emulator is faithful: the official openai and anthropic SDKs read it as they
read the real APIs (text, usage, finish reasons, typed errors, retries)."""

from __future__ import annotations

import json
from datetime import datetime
from enum import IntEnum
from typing import Any, Literal
from uuid import UUID

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from steer_llm_sdk import SteerLLMClient
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


LONG_SYSTEM = "Be brief. " + "Background facts to remember. " * 330  # > 2,048 tokens


async def test_anthropic_sdk_reads_the_stream(emulator: Emulator) -> None:
    emulator.enqueue(Reply(chunks=["Hi", " there"]))
    client = anthropic.AsyncAnthropic(
        base_url=emulator.anthropic_base_url, api_key="k", max_retries=0
    )
    async with client.messages.stream(
        model="claude-3-haiku-20240307",
        max_tokens=100,
        system=[{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}],
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
        system=[{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert again.usage.cache_read_input_tokens > 0 and again.usage.cache_creation_input_tokens == 0
    short = await client.messages.create(  # under the model's minimum: never cached
        model="claude-3-haiku-20240307",
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": "hi"}],
    )
    assert short.usage.cache_creation_input_tokens == 0 == short.usage.cache_read_input_tokens
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


# -- #22: the unscripted JSON answer fits the requested schema ---------------------------
class Address(BaseModel):
    city: str
    postcode: str | None = None


class Stop(BaseModel):
    place: Address
    minutes: int = Field(ge=5, le=90)


class Priority(IntEnum):
    LOW = 3
    HIGH = 7


class Shipment(BaseModel):
    """Every kind of constraint a strict schema keeps: types, required fields, enums,
    nested objects (by $ref), arrays of objects, nullable and optional fields, bounds."""

    name: str
    code: str = Field(min_length=8, max_length=12)
    weight_kg: float = Field(gt=0, lt=1)
    pieces: int = Field(ge=100, multiple_of=25)
    fragile: bool
    status: Literal["pending", "sent", "lost"]
    priority: Priority
    tags: list[str] = Field(min_length=2, max_length=3)
    stops: list[Stop]
    origin: Address
    note: str | None
    parcels: int | None = None
    sent_at: datetime
    tracking: UUID


class Parcel(BaseModel):
    """What Gemini's own Schema form can say (google-genai sends it as responseSchema)."""

    label: str
    size: Literal["S", "M"]
    weight: float | None
    contents: list[Address]


SCHEMA_MODELS = {
    "openai": ("gpt-4o-mini", {}),
    "anthropic-output-config": ("claude-sonnet-4-5", {}),
    "anthropic-forced-tool": ("claude-3-haiku-20240307", {}),
    "responses": ("gpt-4o", {"api": "responses"}),
    "gemini": ("gemini-2.5-flash", {}),
}


@pytest.mark.parametrize("which", list(SCHEMA_MODELS))
async def test_unscripted_answer_fits_the_output_model(guide_env: Emulator, which: str) -> None:
    model, extra = SCHEMA_MODELS[which]
    async with SteerLLMClient() as client:
        first = await client.generate("Ship it", model, output=Shipment, **extra)
        streamed = await client.stream_with_usage("Ship it", model, output=Shipment, **extra)
    assert first.attempts == 1 and isinstance(first.output, Shipment)
    assert streamed.output == first.output  # deterministic
    out = first.output
    assert out.name == "Aurora Desk Lamp"  # the default product, where a field fits
    assert len(out.stops) >= 1 and isinstance(out.stops[0].place, Address)
    assert 2 <= len(out.tags) <= 3 and out.pieces % 25 == 0


async def test_official_openai_parse_against_the_unscripted_emulator(emulator: Emulator) -> None:
    client = openai.AsyncOpenAI(base_url=emulator.openai_base_url, api_key="sk-x", max_retries=0)
    completion = await client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Ship it"}],
        response_format=Shipment,
    )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Shipment) and parsed.status == "pending"
    response = await client.responses.parse(model="gpt-4o", input="Ship it", text_format=Shipment)
    assert response.output_parsed == parsed
    await client.close()


async def test_gemini_openapi_response_schema(emulator: Emulator) -> None:
    """Gemini's own Schema form (responseSchema): upper-case types, nullable,
    propertyOrdering; and google-genai's parse of a pydantic model."""
    schema = {
        "type": "OBJECT",
        "properties": {
            "size": {"type": "STRING", "enum": ["S", "M"]},
            "count": {"type": "INTEGER", "minimum": 3},
            "ratio": {"type": "NUMBER", "nullable": True},
            "labels": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1},
        },
        "required": ["size", "count", "ratio", "labels"],
        "propertyOrdering": ["size", "count", "ratio", "labels"],
    }
    body = {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "generationConfig": {"responseMimeType": "application/json", "responseSchema": schema},
    }
    url = emulator.gemini_base_url + "/v1beta/models/gemini-2.5-flash:generateContent"
    async with httpx.AsyncClient() as http:
        r = await http.post(url, json=body, headers={"x-goog-api-key": "k"})
    value = json.loads(r.json()["candidates"][0]["content"]["parts"][0]["text"])
    assert list(value) == ["size", "count", "ratio", "labels"]
    assert value["size"] == "S" and isinstance(value["count"], int) and value["count"] >= 3
    assert isinstance(value["ratio"], float) and value["labels"] and value["labels"][0]

    from google import genai
    from google.genai import types

    official = genai.Client(
        api_key="k",
        http_options=types.HttpOptions(base_url=emulator.gemini_base_url, api_version="v1beta"),
    )
    answer = await official.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="Pack it",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Parcel
        ),
    )
    sent = emulator.requests[-1].json["generationConfig"]["responseSchema"]
    assert sent["properties"]["size"]["type"] == "STRING"  # the OpenAPI form
    assert isinstance(answer.parsed, Parcel) and answer.parsed.size == "S"
    assert answer.parsed.contents[0].city == "city"


async def test_json_mode_without_a_schema_keeps_the_default_product(emulator: Emulator) -> None:
    async with httpx.AsyncClient(base_url=emulator.openai_base_url) as http:
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": "a product"}],
            "response_format": {"type": "json_object"},
        }
        r = await http.post("/chat/completions", json=body)
    assert json.loads(r.json()["choices"][0]["message"]["content"])["price"] == 49.99


async def test_recursive_schema_answer_is_finite(emulator: Emulator) -> None:
    """A schema that contains itself (a tree) gets a bounded answer that fits it."""
    schema = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
                "required": ["label", "children", "parent"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/$defs/Node",
    }
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "a tree"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
    }
    async with httpx.AsyncClient(base_url=emulator.openai_base_url) as http:
        r = await http.post("/chat/completions", json=body)
    tree = json.loads(r.json()["choices"][0]["message"]["content"])

    def check(node: Any, depth: int) -> int:
        assert set(node) == {"label", "children", "parent"} and node["label"] == "label"
        kids = [check(child, depth + 1) for child in node["children"]]
        up = check(node["parent"], depth + 1) if node["parent"] is not None else depth
        return max([depth, up, *kids])

    assert 1 <= check(tree, 0) <= 3 and len(r.content) < 2000


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
