"""File URLs the SDK downloads itself (the provider does not fetch them, or their
type cannot be told): a hostile HTTP server on 127.0.0.1 that lies about
Content-Type, redirects, and streams forever. Private addresses are refused unless
allowed; the cap stops a download at the cap; redirects are limited."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from steer_llm_sdk import File, FileDownloadError, SteerLLMClient
from steer_llm_sdk.downloads import download
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator
from tests.media import pdf, png

PNG, PDF = png(5, 5), pdf()


class Hostile(BaseHTTPRequestHandler):
    """/pdf: a PDF; /liar: a PNG said to be text/html; /forever: bytes until the
    client leaves; /hop/N: N redirects, then the PDF; /html: an HTML page said to be a
    PDF."""

    sent = 0  # bytes of /forever written (the last request)

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path
        if path.startswith("/away/"):  # a redirect to another host: 127.0.0.2
            port = self.server.server_address[1]
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{port}/pdf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path.startswith("/hop/"):
            left = int(path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{left - 1}" if left > 1 else "/pdf")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == "/forever":
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.end_headers()
            Hostile.sent = 0
            chunk = b"%PDF-" + b"x" * 65531
            try:
                while Hostile.sent < 1 << 30:
                    self.wfile.write(chunk)
                    Hostile.sent += len(chunk)
            except OSError:
                return
            return
        body, kind = {
            "/pdf": (PDF, "application/pdf"),
            "/liar": (PNG, "text/html"),
            "/html": (b"<html><body>not found</body></html>", "application/pdf"),
        }[path]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Any:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def client_for(emu: Emulator, **kw: Any) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": "sk-test-key-000000", "anthropic": "sk-ant-test-0000"},
        base_urls={"openai": emu.openai_base_url, "anthropic": emu.anthropic_base_url},
        **kw,
    )


def sent_file(body: dict[str, Any]) -> dict[str, Any]:
    part: dict[str, Any] = body["messages"][-1]["content"][1]
    return part


async def test_a_url_to_a_private_address_is_refused_and_nothing_is_sent(server: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        with pytest.raises(FileDownloadError, match=r"refused to download .*127\.0\.0\.1") as info:
            await client.stream_with_usage(["read", File(url=f"{server}/pdf")], "gpt-4o-mini")
        assert emu.requests == []
    assert info.value.url == f"{server}/pdf"


async def test_allowed_private_url_is_downloaded_and_sent_as_data(server: str) -> None:
    """Chat Completions takes PDFs only as data: the SDK downloads it (allowed here:
    the server is on loopback), the body carries the original bytes."""
    async with Emulator() as emu, client_for(emu, allow_private_urls=True) as client:
        await client.stream_with_usage(["read", File(url=f"{server}/pdf")], "gpt-4o-mini")
        part = sent_file(emu.requests[-1].json)
    assert part["type"] == "file"
    assert part["file"]["filename"] == "file.pdf"
    data_url = part["file"]["file_data"]
    assert data_url.startswith("data:application/pdf;base64,")
    assert base64.b64decode(data_url.partition(",")[2]) == PDF


async def test_the_per_call_option_allows_private_urls_too(server: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        options = StreamingOptions(allow_private_urls=True)
        await client.stream_with_usage(
            ["read", File(url=f"{server}/pdf")], "gpt-4o-mini", streaming_options=options
        )
        assert len(emu.requests) == 1


async def test_a_server_lying_about_content_type_does_not_fool_the_sdk(server: str) -> None:
    """/liar says text/html and sends a PNG: sent as image/png (the URL has no
    extension, so its type is unknown until the bytes are read)."""
    async with Emulator() as emu, client_for(emu, allow_private_urls=True) as client:
        await client.stream_with_usage(
            ["see", File(url=f"{server}/liar")], "claude-3-haiku-20240307"
        )
        block = sent_file(emu.requests[-1].json)
    assert block["type"] == "image"
    assert block["source"]["media_type"] == "image/png"
    assert base64.b64decode(block["source"]["data"]) == PNG


async def test_an_html_page_said_to_be_a_pdf_is_refused(server: str) -> None:
    async with Emulator() as emu, client_for(emu, allow_private_urls=True) as client:
        with pytest.raises(FileDownloadError, match="no type the SDK can tell"):
            await client.stream_with_usage(["read", File(url=f"{server}/html")], "gpt-4o-mini")
        assert emu.requests == []


async def test_a_download_over_the_cap_stops_at_the_cap(server: str) -> None:
    cap = 1024 * 1024
    options = StreamingOptions(allow_private_urls=True, max_download_bytes=cap)
    async with Emulator() as emu, client_for(emu) as client:
        started = time.monotonic()
        with pytest.raises(FileDownloadError, match="larger than max_download_bytes=1,048,576"):
            await client.stream_with_usage(
                ["read", File(url=f"{server}/forever")], "gpt-4o-mini", streaming_options=options
            )
        assert time.monotonic() - started < 10
        assert emu.requests == []
    await asyncio.sleep(0.2)
    # The server could write only what the socket buffers held past the cap.
    assert Hostile.sent < cap + 8 * 1024 * 1024


async def test_redirects_are_followed_up_to_three(server: str) -> None:
    data = await download(f"{server}/hop/3", max_bytes=1 << 20, allow_private=True)
    assert data == PDF
    with pytest.raises(FileDownloadError, match="more than 3 redirects"):
        await download(f"{server}/hop/4", max_bytes=1 << 20, allow_private=True)


async def test_a_download_is_bounded_by_the_call_deadline(server: str) -> None:
    loop = asyncio.get_running_loop()
    with pytest.raises(FileDownloadError, match="timed out"):
        await download(
            f"{server}/forever",
            max_bytes=1 << 40,
            allow_private=True,
            deadline=loop.time() + 0.3,
        )


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/a.pdf",
        "http://10.1.2.3/a.pdf",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/a.pdf",
        "http://[::ffff:127.0.0.1]/a.pdf",
        "http://192.168.0.1/a.pdf",
    ],
)
async def test_private_loopback_and_link_local_addresses_are_refused(url: str) -> None:
    with pytest.raises(FileDownloadError, match="refused to download"):
        await download(url, max_bytes=1024)


async def test_every_redirect_is_checked_again(server: str, monkeypatch: Any) -> None:
    """The first host passes the check, the one it redirects to does not: refused
    there, before connecting (here only 127.0.0.2 counts as private)."""
    import ipaddress

    from steer_llm_sdk import downloads

    monkeypatch.setattr(downloads, "_refused", lambda ip: ip == ipaddress.ip_address("127.0.0.2"))
    assert await download(f"{server}/pdf", max_bytes=1 << 20) == PDF
    with pytest.raises(FileDownloadError, match=r"refused to download http://127\.0\.0\.2"):
        await download(f"{server}/away/1", max_bytes=1 << 20)
