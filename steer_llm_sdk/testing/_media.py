"""The emulator's checks of files in requests, per API, as the real ones make them:
valid base64, allowed media types and source kinds, size limits, Anthropic's
document rules (and its check that an image's bytes are of the type it names),
OpenAI's audio formats, which parts a tool result may hold. Each check returns the
problem (the text of the 400 the real API answers) or None. Standard library only.
"""

from __future__ import annotations

import binascii
from typing import Any

__all__ = ["check_anthropic", "check_chat", "check_gemini", "check_responses_input"]

MB = 1024 * 1024
OPENAI_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")
OPENAI_IMAGE_BYTES = 20 * MB  # per image, as documented for image inputs
OPENAI_FILE_BYTES = 50 * MB  # per file input
ANTHROPIC_IMAGE_BYTES = 5 * MB  # per image (API)
ANTHROPIC_REQUEST_BYTES = 32 * MB  # a request with PDFs
GEMINI_INLINE_BYTES = 20 * MB  # inline data in one request
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


def _decode(text: Any, lenient: bool = False) -> bytes | None:
    """Base64 text → bytes; None when it is not base64 (strictly: the standard
    alphabet with padding; leniently, as protobuf JSON reads it: URL-safe, no
    padding, line breaks)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        if lenient:
            text = "".join(text.split()).replace("-", "+").replace("_", "/").rstrip("=")
            text += "=" * (-len(text) % 4)
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _magic(data: bytes) -> str | None:
    for magic, media_type in _MAGIC.items():
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _data_url(url: Any) -> tuple[str, bytes | None] | None:
    """A base64 ``data:`` URL → (media type, bytes or None when malformed); None
    when it is not a data URL."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return None
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        return header[5:], None
    return header[5:-7].lower(), _decode(payload)


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("https://", "http://"))


# -- OpenAI Chat Completions ------------------------------------------------------------
def check_chat(body: dict[str, Any]) -> str | None:
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            where = f"messages[{i}].content[{j}]"
            kind = part.get("type") if isinstance(part, dict) else None
            if message.get("role") in ("tool", "system", "developer") and kind != "text":
                return (
                    f"Invalid value: '{kind}'. Supported values are: 'text'. "
                    f"(param: {where}.type; {message.get('role')} messages hold text only)"
                )
            problem = _chat_part(part, kind, where)
            if problem:
                return problem
    return None


def _chat_part(part: dict[str, Any], kind: Any, where: str) -> str | None:
    if kind == "image_url":
        url = (part.get("image_url") or {}).get("url")
        data = _data_url(url)
        if data is None:
            return None if _is_url(url) else f"Invalid image URL: {where}.image_url.url"
        media_type, raw = data
        if raw is None:
            return f"Invalid base64 image data: {where}.image_url.url"
        if media_type not in OPENAI_IMAGES or _magic(raw) is None:
            return (
                "You uploaded an unsupported image. Please make sure your image has of one "
                "the following formats: ['png', 'jpeg', 'gif', 'webp']."
            )
        if len(raw) > OPENAI_IMAGE_BYTES:
            return f"Image too large: {where} ({len(raw)} bytes; the limit is 20 MB)"
    elif kind == "input_audio":
        audio = part.get("input_audio") or {}
        if audio.get("format") not in ("wav", "mp3"):
            return (
                f"Invalid value: '{audio.get('format')}'. Supported values are: 'wav' and "
                f"'mp3'. (param: {where}.input_audio.format)"
            )
        if _decode(audio.get("data")) is None:
            return f"Invalid base64 audio data: {where}.input_audio.data"
    elif kind == "file":
        file = part.get("file") or {}
        if file.get("file_id"):
            return None
        data = _data_url(file.get("file_data"))
        if data is None or data[1] is None:
            return f"Invalid file data: {where}.file.file_data must be a base64 data URL"
        if data[0] != "application/pdf" or not data[1].startswith(b"%PDF-"):
            return (
                f"Invalid file data: {where}. Expected a base64-encoded data URL with an "
                "application/pdf MIME type"
            )
        if not file.get("filename"):
            return f"Missing required parameter: '{where}.file.filename'."
        if len(data[1]) > OPENAI_FILE_BYTES:
            return f"File too large: {where} (the limit is 50 MB)"
    return None


# -- OpenAI Responses --------------------------------------------------------------------
def check_responses_input(body: dict[str, Any]) -> str | None:
    items = body.get("input")
    if not isinstance(items, list):
        return None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output" and isinstance(item.get("output"), list):
            parts, at = item["output"], f"input[{i}].output"
        elif isinstance(item.get("content"), list):
            parts, at = item["content"], f"input[{i}].content"
        else:
            continue
        for j, part in enumerate(parts):
            problem = _responses_part(part, f"{at}[{j}]")
            if problem:
                return problem
    return None


