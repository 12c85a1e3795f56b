"""The providers' Files APIs over real sockets: ``client.upload_file()`` for OpenAI,
Anthropic and Gemini against the emulator (which the official SDKs' own uploads
agree with), typed errors without the key, and the automatic upload of a request's
inline files past the provider's limit, said in ``response.warnings``."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib

import pytest

from steer_llm_sdk import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    File,
    SteerError,
    SteerLLM,
    SteerLLMClient,
)
from steer_llm_sdk import uploads as uploads_module
from steer_llm_sdk.testing import Emulator

OPENAI_KEY = "sk-test-openai-upload-key-000000"
ANTHROPIC_KEY = "sk-ant-test-upload-key-000000"
GEMINI_KEY = "AIzaSyTEST-gemini-upload-key-0000000000"


def pdf(pages: int = 1) -> bytes:
    """A small, valid PDF made here."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"]
    objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out + b"%" + b"x" * (pages * 1000) + b"\n"


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def pdf_part(data: bytes, filename: str | None = None) -> dict[str, object]:
    """A PDF as an OpenAI-style content part (base64 in a data URL)."""
    import base64

    file: dict[str, str] = {
        "file_data": "data:application/pdf;base64," + base64.b64encode(data).decode()
    }
    if filename:
        file["filename"] = filename
    return {"type": "file", "file": file}


def png_part(data: bytes) -> dict[str, object]:
    import base64

    url = "data:image/png;base64," + base64.b64encode(data).decode()
    return {"type": "image_url", "image_url": {"url": url}}


def client_for(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY, "gemini": GEMINI_KEY},
        base_urls={
            "openai": emu.openai_base_url,
            "anthropic": emu.anthropic_base_url,
            "gemini": emu.gemini_base_url,
        },
    )


# -- upload_file ------------------------------------------------------------------------
async def test_openai_upload_is_multipart_with_a_purpose_by_type() -> None:
    document, image = pdf(), png()
    async with Emulator() as emu, client_for(emu) as client:
        uploaded = await client.upload_file(
            File(data=document, filename="report.pdf"), provider="openai"
        )
        picture = await client.upload_file(File(data=image), provider="openai")
        sent = emu.requests[0]
    assert uploaded.file_id is not None and uploaded.file_id.startswith("file-")
    assert uploaded.media_type == "application/pdf" and uploaded.filename == "report.pdf"
    stored = emu.files[uploaded.file_id]
    assert stored.data == document and stored.purpose == "user_data"
    assert stored.media_type == "application/pdf"
    assert emu.files[picture.file_id or ""].purpose == "vision"
    assert emu.files[picture.file_id or ""].filename == "file.png"
    assert sent.path == "/v1/files"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.headers["content-type"].startswith("multipart/form-data; boundary=")


async def test_anthropic_upload_sends_the_beta_header() -> None:
    document = pdf()
    async with Emulator() as emu, client_for(emu) as client:
        uploaded = await client.upload_file(
            File(data=document, filename="a.pdf"), provider="anthropic"
        )
        sent = emu.requests[0]
    assert uploaded.file_id is not None and uploaded.file_id.startswith("file_")
    assert uploaded.media_type == "application/pdf"
    assert emu.files[uploaded.file_id].data == document
    assert sent.headers["anthropic-beta"] == "files-api-2025-04-14"  # taken, not needed now
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert "authorization" not in sent.headers


async def test_gemini_resumable_upload_returns_the_files_uri() -> None:
    document = pdf()
    async with Emulator() as emu, client_for(emu) as client:
        uploaded = await client.upload_file(
            File(data=document, filename="r.pdf"), provider="gemini"
        )
        start, finish = emu.requests[0], emu.requests[1]
    assert uploaded.file_id is None
    assert uploaded.url is not None and uploaded.url.startswith(
        emu.gemini_base_url + "/v1beta/files/"
    )
    assert uploaded.media_type == "application/pdf"
    name = uploaded.url.removeprefix(emu.gemini_base_url + "/v1beta/")
    assert emu.files[name].data == document and emu.files[name].filename == "r.pdf"
    assert start.path == "/upload/v1beta/files"
    assert start.headers["x-goog-upload-protocol"] == "resumable"
    assert start.headers["x-goog-upload-header-content-length"] == str(len(document))
    assert finish.headers["x-goog-upload-command"] == "upload, finalize"
    assert start.headers["x-goog-api-key"] == GEMINI_KEY
    assert "x-goog-api-key" not in finish.headers  # the upload URL is its own credential


