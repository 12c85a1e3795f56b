"""An emulator of the OpenAI Chat Completions and Anthropic Messages wire protocols
(and of the Gemini API: see ``_gemini.py``).

A small HTTP/1.1 server on 127.0.0.1 (stdlib asyncio only), speaking both streaming
formats as the real APIs do, with scripted replies and faults. Bodies are built
whole before they are written, in one write unless a fault or pacing says otherwise,
so the emulator costs a client benchmark next to nothing.

    async with Emulator() as emu:
        client = SteerLLMClient(base_urls={"openai": emu.openai_base_url,
                                           "anthropic": emu.anthropic_base_url}, ...)
        emu.enqueue(Reply(status=429, headers={"retry-after": "1"}))
        emu.enqueue(Reply(fault=Fault.drop_after(3)))

Replies are consumed first in, first out; with the queue empty each request gets the
default reply: a deterministic story derived from the prompt (or a JSON object when
JSON is asked for). Usage is deterministic too: see :func:`count_tokens`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Emulator",
    "EmulatorThread",
    "Fault",
    "RateLimitStats",
    "RecordedRequest",
    "Reply",
    "count_tokens",
]

_WORDS = (
    "once upon a time a lighthouse keeper named Ada watched the sea each night and "
    "wrote down every ship that passed her rock until one winter a silent boat "
    "arrived without lights and she rowed out alone to meet it"
).split()
JSON_REPLY = {
    "name": "Aurora Desk Lamp",
    "price": 49.99,
    "description": "A warm, dimmable LED lamp with a brushed aluminium arm.",
}


def count_tokens(text: str) -> int:
    """The emulator's token count: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4) if text else 0


@dataclass(frozen=True, slots=True)
class Fault:
    """A scripted failure. Build one with the class methods."""

    kind: str
    after: int = 0  # chunks sent before the fault
    seconds: float = 0.0
    error_type: str = "overloaded_error"
    then: str = "close"  # stall: "close" or "continue" after the pause
    size: int = 0  # hostile faults: bytes of the huge line / body / expansion
    status: int = 0  # hostile faults: the status to answer with
    text: str = ""  # hostile faults: a header value or text to send

    @classmethod
    def drop_after(cls, chunks: int) -> Fault:
        """Send ``chunks`` text chunks, then cut the connection (no final event)."""
        return cls("drop", after=chunks)

    @classmethod
    def stall_after(cls, chunks: int, seconds: float, *, then: str = "continue") -> Fault:
        """Send ``chunks`` text chunks, go silent for ``seconds``, then go on or close."""
        return cls("stall", after=chunks, seconds=seconds, then=then)

    @classmethod
    def error_event_after(cls, chunks: int, error_type: str = "overloaded_error") -> Fault:
        """An in-band error after ``chunks`` chunks: Anthropic ``event: error``; OpenAI
        a ``data: {"error": ...}`` frame."""
        return cls("error_event", after=chunks, error_type=error_type)

    @classmethod
    def garbage(cls) -> Fault:
        """A 200 ``text/event-stream`` whose body is not SSE at all."""
        return cls("garbage")

    @classmethod
    def one_byte_per_write(cls) -> Fault:
        """The whole valid stream, one byte per write."""
        return cls("one_byte")

    @classmethod
    def stall_before_headers(cls, seconds: float) -> Fault:
        """Accept the request, then send nothing for ``seconds`` before answering."""
        return cls("stall_headers", seconds=seconds)

    # -- hostile servers: what a client must survive without harm ------------------
    @classmethod
    def huge_line(cls, size: int, *, after: int = 0) -> Fault:
        """After ``after`` chunks, one ``data:`` line of ``size`` bytes that never ends
        (sent in 64 KiB writes), then the connection closes."""
        return cls("huge_line", after=after, size=size)

    @classmethod
    def unsolicited_gzip(cls, expand_to: int = 0) -> Fault:
        """``Content-Encoding: gzip`` although the client asked for identity: the whole
        stream gzipped, or (``expand_to`` > 0) a gzip bomb of that many zero bytes."""
        return cls("gzip", size=expand_to)

    @classmethod
    def huge_error_body(cls, size: int, status: int = 500) -> Fault:
        """An error status whose body is ``size`` bytes of JSON-looking junk."""
        return cls("huge_error", size=size, status=status)

    @classmethod
    def retry_after(cls, value: str = "3600", status: int = 429) -> Fault:
        """A 429 (or ``status``) with ``Retry-After: value`` (seconds or an HTTP date)."""
        return cls("retry_after", text=value, status=status)

    @classmethod
    def keepalive_forever(cls, seconds: float = 1.0, *, after: int = 0) -> Fault:
        """After ``after`` chunks, a ``: keep-alive`` comment every ``seconds``, forever."""
        return cls("keepalive_forever", after=after, seconds=seconds)

    @classmethod
    def text_after_end(cls, text: str = " INJECTED") -> Fault:
        """A text chunk sent after the terminal event (``[DONE]`` / ``message_stop``)."""
        return cls("text_after_end", text=text)

    @classmethod
    def hold_open_after_end(cls, seconds: float) -> Fault:
        """The whole stream, terminal event included, then the connection held open
        (no end of the chunked body) for ``seconds`` before closing."""
        return cls("hold_open", seconds=seconds)

    @classmethod
    def redirect(cls, status: int = 302, location: str = "http://127.0.0.1:9/elsewhere") -> Fault:
        """A redirect whose body is a valid-looking event stream."""
        return cls("redirect", status=status, text=location)

    @classmethod
    def html_with_data(cls) -> Fault:
        """A 200 ``text/html`` page (a captive portal, a wrong base URL) that happens to
        contain ``data:`` lines."""
        return cls("html")

    @classmethod
    def echo_key(cls) -> Fault:
        """The request's API key echoed in the ``x-request-id`` and ``request-id``
        headers of an error (status 400 by default)."""
        return cls("echo_key", status=400)


