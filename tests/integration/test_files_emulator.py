"""The emulator checks files in requests the way each real API does (a 400 in the
API's own error shape): invalid base64, media types and source kinds an API does not
take, OpenAI's audio formats, Anthropic's document rules and image/media-type match,
files in tool messages; and it takes what the SDK sends."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from steer_llm_sdk.testing import Emulator
from tests.media import jpeg, pdf, png, wav

PNG64, JPEG64 = base64.b64encode(png()).decode(), base64.b64encode(jpeg()).decode()
PDF64, WAV64 = base64.b64encode(pdf()).decode(), base64.b64encode(wav()).decode()


def chat(*parts: Any, role: str = "user") -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": role, "content": list(parts)}]}


def responses(*parts: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "input": [{"role": "user", "content": list(parts)}]}


def claude(*blocks: Any) -> dict[str, Any]:
    return {
        "model": "claude-3-haiku-20240307",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": list(blocks)}],
    }


def gemini(*parts: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": list(parts)}]}


def image_url(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def b64_image(media_type: str, data: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def document(source: dict[str, Any]) -> dict[str, Any]:
    return {"type": "document", "source": source}


def inline(media_type: str, data: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": media_type, "data": data}}


def input_image(url: str) -> dict[str, Any]:
    return {"type": "input_image", "image_url": url, "detail": "auto"}


CASES = [
    ("openai", chat(image_url(f"data:image/png;base64,{PNG64[:-3]}!")), "Invalid base64"),
    ("openai", chat(image_url(f"data:image/bmp;base64,{PNG64}")), "unsupported image"),
    (
        "openai",
        chat({"type": "input_audio", "input_audio": {"data": WAV64, "format": "flac"}}),
        "Supported values are: 'wav' and 'mp3'",
    ),
    (
        "openai",
        chat({"type": "file", "file": {"file_data": f"data:text/plain;base64,{PNG64}"}}),
        "application/pdf MIME type",
    ),
    (
        "openai",
        chat({"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF64}"}}),
        "file.filename",
    ),
    ("openai", chat(image_url(f"data:image/png;base64,{PNG64}"), role="system"), "'text'"),
    ("responses", responses({"type": "input_audio"}), "Invalid value: 'input_audio'"),
    (
        "responses",
        responses({"type": "input_file", "file_data": f"data:application/pdf;base64,{PDF64}"}),
        "filename",
    ),
    ("anthropic", claude(b64_image("image/png", JPEG64)), "does not match the provided media"),
    ("anthropic", claude(b64_image("image/bmp", PNG64)), "Input should be 'image/jpeg'"),
    ("anthropic", claude(b64_image("image/png", "@@@@")), "invalid base64"),
    (
        "anthropic",
        claude(document({"type": "base64", "media_type": "text/plain", "data": PDF64})),
        "Input should be 'application/pdf'",
    ),
    (
        "anthropic",
        claude(document({"type": "file", "file_id": "file_1"})),
        "anthropic-beta",
    ),
    ("gemini", gemini(inline("application/zip", PNG64)), "Unsupported MIME"),
    ("gemini", gemini(inline("image/png", "@@@")), "Base64 decoding failed"),
]  # fmt: skip
PATHS = {
    "openai": "/v1/chat/completions",
    "responses": "/v1/responses",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:generateContent",
}


def url_of(emu: Emulator, api: str) -> str:
    base = {
        "openai": emu.openai_base_url,
        "responses": emu.openai_base_url,
        "anthropic": emu.anthropic_base_url,
        "gemini": emu.gemini_base_url,
    }[api]
    return base.removesuffix("/v1").removesuffix("/v1beta") + PATHS[api]


@pytest.mark.parametrize(("api", "body", "match"), CASES)
async def test_the_emulator_refuses_what_the_real_api_refuses(
    api: str, body: dict[str, Any], match: str
) -> None:
    async with Emulator() as emu, httpx.AsyncClient() as http:
        answer = await http.post(
            url_of(emu, api),
            json=body,
            headers={"authorization": "Bearer k", "x-api-key": "k", "x-goog-api-key": "k"},
        )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert match in error["message"]
    if api == "gemini":
        assert error["status"] == "INVALID_ARGUMENT"
    elif api == "anthropic":
        assert answer.json()["type"] == "error" and error["type"] == "invalid_request_error"
    else:
        assert error["type"] == "invalid_request_error"


async def test_the_emulator_takes_valid_files_on_every_api() -> None:
    good = [
        ("openai", chat(image_url(f"data:image/png;base64,{PNG64}"))),
        ("openai", chat({"type": "input_audio", "input_audio": {"data": WAV64, "format": "wav"}})),
        ("responses", responses(input_image(f"data:image/jpeg;base64,{JPEG64}"))),
        ("anthropic", claude(b64_image("image/jpeg", JPEG64))),
        ("anthropic", claude(document({"type": "text", "media_type": "text/plain", "data": "hi"}))),
        ("gemini", gemini(inline("audio/wav", WAV64))),
    ]  # fmt: skip
    async with Emulator() as emu, httpx.AsyncClient() as http:
        for api, body in good:
            answer = await http.post(
                url_of(emu, api),
                json=body,
                headers={"authorization": "Bearer k", "x-api-key": "k", "x-goog-api-key": "k"},
            )
            assert answer.status_code == 200, (api, answer.text)
