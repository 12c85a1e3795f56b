"""The request layer: content parts → neutral TextPart/FilePart once per call, each
file checked against what the protocol's codec declares it can send, malformed parts
named, provider-native parts passed through; what every codec then puts on the wire
(over real sockets, against the emulator); the tool loop over any stream_events-like
callable; api= selection in the catalog."""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path
from typing import Any

import pytest

from steer_llm_sdk import ConfigurationError, SteerLLMClient
from steer_llm_sdk.catalog import PROVIDERS, Target, resolve_model, select_api
from steer_llm_sdk.content import FilePart, TextPart, check_base64, check_part, takes, to_part
from steer_llm_sdk.parts import Finish, TextDelta, ToolResult
from steer_llm_sdk.providers import PROTOCOLS, codec_class
from steer_llm_sdk.providers.anthropic import AnthropicCodec
from steer_llm_sdk.providers.base import ChatRequest
from steer_llm_sdk.providers.gemini import GeminiCodec
from steer_llm_sdk.providers.openai_chat import OpenAIChatCodec
from steer_llm_sdk.providers.openai_responses import OpenAIResponsesCodec
from steer_llm_sdk.request import build_request
from steer_llm_sdk.streaming.estimate import estimate_usage
from steer_llm_sdk.testing import Emulator, Reply
from steer_llm_sdk.tool_loop import stream_tools

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n-an-image").decode()
PDF = base64.b64encode(b"%PDF-1.7 a document").decode()
WAV = base64.b64encode(b"RIFF....WAVEfmt a sound").decode()
MODELS = {
    "openai-chat": "gpt-4o-audio-preview",
    "anthropic-messages": "claude-3-haiku-20240307",
    "openai-responses": "openai-responses/gpt-4o",
    "gemini": "gemini-2.5-flash",
}


def client_for(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": "sk-test-key-000000", "anthropic": "sk-ant-test-0000", "gemini": "k"},
        base_urls={
            "openai": emu.openai_base_url,
            "anthropic": emu.anthropic_base_url,
            "gemini": emu.gemini_base_url,
        },
    )


def ask(*parts: Any) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"}, *parts]},
    ]


def image(url: str, **kw: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **kw}}


def audio(data: str, fmt: str = "wav") -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def file(**kw: Any) -> dict[str, Any]:
    return {"type": "file", "file": kw}


async def sent_parts(protocol: str, *parts: Any) -> Any:
    """The content of the user turn as the emulator received it."""
    async with Emulator() as emu, client_for(emu) as client:
        await client.stream_with_usage(ask(*parts), MODELS[protocol])
        body = emu.requests[-1].json
    if protocol == "gemini":
        return body["contents"][-1]["parts"][1:]
    if protocol == "openai-responses":
        return body["input"][-1]["content"][1:]
    return body["messages"][-1]["content"][1:]


# -- today's inputs go out exactly as before --------------------------------------------
async def test_openai_chat_sends_every_openai_part_as_given() -> None:
    parts = [
        image(f"data:image/png;base64,{PNG}", detail="low"),
        image("https://x.test/cat.jpg"),
        audio(WAV),
        audio(WAV, "mp3"),
        file(file_data=f"data:application/pdf;base64,{PDF}", filename="a.pdf"),
        file(file_id="file-abc"),
        {"type": "video_url", "video_url": {"url": "https://x.test/v.mp4"}},  # vLLM's own
    ]
    assert await sent_parts("openai-chat", *parts) == parts


async def test_anthropic_images_and_native_blocks_as_before() -> None:
    cached = {"type": "ephemeral"}
    native = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "x"},
    }
    got = await sent_parts(
        "anthropic-messages",
        {**image(f"data:image/png;base64,{PNG}"), "cache_control": cached},
        image("https://x.test/cat.jpg"),
        native,
    )
    assert got == [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": PNG},
            "cache_control": cached,
        },
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.jpg"}},
        native,
    ]


