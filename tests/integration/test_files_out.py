"""Images and audio in answers, over real sockets: Gemini ``inlineData`` arrives as a
whole-file part, OpenAI chat audio as audio-delta parts decoded piece by piece, on
``stream_events()``, ``stream_with_usage()`` and ``generate()``; ``response.files``
holds them in order; the official SDKs accept what the emulator sends."""

from __future__ import annotations

import asyncio
import base64
import itertools
import struct
import zlib
from typing import Any

import pytest

from steer_llm_sdk import (
    AudioDelta,
    BadRequestError,
    File,
    FileOutput,
    Finish,
    InvalidResponseError,
    SteerLLMClient,
    StreamInterruptedError,
    TextDelta,
)
from steer_llm_sdk.testing import Emulator, Reply

GEMINI_KEY = "AIzaSyTEST-gemini-key-00000000000000000"
OPENAI_KEY = "sk-test-openai-key-000000"
AUDIO = {"voice": "alloy", "format": "pcm16"}


def png(width: int = 2, height: int = 2, seed: int = 0) -> bytes:
    """A real PNG (a tiny RGB image), made here."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(
        b"\x00" + bytes((seed + x + y) % 256 for x in range(width * 3)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def pcm(samples: int) -> bytes:
    """16-bit little-endian samples, some starting 0xFF 0xFx (an MPEG frame's magic)."""
    return b"".join(struct.pack("<h", (i * 37) % 4000 - 2000) for i in range(samples))


def gemini_client(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"gemini": GEMINI_KEY}, base_urls={"gemini": emu.gemini_base_url}
    )


def openai_client(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": OPENAI_KEY}, base_urls={"openai": emu.openai_base_url}
    )