async def test_gemini_upload_waits_while_the_file_is_processing() -> None:
    video = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200  # an MP4 header: video/mp4
    async with Emulator() as emu, client_for(emu) as client:
        uploaded = await client.upload_file(File(data=video), provider="gemini")
        paths = [r.path for r in emu.requests]
    assert uploaded.media_type == "video/mp4"
    assert paths[-1].startswith("/v1beta/files/")  # asked until ACTIVE
    assert len(paths) == 3


def test_the_sync_client_uploads_too() -> None:
    emu = Emulator.start_in_thread()
    try:
        with SteerLLM(
            api_keys={"openai": OPENAI_KEY}, base_urls={"openai": emu.openai_base_url}
        ) as client:
            made = client.upload_file(File(data=pdf()), provider="openai")
        assert made.file_id in emu.files
    finally:
        emu.stop()


async def test_upload_errors_are_typed_and_never_show_the_key() -> None:
    """A server that echoes the key in its error body: the typed error redacts it."""
    import json

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        body = json.dumps(
            {"error": {"message": f"bad key {ANTHROPIC_KEY}", "type": "invalid_request_error"}}
        ).encode()
        writer.write(
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with (
        server,
        SteerLLMClient(
            api_keys={"anthropic": ANTHROPIC_KEY}, base_urls={"anthropic": url}
        ) as client,
    ):
        with pytest.raises(BadRequestError) as caught:
            await client.upload_file(File(data=pdf()), provider="anthropic")
    error = caught.value
    text = f"{error!r} {error} {error.__cause__!r} {error.__context__!r} {vars(error)}"
    assert "bad key" in text and ANTHROPIC_KEY not in text
    assert error.provider == "anthropic"


async def test_an_unknown_route_is_a_typed_error() -> None:
    async with Emulator() as emu:
        async with SteerLLMClient(
            api_keys={"anthropic": ANTHROPIC_KEY}, base_urls={"anthropic": emu.url + "/nowhere"}
        ) as client:
            with pytest.raises(SteerError) as caught:
                await client.upload_file(File(data=pdf()), provider="anthropic")
    assert caught.value.status_code == 404  # type: ignore[attr-defined]


async def test_what_cannot_be_uploaded_is_refused_before_anything_is_sent() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        with pytest.raises(ConfigurationError, match="has no Files API"):
            await client.upload_file(File(data=pdf()), provider="groq")
        with pytest.raises(ConfigurationError, match="bytes"):
            await client.upload_file(File(url="https://example.com/a.pdf"), provider="openai")
        with pytest.raises(ConfigurationError, match="no provider"):
            await client.upload_file(File(data=pdf()), provider="nope")
        assert emu.requests == []


async def test_a_refused_key_is_an_authentication_error_without_the_key() -> None:
    async with Emulator() as emu:
        # The emulator refuses a request with no key at all: send one with none.
        async with SteerLLMClient(
            providers={"bare": {"base_url": emu.openai_base_url, "api_key_env": None}},
        ) as client:
            with pytest.raises(AuthenticationError):
                await client.upload_file(File(data=pdf()), provider="bare")


# -- the official SDKs against the emulator's Files APIs --------------------------------
async def test_official_openai_sdk_uploads_to_the_emulator() -> None:
    import openai

    document = pdf()
    async with Emulator() as emu:
        official = openai.AsyncOpenAI(api_key=OPENAI_KEY, base_url=emu.openai_base_url)
        made = await official.files.create(
            file=("r.pdf", document, "application/pdf"), purpose="user_data"
        )
        await official.close()
    assert made.id.startswith("file-") and made.bytes == len(document)
    assert emu.files[made.id].data == document and emu.files[made.id].purpose == "user_data"


async def test_official_anthropic_sdk_uploads_to_the_emulator() -> None:
    import anthropic

    document = pdf()
    async with Emulator() as emu:
        official = anthropic.AsyncAnthropic(api_key=ANTHROPIC_KEY, base_url=emu.anthropic_base_url)
        made = await official.beta.files.upload(file=("r.pdf", document, "application/pdf"))
        await official.close()
    assert made.id.startswith("file_") and made.size_bytes == len(document)
    assert emu.files[made.id].data == document


async def test_official_google_genai_uploads_to_the_emulator() -> None:
    from google import genai
    from google.genai import types

    document = pdf()
    async with Emulator() as emu:
        official = genai.Client(
            api_key=GEMINI_KEY,
            http_options=types.HttpOptions(base_url=emu.gemini_base_url, api_version="v1beta"),
        )
        made = await official.aio.files.upload(
            file=io.BytesIO(document),
            config={"mime_type": "application/pdf", "display_name": "r.pdf"},
        )
        again = await official.aio.files.get(name=made.name or "")
    assert made.name is not None and emu.files[made.name].data == document
    assert made.uri == again.uri and again.state == types.FileState.ACTIVE
    assert made.mime_type == "application/pdf" and made.size_bytes == len(document)


# -- automatic upload ---------------------------------------------------------------------
@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inline limits of 4 KB, so that a test's files pass them."""
    for protocol in list(uploads_module.INLINE_LIMITS):
        monkeypatch.setitem(uploads_module.INLINE_LIMITS, protocol, 4096)


async def test_gemini_request_past_the_inline_limit_uploads_and_says_so(small_limits: None) -> None:
    big, small = pdf(pages=5), png()
    async with Emulator() as emu, client_for(emu) as client:
        response = await client.generate(
            [
                {
                    "role": "user",
                    "content": ["Read these", pdf_part(big, "big.pdf"), png_part(small)],
                }
            ],
            "gemini-2.5-flash",
        )
        sent = emu.requests[-1].json
    parts = sent["contents"][0]["parts"]
    file_data = [p["fileData"] for p in parts if "fileData" in p]
    inline = [p["inlineData"] for p in parts if "inlineData" in p]
    assert len(file_data) == 1 and file_data[0]["mimeType"] == "application/pdf"
    uploaded = next(iter(emu.files.values()))
    assert uploaded.data == big
    assert file_data[0]["fileUri"].endswith(uploaded.id)
    assert len(inline) == 1 and inline[0]["mimeType"] == "image/png"  # under the limit now
    assert any("uploaded to gemini's Files API" in w for w in response.warnings)


async def test_openai_request_past_the_limit_uploads_the_pdf_once_for_every_retry(
    small_limits: None,
) -> None:
    from steer_llm_sdk.testing import Reply

    big = pdf(pages=5)
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(status=500), Reply(text="Read it."))
        response = await client.stream_with_usage(
            [{"role": "user", "content": ["Read", pdf_part(big, "big.pdf")]}],
            "gpt-4o-mini",
        )
        chats = [r.json for r in emu.requests if r.path == "/v1/chat/completions"]
    assert response.text == "Read it." and response.attempts == 2
    assert len(emu.files) == 1  # uploaded once, before the first attempt
    file_id = next(iter(emu.files))
    for body in chats:
        assert body["messages"][0]["content"][1] == {
            "type": "file",
            "file": {"file_id": file_id, "filename": "big.pdf"},
        }
    assert len(response.warnings) == 1 and file_id in response.warnings[0]