@dataclass(slots=True)
class Reply:
    """One scripted answer. Everything left None comes from the request."""

    text: str | None = None
    chunks: list[str] | None = None  # explicit chunking (joined, they are the text)
    usage: dict[str, int] | None = None  # prompt_tokens, completion_tokens, cached_tokens,
    # cache_creation_tokens (prompt_tokens counts all input, like OpenAI)
    finish_reason: str | None = None  # "stop"/"length" (OpenAI) or "end_turn"/... (Anthropic)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None  # for status >= 400
    error_message: str | None = None
    fault: Fault | None = None
    delay_between_chunks: float | None = None
    # Tool calls to answer with: {"name": ..., "arguments": dict or JSON text, "id": ...}
    # (id optional). With text too, the text comes first, as real models do.
    tool_calls: list[dict[str, Any]] | None = None
    interleave_tool_calls: bool = False  # OpenAI: the calls' deltas alternate
    reasoning: str | None = None  # streamed before the answer (thinking)


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Plan:
    """What to send for one request: status, headers, a list of body pieces."""

    __slots__ = ("content_type", "extra_headers", "fault", "pause", "pieces", "status", "tokens")

    def __init__(
        self,
        status: int,
        content_type: str,
        pieces: list[bytes],
        *,
        extra_headers: dict[str, str] | None = None,
        fault: Fault | None = None,
        pause: float = 0.0,
    ) -> None:
        self.status = status
        self.content_type = content_type
        self.pieces = pieces  # SSE frames (the fault's `after` counts text frames)
        self.extra_headers = extra_headers or {}
        self.fault = fault
        self.pause = pause
        self.tokens = 0  # prompt + completion tokens of a 200 answer (rate limits)


_LIMITED_PATHS = ("/v1/chat/completions", "/v1/messages", "/v1/responses")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests"}


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


