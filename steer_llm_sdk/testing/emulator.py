"""An emulator of the providers' wire protocols: OpenAI Chat Completions
(``_openai.py``), Anthropic Messages (``_anthropic.py``), OpenAI Responses
(``_responses.py``), the Gemini API (``_gemini.py``), the AWS Bedrock runtime
(``_bedrock.py``: Converse and Invoke in event-stream frames, SigV4 checked), and the
clouds serving them (``_clouds.py``: Vertex AI, Azure OpenAI, Google's OAuth token
endpoint).

A small HTTP/1.1 server on 127.0.0.1 (stdlib asyncio only), speaking the streaming
formats as the real APIs do, with scripted replies and faults. Bodies are built
whole before they are written, in one write unless a fault or pacing says otherwise,
so the emulator costs a client benchmark next to nothing.

    async with Emulator() as emu:
        client = SteerLLMClient(base_urls={"openai": emu.openai_base_url,
                                           "anthropic": emu.anthropic_base_url}, ...)
        emu.enqueue(Reply(status=429, headers={"retry-after": "1"}))
        emu.enqueue(Reply(fault=Fault.drop_after(3)))

Replies are consumed first in, first out; with the queue empty each request gets the
default reply: a deterministic story derived from the prompt, or a JSON object when
JSON is asked for (one that fits the request's JSON schema when it carries one, so
``output=Model`` works unscripted). Usage is deterministic too: see :func:`count_tokens`.

This module is the server: the connection loop, routing to the protocol handlers
(each a :class:`~._wire.Wire`), the reply queue, rules and per-key rate limits, and
the faults (a stream cut, stalled, sent a byte at a time, or a hostile server).
The protocol modules build the bodies; they share only ``_wire.py`` (and
``_turn.py``, the answer to a messages-style request).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ._anthropic import Messages
from ._batches import Batches
from ._bedrock import EVENTSTREAM, TEST_ACCESS_KEY, TEST_API_KEY, TEST_SECRET_KEY, Bedrock
from ._cached_contents import CachedContents
from ._clouds import Azure, CloudState, Metadata, TokenEndpoint, Vertex
from ._files import Files, StoredFile
from ._gemini import Gemini
from ._openai import ChatCompletions
from ._openai import error_plan as openai_error
from ._responses import Responses
from ._scripting import OUTAGES, Outage, Scripting, outage_reply
from ._wire import (
    Fault,
    Plan,
    RecordedRequest,
    Reply,
    Wire,
    default_error_type,
    dumps,
    json_plan,
)

__all__ = ["OUTAGES", "Emulator", "EmulatorThread", "Outage", "RateLimitStats", "outage_reply"]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}
_IDS = {"x-request-id": "req_emulator", "request-id": "req_emulator"}


@dataclass(slots=True)
class RateLimitStats:
    """What the emulator's rate limiter saw for one API key (``emu.rate_stats[key]``).

    ``peak_requests`` and ``peak_tokens`` are the most accepted in any window of
    ``rate_window`` seconds; ``limited`` counts the requests answered 429."""

    requests: int = 0
    tokens: int = 0
    limited: int = 0
    peak_requests: int = 0
    peak_tokens: int = 0
    window: deque[tuple[float, int]] = field(default_factory=deque, repr=False)
    window_tokens: int = field(default=0, repr=False)

    def admit(
        self, tokens: int, rpm: float | None, tpm: float | None, rate_window: float
    ) -> tuple[float, str] | None:
        """None when a request of ``tokens`` fits the limits (and is counted), else
        (seconds to wait, which limit)."""
        now = time.monotonic()
        window = self.window
        edge = now - rate_window
        while window and window[0][0] <= edge:
            self.window_tokens -= window.popleft()[1]
        scale = rate_window / 60.0
        over: list[tuple[float, str]] = []
        if rpm is not None and len(window) + 1 > rpm * scale:
            wait = window[0][0] + rate_window - now if window else rate_window
            over.append((wait, f"{rpm:g} requests per minute"))
        if tpm is not None and window and self.window_tokens + tokens > tpm * scale:
            need = self.window_tokens + tokens - tpm * scale
            freed = 0
            wait = rate_window
            for when, size in window:
                freed += size
                if freed >= need:
                    wait = when + rate_window - now
                    break
            over.append((wait, f"{tpm:g} tokens per minute"))
        if over:
            self.limited += 1
            wait, what = max(over)
            return max(wait, 0.001), what
        window.append((now, tokens))
        self.window_tokens += tokens
        self.requests += 1
        self.tokens += tokens
        self.peak_requests = max(self.peak_requests, len(window))
        self.peak_tokens = max(self.peak_tokens, self.window_tokens)
        return None


class Emulator(Scripting):
    """The server. Use ``async with Emulator() as emu`` or ``await start()/stop()``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        reply_words: int = 60,
        chunk_words: int = 1,
        delay_between_chunks: float = 0.0,
        openai_continue_final_assistant: bool = True,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        rate_window: float = 60.0,
        backlog: int = 4096,
        aws_credentials: dict[str, tuple[str, str | None]] | None = None,
        bedrock_api_keys: set[str] | None = None,
        batch_delay: float = 0.2,
    ) -> None:
        self.host = host
        self.backlog = backlog  # pending connections the listening socket queues
        self.port = port
        self.reply_words = reply_words
        self.chunk_words = chunk_words
        self.delay_between_chunks = delay_between_chunks
        self.openai_continue_final_assistant = openai_continue_final_assistant
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # The protocols, asked in this order whether they answer a request.
        self._files = Files()  # the three Files APIs, before Gemini (both under /v1beta/)
        self.clouds = CloudState()  # Vertex AI's tokens, Azure's keys and deployments
        # Gemini's explicit caches (also Vertex AI's): before Gemini and Vertex
        self.cached_contents = CachedContents(self.clouds.token_ok)
        self._wires: tuple[Wire, ...] = (
            self._files,
            self.cached_contents,
            Responses(),
            Gemini(self.cached_contents),
            ChatCompletions(),
            Messages(),
            Bedrock(),
            Vertex(self.clouds, Gemini(self.cached_contents), Messages()),
            Azure(self.clouds, ChatCompletions(), Responses()),
            TokenEndpoint(self.clouds),
            Metadata(self.clouds),
        )
        # Bedrock: the credentials whose SigV4 signatures are valid (access key id →
        # (secret, session token or None)) and the Bedrock API keys (bearer tokens).
        self.aws_credentials = (
            {TEST_ACCESS_KEY: (TEST_SECRET_KEY, None)}
            if aws_credentials is None
            else aws_credentials
        )
        self.bedrock_api_keys = {TEST_API_KEY} if bedrock_api_keys is None else bedrock_api_keys
        self.aws_clock_skew = 0.0  # seconds the emulator's clock runs ahead (expired signatures)
        self._plan_cache: dict[tuple[str, bytes], Plan] = {}  # default replies, by body
        self.connections = 0  # connections accepted so far
        self.open_connections = 0
        # Per-key rate limits (API key from authorization / x-api-key): at most
        # limit * rate_window / 60 requests (tokens) accepted in any rate_window seconds.
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.rate_window = rate_window
        self.rate_stats: dict[str, RateLimitStats] = {}
        self._rules: list[Outage] = []
        self.peak_open_connections = 0  # the most connections open at one time
        # The batch APIs (_batches.py): a batch ends `batch_delay` seconds after creation.
        self.batches = Batches(self._answer_line, lambda: self.url, batch_delay, self._files.stored)

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> Emulator:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, backlog=self.backlog
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Emulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    def start_in_thread(cls, **kwargs: Any) -> EmulatorThread:
        """Run an emulator on its own event loop in a daemon thread (for sync code)."""
        return EmulatorThread(cls(**kwargs))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    @property
    def responses_base_url(self) -> str:
        """The same as :attr:`openai_base_url`: OpenAI's Responses API is
        ``POST {base}/responses``."""
        return self.url + "/v1"

    @property
    def gemini_base_url(self) -> str:
        return self.url  # GEMINI_BASE_URL is without /v1beta

    @property
    def files(self) -> dict[str, StoredFile]:
        """The files uploaded to the emulated Files APIs, by id (``file-...`` for
        OpenAI, ``file_...`` for Anthropic, ``files/...`` for Gemini)."""
        return self._files.stored

    @property
    def bedrock_base_url(self) -> str:
        """The Bedrock runtime endpoint (``BEDROCK_BASE_URL``,
        ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``, boto3's ``endpoint_url``)."""
        return self.url

    @property
    def vertex_base_url(self) -> str:
        return self.url  # VERTEX_BASE_URL is without /v1

    @property
    def azure_endpoint(self) -> str:
        return self.url  # AZURE_OPENAI_ENDPOINT: the resource, without /openai

    @property
    def token_uri(self) -> str:
        """Google's OAuth token endpoint, emulated (a service-account file's token_uri)."""
        return self.url + "/oauth2/token"

    # -- HTTP ----------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open_connections += 1
        self.peak_open_connections = max(self.peak_open_connections, self.open_connections)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = [*lines[0].split(" "), "", ""][:3]
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                request = RecordedRequest(method, path, headers, body)
                self.requests.append(request)
                keep_alive = await self._respond(request, writer)
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self.open_connections -= 1
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _respond(self, request: RecordedRequest, writer: asyncio.StreamWriter) -> bool:
        plan = self._plan_limited(request)
        fault = plan.fault
        if fault is not None and fault.kind == "stall_headers":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind in _HOSTILE:
            return await _hostile(fault, plan, request, writer)
        headers = {**_IDS, **plan.extra_headers}
        if plan.content_type not in ("text/event-stream", EVENTSTREAM):
            body = b"".join(plan.pieces)
            writer.write(_head(plan.status, plan.content_type, headers, length=len(body)) + body)
            await writer.drain()
            return True
        headers["cache-control"] = "no-cache"
        writer.write(_head(plan.status, plan.content_type, headers, length=None))
        return await _stream(plan, writer)

    # -- replies ---------------------------------------------------------------
    def _plan(self, request: RecordedRequest) -> tuple[Plan, Wire | None]:
        """The plan for a request, and the protocol that answers it (None for the
        emulator's own routes and unknown paths)."""
        path = request.path.split("?")[0]
        if request.method == "GET" and path == "/emulator/stats":
            return json_plan(200, self.stats()), None
        if request.method == "POST" and path in (
            "/emulator/enqueue",
            "/emulator/rule",
            "/emulator/outage",
        ):
            return self._script_over_http(path, request), None
        if self.batches.owns(request):
            return self.batches.handle(request), None
        if request.method == "GET" and path == "/v1/models":
            data = {"object": "list", "data": [{"id": "emulator", "object": "model"}]}
            return json_plan(200, data), None
        wire = next((w for w in self._wires if w.matches(request.method, path)), None)
        if wire is None:
            return openai_error(404, "not_found_error", f"no route {path}", {}), None
        if not wire.scripted:  # the Files APIs: their own state, never a scripted reply
            return wire.answer(self, request, {}, Reply()), wire
        body = wire.read(request)
        if isinstance(body, Plan):
            return body, wire
        for rule in self._rules:
            if rule.takes(request, body):
                return wire.plan(self, request, body, rule.reply), wire
        if self._queue:
            return wire.plan(self, request, body, self._queue.popleft()), wire
        if not wire.cacheable(request):
            return wire.plan(self, request, body, Reply()), wire
        key = (request.path, request.body)
        cached = self._plan_cache.get(key)
        if cached is None:
            cached = wire.plan(self, request, body, Reply())
            if len(self._plan_cache) < 256:
                self._plan_cache[key] = cached
        return cached, wire

    def _answer_line(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """One line of a batch: the non-streamed answer to ``body`` sent to ``path``."""
        headers = {"content-type": "application/json", "x-goog-api-key": "batch"}
        request = RecordedRequest("POST", path, headers, dumps(body))
        plan = self._plan(request)[0]
        return plan.status, json.loads(b"".join(plan.pieces) or b"null")

    # -- rate limits -----------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters as JSON-able data (also served at ``GET /emulator/stats``)."""
        return {
            "requests": len(self.requests),
            "connections": self.connections,
            "rate_window": self.rate_window,
            "rate_limits": {
                key: {
                    "requests": st.requests,
                    "tokens": st.tokens,
                    "limited": st.limited,
                    "peak_requests": st.peak_requests,
                    "peak_tokens": st.peak_tokens,
                }
                for key, st in self.rate_stats.items()
            },
        }

    def _plan_limited(self, request: RecordedRequest) -> Plan:
        """The plan, or a 429 when the request's key is over its rate limits (a
        scripted reply it would have used stays at the head of the queue)."""
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            return self._plan(request)[0]
        head = self._queue[0] if self._queue else None
        plan, wire = self._plan(request)
        if plan.status != 200 or wire is None or not wire.rate_limited:
            return plan
        headers = request.headers
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        if key.startswith("AWS4-HMAC-SHA256 Credential="):  # SigV4: the access key id
            key = key[28:].split("/", 1)[0]
        stats = self.rate_stats.get(key)
        if stats is None:
            stats = self.rate_stats[key] = RateLimitStats()
        limited = stats.admit(
            plan.tokens, self.requests_per_minute, self.tokens_per_minute, self.rate_window
        )
        if limited is None:
            return plan
        if head is not None and (not self._queue or self._queue[0] is not head):
            self._queue.appendleft(head)
        return wire.error(
            429,
            "rate_limit_error",
            f"rate limit reached for this key: {limited[1]}",
            {
                "retry-after": str(math.ceil(limited[0])),
                "retry-after-ms": str(int(limited[0] * 1000)),
            },
        )


class EmulatorThread:
    """An :class:`Emulator` on its own loop in a daemon thread."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="steer-emulator")
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.emulator.start())
        self._ready.set()
        self._loop.run_forever()

    @property
    def openai_base_url(self) -> str:
        return self.emulator.openai_base_url

    @property
    def anthropic_base_url(self) -> str:
        return self.emulator.anthropic_base_url

    @property
    def gemini_base_url(self) -> str:
        return self.emulator.gemini_base_url

    @property
    def files(self) -> dict[str, StoredFile]:
        """The files uploaded to the emulated Files APIs, by id (``file-...`` for
        OpenAI, ``file_...`` for Anthropic, ``files/...`` for Gemini)."""
        return self.emulator.files

    @property
    def bedrock_base_url(self) -> str:
        return self.emulator.bedrock_base_url

    def enqueue(self, *replies: Reply) -> None:
        self._loop.call_soon_threadsafe(self.emulator.enqueue, *replies)

    def outage(self, kind: str = "down", **options: Any) -> Outage:
        """:meth:`Emulator.outage`, from another thread."""
        future = asyncio.run_coroutine_threadsafe(
            _call(self.emulator.outage, kind, **options), self._loop
        )
        return future.result(10)

    def end_outage(self, outage: Outage | None = None) -> None:
        self._loop.call_soon_threadsafe(self.emulator.end_outage, outage)

    def stop(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self.emulator.stop(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


# -- writing, and the faults -----------------------------------------------------------
def _head(status: int, content_type: str, headers: dict[str, str], *, length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"content-type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    framing = "transfer-encoding: chunked" if length is None else f"content-length: {length}"
    lines.append(framing)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


async def _stream(plan: Plan, writer: asyncio.StreamWriter) -> bool:
    """Write a streamed plan's chunked body, as its fault says. Returns keep-alive."""
    pieces = plan.pieces
    fault = plan.fault
    if fault is None and not plan.pause:
        body = b"".join(pieces)
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        await writer.drain()
        return True
    kind = fault.kind if fault else ""
    if kind == "garbage":
        junk = b"\x00\xff<html>this is not an event stream</html>\x00"
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(junk), junk))
        await writer.drain()
        return True
    if kind == "one_byte":
        for byte in b"".join(pieces):
            writer.write(b"1\r\n%c\r\n" % byte)
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True
    for index, piece in enumerate(pieces):
        if fault is not None and index == fault.after + 1:  # +1: the opening frame
            if kind == "drop":
                await writer.drain()
                writer.transport.abort()
                return False
            if kind == "stall":
                await writer.drain()
                await asyncio.sleep(fault.seconds)
                if fault.then == "close":
                    writer.transport.abort()
                    return False
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        if plan.pause:
            await writer.drain()
            await asyncio.sleep(plan.pause)
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


