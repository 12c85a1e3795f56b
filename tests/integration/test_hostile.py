"""Hostile and broken servers, over real sockets: the emulator's hostile faults, and a
raw asyncio server where a response must be malformed in ways no emulator would be.

Each test states the rule (README, "Reliability") it checks.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import pathlib
import shutil
import ssl
import subprocess
import sys
import time
import traceback
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.errors import (
    APIStatusError,
    BadRequestError,
    ConfigurationError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    SteerError,
    TotalTimeoutError,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator, Fault, Reply

NO_RETRY = StreamingOptions(retry_on_connection_error=False)
KEY = "sk-hostile-test-key-0123456789abcdef"


@pytest.fixture
async def hostile_client(emulator: Emulator) -> AsyncIterator[SteerLLMClient]:
    async with SteerLLMClient(
        api_keys={"openai": KEY, "anthropic": KEY, "gemini": KEY},
        base_urls={
            "openai": emulator.openai_base_url,
            "anthropic": emulator.anthropic_base_url,
            "gemini": emulator.gemini_base_url,
        },
    ) as client:
        yield client


async def collect(client: SteerLLMClient, model: str, **kw: object) -> str:
    return "".join([chunk async for chunk in client.stream("Hi", model, **kw)])


# -- a raw server for responses no well-behaved emulator sends -----------------------
Handler = Callable[[bytes], Awaitable[bytes]]


class RawServer:
    """Reads one HTTP request per connection, answers with the bytes ``handler``
    returns for the request head, then closes."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.heads: list[bytes] = []
        self.server: asyncio.base_events.Server | None = None
        self.tls = tls

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            writer.write(await self.handler(head))
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def raw_client(url: str) -> SteerLLMClient:
    return SteerLLMClient(api_keys={"raw": KEY}, providers={"raw": {"base_url": url + "/v1"}})


# -- bounded: lines, bodies, encodings, waits -----------------------------------------
async def test_a_line_that_never_ends_is_a_typed_error_not_unbounded_memory(
    emulator: Emulator, hostile_client: SteerLLMClient, model: str
) -> None:
    emulator.enqueue(Reply(fault=Fault.huge_line(4 * 1024 * 1024)))
    options = StreamingOptions(retry_on_connection_error=False, max_event_bytes=1024 * 1024)
    with pytest.raises(InvalidResponseError, match="max_event_bytes=1048576"):
        await collect(hostile_client, model, streaming_options=options)