async def test_responses_images_audio_and_native_parts_as_before() -> None:
    native = {"type": "input_file", "file_id": "file-1"}
    got = await sent_parts(
        "openai-responses",
        image(f"data:image/png;base64,{PNG}", detail="high"),
        image("https://x.test/cat.jpg"),
        {**native, "cache_control": {"type": "ephemeral"}},
    )
    assert got == [
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "high"},
        # the official types require detail: "auto" unless the part says otherwise
        {"type": "input_image", "image_url": "https://x.test/cat.jpg", "detail": "auto"},
        native,
    ]
    # Responses input messages have no audio part: refused before sending, named
    with pytest.raises(ConfigurationError, match=r"content\[1\].*cannot take audio/wav data"):
        await sent_parts("openai-responses", audio(WAV))


async def test_gemini_images_as_before() -> None:
    got = await sent_parts(
        "gemini", image(f"data:image/png;base64,{PNG}"), image("https://x.test/cat.jpg")
    )
    assert got == [
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/cat.jpg"}},
    ]


# -- files the protocols take that used to go out in the wrong shape ----------------------
async def test_files_each_protocol_takes_in_its_own_shape() -> None:
    pdf = file(file_data=f"data:application/pdf;base64,{PDF}", filename="a.pdf")
    assert await sent_parts("anthropic-messages", pdf) == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
        }
    ]
    assert await sent_parts(
        "openai-responses", pdf, file(file_id="file-abc"), image("https://x.test/a.pdf")
    ) == [
        {
            "type": "input_file",
            "file_data": f"data:application/pdf;base64,{PDF}",
            "filename": "a.pdf",
        },
        {"type": "input_file", "file_id": "file-abc"},
        {"type": "input_file", "file_url": "https://x.test/a.pdf"},
    ]
    assert await sent_parts("gemini", audio(WAV), audio(WAV, "mp3"), pdf) == [
        {"inlineData": {"mimeType": "audio/wav", "data": WAV}},
        {"inlineData": {"mimeType": "audio/mpeg", "data": WAV}},
        {"inlineData": {"mimeType": "application/pdf", "data": PDF}},
    ]
    # A plain string among the parts is a text part (OpenAI takes only objects there).
    assert await sent_parts("openai-chat", "more") == [{"type": "text", "text": "more"}]


# -- unsendable files fail before any byte leaves -----------------------------------------
@pytest.mark.parametrize(
    ("protocol", "part", "match"),
    [
        ("anthropic-messages", audio(WAV), r"anthropic-messages protocol\) cannot take audio/wav"),
        (
            "anthropic-messages",
            file(file_data=f"data:application/zip;base64,{PDF}"),
            "cannot take application/zip data; it takes as data: application/pdf, image/gif",
        ),
        (
            "openai-chat",
            file(file_id="file-abc", filename="a.png"),
            r"openai-chat protocol\) cannot take a file id \('file-abc', image/png\)",
        ),
        (
            "openai-chat",
            image("https://x.test/clip.mp4"),
            r"cannot take video/mp4 by URL \(https://x.test/clip.mp4\)",
        ),
        ("gemini", file(file_data=f"data:application/zip;base64,{PDF}"), "application/zip"),
    ],
)
async def test_an_unsendable_file_is_refused_before_any_request(
    protocol: str, part: dict[str, Any], match: str
) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        with pytest.raises(ConfigurationError, match=match) as info:
            await client.stream_with_usage(ask(part), MODELS[protocol])
        assert emu.requests == []
    assert str(info.value).startswith("messages[1].content[1]: ")
    assert MODELS[protocol] in str(info.value)