class Emulator:
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
        self._cache_seen: set[str] = set()
        self._plan_cache: dict[tuple[str, bytes], _Plan] = {}  # default replies, by body
        self.connections = 0  # connections accepted so far
        self.open_connections = 0
        # Per-key rate limits (API key from authorization / x-api-key): at most
        # limit * rate_window / 60 requests (tokens) accepted in any rate_window seconds.
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self.rate_window = rate_window
        self.rate_stats: dict[str, RateLimitStats] = {}
        self._rules: list[tuple[bytes, Reply]] = []
        self.peak_open_connections = 0  # the most connections open at one time

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

    def enqueue(self, *replies: Reply) -> None:
        """Script the next replies, first in first out."""
        self._queue.extend(replies)

    def add_rule(self, match: str, reply: Reply) -> None:
        """Answer every request whose body contains ``match`` with ``reply``, always
        (e.g. a poisoned prompt: ``add_rule("item 7", Reply(status=400))``)."""
        self._rules.append((json.dumps(match)[1:-1].encode(), reply))

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
        head = [f"HTTP/1.1 {plan.status} {_REASONS.get(plan.status, 'Status')}"]
        head.append(f"content-type: {plan.content_type}")
        head.append("x-request-id: req_emulator")
        head.append("request-id: req_emulator")
        for name, value in plan.extra_headers.items():
            head.append(f"{name}: {value}")
        streaming = plan.content_type == "text/event-stream"
        if not streaming:
            body = b"".join(plan.pieces)
            head.append(f"content-length: {len(body)}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
            return True
        head.append("transfer-encoding: chunked")
        head.append("cache-control: no-cache")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        pieces = plan.pieces
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

    def _script_over_http(self, path: str, request: RecordedRequest) -> _Plan:
        """``POST /emulator/enqueue`` with a Reply's fields as JSON (or a list of them);
        ``POST /emulator/rule`` with ``{"match": "...", "reply": {...}}``. A fault is
        ``{"kind": "drop", "after": 3}`` (the fields of :class:`Fault`)."""
        try:
            data = request.json

            def reply_of(fields: dict[str, Any]) -> Reply:
                fields = dict(fields)
                if fields.get("fault"):
                    fields["fault"] = Fault(**fields["fault"])
                return Reply(**fields)

            if path == "/emulator/rule":
                self.add_rule(str(data["match"]), reply_of(data["reply"]))
            else:
                self.enqueue(*[reply_of(d) for d in (data if isinstance(data, list) else [data])])
        except (ValueError, TypeError, KeyError) as exc:
            return _error_plan("openai", 400, "invalid_request_error", f"bad script: {exc}", {})
        return _Plan(200, "application/json", [b'{"ok": true}'])

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

    def _plan_limited(self, request: RecordedRequest) -> _Plan:
        """The plan, or a 429 when the request's key is over its rate limits (a
        scripted reply it would have used stays at the head of the queue)."""
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            return self._plan(request)
        head = self._queue[0] if self._queue else None
        plan = self._plan(request)
        path = request.path.split("?")[0]
        if plan.status != 200 or path not in _LIMITED_PATHS:
            return plan
        headers = request.headers
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ")
        limited = self._rate_check(key, plan.tokens)
        if limited is None:
            return plan
        if head is not None and (not self._queue or self._queue[0] is not head):
            self._queue.appendleft(head)
        protocol = "anthropic" if path == "/v1/messages" else "openai"
        return _error_plan(
            protocol,
            429,
            "rate_limit_error",
            f"rate limit reached for this key: {limited[1]}",
            {
                "retry-after": str(math.ceil(limited[0])),
                "retry-after-ms": str(int(limited[0] * 1000)),
            },
        )

    def _rate_check(self, key: str, tokens: int) -> tuple[float, str] | None:
        """None when the request fits (and is counted), else (seconds to wait, what)."""
        import time

        stats = self.rate_stats.get(key)
        if stats is None:
            stats = self.rate_stats[key] = RateLimitStats()
        now = time.monotonic()
        window = stats.window
        edge = now - self.rate_window
        while window and window[0][0] <= edge:
            stats.window_tokens -= window.popleft()[1]
        scale = self.rate_window / 60.0
        over: list[tuple[float, str]] = []
        if self.requests_per_minute is not None:
            allowed = self.requests_per_minute * scale
            if len(window) + 1 > allowed:
                wait = window[0][0] + self.rate_window - now if window else self.rate_window
                over.append((wait, f"{self.requests_per_minute:g} requests per minute"))
        if self.tokens_per_minute is not None:
            allowed_tokens = self.tokens_per_minute * scale
            if window and stats.window_tokens + tokens > allowed_tokens:
                need = stats.window_tokens + tokens - allowed_tokens
                freed = 0
                wait = self.rate_window
                for when, size in window:
                    freed += size
                    if freed >= need:
                        wait = when + self.rate_window - now
                        break
                over.append((wait, f"{self.tokens_per_minute:g} tokens per minute"))
        if over:
            stats.limited += 1
            wait, what = max(over)
            return max(wait, 0.001), what
        window.append((now, tokens))
        stats.window_tokens += tokens
        stats.requests += 1
        stats.tokens += tokens
        stats.peak_requests = max(stats.peak_requests, len(window))
        stats.peak_tokens = max(stats.peak_tokens, stats.window_tokens)
        return None

    # -- replies -------------------------------------------------------------
    def _plan(self, request: RecordedRequest) -> _Plan:
        path = request.path.split("?")[0]
        if request.method == "GET" and path == "/emulator/stats":
            return _Plan(200, "application/json", [json.dumps(self.stats()).encode()])
        if request.method == "POST" and path in ("/emulator/enqueue", "/emulator/rule"):
            return self._script_over_http(path, request)
        if request.method == "GET" and path == "/v1/models":
            data = {"object": "list", "data": [{"id": "emulator", "object": "model"}]}
            return _Plan(200, "application/json", [json.dumps(data).encode()])
        if request.method == "POST" and path == "/v1/responses":
            return self._responses(request)
        if path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path):
            # the Gemini API (v1beta, and v1, google-genai's default)
            from ._gemini import gemini_plan

            return gemini_plan(self, request)
        if request.method != "POST" or path not in ("/v1/chat/completions", "/v1/messages"):
            return _error_plan("openai", 404, "not_found_error", f"no route {path}", {})
        protocol = "anthropic" if path == "/v1/messages" else "openai"
        try:
            body = request.json
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return _error_plan(protocol, 400, "invalid_request_error", "body is not JSON", {})
        for match, rule_reply in self._rules:
            if match in request.body:
                return self._plan_for(protocol, body, rule_reply)
        if not self._queue:
            key = (path, request.body)
            cached = self._plan_cache.get(key)
            if cached is None or (
                protocol == "anthropic" and "cache_control" in request.body.decode()
            ):
                cached = self._plan_for(protocol, body, Reply())
                if len(self._plan_cache) < 256:
                    self._plan_cache[key] = cached
            return cached
        return self._plan_for(protocol, body, self._queue.popleft())

    def _responses(self, request: RecordedRequest) -> _Plan:
        """OpenAI's Responses API: checked as the real API checks it, answered from the
        same script as Chat Completions (the request is read in its chat form)."""
        try:
            body = request.json
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return _error_plan("openai", 400, "invalid_request_error", "body is not JSON", {})
        problem = _check_responses(body)
        if problem is not None:
            return _error_plan("openai", 400, "invalid_request_error", problem, {})
        reply = self._queue.popleft() if self._queue else Reply()
        return self._plan_for("responses", _responses_as_chat(body), reply, original=body)

    def _plan_for(
        self,
        protocol: str,
        body: dict[str, Any],
        reply: Reply,
        original: dict[str, Any] | None = None,
    ) -> _Plan:
        wire = "openai" if protocol == "responses" else protocol
        if reply.status >= 400:
            return self._plan_error_fault(
                _error_plan(
                    protocol,
                    reply.status,
                    reply.error_type or _default_error_type(reply.status),
                    reply.error_message or f"emulated error {reply.status}",
                    reply.headers,
                ),
                reply,
            )
        messages = body.get("messages") or []
        if protocol == "anthropic" and messages and messages[-1].get("role") == "assistant":
            prefix = _text_of(messages[-1].get("content"))
            if prefix != prefix.rstrip():
                return _error_plan(
                    protocol,
                    400,
                    "invalid_request_error",
                    "messages: final assistant content cannot end with trailing whitespace",
                    {},
                )
        problem = _check_tools(wire, body)
        if problem is not None:
            return _error_plan(wire, 400, "invalid_request_error", problem, {})
        calls = _scripted_calls(wire, body, reply)
        if calls and (reply.tool_calls is None or (reply.text is None and reply.chunks is None)):
            chunks: list[str] = []  # only calls (a forced tool answers with its call)
        else:
            chunks = self._reply_chunks(wire, body, reply)
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        truncated = isinstance(limit, int) and len(chunks) > limit
        if truncated:
            chunks = chunks[:limit]
        usage = self._usage(wire, body, chunks, reply)
        if calls:
            usage["completion_tokens"] += sum(count_tokens(c["arguments"]) for c in calls)
        if reply.reasoning:
            usage["completion_tokens"] += count_tokens(reply.reasoning)
        if wire == "openai":
            default = "tool_calls" if calls else "stop"
            finish = reply.finish_reason or ("length" if truncated else default)
        else:
            default = "tool_use" if calls else "end_turn"
            finish = reply.finish_reason or ("max_tokens" if truncated else default)
        model = str(body.get("model") or "emulator")
        pause = (
            reply.delay_between_chunks
            if reply.delay_between_chunks is not None
            else self.delay_between_chunks
        )
        if protocol == "responses":
            plan = _responses_plan(
                original or {}, model, chunks, finish, usage, calls, reply, pause
            )
            plan.tokens = usage["prompt_tokens"] + usage["completion_tokens"]
            return plan
        if not body.get("stream"):
            if protocol == "openai":
                payload = _openai_message(
                    model, "".join(chunks), finish, usage, calls, reply.reasoning
                )
            else:
                payload = _anthropic_message(
                    model, "".join(chunks), finish, usage, calls, reply.reasoning
                )
            plan = _Plan(
                200,
                "application/json",
                [json.dumps(payload).encode()],
                extra_headers=reply.headers,
                fault=reply.fault,
            )
            plan.tokens = usage["prompt_tokens"] + usage["completion_tokens"]
            return plan
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if protocol == "openai":
            pieces = _openai_frames(
                model, chunks, finish, usage if include_usage else None, reply.fault
            )
            if calls or reply.reasoning:
                pieces = _openai_rich(pieces, model, calls, reply)
        else:
            pieces = _anthropic_frames(model, chunks, finish, usage, reply.fault)
            if calls or reply.reasoning:
                pieces = _anthropic_rich(pieces, calls, reply, bool(chunks))
        plan = _Plan(
            200,
            "text/event-stream",
            pieces,
            extra_headers=reply.headers,
            fault=reply.fault,
            pause=pause,
        )
        plan.tokens = usage["prompt_tokens"] + usage["completion_tokens"]
        return plan

    def _plan_error_fault(self, plan: _Plan, reply: Reply) -> _Plan:
        plan.fault = reply.fault
        return plan

    def _reply_chunks(self, protocol: str, body: dict[str, Any], reply: Reply) -> list[str]:
        if reply.chunks is not None:
            return list(reply.chunks)
        messages = body.get("messages") or []
        prefix = ""
        continues = messages and messages[-1].get("role") == "assistant"
        if continues and (protocol == "anthropic" or self.openai_continue_final_assistant):
            prefix = _text_of(messages[-1].get("content"))
            messages = messages[:-1]
        if reply.text is not None:
            full = reply.text
        elif _wants_json(body, prefix):
            full = json.dumps(JSON_REPLY)
        else:
            full = self._story(messages)
        text = full
        if prefix and full.startswith(prefix):
            text = full[len(prefix) :]
        elif prefix == "{" and full.startswith("{"):
            text = full[1:]
        stops = body.get("stop") or body.get("stop_sequences")
        for stop in [stops] if isinstance(stops, str) else stops or []:
            if stop and stop in text:
                text = text[: text.index(stop)]
        return _split(text, self.chunk_words)

    def _story(self, messages: list[dict[str, Any]]) -> str:
        prompt = "\n".join(_text_of(m.get("content")) for m in messages)
        seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
        words = [_WORDS[(seed + i) % len(_WORDS)] for i in range(self.reply_words)]
        words[0] = words[0].capitalize()
        return " ".join(words) + "."

    def _usage(
        self, protocol: str, body: dict[str, Any], chunks: list[str], reply: Reply
    ) -> dict[str, int]:
        if reply.usage is not None:
            usage = {"cached_tokens": 0, "cache_creation_tokens": 0, **reply.usage}
            usage.setdefault("completion_tokens", len(chunks))
            return usage
        texts: list[str] = []
        cached_prefix: str | None = None
        system = body.get("system")
        blocks: list[Any] = []
        if isinstance(system, str):
            blocks.append({"text": system})
        elif isinstance(system, list):
            blocks.extend(system)
        for message in body.get("messages") or []:
            content = message.get("content")
            if isinstance(content, list):
                blocks.extend(content)
            else:
                blocks.append(
                    {"text": content or "", "cache_control": message.get("cache_control")}
                )
        for block in blocks:
            texts.append(_text_of([block]) if isinstance(block, dict) else str(block))
            if isinstance(block, dict) and block.get("cache_control"):
                cached_prefix = "\n".join(texts)
        prompt = count_tokens("\n".join(texts)) + 4 * len(body.get("messages") or [])
        cached = created = 0
        if protocol == "anthropic" and cached_prefix is not None:
            size = count_tokens(cached_prefix)
            key = hashlib.sha256(cached_prefix.encode()).hexdigest()
            if key in self._cache_seen:
                cached = size
            else:
                self._cache_seen.add(key)
                created = size
            prompt = max(prompt, cached + created)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": len(chunks),
            "cached_tokens": cached,
            "cache_creation_tokens": created,
        }


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

    def enqueue(self, *replies: Reply) -> None:
        self._loop.call_soon_threadsafe(self.emulator.enqueue, *replies)

    def stop(self) -> None:
        future = asyncio.run_coroutine_threadsafe(self.emulator.stop(), self._loop)
        future.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