_HOSTILE = frozenset(
    {
        "huge_line",
        "gzip",
        "huge_error",
        "retry_after",
        "keepalive_forever",
        "text_after_end",
        "hold_open",
        "redirect",
        "html",
        "echo_key",
    }
)


async def _hostile(
    fault: Fault, plan: Plan, request: RecordedRequest, writer: asyncio.StreamWriter
) -> bool:
    """Answer as a hostile or broken server would. Returns keep-alive."""
    kind = fault.kind
    ids = _IDS
    pieces = plan.pieces
    body = b"".join(pieces)
    if kind in ("retry_after", "echo_key", "huge_error", "redirect"):
        status = fault.status
        headers = dict(ids)
        error = dumps(
            {"error": {"message": f"emulated {status}", "type": default_error_type(status)}}
        )
        if kind == "retry_after":
            headers["retry-after"] = fault.text
        elif kind == "echo_key":
            auth = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            key = request.headers.get("x-api-key") or request.headers.get("x-goog-api-key") or auth
            headers = {"x-request-id": key, "request-id": key}
            error = dumps({"error": {"message": f"bad key {key}", "type": "invalid_request"}})
        elif kind == "redirect":
            headers["location"] = fault.text
            writer.write(_head(status, "text/event-stream", headers, length=len(body)) + body)
            await writer.drain()
            return True
        if kind == "huge_error":
            writer.write(_head(status, "application/json", headers, length=None))
            writer.write(_chunk(b'{"error": {"message": "' + b"x" * 65000))
            sent = 65000
            filler = _chunk(b"x" * 65536)
            while sent < fault.size:
                writer.write(filler)
                await writer.drain()
                sent += 65536
            writer.write(_chunk(b'"}}') + b"0\r\n\r\n")
            await writer.drain()
            return True
        writer.write(_head(status, "application/json", headers, length=len(error)) + error)
        await writer.drain()
        return True
    if kind == "html":
        page = (
            b"<html><body><p>Please log in to the network</p>\n"
            + b"".join(p for p in pieces if p.startswith(b"data:"))
            + b"</body></html>\n"
        )
        writer.write(_head(200, "text/html; charset=utf-8", ids, length=len(page)) + page)
        await writer.drain()
        return True
    if kind == "gzip":
        import zlib

        packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header
        if fault.size:  # a bomb, built a MiB at a time
            block = b"\0" * (1 << 20)
            parts = [packer.compress(block) for _ in range(max(1, fault.size >> 20))]
        else:
            parts = [packer.compress(body)]
        data = b"".join(parts) + packer.flush()
        headers = {**ids, "content-encoding": "gzip"}
        writer.write(_head(200, plan.content_type, headers, length=len(data)) + data)
        await writer.drain()
        return True
    writer.write(_head(200, "text/event-stream", {**ids, **plan.extra_headers}, length=None))
    if kind == "text_after_end":
        text = dumps(fault.text)
        extra = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":' + text + b"}}\n\n"
            if b"message_stop" in body
            else b'data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,'
            b'"delta":{"content":' + text + b'},"finish_reason":null}]}\n\n'
        )
        writer.write(_chunk(body) + _chunk(extra) + b"0\r\n\r\n")
        await writer.drain()
        return True
    if kind == "hold_open":
        writer.write(_chunk(body))
        await writer.drain()
        await asyncio.sleep(fault.seconds)
        writer.transport.abort()
        return False
    # huge_line / keepalive_forever: `after` text chunks first (+1: the opening frame)
    writer.write(_chunk(b"".join(pieces[: fault.after + 1])))
    await writer.drain()
    if kind == "huge_line":
        writer.write(_chunk(b"data: "))
        block = _chunk(b"y" * 65536)
        for _ in range(max(1, fault.size // 65536)):
            writer.write(block)
            await writer.drain()
        writer.transport.abort()
        return False
    while True:  # keepalive_forever: until the client goes away
        writer.write(_chunk(b": keep-alive\n\n"))
        await writer.drain()
        await asyncio.sleep(fault.seconds)