@pytest.mark.parametrize(
    ("part", "match"),
    [
        (image("data:image/png;base64" + PNG), "has no ',' before its data"),
        (image(f"data:;base64,{PNG}"), "names no media type"),
        (image("data:image/png;base64,iVBOR"), "base64 data is malformed"),
        (image("data:image/png;base64,@@@@"), "base64 data is malformed"),
        (image("data:image/png;base64,iVBO=Rw=="), "base64 data is malformed"),
        (image("data:image/png;base64,"), "the file is empty"),
        (image(""), "needs {'image_url': {'url': ...}}"),
        ({"type": "image_url"}, "needs {'image_url': {'url': ...}}"),
        (image(f"data:image/png;base64,{PNG}", detail=3), "image_url.detail must be a string"),
        ({"type": "input_audio", "input_audio": {"data": WAV}}, "'input_audio' need"),
        (audio("not base64!"), "base64 data is malformed"),
        (file(file_data=PDF), "file.file_data must be a data: URL"),
        (file(file_data=f"data:application/pdf;base64,{PDF}", file_id="f"), "not both"),
        ({"type": "file"}, "a file part needs"),
        ({"type": "text", "text": 7}, "a text part needs a 'text' string"),
    ],
)
async def test_a_malformed_part_is_named(part: dict[str, Any], match: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        with pytest.raises(ConfigurationError, match=match) as info:
            await client.stream_with_usage(ask(part), "gpt-4o-mini")
        assert emu.requests == []
    assert str(info.value).startswith("messages[1].content[1]")


# -- the conversion ------------------------------------------------------------------------
def test_openai_style_parts_become_neutral_parts() -> None:
    w = "messages[0].content[0]"
    assert to_part("hi", w) == TextPart("hi")
    cached = {"type": "ephemeral"}
    assert to_part({"type": "text", "text": "hi", "cache_control": cached}, w) == TextPart(
        "hi", cached
    )
    part = to_part(image(f"data:Image/PNG;base64,{PNG}", detail="low"), w)
    assert part == FilePart("image/png", detail="low", b64=PNG)
    assert isinstance(part, FilePart) and part.content() == base64.b64decode(PNG)
    assert part.data_url() == f"data:image/png;base64,{PNG}"
    assert to_part(image("https://x.test/a/cat.webp?size=2"), w) == FilePart(
        "image/webp", url="https://x.test/a/cat.webp?size=2"
    )
    assert to_part(image("https://x.test/render"), w) == FilePart(
        "image/jpeg", url="https://x.test/render"
    )
    shorthand = {"type": "image_url", "image_url": "https://x.test/cat.png"}
    assert to_part(shorthand, w) == FilePart("image/png", url="https://x.test/cat.png")
    assert to_part(audio(WAV), w) == FilePart("audio/wav", b64=WAV)
    assert to_part(audio(WAV, "mp3"), w) == FilePart("audio/mpeg", b64=WAV)
    assert to_part(audio(WAV, "flac"), w) == FilePart("audio/flac", b64=WAV)
    pdf = file(file_data=f"data:application/pdf;base64,{PDF}", filename="a.pdf")
    assert to_part(pdf, w) == FilePart("application/pdf", filename="a.pdf", b64=PDF)
    assert to_part(file(file_id="file-1", filename="a.pdf"), w) == FilePart(
        "application/pdf", file_id="file-1", filename="a.pdf"
    )
    assert to_part(file(file_id="file-1"), w) == FilePart("", file_id="file-1")  # unknown
    # A data URL that is not base64: percent-decoded into bytes, sent as base64.
    plain = to_part(image("data:text/plain,hello%20world"), w)
    assert plain == FilePart("text/plain", b"hello world")
    assert isinstance(plain, FilePart) and plain.base64() == "aGVsbG8gd29ybGQ="


def test_native_parts_pass_through_untouched() -> None:
    for native in (
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "video_url", "video_url": {"url": "https://x.test/v.mp4"}},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
    ):
        assert to_part(native, "x") is native


def test_base64_tolerates_what_providers_take() -> None:
    raw = bytes(range(256))
    std = base64.b64encode(raw).decode()
    for text in (
        std,
        std.rstrip("="),  # no padding
        base64.urlsafe_b64encode(raw).decode(),  # the URL-safe alphabet
        base64.encodebytes(raw).decode(),  # MIME line breaks
    ):
        check_base64(text, "x")
        assert FilePart("image/png", b64=text).content() == raw
    for bad in ("iVBOR", "a===", "ab=c", "é" * 4, "abc$", "=="):
        with pytest.raises(ConfigurationError, match=r"^x: the base64 data is malformed"):
            check_base64(bad, "x")