# -- wire formats -------------------------------------------------------------------
def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(block, str):
            parts.append(block)
    return "\n".join(parts)


def _wants_json(body: dict[str, Any], prefix: str) -> bool:
    fmt = body.get("response_format") or (body.get("output_config") or {}).get("format") or {}
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        return True
    if prefix.startswith("{"):
        return True
    last_user = next(
        (m for m in reversed(body.get("messages") or []) if m.get("role") == "user"), None
    )
    return last_user is not None and "JSON" in _text_of(last_user.get("content"))


def _split(text: str, words_per_chunk: int) -> list[str]:
    """Split into chunks of about ``words_per_chunk`` words, each keeping its leading
    space, so the chunks join back to the exact text."""
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    count = 0
    for i in range(1, len(text)):
        if text[i] == " " and text[i - 1] != " ":
            count += 1
            if count >= words_per_chunk:
                pieces.append(text[start:i])
                start = i
                count = 0
    pieces.append(text[start:])
    return pieces


def _default_error_type(status: int) -> str:
    return {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        408: "timeout_error",
        409: "conflict_error",
        413: "request_too_large",
        422: "invalid_request_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")


def _error_plan(
    protocol: str, status: int, error_type: str, message: str, headers: dict[str, str]
) -> _Plan:
    if protocol == "anthropic":
        payload: dict[str, Any] = {
            "type": "error",
            "error": {"type": error_type, "message": message},
        }
    else:
        payload = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return _Plan(status, "application/json", [json.dumps(payload).encode()], extra_headers=headers)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _openai_usage(usage: dict[str, int]) -> dict[str, Any]:
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": usage.get("cached_tokens", 0),
            "audio_tokens": 0,
        },
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _anthropic_usage(usage: dict[str, int]) -> dict[str, int]:
    read, write = usage.get("cached_tokens", 0), usage.get("cache_creation_tokens", 0)
    return {
        "input_tokens": max(0, usage["prompt_tokens"] - read - write),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": usage["completion_tokens"],
    }


