"""The emulator's shared primitives, used by every protocol module.

What a test scripts (:class:`Reply`, :class:`Fault`), what the server records
(:class:`RecordedRequest`) and what a protocol module hands back to the server
(:class:`Plan`: status, headers and body pieces); the :class:`Wire` base class each
protocol's handler derives from; and the pieces every protocol's answer is made of:
the text of an unscripted answer (a story from the prompt, or JSON), word chunks,
small argument pieces, the token count. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

from ._schema import fit_schema

__all__ = [
    "JSON_REPLY",
    "Fault",
    "Plan",
    "RecordedRequest",
    "Reply",
    "Settings",
    "Wire",
    "answer_text",
    "count_tokens",
    "cut_at_stops",
    "default_error_type",
    "dumps",
    "json_plan",
    "numbered_calls",
    "pause_of",
    "small_pieces",
    "split_words",
    "story",
    "text_of",
]

WORDS = (
    "once upon a time a lighthouse keeper named Ada watched the sea each night and "
    "wrote down every ship that passed her rock until one winter a silent boat "
    "arrived without lights and she rowed out alone to meet it"
).split()
# The unscripted answer when JSON is asked for without a schema; with one, its values
# fill the fields of the same name and type (see ``fit_schema``).
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
    def bad_crc_after(cls, chunks: int) -> Fault:
        """Bedrock: the frame after ``chunks`` text frames has a corrupt message CRC."""
        return cls("bad_crc", after=chunks)

    @classmethod
    def cut_frame_after(cls, chunks: int) -> Fault:
        """Bedrock: after ``chunks`` text frames, half a frame, then the connection drops."""
        return cls("cut_frame", after=chunks)

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
    # Files the answer carries (Gemini: inlineData parts after the text; the request
    # must ask for them with responseModalities), as (media type, bytes).
    files: list[tuple[str, bytes]] | None = None
    # A spoken answer (OpenAI Chat Completions with modalities ["text", "audio"]): the
    # audio's bytes and its transcript, streamed as the real API streams them.
    audio: bytes | None = None
    transcript: str | None = None


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Plan:
    """What to send for one request: status, headers, a list of body pieces.

    A streamed plan's first piece carries no text: a fault's ``after`` counts the
    pieces after it. ``tokens`` (prompt + completion of a 200 answer) feeds the rate
    limits."""

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
        tokens: int = 0,
    ) -> None:
        self.status = status
        self.content_type = content_type
        self.pieces = pieces  # SSE frames (the fault's `after` counts text frames)
        self.extra_headers = extra_headers or {}
        self.fault = fault
        self.pause = pause
        self.tokens = tokens


class Settings(Protocol):
    """The server's settings a protocol module reads (the :class:`Emulator`'s)."""

    reply_words: int
    chunk_words: int
    delay_between_chunks: float
    openai_continue_final_assistant: bool


class Wire:
    """One protocol's side of the emulator. The server asks each handler in turn
    whether it ``matches`` a request, ``read`` s the body (a JSON object, or an error
    plan), picks the reply (a rule, the queue, or a default ``Reply()``, cached by body
    when ``cacheable``) and asks for its ``plan``: a scripted error, else the
    ``answer``. ``rate_limited`` handlers count against the per-key limits, whose 429
    comes from ``error``."""

    rate_limited = False
    scripted = True  # scripted replies (queue, rules) apply; False: the Files APIs
    route = ("POST", "")  # the method and path it answers
    not_json = ("invalid_request_error", "body is not JSON")  # the 400 for a bad body

    def matches(self, method: str, path: str) -> bool:
        return (method, path) == self.route

    def read(self, request: RecordedRequest) -> dict[str, Any] | Plan:
        try:
            body = request.json
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
        return self.error(400, *self.not_json, {})

    def cacheable(self, request: RecordedRequest) -> bool:
        """Whether the default reply's plan depends on the body alone."""
        return True

    def plan(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        if reply.status < 400:
            return self.answer(settings, request, body, reply)
        plan = self.error(
            reply.status,
            reply.error_type or default_error_type(reply.status),
            reply.error_message or f"emulated error {reply.status}",
            reply.headers,
        )
        plan.fault = reply.fault
        return plan

    def answer(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        """The plan of a reply that is not an error (or a 400 the real API would send)."""
        raise NotImplementedError

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        """The protocol's error body for ``status``."""
        raise NotImplementedError


def json_plan(status: int, payload: Any, headers: dict[str, str] | None = None) -> Plan:
    """A whole JSON body."""
    return Plan(status, "application/json", [json.dumps(payload).encode()], extra_headers=headers)


def default_error_type(status: int) -> str:
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


def dumps(obj: Any) -> bytes:
    """Compact JSON, as OpenAI and Anthropic send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text of its blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or ():
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif isinstance(block, str):
            parts.append(block)
    return "\n".join(parts)


def story(prompt: str, words: int) -> str:
    """The default answer: ``words`` words of a story, chosen by the prompt's hash."""
    seed = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    chosen = [WORDS[(seed + i) % len(WORDS)] for i in range(words)]
    chosen[0] = chosen[0].capitalize()
    return " ".join(chosen) + "."


def answer_text(
    settings: Settings, reply: Reply, prompt: str, *, wants_json: bool, schema: Any = None
) -> str:
    """The whole text of an answer: the reply's text; else, when the request carries a
    JSON schema, an object that fits it; else :data:`JSON_REPLY` when JSON is asked
    for; else the story of the prompt."""
    if reply.text is not None:
        return reply.text
    if isinstance(schema, dict):
        return json.dumps(fit_schema(schema, JSON_REPLY))
    if wants_json:
        return json.dumps(JSON_REPLY)
    return story(prompt, settings.reply_words)


def cut_at_stops(text: str, stops: Any) -> str:
    """The text up to the first of the stop sequences (a string or a list) it holds."""
    for stop in [stops] if isinstance(stops, str) else stops or ():
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def split_words(text: str, words_per_chunk: int) -> list[str]:
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


def small_pieces(text: str, size: int = 8) -> list[str]:
    """``text`` in pieces of ``size`` characters (reasoning and tool arguments)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def pause_of(settings: Settings, reply: Reply) -> float:
    """Seconds between streamed pieces: the reply's, else the server's."""
    if reply.delay_between_chunks is not None:
        return reply.delay_between_chunks
    return settings.delay_between_chunks


def numbered_calls(calls: list[dict[str, Any]], id_prefix: str) -> list[dict[str, Any]]:
    """Scripted tool calls with ids (``{id_prefix}{n}`` when not given) and their
    arguments as JSON text."""
    out = []
    for i, call in enumerate(calls):
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        out.append(
            {
                "id": call.get("id") or f"{id_prefix}{i}",
                "name": call["name"],
                "arguments": arguments,
            }
        )
    return out