async def test_the_default_line_cap_is_16_mib(
    emulator: Emulator, hostile_client: SteerLLMClient
) -> None:
    emulator.enqueue(Reply(fault=Fault.huge_line(17 * 1024 * 1024)))
    tracemalloc.start()
    try:
        with pytest.raises(InvalidResponseError, match="16 MiB"):
            await collect(hostile_client, "gpt-4o-mini", streaming_options=NO_RETRY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 1024 * 1024  # the line's pieces plus one join, never more


async def test_unsolicited_gzip_is_refused(
    emulator: Emulator, hostile_client: SteerLLMClient, model: str
) -> None:
    emulator.enqueue(Reply(fault=Fault.unsolicited_gzip()))
    with pytest.raises(InvalidResponseError, match="Content-Encoding: gzip"):
        await collect(hostile_client, model, streaming_options=NO_RETRY)
    assert emulator.requests[-1].headers["accept-encoding"] == "identity"


async def test_a_gzip_bomb_is_never_expanded(
    emulator: Emulator, hostile_client: SteerLLMClient
) -> None:
    emulator.enqueue(Reply(fault=Fault.unsolicited_gzip(expand_to=100 * 1024 * 1024)))
    tracemalloc.start()
    try:
        with pytest.raises(InvalidResponseError, match="compressed"):
            await hostile_client.generate("Hi", "gpt-4o-mini", streaming_options=NO_RETRY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024


async def test_a_gzipped_error_body_is_decoded_under_the_cap() -> None:
    body = gzip.compress(b'{"error": {"message": "slow down", "type": "rate_limit_error"}}')

    async def answer(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
            b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        )

    async with RawServer(answer) as server, raw_client(server.url) as client:
        with pytest.raises(RateLimitError, match="slow down"):
            await collect(client, "raw/m", streaming_options=NO_RETRY)


async def test_a_huge_error_body_is_read_only_up_to_the_cap(
    emulator: Emulator, hostile_client: SteerLLMClient, model: str
) -> None:
    emulator.enqueue(Reply(fault=Fault.huge_error_body(64 * 1024 * 1024, status=500)))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ServerError) as info:
            await collect(hostile_client, model, streaming_options=NO_RETRY)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.status_code == 500
    assert info.value.body is not None and len(info.value.body) <= 500
    assert peak < 8 * 1024 * 1024  # 64 KiB read, 64 MiB left unread
    assert time.perf_counter() - start < 10


async def test_total_timeout_bounds_reading_an_error_body() -> None:
    class Silent(RawServer):
        """A 500 whose body never finishes: 10 of its 1,000 bytes, then silence."""

        async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n"
                b'content-length: 1000\r\n\r\n{"error": '
            )
            await writer.drain()
            await asyncio.sleep(30)
            writer.close()

    async with (
        Silent(lambda head: asyncio.sleep(0, b"")) as server,
        raw_client(server.url) as client,
    ):
        options = StreamingOptions(total_timeout=1.0, read_timeout=60.0)
        start = time.perf_counter()
        with pytest.raises((ServerError, TotalTimeoutError)):
            await collect(client, "raw/m", streaming_options=options)
        assert time.perf_counter() - start < 3


async def test_a_retry_after_past_the_cap_is_not_waited_for(
    emulator: Emulator, hostile_client: SteerLLMClient
) -> None:
    # A server cannot park a call: past max_retry_after the SDK gives up at once, with
    # the server's figure (an HTTP date far away included) for the caller to decide.
    for value in ("3600", "Fri, 31 Dec 2099 23:59:59 GMT"):
        emulator.enqueue(Reply(fault=Fault.retry_after(value)))
        options = StreamingOptions(max_retry_after=0.2, reconnect_delay=0.01)
        start = time.perf_counter()
        with pytest.raises(RateLimitError) as info:
            await collect(hostile_client, "gpt-4o-mini", streaming_options=options)
        assert time.perf_counter() - start < 0.5
        assert info.value.retry_after is not None and info.value.retry_after >= 3600


async def test_retry_after_never_outlasts_total_timeout(
    emulator: Emulator, hostile_client: SteerLLMClient, model: str
) -> None:
    emulator.enqueue(Reply(fault=Fault.retry_after("30")))  # within max_retry_after
    start = time.perf_counter()
    with pytest.raises(TotalTimeoutError):
        await collect(hostile_client, model, streaming_options=StreamingOptions(total_timeout=2))
    assert time.perf_counter() - start < 2.5


async def test_total_timeout_stops_keepalives_forever(
    emulator: Emulator, hostile_client: SteerLLMClient
) -> None:
    emulator.enqueue(Reply(fault=Fault.keepalive_forever(0.05, after=2)))
    options = StreamingOptions(total_timeout=1.0, preserve_partial_response=True)
    with pytest.raises(TotalTimeoutError) as info:
        await collect(hostile_client, "gpt-4o-mini", streaming_options=options)
    assert info.value.partial_text


# -- not an event stream: typed errors whatever the body holds --------------------------
async def test_a_redirect_is_an_error_not_an_answer(
    emulator: Emulator, hostile_client: SteerLLMClient, model: str
) -> None:
    emulator.enqueue(Reply(fault=Fault.redirect(302, "http://127.0.0.1:9/v1")))
    with pytest.raises(APIStatusError, match="redirect") as info:
        await collect(hostile_client, model, streaming_options=NO_RETRY)
    assert info.value.status_code == 302
    assert len(emulator.requests) == 1  # not followed