def _openai_frames(
    model: str,
    chunks: list[str],
    finish: str,
    usage: dict[str, int] | None,
    fault: Fault | None,
) -> list[bytes]:
    head = (
        b'data: {"id":"chatcmpl-emu","object":"chat.completion.chunk","created":1,"model":'
        + _dumps(model)
    )
    frames = [
        head
        + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
        + b'"finish_reason":null}]}\n\n'
    ]
    for i, chunk in enumerate(chunks):
        if fault is not None and fault.kind == "error_event" and i == fault.after:
            error = {"error": {"message": f"emulated {fault.error_type}", "type": fault.error_type}}
            frames.append(b"data: " + _dumps(error) + b"\n\n")
            return frames
        frames.append(
            head
            + b',"choices":[{"index":0,"delta":{"content":'
            + _dumps(chunk)
            + b'},"finish_reason":null}]}\n\n'
        )
    frames.append(
        head + b',"choices":[{"index":0,"delta":{},"finish_reason":' + _dumps(finish) + b"}]}\n\n"
    )
    if usage is not None:
        frames.append(head + b',"choices":[],"usage":' + _dumps(_openai_usage(usage)) + b"}\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def _anthropic_frames(
    model: str, chunks: list[str], finish: str, usage: dict[str, int], fault: Fault | None
) -> list[bytes]:
    wire = _anthropic_usage(usage)
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_emulator",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**wire, "output_tokens": 1},
        },
    }
    frames = [
        b"event: message_start\ndata: " + _dumps(start) + b"\n\n"
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
    ]
    for i, chunk in enumerate(chunks):
        if fault is not None and fault.kind == "error_event" and i == fault.after:
            error = {"type": "error", "error": {"type": fault.error_type, "message": "Overloaded"}}
            frames.append(b"event: error\ndata: " + _dumps(error) + b"\n\n")
            return frames
        frames.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":' + _dumps(chunk) + b"}}\n\n"
        )
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": finish, "stop_sequence": None},
        "usage": {"output_tokens": wire["output_tokens"]},
    }
    frames.append(
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        b"event: message_delta\ndata: " + _dumps(delta) + b"\n\n"
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    return frames


def _openai_message(
    model: str,
    text: str,
    finish: str,
    usage: dict[str, int],
    calls: list[dict[str, Any]] | None = None,
    reasoning: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls
        ]
    elif not text:
        message["content"] = ""
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": "chatcmpl-emu",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _openai_usage(usage),
    }