def test_a_file_part_holds_one_source() -> None:
    with pytest.raises(ValueError, match="one of data"):
        FilePart("image/png")
    with pytest.raises(ValueError, match="one of data"):
        FilePart("image/png", b"x", url="https://x.test/a.png")
    assert FilePart("image/png", b"\x00\x01").base64() == "AAE="


# -- what each codec declares it can send ------------------------------------------------
ACCEPTS = {
    OpenAIChatCodec: ("image/png", "image/webp", "audio/wav", "audio/mpeg", "application/pdf"),
    OpenAIResponsesCodec: (
        "image/png",
        "application/pdf",
        "text/csv",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    AnthropicCodec: (
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "application/pdf",
        "text/plain",
    ),
    GeminiCodec: (
        "image/png",
        "image/heic",
        "audio/wav",
        "audio/mp3",
        "video/mp4",
        "text/plain",
        "text/csv",
        "application/pdf",
        "application/json",
    ),
}
REFUSES = {
    OpenAIChatCodec: ("audio/ogg", "application/zip", "video/mp4", "text/plain"),
    OpenAIResponsesCodec: ("audio/wav", "video/mp4", "application/zip"),
    AnthropicCodec: ("image/bmp", "image/heic", "audio/wav", "video/mp4", "application/zip"),
    GeminiCodec: ("application/zip", "application/octet-stream", "model/gltf+json"),
}
FILE_ID_REFUSED = {  # a file id of this type cannot be sent
    OpenAIChatCodec: "image/png",  # Chat Completions' file part: PDFs only
    OpenAIResponsesCodec: "audio/wav",
    AnthropicCodec: "audio/wav",
    GeminiCodec: "application/zip",
}


@pytest.mark.parametrize("codec", list(ACCEPTS), ids=lambda c: c.protocol)
def test_each_codec_declares_what_it_accepts(codec: Any) -> None:
    assert codec_class(codec.protocol) is codec
    for media_type in ACCEPTS[codec]:
        assert takes(codec.accepts, media_type), media_type
        check_part(FilePart(media_type, b"x"), codec, "x")
    for media_type in REFUSES[codec]:
        assert not takes(codec.accepts, media_type), media_type
        with pytest.raises(ConfigurationError, match=f"cannot take {re.escape(media_type)} data"):
            check_part(FilePart(media_type, b"x"), codec, "x")
    assert takes(codec.accepts_urls, "image/png")  # every protocol takes image URLs
    assert not check_part(FilePart("image/png", url="https://x.test/a.png"), codec, "x")
    assert not check_part(FilePart("application/pdf", file_id="f"), codec, "x")
    with pytest.raises(ConfigurationError, match=f"the {codec.protocol} protocol cannot"):
        check_part(FilePart(FILE_ID_REFUSED[codec], file_id="f"), codec, "x")


@pytest.mark.parametrize("codec", list(ACCEPTS), ids=lambda c: c.protocol)
def test_every_accepted_file_goes_out_in_a_shape_of_the_protocol(codec: Any) -> None:
    """A request built by the request layer: every accepted kind of file encodes."""
    model = {"openai-chat": "gpt-4o-audio-preview"}.get(codec.protocol, MODELS[codec.protocol])
    route = resolve_model(model)
    for media_type in ACCEPTS[codec]:
        part = file(file_data=f"data:{media_type};base64,{PDF}", filename="f")
        request, _ = build_request(ask(part), {}, route, codec, stream=True)
        assert request.messages[1]["content"][1] == FilePart(media_type, filename="f", b64=PDF)
        body = codec.factory(route.provider, route.model)().encode(request, None).json
        # base64 as given; Anthropic's plain-text documents carry the text itself
        assert PDF in str(body) or base64.b64decode(PDF).decode() in str(body), media_type


def test_a_codec_used_directly_still_takes_openai_style_parts() -> None:
    """ChatRequest built without the request layer (plain dicts): converted and checked
    by the codec itself."""
    messages = [{"role": "user", "content": ["hi", audio(WAV)]}]
    body = GeminiCodec().encode(ChatRequest("gemini-2.5-flash", messages), None).json
    assert body["contents"][0]["parts"] == [
        {"text": "hi"},
        {"inlineData": {"mimeType": "audio/wav", "data": WAV}},
    ]
    with pytest.raises(ConfigurationError, match="cannot take audio/wav"):
        AnthropicCodec().encode(ChatRequest("claude-3-haiku-20240307", messages), None)


def test_estimates_read_neutral_text_parts() -> None:
    neutral = [{"role": "user", "content": [TextPart("hello there"), FilePart("image/png", b"x")]}]
    plain = [{"role": "user", "content": "hello there"}]
    with_file = estimate_usage(neutral, "ok", aggregator_type="character")
    text_only = estimate_usage(plain, "ok", aggregator_type="character")
    # the text counts the same; the image (no size in its bytes) as a 1024x1024 one
    assert with_file["prompt_tokens"] - text_only["prompt_tokens"] == 765


async def test_telemetry_names_file_parts_by_their_kind() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from steer_llm_sdk.telemetry import TelemetryOptions

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    options = TelemetryOptions(tracer_provider=provider, capture_content=True)
    async with Emulator() as emu:
        client = SteerLLMClient(
            api_keys={"openai": "sk-test-key-000000"},
            base_urls={"openai": emu.openai_base_url},
            telemetry=options,
        )
        async with client:
            await client.stream_with_usage(
                ask(image(f"data:image/png;base64,{PNG}"), audio(WAV), file(file_id="f")),
                "gpt-4o-audio-preview",
            )
    (span,) = spans.get_finished_spans()
    assert (span.attributes or {})["gen_ai.input.messages"] == (
        '[{"role":"user","parts":[{"type":"text","content":"What is this?"},'
        '{"type":"image_url","media_type":"image/png","size":17},'
        '{"type":"input_audio","media_type":"audio/wav","size":23},{"type":"file"}]}]'
    )
    assert PNG not in str(span.attributes)  # never the bytes


# -- the tool loop, over any stream_events-like callable --------------------------------
async def test_the_tool_loop_runs_over_a_stream_events_callable() -> None:
    seen: list[Any] = []

    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]),
            Reply(text="It is sunny."),
        )

        def events(messages: Any, model: str | None, **params: Any) -> Any:
            seen.append([m["role"] for m in messages])
            return client.stream_events(messages, model, **params)

        parts = [
            p
            async for p in stream_tools(
                events, "Weather?", "gpt-4o-mini", tools=[get_weather], max_steps=3, params={}
            )
        ]
    assert seen == [["user"], ["user", "assistant", "tool"]]
    results = [p for p in parts if isinstance(p, ToolResult)]
    assert [r.content for r in results] == ["sunny in Paris"]
    finish = parts[-1]
    assert isinstance(finish, Finish) and finish.response.steps == 2
    assert "".join(p.text for p in parts if isinstance(p, TextDelta)) == "It is sunny."


def test_select_api_lives_in_the_catalog() -> None:
    route = resolve_model("gpt-4o")
    assert select_api(route, "responses") == Target(PROVIDERS["openai-responses"], "gpt-4o")
    assert select_api(route, "chat") == Target(PROVIDERS["openai"], "gpt-4o")
    with pytest.raises(ConfigurationError, match="api='batch' is not known"):
        select_api(route, "batch")
    with pytest.raises(ConfigurationError, match="speaks anthropic-messages"):
        select_api(resolve_model("claude-3-haiku-20240307"), "chat")


def test_the_client_names_no_protocol_and_imports_no_batch_types() -> None:
    source = Path(__file__).parents[2].joinpath("steer_llm_sdk", "client.py").read_text()
    for protocol in PROTOCOLS:
        assert f'"{protocol}"' not in source, protocol
    tree = ast.parse(source)
    names = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module is not None
    }
    assert not any("batch" in name for name in names - {"batch"})  # the lazy make_job
