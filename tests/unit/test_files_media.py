"""The media rules: image sizes from real headers, PDF pages, WAV seconds, and token
estimates by each provider's published rule (not by base64 length); base64 made
once per part; the test media files are real files of their formats."""

from __future__ import annotations

import base64
import struct
import wave
from io import BytesIO

from steer_llm_sdk import File
from steer_llm_sdk.content import FilePart, from_file
from steer_llm_sdk.files import sniff
from steer_llm_sdk.media import audio_seconds, file_tokens, image_size, pdf_pages
from steer_llm_sdk.streaming.estimate import estimate_usage
from tests.media import jpeg, pdf, png, wav


def test_the_test_files_are_what_they_claim() -> None:
    assert sniff(png()) == "image/png"
    assert sniff(jpeg()) == "image/jpeg"
    assert sniff(wav()) == "audio/wav"
    assert sniff(pdf()) == "application/pdf"
    with wave.open(BytesIO(wav(0.5, 8000))) as w:
        assert w.getnframes() == 4000
    raw = pdf()
    xref = int(raw.rsplit(b"startxref\n", 1)[1].split()[0])
    assert raw[xref:].startswith(b"xref")


def test_image_sizes_from_headers() -> None:
    assert image_size(png(640, 480)) == (640, 480)
    assert image_size(jpeg(1024, 16)) == (1024, 16)
    gif = b"GIF89a" + struct.pack("<HH", 300, 200) + b"\x00" * 8
    assert image_size(gif) == (300, 200)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (799).to_bytes(3, "little")
    assert image_size(vp8x + (599).to_bytes(3, "little")) == (800, 600)
    assert image_size(b"not an image") is None


def test_pdf_pages_and_wav_seconds() -> None:
    assert pdf_pages(pdf()) == 1
    assert pdf_pages(b"%PDF-1.4 /Type /Pages /Type /Page /Type /Page") == 2
    assert abs(audio_seconds(wav(2.0), "audio/wav") - 2.0) < 0.01


def test_tokens_follow_each_providers_rule() -> None:
    big = FilePart("image/png", png(2048, 4096))
    low = FilePart("image/png", png(2048, 4096), detail="low")
    # OpenAI: fit 2048, shortest side 768 → 768x1536: 2x3 tiles → 170*6 + 85.
    assert file_tokens(big, "openai-chat") == 1105
    assert file_tokens(low, "openai-responses") == 85
    # Anthropic: long edge to 1568 → 784x1568 / 750.
    assert file_tokens(big, "anthropic-messages") == 1640
    # Gemini: 258 per 768 tile (3x6), 258 for a small image.
    assert file_tokens(big, "gemini") == 258 * 18
    assert file_tokens(FilePart("image/png", png(100, 100)), "gemini") == 258
    assert file_tokens(FilePart("application/pdf", pdf()), "gemini") == 258
    assert file_tokens(FilePart("application/pdf", pdf()), "anthropic-messages") == 1500
    assert file_tokens(FilePart("audio/wav", wav(3.0)), "gemini") == 96
    # base64 given as text: read from the start of the text, not its length
    b64 = FilePart("image/png", b64=base64.b64encode(png(2048, 4096)).decode())
    assert file_tokens(b64, "anthropic-messages") == 1640


def test_estimates_count_files_not_their_base64() -> None:
    image = from_file(File(data=png(512, 512)))
    message = {"role": "user", "content": [image]}
    usage = estimate_usage(
        [message], "", protocol="anthropic-messages", aggregator_type="character"
    )
    text_only = estimate_usage([{"role": "user", "content": []}], "", aggregator_type="character")
    assert usage["prompt_tokens"] - text_only["prompt_tokens"] == 350  # 512*512/750


def test_base64_is_made_once_per_part() -> None:
    part = from_file(File(data=png(64, 64)))
    first = part.base64()
    assert part.base64() is first
    assert part.data_url() is part.data_url()
    assert part.data_url().endswith(first)


def test_only_calls_with_urls_to_download_get_the_before_send_step() -> None:
    from steer_llm_sdk import SteerLLMClient

    client = SteerLLMClient(api_keys={"openai": "sk-test-key-000000"})
    text = client._prepare("Hi", "gpt-4o-mini", {}, stream=True, method="stream")
    data = client._prepare(["Hi", File(data=png())], "gpt-4o-mini", {}, stream=True, method="s")
    fetched = client._prepare(  # an image URL: OpenAI fetches it
        ["Hi", File(url="https://x.test/cat.png")], "gpt-4o-mini", {}, stream=True, method="s"
    )
    assert text.before_send == data.before_send == fetched.before_send == ()
    pdf_url = client._prepare(  # a PDF by URL: Chat Completions takes PDFs only as data
        ["Hi", File(url="https://x.test/a.pdf")], "gpt-4o-mini", {}, stream=True, method="s"
    )
    unknown = client._prepare(  # no telling extension: downloaded and sniffed
        ["Hi", File(url="https://x.test/render")], "gpt-4o-mini", {}, stream=True, method="s"
    )
    assert len(pdf_url.before_send) == len(unknown.before_send) == 1
    assert pdf_url.request.unresolved == [(0, 1)]