def _anthropic_message(
    model: str,
    text: str,
    finish: str,
    usage: dict[str, int],
    calls: list[dict[str, Any]] | None = None,
    reasoning: str | None = None,
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": _SIGNATURE})
    if text or not calls:
        content.append({"type": "text", "text": text})
    for c in calls or ():
        content.append(
            {
                "type": "tool_use",
                "id": c["id"],
                "name": c["name"],
                "input": json.loads(c["arguments"]),
            }
        )
    return {
        "id": "msg_emulator",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": finish,
        "stop_sequence": None,
        "usage": _anthropic_usage(usage),
    }


# -- hostile servers -------------------------------------------------------------------
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


def _head(status: int, content_type: str, headers: dict[str, str], *, length: int | None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"content-type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    framing = "transfer-encoding: chunked" if length is None else f"content-length: {length}"
    lines.append(framing)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


async def _hostile(
    fault: Fault, plan: _Plan, request: RecordedRequest, writer: asyncio.StreamWriter
) -> bool:
    """Answer as a hostile or broken server would. Returns keep-alive."""
    kind = fault.kind
    ids = {"x-request-id": "req_emulator", "request-id": "req_emulator"}
    pieces = plan.pieces
    body = b"".join(pieces)
    if kind in ("retry_after", "echo_key", "huge_error", "redirect"):
        status = fault.status
        headers = dict(ids)
        error = _dumps(
            {"error": {"message": f"emulated {status}", "type": _default_error_type(status)}}
        )
        if kind == "retry_after":
            headers["retry-after"] = fault.text
        elif kind == "echo_key":
            auth = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            key = request.headers.get("x-api-key") or request.headers.get("x-goog-api-key") or auth
            headers = {"x-request-id": key, "request-id": key}
            error = _dumps({"error": {"message": f"bad key {key}", "type": "invalid_request"}})
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
        text = _dumps(fault.text)
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


# -- tools, reasoning, and the conversation rules of the real APIs -------------------

_SIGNATURE = "ZW11bGF0b3Itc2lnbmF0dXJl"  # what the emulator signs thinking with


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _scripted_calls(
    protocol: str, body: dict[str, Any], reply: Reply
) -> list[dict[str, Any]] | None:
    """The reply's tool calls with ids and JSON-text arguments; or, for Anthropic's
    forced tool (structured output on older models), a call to it with the JSON."""
    calls = reply.tool_calls
    if calls is None:
        choice = body.get("tool_choice")
        if protocol == "anthropic" and isinstance(choice, dict) and choice.get("type") == "tool":
            payload = reply.text if reply.text is not None else json.dumps(JSON_REPLY)
            if reply.chunks is not None:
                payload = "".join(reply.chunks)
            try:
                json.loads(payload)
            except ValueError:
                payload = "{}"  # a forced call has arguments, whatever the text was
            calls = [{"name": choice["name"], "arguments": payload}]
        else:
            return None
    out = []
    for i, call in enumerate(calls):
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        prefix = "toolu_emu" if protocol == "anthropic" else "call_emu"
        out.append(
            {"id": call.get("id") or f"{prefix}{i}", "name": call["name"], "arguments": arguments}
        )
    return out


def _check_tools(protocol: str, body: dict[str, Any]) -> str | None:
    """What the real API would reject in the tools or the tool conversation, or None."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if protocol == "openai":
                fn = tool.get("function") if isinstance(tool, dict) else None
                if not (
                    isinstance(tool, dict)
                    and tool.get("type") == "function"
                    and isinstance(fn, dict)
                    and isinstance(fn.get("name"), str)
                ):
                    return f"Missing required parameter: 'tools[{i}].function'."
            elif not (
                isinstance(tool, dict)
                and isinstance(tool.get("name"), str)
                and isinstance(tool.get("input_schema"), dict)
            ):
                return f"tools.{i}.custom.input_schema: Field required"
    messages = body.get("messages") or []
    if protocol == "openai":
        pending: set[str] = set()
        for i, m in enumerate(messages):
            role = m.get("role")
            if role == "tool":
                if m.get("tool_call_id") not in pending:
                    return (
                        f"Invalid parameter: messages[{i}]: messages with role 'tool' must be "
                        "a response to a preceeding message with 'tool_calls'."
                    )
                pending.discard(m["tool_call_id"])
                continue
            if pending:
                return (
                    "An assistant message with 'tool_calls' must be followed by tool messages "
                    "responding to each 'tool_call_id'. The following tool_call_ids did not "
                    f"have response messages: {', '.join(sorted(pending))}"
                )
            if role == "assistant":
                pending = {c.get("id") for c in m.get("tool_calls") or []}
        return None
    previous: set[str] = set()
    for i, m in enumerate(messages):
        content = m.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if results:
            if m.get("role") != "user":
                return f"messages.{i}: tool_result blocks must be in a user message"
            first_other = next(
                (j for j, b in enumerate(blocks) if b.get("type") != "tool_result"), len(blocks)
            )
            if any(b.get("type") == "tool_result" for b in blocks[first_other:]):
                return f"messages.{i}: tool_result blocks must come before any other content"
            unknown = [r for r in results if r not in previous]
            if unknown:
                return (
                    f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {unknown[0]}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        if previous and not set(previous) <= set(results):
            missing = sorted(set(previous) - set(results))
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        previous = (
            {b.get("id") for b in blocks if b.get("type") == "tool_use"}
            if m.get("role") == "assistant"
            else set()
        )
    return None


def _openai_rich(
    frames: list[bytes], model: str, calls: list[dict[str, Any]] | None, reply: Reply
) -> list[bytes]:
    """Insert reasoning frames after the opening frame and tool-call frames before the
    finish frame of an OpenAI stream."""
    head = (
        b'data: {"id":"chatcmpl-emu","object":"chat.completion.chunk","created":1,"model":'
        + _dumps(model)
    )

    def frame(delta: dict[str, Any]) -> bytes:
        return (
            head
            + b',"choices":[{"index":0,"delta":'
            + _dumps(delta)
            + b',"finish_reason":null}]}\n\n'
        )

    thinking = (
        [frame({"reasoning_content": p}) for p in _pieces(reply.reasoning or "")]
        if reply.reasoning
        else []
    )
    tool_frames: list[bytes] = []
    if calls:
        streams = []
        for i, c in enumerate(calls):
            first = {
                "index": i,
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": ""},
            }
            rest = [{"index": i, "function": {"arguments": p}} for p in _pieces(c["arguments"])]
            streams.append([first, *rest])
        if reply.interleave_tool_calls:
            # every call opens first, then their argument deltas alternate
            order = [s[0] for s in streams]
            tails = [s[1:] for s in streams]
            for k in range(max(len(t) for t in tails)):
                order.extend(t[k] for t in tails if k < len(t))
        else:
            order = [d for s in streams for d in s]
        tool_frames = [frame({"tool_calls": [d]}) for d in order]
    finish_at = next((i for i, f in enumerate(frames) if b'"finish_reason":"' in f), len(frames))
    return [frames[0], *thinking, *frames[1:finish_at], *tool_frames, *frames[finish_at:]]


def _anthropic_rich(
    frames: list[bytes], calls: list[dict[str, Any]] | None, reply: Reply, has_text: bool
) -> list[bytes]:
    """Rebuild an Anthropic stream's blocks: thinking (signed), text, tool_use."""
    opening = frames[0].split(b"event: content_block_start")[0]  # message_start
    body = frames[1:-1]  # text deltas
    closing = frames[-1].split(b"event: message_delta")[1]
    out = [opening]
    index = 0
    if reply.reasoning:
        out.append(
            b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
            b'"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
        )
        for p in _pieces(reply.reasoning):
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "thinking_delta", "thinking": p},
            }
            out.append(b"event: content_block_delta\ndata: " + _dumps(delta) + b"\n\n")
        sig = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": _SIGNATURE},
        }
        out.append(b"event: content_block_delta\ndata: " + _dumps(sig) + b"\n\n")
        out.append(b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n')
        index = 1
    if has_text or not calls:
        start = {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        }
        out.append(b"event: content_block_start\ndata: " + _dumps(start) + b"\n\n")
        for f in body:
            out.append(f.replace(b'"index":0,', b'"index":%d,' % index, 1))
        stop = {"type": "content_block_stop", "index": index}
        out.append(b"event: content_block_stop\ndata: " + _dumps(stop) + b"\n\n")
        index += 1
    for c in calls or ():
        start = {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "tool_use", "id": c["id"], "name": c["name"], "input": {}},
        }
        out.append(b"event: content_block_start\ndata: " + _dumps(start) + b"\n\n")
        for p in ["", *_pieces(c["arguments"])]:
            delta = {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": p},
            }
            out.append(b"event: content_block_delta\ndata: " + _dumps(delta) + b"\n\n")
        stop = {"type": "content_block_stop", "index": index}
        out.append(b"event: content_block_stop\ndata: " + _dumps(stop) + b"\n\n")
        index += 1
    out.append(b"event: message_delta" + closing)
    return out


