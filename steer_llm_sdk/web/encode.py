"""The three wire encodings of a stream of parts, pure (no I/O, no Starlette).

An encoder turns each part (a typed part of ``stream_events()`` / ``stream_tools()``,
or a text chunk of ``stream()``) into the bytes of zero or more SSE events; ``end()``
closes the stream and ``error(message)`` ends it with an error event.

- ``UIEncoder``: the Vercel AI SDK's UI message stream, protocol v1 (``ai`` 6.x).
- ``OpenAIEncoder``: OpenAI Chat Completions chunks (``chat.completion.chunk``).
- ``SSEEncoder``: this SDK's own parts as JSON, the event name being the part's type.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any, ClassVar

import orjson

from ..errors import SteerError
from ..results import Finish

__all__ = ["ENCODINGS", "Encoder", "OpenAIEncoder", "SSEEncoder", "UIEncoder", "make_encoder"]

_UI_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
    "refusal": "content-filter",
}
DONE = b"data: [DONE]\n\n"


def _data(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def file_url(part: Any) -> tuple[str, str] | None:
    """``(media_type, url)`` of a file part (``part.file`` with ``media_type`` and
    ``url`` or ``data``/``b64``), a data URL when the bytes are inline; None if not."""
    f = getattr(part, "file", None)
    media_type = getattr(f, "media_type", None)
    if f is None or not media_type:
        return None
    url = getattr(f, "url", None)
    if url:
        return str(media_type), str(url)
    data = getattr(f, "data", None)
    if isinstance(data, (bytes, bytearray, memoryview)):
        b64 = base64.b64encode(bytes(data)).decode("ascii")
    elif isinstance(data, str):
        b64 = data
    else:
        inline = getattr(f, "b64", None)
        if not isinstance(inline, str):
            return None
        b64 = inline
    return str(media_type), f"data:{media_type};base64,{b64}"


def _usage(finish: Finish) -> dict[str, Any]:
    return {k: v for k, v in finish.usage.items() if isinstance(v, (int, float))}


class Encoder:
    """The base: ``headers``, ``part(p) -> bytes``, ``error(message) -> bytes``, ``end()``."""

    headers: ClassVar[dict[str, str]] = {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
    }

    def part(self, part: Any) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def error(self, message: str) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def end(self) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError


class UIEncoder(Encoder):
    """The UI message stream: ``start``, ``start-step``, ``text-*``, ``reasoning-*``,
    ``tool-input-*``, ``tool-output-*``, ``file``, ``finish-step``, ``finish``,
    ``error``, then ``[DONE]``. Structured output arrives as its JSON text."""

    headers: ClassVar[dict[str, str]] = {
        **Encoder.headers,
        "x-vercel-ai-ui-message-stream": "v1",
    }

    def __init__(self, message_id: str | None = None) -> None:
        self.message_id = message_id or f"msg-{uuid.uuid4().hex}"
        self._started = False
        self._in_step = False
        self._open: str | None = None  # "text" or "reasoning"
        self._block = 0
        self._calls: dict[int, tuple[str, str]] = {}  # index -> (id, name), this step
        self._finish: Finish | None = None

    def _begin(self) -> bytes:
        out = b""
        if not self._started:
            self._started = True
            out = _data({"type": "start", "messageId": self.message_id})
        if not self._in_step:
            self._in_step = True
            self._calls = {}
            out += b'data: {"type":"start-step"}\n\n'
        return out

    def _close_block(self) -> bytes:
        if self._open is None:
            return b""
        kind, self._open = self._open, None
        return _data({"type": f"{kind}-end", "id": f"{kind[0]}{self._block}"})

    def _delta(self, kind: str, text: str) -> bytes:
        out = self._begin()
        if self._open != kind:
            out += self._close_block()
            self._block += 1
            self._open = kind
            out += _data({"type": f"{kind}-start", "id": f"{kind[0]}{self._block}"})
        return out + _data(
            {"type": f"{kind}-delta", "id": f"{kind[0]}{self._block}", "delta": text}
        )

    def part(self, part: Any) -> bytes:
        if type(part) is str:
            return self._delta("text", part) if part else self._begin()
        kind = part.type
        if kind == "text-delta":
            return self._delta("text", part.text)
        if kind == "reasoning-delta":
            return self._delta("reasoning", part.text)
        if kind == "tool-call-start":
            out = self._begin() + self._close_block()
            self._calls[part.index] = (part.id, part.name)
            return out + _data(
                {"type": "tool-input-start", "toolCallId": part.id, "toolName": part.name}
            )
        if kind == "tool-call-delta":
            call_id = self._calls.get(part.index, ("", ""))[0]
            return _data(
                {
                    "type": "tool-input-delta",
                    "toolCallId": call_id,
                    "inputTextDelta": part.arguments,
                }
            )
        if kind == "tool-call-end":
            return self._tool_end(part.call)
        if kind == "tool-result":
            if part.is_error:
                return _data(
                    {
                        "type": "tool-output-error",
                        "toolCallId": part.call.id,
                        "errorText": part.content,
                    }
                )
            return _data(
                {
                    "type": "tool-output-available",
                    "toolCallId": part.call.id,
                    "output": part.content,
                }
            )
        if kind == "finish":
            out = self._begin() + self._close_block()
            self._in_step = False
            self._finish = part
            return out + b'data: {"type":"finish-step"}\n\n'
        if kind == "file":
            found = file_url(part)
            if found is None:
                return b""
            return (
                self._begin()
                + self._close_block()
                + _data({"type": "file", "mediaType": found[0], "url": found[1]})
            )
        return b""  # partial-output: its JSON is the text itself

    def _tool_end(self, call: Any) -> bytes:
        out = self._begin()
        if call.id not in {c[0] for c in self._calls.values()}:
            out += _data({"type": "tool-input-start", "toolCallId": call.id, "toolName": call.name})
        try:
            args = call.args
        except SteerError as exc:
            return out + _data(
                {
                    "type": "tool-input-error",
                    "toolCallId": call.id,
                    "toolName": call.name,
                    "input": call.arguments,
                    "errorText": str(exc),
                }
            )
        return out + _data(
            {
                "type": "tool-input-available",
                "toolCallId": call.id,
                "toolName": call.name,
                "input": args,
            }
        )

    def error(self, message: str) -> bytes:
        out = (b"" if self._started else self._begin()) + self._close_block()
        return out + _data({"type": "error", "errorText": message}) + DONE

    def end(self) -> bytes:
        out = (b"" if self._started else self._begin()) + self._close_block()
        if self._in_step:
            self._in_step = False
            out += b'data: {"type":"finish-step"}\n\n'
        finish: dict[str, Any] = {"type": "finish"}
        if self._finish is not None:
            finish["finishReason"] = _UI_FINISH.get(self._finish.reason, "other")
            response = self._finish.response
            finish["messageMetadata"] = {
                "model": response.model,
                "usage": _usage(self._finish),
                "costUsd": response.cost_usd,
            }
        return out + _data(finish) + DONE


class OpenAIEncoder(Encoder):
    """Chat Completions chunks; the usage chunk when ``include_usage``; ``[DONE]``.
    With ``stream_tools()`` only the last step's finish is sent."""

    def __init__(self, model: str = "", include_usage: bool = True) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self._head = orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": model,
            }
        )[:-1]
        self._role_sent = False
        self._finish: Finish | None = None
        self._calls: set[int] = set()

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        choices = [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        return b"data: " + self._head + b',"choices":' + orjson.dumps(choices) + b"}\n\n"

    def part(self, part: Any) -> bytes:
        if type(part) is str:
            return self._chunk({"content": part}) if part else b""
        kind = part.type
        if kind == "finish":
            self._finish = part
            return b""
        self._finish = None  # a later step follows (stream_tools)
        if kind == "text-delta":
            return self._chunk({"content": part.text})
        if kind == "reasoning-delta":
            return self._chunk({"reasoning_content": part.text})
        if kind == "tool-call-start":
            self._calls.add(part.index)
            fn = {"name": part.name, "arguments": ""}
            call = {"index": part.index, "id": part.id, "type": "function", "function": fn}
            return self._chunk({"tool_calls": [call]})
        if kind == "tool-call-delta":
            call = {"index": part.index, "function": {"arguments": part.arguments}}
            return self._chunk({"tool_calls": [call]})
        if kind == "tool-call-end" and part.index not in self._calls:
            c = part.call
            fn = {"name": c.name, "arguments": c.arguments}
            call = {"index": part.index, "id": c.id, "type": "function", "function": fn}
            return self._chunk({"tool_calls": [call]})
        return b""

    def error(self, message: str) -> bytes:
        return _data({"error": {"message": message, "type": "server_error"}}) + DONE

    def end(self) -> bytes:
        finish = self._finish
        reason = "stop" if finish is None else finish.reason
        if reason not in ("stop", "length", "tool_calls", "content_filter"):
            reason = "content_filter" if reason == "refusal" else "stop"
        out = self._chunk({}, reason)
        if self.include_usage and finish is not None:
            usage = _usage(finish)
            body = {
                "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                "completion_tokens": int(usage.get("completion_tokens", 0)),
                "total_tokens": int(usage.get("total_tokens", 0)),
            }
            out += (
                b"data: " + self._head + b',"choices":[],"usage":' + orjson.dumps(body) + b"}\n\n"
            )
        return out + DONE


def part_json(part: Any) -> dict[str, Any]:
    """A part as plain JSON (the ``"sse"`` encoding's data)."""
    if type(part) is str:
        return {"text": part}
    kind = part.type
    if kind in ("text-delta", "reasoning-delta"):
        return {"text": part.text}
    if kind == "tool-call-start":
        return {"index": part.index, "id": part.id, "name": part.name}
    if kind == "tool-call-delta":
        return {"index": part.index, "arguments": part.arguments}
    if kind == "tool-call-end":
        return {"index": part.index, "call": _call(part.call)}
    if kind == "partial-output":
        return {"value": part.value}
    if kind == "tool-result":
        return {"call": _call(part.call), "content": part.content, "is_error": part.is_error}
    if kind == "finish":
        r = part.response
        return {
            "reason": part.reason,
            "raw_reason": part.raw_reason,
            "usage": part.usage,
            "model": r.model,
            "provider": r.provider,
            "cost_usd": r.cost_usd,
            "text": r.text,
        }
    if kind == "file":
        found = file_url(part)
        return {} if found is None else {"media_type": found[0], "url": found[1]}
    return {}


def _call(call: Any) -> dict[str, Any]:
    return {"id": call.id, "name": call.name, "arguments": call.arguments, "kind": call.kind}


class SSEEncoder(Encoder):
    """``event: <part type>`` / ``data: <the part as JSON>``; ``event: error``; ``done``."""

    def part(self, part: Any) -> bytes:
        kind = "text-delta" if type(part) is str else part.type
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(part_json(part)) + b"\n\n"

    def error(self, message: str) -> bytes:
        return b"event: error\ndata: " + orjson.dumps({"message": message}) + b"\n\n" + self.end()

    def end(self) -> bytes:
        return b"event: done\ndata: {}\n\n"


ENCODINGS = ("ui", "openai", "sse")


def make_encoder(encoding: str, *, message_id: str | None = None, model: str = "") -> Encoder:
    if encoding == "ui":
        return UIEncoder(message_id)
    if encoding == "openai":
        return OpenAIEncoder(model)
    if encoding == "sse":
        return SSEEncoder()
    from ..errors import ConfigurationError

    raise ConfigurationError(f"encoding={encoding!r}: use one of {', '.join(ENCODINGS)}")