async def test_html_with_data_lines_is_an_error_not_an_answer(
    emulator: Emulator, hostile_client: SteerLLMClient, model: str
) -> None:
    emulator.enqueue(Reply(fault=Fault.html_with_data()))
    with pytest.raises(InvalidResponseError, match="text/html"):
        await collect(hostile_client, model, streaming_options=NO_RETRY)


async def test_a_json_answer_to_a_stream_request_still_works() -> None:
    # application/json is the legitimate non-streamed fallback of some servers.
    body = (
        b'{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"whole answer"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
    )

    async def answer(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )

    async with RawServer(answer) as server, raw_client(server.url) as client:
        response = await client.stream_with_usage("Hi", "raw/m")
    assert response.text == "whole answer"


# -- secrets ---------------------------------------------------------------------------
async def test_a_key_echoed_in_the_request_id_never_shows(
    emulator: Emulator, hostile_client: SteerLLMClient, model: str
) -> None:
    emulator.enqueue(Reply(fault=Fault.echo_key()))
    try:
        await collect(hostile_client, model, streaming_options=NO_RETRY)
    except SteerError as exc:
        shown = [str(exc), repr(exc), traceback.format_exc(), str(exc.request_id), str(exc.body)]
        shown += [str(a) for a in exc.args]
        assert isinstance(exc, BadRequestError)
        assert "[REDACTED]" in str(exc)
    else:
        pytest.fail("no error")
    for text in shown:
        assert KEY not in text and KEY[:12] not in text


async def test_a_key_echoed_by_the_cli_server_never_reaches_stderr(emulator: Emulator) -> None:
    emulator.enqueue(Reply(fault=Fault.echo_key()))
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=emulator.openai_base_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "steer_llm_sdk.cli",
        "stream",
        "--model",
        "gpt-4o-mini",
        "Hi",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0
    assert b"BadRequestError" in err
    assert KEY.encode() not in err + out and KEY[:12].encode() not in err + out


async def test_a_key_in_a_malformed_status_line_is_not_chained() -> None:
    async def answer(head: bytes) -> bytes:
        return b"HTTP/1.1 2x0 " + KEY.encode() + b"\r\ncontent-length: 0\r\n\r\n"

    async with RawServer(answer) as server, raw_client(server.url) as client:
        try:
            await collect(client, "raw/m", streaming_options=NO_RETRY)
        except SteerError as exc:
            printed = traceback.format_exc()
            assert exc.__cause__ is None and exc.__suppress_context__
        else:
            pytest.fail("no error")
    assert KEY not in printed and KEY[:12] not in printed


async def test_a_key_cut_by_truncation_is_still_redacted() -> None:
    body = b"x" * 190 + KEY.encode() + b" trailing"  # not JSON: the message is cut at 200

    async def answer(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )

    async with RawServer(answer) as server, raw_client(server.url) as client:
        with pytest.raises(APIStatusError) as info:
            await collect(client, "raw/m", streaming_options=NO_RETRY)
    for text in (str(info.value), repr(info.value), info.value.body or ""):
        assert KEY[:6] not in text.replace("[REDACTED]", "")


async def test_a_key_echoed_as_the_response_id_is_not_in_repr_or_to_dict() -> None:
    event = (
        b'data: {"id":"' + KEY.encode() + b'","object":"chat.completion.chunk","model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )

    async def answer(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(event), event)
        )

    async with RawServer(answer) as server, raw_client(server.url) as client:
        response = await client.stream_with_usage("Hi", "raw/m")
    assert response.text == "hi"
    assert KEY not in repr(response) and KEY not in str(response.to_dict())


