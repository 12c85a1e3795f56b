"""Resumption against the real llama.cpp server: a TCP proxy between the SDK and the
server cuts the first response mid-stream; the SDK asks again with the text so far
as the assistant's prefix, and the caller sees one seamless stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from steer_llm_sdk import SteerLLMClient, StreamInterruptedError
from steer_llm_sdk.models.streaming import StreamingOptions

pytestmark = pytest.mark.e2e

PROMPT = "Tell me a story about a lighthouse keeper."


class CuttingProxy:
    """Forwards TCP to ``target``; the first ``cuts`` connections are cut after
    ``after_bytes`` bytes of response."""

    def __init__(self, target: str, *, after_bytes: int, cuts: int = 1) -> None:
        parts = urlsplit(target)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.after_bytes = after_bytes
        self.cuts = cuts
        self.connections = 0
        self.requests: list[bytes] = []  # what the client sent, per connection
        self.url = ""
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        index = self.connections - 1
        limit = self.after_bytes if self.connections <= self.cuts else None
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)

        sent_up = bytearray()
        self.requests.append(b"")

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, cap: int | None
        ) -> None:
            sent = 0
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if cap is None:  # client → server: record it
                        sent_up.extend(data)
                        self.requests[index] = bytes(sent_up)
                    if cap is not None and sent + len(data) >= cap:
                        dst.write(data[: cap - sent])
                        await dst.drain()
                        dst.transport.abort()  # cut mid-stream, like a proxy timeout
                        return
                    sent += len(data)
                    dst.write(data)
                    await dst.drain()

        up = asyncio.ensure_future(pipe(reader, up_writer, None))
        down = asyncio.ensure_future(pipe(up_reader, writer, limit))
        self._tasks.update({up, down})
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        up_writer.close()
        writer.close()


@pytest.fixture
async def proxied(local_base_url: str) -> AsyncIterator[CuttingProxy]:
    async with CuttingProxy(local_base_url, after_bytes=2500) as proxy:
        yield proxy


@pytest.mark.parametrize("protocol", ["openai-chat", "anthropic-messages"])
async def test_resume_after_a_cut(proxied: CuttingProxy, protocol: str) -> None:
    base = proxied.url + ("/v1" if protocol == "openai-chat" else "")
    delivered: list[str] = []
    options = StreamingOptions(reconnect_delay=0.01, on_delta=delivered.append)
    async with SteerLLMClient(
        providers={"cut": {"base_url": base, "protocol": protocol, "continues_prefix": True}}
    ) as client:
        response = await client.stream_with_usage(
            PROMPT, "cut/smollm2", max_tokens=60, temperature=0, streaming_options=options
        )
    assert proxied.connections == 2  # the first response was cut, then resumed
    assert response.resumptions == 1 and response.attempts == 2
    assert "".join(delivered) == response.text and len(delivered) > 10
    # The second request asked the real server to continue the text delivered so far.
    body, _ = json.JSONDecoder().raw_decode(proxied.requests[1].split(b"\r\n\r\n", 1)[1].decode())
    prefix = body["messages"][-1]
    assert prefix["role"] == "assistant"
    assert response.text.startswith(prefix["content"]) and len(prefix["content"]) > 0
    assert len(response.text) > len(prefix["content"])  # and it did go on
    # Usage adds up both attempts; the broken one's output is counted by the SDK.
    assert response.usage["completion_tokens"] > 0 and response.usage.get("estimated") is True


async def test_no_resume_when_the_server_cannot_continue(proxied: CuttingProxy) -> None:
    # The same cut against a provider that does not continue a prefix (like OpenAI's
    # own API) is a typed interruption that keeps the partial text when asked.
    async with SteerLLMClient(
        providers={"cut": {"base_url": proxied.url + "/v1", "continues_prefix": False}}
    ) as client:
        options = StreamingOptions(reconnect_delay=0.01, preserve_partial_response=True)
        with pytest.raises(StreamInterruptedError) as info:
            await client.stream_with_usage(
                PROMPT, "cut/smollm2", max_tokens=60, streaming_options=options
            )
    assert info.value.partial_text
    assert proxied.connections == 1