async def test_a_request_under_the_limit_uploads_nothing() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        response = await client.generate(
            [{"role": "user", "content": ["Read", pdf_part(pdf())]}], "gemini-2.5-flash"
        )
    assert emu.files == {} and response.warnings == []
    assert len(emu.requests) == 1


async def test_a_failed_automatic_upload_is_the_calls_typed_error(
    small_limits: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Emulator() as emu:
        async with SteerLLMClient(
            api_keys={"gemini": GEMINI_KEY}, base_urls={"gemini": emu.url + "/broken"}
        ) as client:
            with pytest.raises(SteerError) as caught:
                await client.generate(
                    [{"role": "user", "content": ["x", pdf_part(pdf(pages=5))]}],
                    "gemini-2.5-flash",
                )
    assert GEMINI_KEY not in f"{caught.value!r} {caught.value}"
    assert not any("generateContent" in r.path for r in emu.requests)  # never sent


def test_a_text_only_request_is_never_oversize() -> None:
    from types import SimpleNamespace

    call = SimpleNamespace(
        provider=SimpleNamespace(protocol="gemini"),
        request=SimpleNamespace(messages=[{"role": "user", "content": "hi"}] * 50),
    )
    assert uploads_module.oversize(call) is False


# -- the emulator's Files APIs reject what the real ones reject ---------------------------
async def test_emulated_files_apis_validate_like_the_real_ones() -> None:
    import httpx

    async with Emulator() as emu, httpx.AsyncClient(base_url=emu.url) as http:
        bearer = {"authorization": f"Bearer {OPENAI_KEY}"}
        no_purpose = await http.post("/v1/files", headers=bearer, files={"file": ("a.pdf", pdf())})
        assert no_purpose.status_code == 400
        assert "purpose" in no_purpose.json()["error"]["message"]
        bad_purpose = await http.post(
            "/v1/files", headers=bearer, files={"file": ("a.pdf", pdf())}, data={"purpose": "x"}
        )
        assert bad_purpose.status_code == 400
        no_file = await http.post("/v1/files", headers=bearer, data={"purpose": "user_data"})
        assert no_file.status_code == 400
        no_key = await http.post(
            "/v1/files", files={"file": ("a.pdf", pdf())}, data={"purpose": "user_data"}
        )
        assert no_key.status_code == 401
        anthropic_no_version = await http.post(
            "/v1/files", headers={"x-api-key": "k"}, files={"file": ("a.pdf", pdf())}
        )
        assert anthropic_no_version.status_code == 400  # Anthropic's own answer
        assert "anthropic-version" in anthropic_no_version.json()["error"]["message"]
        goog = {"x-goog-api-key": GEMINI_KEY}
        not_resumable = await http.post("/upload/v1beta/files", headers=goog, content=b"{}")
        assert not_resumable.status_code == 400
        start = await http.post(
            "/upload/v1beta/files",
            headers={
                **goog,
                "x-goog-upload-protocol": "resumable",
                "x-goog-upload-command": "start",
                "x-goog-upload-header-content-length": "10",
                "x-goog-upload-header-content-type": "application/pdf",
            },
            content=b"{}",
        )
        assert start.status_code == 200
        upload_url = start.headers["x-goog-upload-url"]
        wrong_offset = await http.post(
            upload_url,
            headers={"x-goog-upload-command": "upload", "x-goog-upload-offset": "4"},
            content=b"12345",
        )
        assert wrong_offset.status_code == 400
        first = await http.post(
            upload_url,
            headers={"x-goog-upload-command": "upload", "x-goog-upload-offset": "0"},
            content=b"12345",
        )
        assert first.headers["x-goog-upload-status"] == "active"
        short = await http.post(
            upload_url,
            headers={"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "5"},
            content=b"123",
        )
        assert short.status_code == 400 and "announced" in short.json()["error"]["message"]
        missing = await http.get("/v1beta/files/nothing", headers=goog)
        assert missing.status_code == 404
        no_key_get = await http.get("/v1beta/files/nothing")
        assert no_key_get.status_code == 403
    assert emu.files == {}


async def test_a_stalled_files_api_is_a_timeout_not_a_hang() -> None:
    from steer_llm_sdk import TimeoutError as SteerTimeout

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)  # never answers

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    async with (
        server,
        SteerLLMClient(api_keys={"openai": OPENAI_KEY}, base_urls={"openai": url}) as client,
    ):
        started = asyncio.get_running_loop().time()
        with pytest.raises(SteerTimeout) as caught:
            await client.upload_file(File(data=pdf()), provider="openai", timeout=0.5)
        assert asyncio.get_running_loop().time() - started < 5
    assert OPENAI_KEY not in f"{caught.value!r} {caught.value}"


@pytest.mark.skipif(
    not __import__(
        "steer_llm_sdk.providers.anthropic", fromlist=["x"]
    ).AnthropicCodec.accepts_file_ids,
    reason="the Anthropic codec does not send file ids yet (its file sources come with the "
    "input side of issue #17); the automatic upload needs them",
)
async def test_anthropic_request_past_the_limit_uploads(small_limits: None) -> None:
    big = pdf(pages=5)
    async with Emulator() as emu, client_for(emu) as client:
        response = await client.generate(
            [{"role": "user", "content": ["Read", pdf_part(big, "big.pdf")]}],
            "claude-3-haiku-20240307",
        )
        sent = emu.requests[-1]
    file_id = next(iter(emu.files))
    assert emu.files[file_id].data == big
    assert file_id.encode() in sent.body and b"base64" not in sent.body
    assert any(file_id in w for w in response.warnings)
