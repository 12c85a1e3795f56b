"""Files over the wire: real PNG, JPEG, WAV and PDF files made by the tests, sent to
the emulator of each protocol; every request body as the emulator received it
validates against the official SDK's own request types and carries the original
bytes. Capability errors fire before any request; tool results carry files."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from steer_llm_sdk import ConfigurationError, File, SteerLLMClient
from steer_llm_sdk.testing import Emulator, Reply
from tests.media import jpeg, pdf, png, wav

PNG, JPEG, WAV, PDF = png(4, 3), jpeg(16, 8), wav(), pdf()
MODELS = {
    "openai-chat": "gpt-4o-audio-preview",  # OpenAI's audio input needs an audio model
    "openai-responses": "openai-responses/gpt-4o",
    "anthropic-messages": "claude-3-haiku-20240307",
    "gemini": "gemini-2.5-flash",
}
# What each protocol takes of the four files (README's table).
SENDS = {
    "openai-chat": (PNG, JPEG, WAV, PDF),
    "openai-responses": (PNG, JPEG, PDF),
    "anthropic-messages": (PNG, JPEG, PDF),
    "gemini": (PNG, JPEG, WAV, PDF),
}


def client_for(emu: Emulator, **kw: Any) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": "sk-test-key-000000", "anthropic": "sk-ant-test-0000", "gemini": "k"},
        base_urls={
            "openai": emu.openai_base_url,
            "anthropic": emu.anthropic_base_url,
            "gemini": emu.gemini_base_url,
        },
        **kw,
    )


def validate(protocol: str, body: dict[str, Any]) -> None:
    """The body's messages against the official SDK's request types (pydantic)."""
    from pydantic import TypeAdapter

    if protocol == "openai-chat":
        from openai.types.chat import ChatCompletionMessageParam

        adapter: Any = TypeAdapter(ChatCompletionMessageParam)
        for message in body["messages"]:
            adapter.validate_python(message, strict=True)
    elif protocol == "openai-responses":
        from openai.types.responses import ResponseInputParam

        TypeAdapter(ResponseInputParam).validate_python(body["input"], strict=True)
    elif protocol == "anthropic-messages":
        from anthropic.types import MessageParam

        adapter = TypeAdapter(MessageParam)
        for message in body["messages"]:
            adapter.validate_python(message, strict=True)
    else:
        from google.genai import types

        for content in body["contents"]:
            types.Content.model_validate(content)


def carried(body: Any) -> list[bytes]:
    """Every base64 payload of the body (data URLs, data fields, text sources), decoded."""
    found: list[bytes] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and item.startswith("data:") and ";base64," in item:
                    found.append(base64.b64decode(item.partition(",")[2]))
                elif key == "data" and isinstance(item, str) and len(item) > 40:
                    found.append(base64.b64decode(item))
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(body)
    return found


@pytest.mark.parametrize("protocol", list(MODELS))
async def test_a_prompt_of_text_and_files_reaches_each_protocol_whole(protocol: str) -> None:
    files = SENDS[protocol]
    prompt = ["What is in these files?", *(File(data=f) for f in files)]
    async with Emulator() as emu, client_for(emu) as client:
        response = await client.stream_with_usage(prompt, MODELS[protocol])
        assert response.text
        body = emu.requests[-1].json
    validate(protocol, body)
    assert carried(body) == list(files)  # the original bytes, in order, once each


@pytest.mark.parametrize("protocol", list(MODELS))
async def test_message_content_mixes_files_and_openai_style_parts(protocol: str) -> None:
    content = [
        {"type": "text", "text": "Compare"},
        File(data=PNG),
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{_b64(JPEG)}"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{_b64(PDF)}"}},
    ]
    async with Emulator() as emu, client_for(emu) as client:
        await client.stream_with_usage([{"role": "user", "content": content}], MODELS[protocol])
        body = emu.requests[-1].json
    validate(protocol, body)
    assert carried(body) == [PNG, JPEG, PDF]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _tool_turn(result: Any) -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}
    return [
        {"role": "user", "content": "Take a screenshot"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": result},
    ]


@pytest.mark.parametrize("protocol", list(MODELS))
async def test_a_tool_result_holding_a_file_goes_back(protocol: str) -> None:
    from steer_llm_sdk.tools import tool_result_message

    message = tool_result_message("call_1", ["the screen:", File(data=PNG)])
    messages = _tool_turn(message["content"])
    async with Emulator() as emu, client_for(emu) as client:
        await client.stream_with_usage(messages, MODELS[protocol])
        body = emu.requests[-1].json
    validate(protocol, body)
    assert carried(body) == [PNG]
    if protocol == "anthropic-messages":  # natively, inside tool_result
        result = body["messages"][-1]["content"][0]
        assert result["type"] == "tool_result"
        assert [b["type"] for b in result["content"]] == ["text", "image"]
    elif protocol == "openai-responses":  # natively, function_call_output content
        output = body["input"][-1]
        assert output["type"] == "function_call_output"
        assert [p["type"] for p in output["output"]] == ["input_text", "input_image"]
    elif protocol == "gemini":  # natively, the functionResponse's parts
        part = body["contents"][-1]["parts"][0]["functionResponse"]
        assert part["parts"][0]["inlineData"]["mimeType"] == "image/png"
    else:  # Chat Completions: the tool message keeps the text, a user message the file
        tool, user = body["messages"][-2:]
        assert tool == {"role": "tool", "tool_call_id": "call_1", "content": "the screen:"}
        assert user["role"] == "user"
        assert user["content"][1]["type"] == "image_url"


@pytest.mark.parametrize(
    ("model", "file", "match"),
    [
        (
            "local/smollm2-135m",
            File(data=PNG),
            r"openai-chat protocol\) cannot take image/png "
            "data; it takes text only",
        ),
        ("gpt-4o-mini", File(data=b"\x1a\x45\xdf\xa3webm"), "cannot take video/webm data"),
        ("openai-responses/gpt-4o", File(data=WAV), "cannot take audio/wav data"),
        ("gpt-4o-mini", File(data=WAV), r"gpt-4o-mini \(openai-chat protocol\) cannot take audio"),
        ("claude-3-haiku-20240307", File(data=WAV), "cannot take audio/wav data"),
        ("gpt-4o-mini", File(file_id="file-1", media_type="image/png"), "cannot take a file id"),
    ],
)
async def test_a_part_a_protocol_cannot_carry_fails_before_any_request(
    model: str, file: File, match: str
) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        with pytest.raises(ConfigurationError, match=match) as info:
            await client.stream_with_usage(["look", file], model)
        assert emu.requests == []
    assert str(info.value).startswith("messages[0].content[1]: ")


async def test_batch_items_carry_files_and_two_files_are_two_items(tmp_path: Any) -> None:
    """Items with files run with their bytes; the content id hashes the file's bytes
    (two same-sized images are two items, the same image twice is one), and the
    journal keeps the results across runs."""
    other = png(3, 4)
    items: list[Any] = [
        ["What is this?", File(data=PNG)],
        ["What is this?", File(data=PNG)],  # a duplicate: run once
        ["What is this?", File(data=other)],
        {"custom_id": "doc", "messages": [{"role": "user", "content": ["Sum up", File(data=PDF)]}]},
    ]
    journal = tmp_path / "files.sqlite"
    async with Emulator() as emu, client_for(emu) as client:
        summary = await client.batch(items, model="gpt-4o-mini", journal=str(journal)).run()
        assert summary.succeeded == 3 and summary.duplicates == 1
        assert len(emu.requests) == 3
        sent = [carried(r.json) for r in emu.requests]
        again = await client.batch(items, model="gpt-4o-mini", journal=str(journal)).run()
        assert again.succeeded == 0 and len(emu.requests) == 3  # all done already
    assert sorted(sent) == sorted([[PNG], [other], [PDF]])  # each file's own bytes


def screenshot() -> File:
    """Take a screenshot of the screen."""
    return File(data=PNG)


@pytest.mark.parametrize("protocol", list(MODELS))
async def test_a_tool_function_returning_a_file_in_the_tool_loop(protocol: str) -> None:
    """run_tools: the tool's File goes back to the model with the next request, in the
    protocol's shape (validated), and the conversation keeps it."""
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(tool_calls=[{"name": "screenshot", "arguments": {}}]), Reply(text="A red square.")
        )
        response = await client.run_tools(
            "What is on screen?", MODELS[protocol], tools=[screenshot]
        )
        second = emu.requests[-1].json
    assert response.text == "A red square."
    validate(protocol, second)
    assert carried(second) == [PNG]
    tool = [m for m in response.messages or [] if m["role"] == "tool"]
    assert isinstance(tool[0]["content"], list) and isinstance(tool[0]["content"][0], File)