def _responses_part(part: Any, where: str) -> str | None:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "refusal"):
        return None
    if kind == "input_image":
        if part.get("file_id"):
            return None
        url = part.get("image_url")
        data = _data_url(url)
        if data is None:
            return None if _is_url(url) else f"Invalid image URL: {where}.image_url"
        if data[1] is None or data[0] not in OPENAI_IMAGES or _magic(data[1]) is None:
            return f"Invalid image: {where}.image_url (png, jpeg, gif or webp, base64)"
        return None
    if kind == "input_file":
        given = [k for k in ("file_data", "file_url", "file_id") if part.get(k)]
        if len(given) != 1:
            return f"{where}: give exactly one of file_data, file_url and file_id"
        if given[0] == "file_data":
            data = _data_url(part["file_data"])
            if data is None or data[1] is None:
                return f"Invalid file data: {where}.file_data must be a base64 data URL"
            if not part.get("filename"):
                return f"Missing required parameter: '{where}.filename'."
        return None
    return (
        f"Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image' and "
        f"'input_file'. (param: {where}.type)"
    )


# -- Anthropic Messages ------------------------------------------------------------------
def check_anthropic(body: dict[str, Any], headers: dict[str, str]) -> str | None:
    beta = headers.get("anthropic-beta", "")
    total = 0
    for i, message in enumerate(body.get("messages") or ()):
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            where = f"messages.{i}.content.{j}"
            blocks = [(where, block)]
            if isinstance(block, dict) and isinstance(block.get("content"), list):
                inner = block["content"] if block.get("type") == "tool_result" else []
                blocks += [(f"{where}.content.{k}", b) for k, b in enumerate(inner)]
            for at, item in blocks:
                problem, size = _anthropic_block(item, at, beta)
                if problem:
                    return problem
                total += size
    if total > ANTHROPIC_REQUEST_BYTES:
        return f"request_too_large: the files total {total} bytes (the limit is 32 MB)"
    return None


def _anthropic_block(block: Any, where: str, beta: str) -> tuple[str | None, int]:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in ("image", "document"):
        return None, 0
    source = block.get("source") or {}
    source_type = source.get("type")
    if source_type == "file":
        if "files-api" not in beta:
            return f"{where}.source: file sources need the 'anthropic-beta: files-api' header", 0
        return (
            (None, 0) if source.get("file_id") else (f"{where}.source.file_id: Field required", 0)
        )
    if source_type == "url":
        return (None, 0) if _is_url(source.get("url")) else (f"{where}.source.url: invalid", 0)
    if kind == "document" and source_type == "text":
        ok = source.get("media_type") == "text/plain" and isinstance(source.get("data"), str)
        return (None, 0) if ok else (f"{where}.source: a text source is text/plain text", 0)
    if kind == "document" and source_type == "content":
        return None, 0
    if source_type != "base64":
        return f"{where}.source.type: Input tag '{source_type}' is not expected", 0
    media_type = source.get("media_type")
    data = _decode(source.get("data"))
    if data is None:
        return f"{where}.source.data: invalid base64 data", 0
    if kind == "image":
        if media_type not in OPENAI_IMAGES:
            return (
                f"{where}.source.media_type: Input should be 'image/jpeg', 'image/png', "
                "'image/gif' or 'image/webp'"
            ), 0
        if _magic(data) != media_type:
            return f"{where}.source: Image does not match the provided media type {media_type}", 0
        if len(data) > ANTHROPIC_IMAGE_BYTES:
            return f"{where}.source.base64: image exceeds 5 MB maximum: {len(data)} bytes", 0
        return None, len(data)
    if media_type != "application/pdf":
        return f"{where}.source.media_type: Input should be 'application/pdf'", 0
    if not data.startswith(b"%PDF-"):
        return f"{where}.source: The PDF specified was not valid.", 0
    return None, len(data)


# -- Gemini ----------------------------------------------------------------------------
_GEMINI_TYPES = ("image/", "audio/", "video/", "text/", "application/pdf", "application/json")


def check_gemini(body: dict[str, Any]) -> str | None:
    total = 0
    for i, content in enumerate(body.get("contents") or ()):
        parts = content.get("parts") if isinstance(content, dict) else None
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            if not isinstance(part, dict):
                continue
            found = [(f"contents[{i}].parts[{j}]", part)]
            response = part.get("functionResponse")
            if isinstance(response, dict):
                for k, inner in enumerate(response.get("parts") or ()):
                    at = f"contents[{i}].parts[{j}].function_response.parts[{k}]"
                    if isinstance(inner, dict) and "fileData" in inner:
                        return f"Invalid JSON payload: {at}: file_data is not supported here"
                    found.append((at, inner))
            for where, item in found:
                problem, size = _gemini_part(item, where)
                if problem:
                    return problem
                total += size
    if total > GEMINI_INLINE_BYTES:
        return f"Request payload size exceeds the limit: {GEMINI_INLINE_BYTES} bytes."
    return None


def _gemini_part(part: Any, where: str) -> tuple[str | None, int]:
    if not isinstance(part, dict):
        return None, 0
    inline = part.get("inlineData", part.get("inline_data"))
    if isinstance(inline, dict):
        media_type = inline.get("mimeType", inline.get("mime_type"))
        if not isinstance(media_type, str) or not media_type.startswith(_GEMINI_TYPES):
            return f"Unsupported MIME type: {media_type}", 0
        data = _decode(inline.get("data"), lenient=True)
        if data is None:
            return (
                f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed",
                0,
            )
        return None, len(data)
    file_data = part.get("fileData", part.get("file_data"))
    if isinstance(file_data, dict) and not file_data.get("fileUri", file_data.get("file_uri")):
        return f"{where}.file_data.file_uri: required", 0
    return None, 0