# -- OpenAI Responses -------------------------------------------------------------


def _check_responses(body: dict[str, Any]) -> str | None:
    """What the real Responses API rejects in a request's tools and input items."""
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type") not in (
            "function",
            "web_search",
            "web_search_preview",
            "file_search",
        ):
            return f"Invalid value for 'tools[{i}].type'."
        if tool.get("type") == "function" and not isinstance(tool.get("name"), str):
            return f"Missing required parameter: 'tools[{i}].name'."
    items = body.get("input")
    if isinstance(items, str) or items is None:
        return None
    if not isinstance(items, list):
        return "Invalid type for 'input': expected a string or an array of items."
    calls: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return f"Invalid type for 'input[{i}]': expected an object."
        kind = item.get("type")
        if kind == "function_call":
            calls.add(str(item.get("call_id")))
        elif kind == "function_call_output":
            if str(item.get("call_id")) not in calls:
                return (
                    "No tool call found for function call output with call_id "
                    f"{item.get('call_id')}."
                )
        elif kind == "reasoning":
            following = items[i + 1] if i + 1 < len(items) else None
            if not (
                isinstance(following, dict)
                and (
                    following.get("type") in ("function_call", "message")
                    or following.get("role") == "assistant"
                )
            ):
                return (
                    f"Item '{item.get('id')}' of type 'reasoning' was provided without its "
                    "required following item."
                )
    return None


def _responses_as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request read as the equivalent Chat Completions request."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items or ():
        kind = item.get("type")
        if kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}
            )
        elif kind == "reasoning":
            continue
        elif "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            messages.append({"role": item["role"], "content": content})
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") in ("json_schema", "json_object"):
        chat["response_format"] = {"type": fmt["type"]}
    tools = [
        {"type": "function", "function": {"name": t["name"], "parameters": t.get("parameters")}}
        for t in body.get("tools") or ()
        if t.get("type") == "function"
    ]
    if tools:
        chat["tools"] = tools
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _sse(kind: str, payload: dict[str, Any], seq: list[int]) -> bytes:
    payload = {"type": kind, "sequence_number": seq[0], **payload}
    seq[0] += 1
    return b"event: " + kind.encode() + b"\ndata: " + _dumps(payload) + b"\n\n"