# -- third-party findings ------------------------------------------------------------------
async def test_408_is_retried_and_not_a_bad_request(
    emulator: Emulator, hostile_client: SteerLLMClient, model: str
) -> None:
    emulator.enqueue(Reply(status=408, error_type="invalid_request_error"))
    options = StreamingOptions(reconnect_delay=0.01)
    response = await hostile_client.stream_with_usage("Hi", model, streaming_options=options)
    assert response.text and response.attempts == 2
    emulator.enqueue(Reply(status=408, error_type="invalid_request_error"))
    with pytest.raises(APIStatusError) as info:
        await collect(hostile_client, model, streaming_options=NO_RETRY)
    assert not isinstance(info.value, BadRequestError) and info.value.status_code == 408


async def test_a_model_named_like_openais_on_another_server_has_no_invented_price(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MOCKSRV_BASE_URL", emulator.openai_base_url)
    async with SteerLLMClient(
        providers={"mine": {"base_url": emulator.openai_base_url}},
        base_urls={"ollama": emulator.openai_base_url},
    ) as client:
        for model in ("mine/gpt-4o-mini", "mocksrv/gpt-4o-mini", "ollama/gpt-4o-mini"):
            response = await client.stream_with_usage("Hi", model)
            assert response.usage["total_tokens"] > 0
            assert response.cost_usd is None, model
    async with SteerLLMClient(
        providers={"mine": {"base_url": emulator.openai_base_url}},
        prices={"mine/gpt-4o-mini": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}},
    ) as client:
        response = await client.stream_with_usage("Hi", "mine/gpt-4o-mini")
        assert response.cost_usd == pytest.approx(response.usage["total_tokens"] / 1e6)


# -- load: the pool stays flat and thousands of calls progress ------------------------------
async def test_two_thousand_concurrent_streams_on_a_fresh_client_all_finish() -> None:
    async with (
        Emulator(reply_words=10) as emu,
        SteerLLMClient(
            api_keys={"openai": KEY}, base_urls={"openai": emu.openai_base_url}
        ) as client,
    ):
        texts = await asyncio.gather(*(collect(client, "gpt-4o-mini") for _ in range(2000)))
        assert len(set(texts)) == 1 and texts[0]
        # max_connections (default 1000) bounds the connections open at one time
        assert emu.peak_open_connections <= 1000


async def test_calls_above_max_connections_wait_their_turn() -> None:
    async with (
        Emulator(reply_words=10, delay_between_chunks=0.005) as emu,
        SteerLLMClient(
            api_keys={"openai": KEY}, base_urls={"openai": emu.openai_base_url}, max_connections=8
        ) as client,
    ):
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, emu.open_connections)
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        texts = await asyncio.gather(*(collect(client, "gpt-4o-mini") for _ in range(100)))
        watcher.cancel()
        assert len(texts) == 100 and all(texts)
        assert emu.connections <= 8 and peak <= 8  # reused, never more than the cap


# -- caller mistakes ---------------------------------------------------------------------------
async def test_a_closed_client_says_so(emulator: Emulator) -> None:
    client = SteerLLMClient(api_keys={"openai": KEY}, base_urls={"openai": emulator.url + "/v1"})
    await collect(client, "gpt-4o-mini")
    await client.aclose()
    with pytest.raises(ConfigurationError, match="closed"):
        await collect(client, "gpt-4o-mini")


def test_a_client_reused_across_asyncio_runs_leaves_no_socket_open() -> None:
    emulator = Emulator.start_in_thread()
    try:
        client = SteerLLMClient(
            api_keys={"openai": KEY}, base_urls={"openai": emulator.openai_base_url}
        )
        for _ in range(2):
            text = asyncio.run(collect(client, "gpt-4o-mini"))
            assert text
            deadline = time.monotonic() + 5
            while emulator.emulator.open_connections and time.monotonic() < deadline:
                time.sleep(0.01)
            assert emulator.emulator.open_connections == 0  # closed when the loop ended
    finally:
        emulator.stop()


