"""An emulator of the OpenAI Chat Completions and Anthropic Messages wire protocols.

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
    ) -> None:
        self.host = host
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

    # -- lifecycle -------------------------------------------------------------
    async def start(self) -> Emulator:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
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
        if plan.status != 200 or path not in ("/v1/chat/completions", "/v1/messages"):
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

    def _plan_for(self, protocol: str, body: dict[str, Any], reply: Reply) -> _Plan:
        if reply.status >= 400:
            return _error_plan(
                protocol,
                reply.status,
                reply.error_type or _default_error_type(reply.status),
                reply.error_message or f"emulated error {reply.status}",
                reply.headers,
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
        chunks = self._reply_chunks(protocol, body, reply)
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        truncated = isinstance(limit, int) and len(chunks) > limit
        if truncated:
            chunks = chunks[:limit]
        usage = self._usage(protocol, body, chunks, reply)
        if protocol == "openai":
            finish = reply.finish_reason or ("length" if truncated else "stop")
        else:
            finish = reply.finish_reason or ("max_tokens" if truncated else "end_turn")
        model = str(body.get("model") or "emulator")
        if not body.get("stream"):
            if protocol == "openai":
                payload = _openai_message(model, "".join(chunks), finish, usage)
            else:
                payload = _anthropic_message(model, "".join(chunks), finish, usage)
            plan = _Plan(
                200, "application/json", [json.dumps(payload).encode()], extra_headers=reply.headers
            )
            plan.tokens = usage["prompt_tokens"] + usage["completion_tokens"]
            return plan
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if protocol == "openai":
            pieces = _openai_frames(
                model, chunks, finish, usage if include_usage else None, reply.fault
            )
        else:
            pieces = _anthropic_frames(model, chunks, finish, usage, reply.fault)
        pause = (
            reply.delay_between_chunks
            if reply.delay_between_chunks is not None
            else self.delay_between_chunks
        )
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


def _openai_message(model: str, text: str, finish: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-emu",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "finish_reason": finish,
            }
        ],
        "usage": _openai_usage(usage),
    }


def _anthropic_message(model: str, text: str, finish: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": "msg_emulator",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": finish,
        "stop_sequence": None,
        "usage": _anthropic_usage(usage),
    }
