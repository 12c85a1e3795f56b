"""What a file costs in input tokens, by each provider's published rule, read from the
file's headers (standard library only): image dimensions from PNG, JPEG, GIF and WebP
headers, PDF pages, audio seconds.

Rules (the providers' documentation, 2026):

- OpenAI (Chat Completions and Responses): an image at ``detail="low"`` is 85 tokens;
  otherwise it is scaled to fit 2048x2048, then its shortest side to 768, and costs
  170 per 512-pixel tile plus 85. A PDF page is its page image (765 here, a high-detail
  page) plus its text, which is not counted. Audio: about 10 tokens per second.
- Anthropic: an image is ``width * height / 750`` tokens after scaling its long edge to
  1568 pixels at most; a PDF page 1,500 tokens (the low end of the published
  1,500-3,000).
- Gemini: an image is 258 tokens when both sides are at most 384 pixels, else 258 per
  768x768 tile; a PDF page 258; audio 32 tokens per second; video 263 per second.

Unknown dimensions (a URL, a file id) count as a 1024x1024 image.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

__all__ = ["audio_seconds", "file_tokens", "image_size", "pdf_pages"]

_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG, JPEG, GIF or WebP header, else None."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            width, height = struct.unpack(">II", data[16:24])
            return int(width), int(height)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", data[6:10])
            return int(width), int(height)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg(data)
    except struct.error:
        return None
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if kind == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if kind == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return int(width), int(height)
        at += 2 + int(length)
    return None


def pdf_pages(data: bytes) -> int:
    """The number of page objects in a PDF (1 when they are compressed out of sight)."""
    return max(1, len(_PAGE.findall(data)))


def audio_seconds(data: bytes, media_type: str) -> float:
    """A WAV's duration from its header; other audio at 128 kbit/s."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE" and len(data) >= 44:
        (byte_rate,) = struct.unpack("<I", data[28:32])
        if byte_rate:
            return max(len(data) - 44, 0) / byte_rate
    return len(data) / 16000


def _openai_image(size: tuple[int, int], detail: str | None) -> int:
    if detail == "low":
        return 85
    scale = min(1.0, 2048 / max(size))
    width, height = size[0] * scale, size[1] * scale
    scale = min(1.0, 768 / min(width, height))
    return 170 * math.ceil(width * scale / 512) * math.ceil(height * scale / 512) + 85


def _anthropic_image(size: tuple[int, int]) -> int:
    width, height = size
    scale = min(1.0, 1568 / max(width, height))
    return max(1, math.ceil(width * scale * height * scale / 750))


def _gemini_image(size: tuple[int, int]) -> int:
    width, height = size
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


def file_tokens(part: Any, protocol: str) -> int:
    """The input tokens of a :class:`~steer_llm_sdk.content.FilePart` on ``protocol``."""
    media = part.media_type or ""
    inline = part.data is not None or part.b64 is not None
    family = "gemini" if protocol == "gemini" else protocol.split("-")[0]
    if media.startswith("image/") or not media:
        size = image_size(_head(part)) if inline else None
        size = size or (1024, 1024)
        if family == "anthropic":
            return _anthropic_image(size)
        if family == "gemini":
            return _gemini_image(size)
        return _openai_image(size, part.detail)
    if media == "application/pdf":
        pages = pdf_pages(part.content()) if inline else 1
        return pages * {"anthropic": 1500, "gemini": 258}.get(family, 765)
    if media.startswith(("audio/", "video/")):
        seconds = audio_seconds(part.content(), media) if inline else 60.0
        per_second = 10 if family == "openai" else 32
        if media.startswith("video/"):
            per_second = 263
        return math.ceil(seconds * per_second)
    if inline and media.startswith("text/"):  # a text document: about 4 bytes a token
        return math.ceil(part.size() / 4)
    return 258


def _head(part: Any) -> bytes:
    """The first bytes of the part's data (enough for any header), decoding only the
    start of base64 text."""
    if part.data is not None:
        return bytes(part.data[:65536])
    import binascii

    text = "".join(part.b64[:87384].split()).translate(str.maketrans("-_", "+/"))
    text = text[: len(text) // 4 * 4]
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError):
        return b""