async def test_proxies_from_the_environment_are_honoured(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def answer(head: bytes) -> bytes:
        return b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"

    async with RawServer(answer) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with SteerLLMClient(
            api_keys={"openai": KEY}, base_urls={"openai": emulator.openai_base_url}
        ) as client:
            with pytest.raises(ServerError):
                await collect(client, "gpt-4o-mini", streaming_options=NO_RETRY)
        assert proxy.heads and proxy.heads[0].startswith(b"POST http://127.0.0.1:")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with SteerLLMClient(
            api_keys={"openai": KEY}, base_urls={"openai": emulator.openai_base_url}
        ) as client:
            assert await collect(client, "gpt-4o-mini")
        assert len(proxy.heads) == 1


async def test_an_echoed_key_is_redacted_in_httpcore_debug_logs(
    emulator: Emulator, hostile_client: SteerLLMClient, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.enqueue(Reply(fault=Fault.echo_key()))
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(BadRequestError):
            await collect(hostile_client, "gpt-4o-mini", streaming_options=NO_RETRY)
    messages = [record.getMessage() for record in caplog.records]
    assert any("receive_response_headers" in m for m in messages)  # httpcore did log them
    assert not any(KEY in m or KEY[:12] in m for m in messages)


# -- the emulator's hostile faults send what they say (for the behaviours the pipeline
#    owns: the terminal event ends the answer; checked here at the wire level) ---------------
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_text_after_end_and_hold_open_faults_on_the_wire(
    emulator: Emulator, path: str
) -> None:
    import httpx

    body = {
        "model": "m",
        "max_tokens": 50,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    async with httpx.AsyncClient(base_url=emulator.url) as http:
        emulator.enqueue(Reply(text="ok", fault=Fault.text_after_end(" EXTRA")))
        response = await http.post(path, json=body)
        end = b"[DONE]" if "chat" in path else b"message_stop"
        assert response.content.index(end) < response.content.index(b" EXTRA")

        emulator.enqueue(Reply(text="ok", fault=Fault.hold_open_after_end(5)))
        start = time.perf_counter()
        timeout = httpx.Timeout(5, read=0.3)
        seen = b""
        async with http.stream("POST", path, json=body, timeout=timeout) as streamed:
            with pytest.raises(httpx.ReadTimeout):  # the terminal event came; the body did not end
                async for piece in streamed.aiter_raw():
                    seen += piece
        assert end in seen and time.perf_counter() - start < 3


@pytest.fixture
def self_signed(tmp_path: pathlib.Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a self-signed certificate")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
    subprocess.run(
        [*command.split(), "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_through_the_sdk_pool(
    self_signed: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """TLS is httpcore's (the pool hands it the SSL context, SSL_CERT_FILE honoured)."""
    cert, key = self_signed
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    event = (
        b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
        b'"delta":{"content":"secure"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )

    async def answer(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(event), event)
        )

    monkeypatch.setenv("SSL_CERT_FILE", cert)
    async with RawServer(answer, tls=server_tls) as server, raw_client(server.url) as client:
        assert await collect(client, "raw/m") == "secure"
        assert await collect(client, "raw/m") == "secure"
    monkeypatch.delenv("SSL_CERT_FILE")
    async with RawServer(answer, tls=server_tls) as server, raw_client(server.url) as client:
        with pytest.raises(SteerError, match=r"(?i)certificate"):
            await collect(client, "raw/m", streaming_options=NO_RETRY)


async def test_a_key_in_a_malformed_body_of_a_generate_call_is_not_chained() -> None:
    async def answer(head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"transfer-encoding: chunked\r\n\r\nzz" + KEY.encode() + b"\r\n{}\r\n0\r\n\r\n"
        )

    async with RawServer(answer) as server, raw_client(server.url) as client:
        try:
            await client.generate("Hi", "raw/m", streaming_options=NO_RETRY)
        except SteerError as exc:
            printed = traceback.format_exc()
            assert exc.__cause__ is None
        else:
            pytest.fail("no error")
    assert KEY not in printed and KEY[:12] not in printed