# -- Gemini images ----------------------------------------------------------------------
async def test_gemini_image_streams_as_a_file_part_in_order_with_the_text() -> None:
    first, second = png(seed=1), png(3, 3, seed=2)
    async with Emulator() as emu, gemini_client(emu) as client:
        emu.enqueue(
            Reply(
                text="Here is a cat. And a dog.",
                files=[("image/png", first), ("image/png", second)],
            )
        )
        parts = [
            p
            async for p in client.stream_events(
                "Draw a cat", "gemini-2.5-flash-image", response_modalities=["TEXT", "IMAGE"]
            )
        ]
        sent = emu.requests[-1].json
    assert sent["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    kinds = [p.type for p in parts]
    assert kinds.count("file") == 2
    # every text comes before the first image (it rode in the same event as the last text)
    first_file = kinds.index("file")
    assert "text-delta" not in kinds[first_file:]
    files = [p.file for p in parts if isinstance(p, FileOutput)]
    assert [f.data for f in files] == [first, second]
    assert all(isinstance(f, File) and f.media_type == "image/png" for f in files)
    finish = parts[-1]
    assert isinstance(finish, Finish)
    response = finish.response
    assert response.text == "Here is a cat. And a dog."
    assert "".join(p.text for p in parts if isinstance(p, TextDelta)) == response.text
    assert [f.data for f in response.files] == [first, second]
    assert (
        repr(parts[first_file]) == f"FileOutput(File({len(first)} bytes, media_type='image/png'))"
    )
    assert response.to_dict()["files"][0] == {
        "media_type": "image/png",
        "size": len(first),
        "url": None,
        "file_id": None,
        "filename": None,
    }


@pytest.mark.parametrize("how", ["stream_with_usage", "generate"])
async def test_gemini_image_in_the_response_of_both_paths(how: str) -> None:
    image = png(seed=5)
    async with Emulator() as emu, gemini_client(emu) as client:
        emu.enqueue(Reply(text="A picture:", files=[("image/png", image)]))
        method = getattr(client, how)
        response = await method("Draw", "gemini-2.5-flash-image", modalities=["text", "image"])
        sent = emu.requests[-1].json
    assert sent["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]  # OpenAI's name
    assert response.text == "A picture:"
    assert [(f.media_type, f.data) for f in response.files] == [("image/png", image)]


async def test_gemini_media_type_comes_from_the_bytes_not_the_server() -> None:
    image = png()
    async with Emulator() as emu, gemini_client(emu) as client:
        emu.enqueue(Reply(text="x", files=[("image/jpeg", image)]))  # the server lies
        response = await client.generate(
            "Draw", "gemini-2.5-flash-image", response_modalities=["IMAGE"]
        )
    assert response.files[0].media_type == "image/png"


async def test_emulator_refuses_an_image_answer_the_request_did_not_ask_for() -> None:
    async with Emulator() as emu, gemini_client(emu) as client:
        emu.enqueue(Reply(text="x", files=[("image/png", png())]))
        with pytest.raises(BadRequestError, match="responseModalities"):
            await client.generate("Draw", "gemini-2.5-flash-image")


async def test_text_only_stream_is_unchanged_by_an_image_answer() -> None:
    image = png()
    async with Emulator() as emu, gemini_client(emu) as client:
        emu.enqueue(Reply(text="Only text here.", files=[("image/png", image)]))
        chunks = [
            c
            async for c in client.stream(
                "Draw", "gemini-2.5-flash-image", response_modalities=["TEXT", "IMAGE"]
            )
        ]
    assert "".join(chunks) == "Only text here."
    assert all(isinstance(c, str) for c in chunks)


async def test_google_genai_sees_the_emulators_inline_image() -> None:
    from google import genai
    from google.genai import types

    image = png(seed=9)
    async with Emulator() as emu:
        official = genai.Client(
            api_key=GEMINI_KEY,
            http_options=types.HttpOptions(base_url=emu.gemini_base_url, api_version="v1beta"),
        )
        config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"])
        emu.enqueue(Reply(text="A picture", files=[("image/png", image)]))
        whole = await official.aio.models.generate_content(
            model="gemini-2.5-flash-image", contents="Draw", config=config
        )
        emu.enqueue(Reply(text="A picture", files=[("image/png", image)]))
        streamed = []
        async for chunk in await official.aio.models.generate_content_stream(
            model="gemini-2.5-flash-image", contents="Draw", config=config
        ):
            for part in chunk.candidates[0].content.parts or []:  # type: ignore[index, union-attr]
                if part.inline_data is not None:
                    streamed.append(part.inline_data)
    parts = whole.candidates[0].content.parts  # type: ignore[index, union-attr]
    inline = [p.inline_data for p in parts if p.inline_data is not None]  # type: ignore[union-attr]
    assert [(i.mime_type, i.data) for i in inline] == [("image/png", image)]
    assert [(i.mime_type, i.data) for i in streamed] == [("image/png", image)]


# -- OpenAI audio -----------------------------------------------------------------------
async def test_openai_audio_streams_as_audio_deltas_decoded_piece_by_piece() -> None:
    audio = pcm(12_000)  # 24,000 bytes: five pieces of 4,800
    async with Emulator() as emu, openai_client(emu) as client:
        emu.enqueue(Reply(audio=audio, transcript="Hello there, friend!"))
        parts = [
            p
            async for p in client.stream_events(
                "Say hello", "gpt-4o-audio-preview", modalities=["text", "audio"], audio=AUDIO
            )
        ]
        sent = emu.requests[-1].json
    assert sent["modalities"] == ["text", "audio"] and sent["audio"] == AUDIO
    deltas = [p for p in parts if isinstance(p, AudioDelta)]
    assert [p.type for p in deltas] == ["audio-delta"] * len(deltas)
    pieces = [d.data for d in deltas if d.data]
    assert len(pieces) == 5 and all(len(p) == 4800 for p in pieces)
    assert b"".join(pieces) == audio
    assert "".join(d.transcript for d in deltas) == "Hello there, friend!"
    finish = parts[-1]
    assert isinstance(finish, Finish)
    response = finish.response
    # no finish_reason in the real stream: the expires_at delta ends it, no error
    assert response.finish_reason == "stop"
    assert response.text == "Hello there, friend!"  # no text content: the transcript
    assert response.transcript == "Hello there, friend!"
    assert len(response.files) == 1
    assert response.files[0].media_type == "audio/pcm"  # raw samples, never sniffed
    assert response.files[0].data == audio
    assert repr(deltas[0]) == "AudioDelta(0 bytes, transcript='Hello there,')"  # no bytes


@pytest.mark.parametrize("how", ["stream_with_usage", "generate"])
async def test_openai_audio_in_the_response_of_both_paths(how: str) -> None:
    audio = pcm(3000)
    fmt = AUDIO if how == "stream_with_usage" else {"voice": "alloy", "format": "wav"}
    async with Emulator() as emu, openai_client(emu) as client:
        emu.enqueue(Reply(audio=audio, transcript="Hi!"))
        response = await getattr(client, how)(
            "Say hi", "gpt-4o-audio-preview", modalities=["text", "audio"], audio=fmt
        )
    assert response.files[0].data == audio
    # the media type the request asked for (the bytes here are not a real WAV file)
    assert response.files[0].media_type == (
        "audio/pcm" if how == "stream_with_usage" else "audio/wav"
    )
    assert response.text == "Hi!" and response.transcript == "Hi!"


async def test_emulator_rejects_streamed_audio_other_than_pcm16() -> None:
    async with Emulator() as emu, openai_client(emu) as client:
        emu.enqueue(Reply(audio=b"\x00\x01" * 10, transcript="x"))
        with pytest.raises(BadRequestError, match="pcm16"):
            await client.stream_with_usage(
                "Say",
                "gpt-4o-audio-preview",
                modalities=["text", "audio"],
                audio={"voice": "alloy", "format": "mp3"},
            )


async def test_official_openai_sdk_parses_the_emulators_audio_stream() -> None:
    import openai

    audio = pcm(6000)
    async with Emulator() as emu:
        official = openai.AsyncOpenAI(api_key=OPENAI_KEY, base_url=emu.openai_base_url)
        emu.enqueue(Reply(audio=audio, transcript="Hello!"))
        stream = await official.chat.completions.create(
            model="gpt-4o-audio-preview",
            messages=[{"role": "user", "content": "Say hello"}],
            modalities=["text", "audio"],
            audio={"voice": "alloy", "format": "pcm16"},
            stream=True,
        )
        data, transcript, finishes, expiry = b"", "", [], []
        async for chunk in stream:
            for choice in chunk.choices:
                piece: Any = getattr(choice.delta, "audio", None)
                if piece:
                    data += base64.b64decode(piece.data or "")
                    transcript += piece.transcript or ""
                    if piece.expires_at:
                        expiry.append(piece.model_dump(exclude_none=True))
                finishes.append(choice.finish_reason)
        await official.close()
    assert data == audio and transcript == "Hello!"
    assert set(expiry[-1]) == {"id", "expires_at"}  # the closing delta, as the real API's
    assert set(finishes) == {None}


# -- hostile servers ---------------------------------------------------------------------
async def serve(
    frames: list[bytes], content_type: bytes = b"text/event-stream"
) -> tuple[asyncio.base_events.Server, str]:
    """A raw server that answers any request with these frames, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\nconnection: close\r\n\r\n"
        )
        for frame in frames:
            writer.write(frame)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


def audio_frame(audio: dict[str, Any]) -> bytes:
    import json

    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-audio-preview",
        "choices": [{"index": 0, "delta": {"audio": audio}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


async def test_base64_pieces_cut_mid_quantum_are_decoded_one_by_one() -> None:
    audio = bytes(range(256)) * 4
    text = base64.b64encode(audio).decode()
    cuts = [0, 5, 6, 17, 400, 401, 402, len(text)]  # pieces of 5, 1, 11, ... characters
    frames = [audio_frame({"id": "a", "transcript": "Hi"})]
    frames += [audio_frame({"data": text[a:b]}) for a, b in itertools.pairwise(cuts)]
    frames.append(audio_frame({"id": "a", "expires_at": 1}))  # ends it: no [DONE]
    server, url = await serve(frames)
    async with (
        server,
        SteerLLMClient(api_keys={"openai": OPENAI_KEY}, base_urls={"openai": url}) as client,
    ):
        parts = [
            p
            async for p in client.stream_events(
                "x", "gpt-4o-audio-preview", modalities=["text", "audio"], audio=AUDIO
            )
        ]
    deltas = [p for p in parts if isinstance(p, AudioDelta) and p.data]
    # every piece decoded on its own: a piece's whole quanta at once, its 1-3 last
    # characters with the next piece
    # (5 chars: 3 bytes, 1 kept; 1: kept; 11: 9 bytes; 383: 288; 1, 1: kept; the rest)
    assert [len(d.data) for d in deltas] == [3, 9, 288, 724]
    assert b"".join(d.data for d in deltas) == audio
    assert parts[-1].response.files[0].data == audio  # type: ignore[union-attr]


async def test_audio_that_ends_mid_quantum_is_an_error_not_a_silent_drop() -> None:
    text = base64.b64encode(b"abcd").decode()  # "YWJjZA=="
    frames = [audio_frame({"id": "a", "data": text[:6]}), audio_frame({"id": "a", "expires_at": 1})]
    server, url = await serve(frames)
    async with (
        server,
        SteerLLMClient(api_keys={"openai": OPENAI_KEY}, base_urls={"openai": url}) as client,
    ):
        with pytest.raises((InvalidResponseError, StreamInterruptedError), match="base64"):
            await client.stream_with_usage(
                "x", "gpt-4o-audio-preview", modalities=["text", "audio"], audio=AUDIO
            )


async def test_invalid_base64_in_an_image_is_a_typed_error() -> None:
    import json

    event = {
        "candidates": [
            {
                "content": {
                    "parts": [{"inlineData": {"mimeType": "image/png", "data": "@@not base64@@"}}]
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ]
    }
    server, url = await serve([b"data: " + json.dumps(event).encode() + b"\r\n\r\n"])
    base = url.removesuffix("/v1")
    async with (
        server,
        SteerLLMClient(api_keys={"gemini": GEMINI_KEY}, base_urls={"gemini": base}) as client,
    ):
        with pytest.raises(InvalidResponseError, match="base64"):
            await client.stream_with_usage(
                "x", "gemini-2.5-flash-image", response_modalities=["IMAGE"]
            )


# -- OpenAI Responses: the image_generation tool ---------------------------------------
def responses_events(image: bytes) -> list[bytes]:
    import json

    item = {
        "id": "ig_1",
        "type": "image_generation_call",
        "status": "completed",
        "output_format": "png",
        "result": base64.b64encode(image).decode(),
    }
    response = {"id": "resp_1", "object": "response", "model": "gpt-5", "status": "completed"}
    usage = {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12}
    events = [
        {"type": "response.created", "response": {**response, "status": "in_progress"}},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.output_text.delta", "output_index": 1, "delta": "Here it is."},
        {"type": "response.completed", "response": {**response, "usage": usage}},
    ]
    return [
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in events
    ]


async def test_responses_image_generation_result_is_a_file_part() -> None:
    image = png(seed=3)
    server, url = await serve(responses_events(image))
    async with (
        server,
        SteerLLMClient(api_keys={"openai": OPENAI_KEY}, base_urls={"openai": url}) as client,
    ):
        parts = [p async for p in client.stream_events("Draw", "openai-responses/gpt-5")]
    assert [p.type for p in parts] == ["file", "text-delta", "finish"]
    assert parts[0].file.data == image  # type: ignore[union-attr]
    assert parts[-1].response.files[0].media_type == "image/png"  # type: ignore[union-attr]


async def test_responses_image_in_a_whole_response() -> None:
    import json

    image = png(seed=4)
    body = {
        "id": "resp_1",
        "object": "response",
        "model": "gpt-5",
        "status": "completed",
        "output": [
            {
                "id": "ig_1",
                "type": "image_generation_call",
                "status": "completed",
                "result": base64.b64encode(image).decode(),
            },
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Done.", "annotations": []}],
            },
        ],
        "usage": {"input_tokens": 5, "output_tokens": 7, "total_tokens": 12},
    }
    server, url = await serve([json.dumps(body).encode()], b"application/json")
    async with (
        server,
        SteerLLMClient(api_keys={"openai": OPENAI_KEY}, base_urls={"openai": url}) as client,
    ):
        response = await client.generate("Draw", "openai-responses/gpt-5")
    assert response.text == "Done."
    assert [f.data for f in response.files] == [image]


async def test_image_and_audio_answers_scripted_over_http() -> None:
    import httpx

    image, audio = png(seed=7), pcm(2400)
    async with Emulator() as emu:
        async with httpx.AsyncClient(base_url=emu.url) as http:
            scripted = await http.post(
                "/emulator/enqueue",
                json=[
                    {"text": "x", "files": [["image/png", base64.b64encode(image).decode()]]},
                    {"audio": base64.b64encode(audio).decode(), "transcript": "Hi"},
                ],
            )
            assert scripted.status_code == 200
            bad = await http.post("/emulator/enqueue", json={"audio": "not base64!"})
            assert bad.status_code == 400
        async with gemini_client(emu) as gemini, openai_client(emu) as openai_client_:
            drawn = await gemini.generate("Draw", "gemini-2.5-flash-image", modalities=["IMAGE"])
            spoken = await openai_client_.stream_with_usage(
                "Say", "gpt-4o-audio-preview", modalities=["text", "audio"], audio=AUDIO
            )
    assert drawn.files[0].data == image
    assert spoken.files[0].data == audio and spoken.transcript == "Hi"