def _responses_plan(
    body: dict[str, Any],
    model: str,
    chunks: list[str],
    finish: str,
    usage: dict[str, int],
    calls: list[dict[str, Any]] | None,
    reply: Reply,
    pause: float,
) -> _Plan:
    status = "incomplete" if finish == "length" else "completed"
    include = body.get("include") or ()
    reasoning_item: dict[str, Any] | None = None
    if reply.reasoning:
        reasoning_item = {
            "id": "rs_emu0",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": reply.reasoning}],
        }
        if "reasoning.encrypted_content" in include:
            reasoning_item["encrypted_content"] = "ZW5jcnlwdGVkLXJlYXNvbmluZw=="
    text = "".join(chunks)
    message_item = {
        "id": "msg_emu0",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }
    call_items = [
        {
            "id": f"fc_emu{i}",
            "type": "function_call",
            "status": "completed",
            "call_id": c["id"],
            "name": c["name"],
            "arguments": c["arguments"],
        }
        for i, c in enumerate(calls or ())
    ]
    output: list[dict[str, Any]] = []
    if reasoning_item:
        output.append(reasoning_item)
    if text or not call_items:
        output.append(message_item)
    output.extend(call_items)
    read, prompt = usage.get("cached_tokens", 0), usage["prompt_tokens"]
    reasoning_tokens = count_tokens(reply.reasoning or "")
    response: dict[str, Any] = {
        "id": "resp_emulator",
        "object": "response",
        "created_at": 1,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": read},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": prompt + usage["completion_tokens"],
        },
    }
    if not body.get("stream"):
        return _Plan(200, "application/json", [json.dumps(response).encode()])
    seq = [0]
    opening = {**response, "status": "in_progress", "output": [], "usage": None}
    head = [
        _sse("response.created", {"response": opening}, seq),
        _sse("response.in_progress", {"response": opening}, seq),
    ]
    index = 0
    if reasoning_item:
        rid = reasoning_item["id"]
        head.append(
            _sse(
                "response.output_item.added",
                {"output_index": index, "item": {**reasoning_item, "summary": []}},
                seq,
            )
        )
        part = {"item_id": rid, "output_index": index, "summary_index": 0}
        head.append(
            _sse(
                "response.reasoning_summary_part.added",
                {**part, "part": {"type": "summary_text", "text": ""}},
                seq,
            )
        )
        for piece in _pieces(reply.reasoning or ""):
            head.append(
                _sse("response.reasoning_summary_text.delta", {**part, "delta": piece}, seq)
            )
        head.append(
            _sse("response.reasoning_summary_text.done", {**part, "text": reply.reasoning}, seq)
        )
        head.append(
            _sse("response.output_item.done", {"output_index": index, "item": reasoning_item}, seq)
        )
        index += 1
    pieces = [b"".join(head)]
    tail: list[bytes] = []
    if text or not call_items:
        mid = {"item_id": "msg_emu0", "output_index": index, "content_index": 0}
        opened = [
            _sse(
                "response.output_item.added",
                {
                    "output_index": index,
                    "item": {**message_item, "status": "in_progress", "content": []},
                },
                seq,
            ),
            _sse(
                "response.content_part.added",
                {**mid, "part": {"type": "output_text", "text": "", "annotations": []}},
                seq,
            ),
        ]
        pieces[0] += b"".join(opened)
        for i, piece in enumerate(chunks):
            fault = reply.fault
            if fault is not None and fault.kind == "error_event" and i == fault.after:
                error = {"code": "server_error", "message": f"emulated {fault.error_type}"}
                pieces.append(_sse("error", error, seq))
                return _Plan(200, "text/event-stream", pieces, fault=None, pause=pause)
            pieces.append(
                _sse("response.output_text.delta", {**mid, "delta": piece, "logprobs": []}, seq)
            )
        tail.append(_sse("response.output_text.done", {**mid, "text": text, "logprobs": []}, seq))
        tail.append(
            _sse("response.content_part.done", {**mid, "part": message_item["content"][0]}, seq)
        )
        tail.append(
            _sse("response.output_item.done", {"output_index": index, "item": message_item}, seq)
        )
        index += 1
    for item in call_items:
        fid = {"item_id": item["id"], "output_index": index}
        tail.append(
            _sse(
                "response.output_item.added",
                {"output_index": index, "item": {**item, "status": "in_progress", "arguments": ""}},
                seq,
            )
        )
        for piece in _pieces(item["arguments"]):
            tail.append(
                _sse("response.function_call_arguments.delta", {**fid, "delta": piece}, seq)
            )
        tail.append(
            _sse(
                "response.function_call_arguments.done",
                {**fid, "name": item["name"], "arguments": item["arguments"]},
                seq,
            )
        )
        tail.append(_sse("response.output_item.done", {"output_index": index, "item": item}, seq))
        index += 1
    terminal = "response.incomplete" if status == "incomplete" else "response.completed"
    tail.append(_sse(terminal, {"response": response}, seq))
    pieces.append(b"".join(tail))
    return _Plan(200, "text/event-stream", pieces, fault=reply.fault, pause=pause)
