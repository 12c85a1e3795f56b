"""Serving streams to browsers (the ``web`` extra: Starlette).

``stream_response(stream, encoding="ui")`` turns ``stream_events()`` /
``stream_tools()`` / ``stream()`` into a streaming response for any ASGI app (FastAPI
included): the AI SDK's UI message stream (``useChat``), OpenAI Chat Completions
chunks, or this SDK's own parts. ``resume_response(chat_id)`` serves a resumable
answer to a client that reconnects; ``from_ui_messages(body)`` reads ``useChat``'s
request body.

The names load on first use, so that ``steer-llm``'s parser (which registers
``serve``) loads neither Starlette nor ``sqlite3``."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .encode import ENCODINGS
    from .messages import from_ui_messages
    from .response import error_status, resume_response, stream_response
    from .store import RedisStore, SQLiteStore, StreamStore

__all__ = [
    "ENCODINGS",
    "RedisStore",
    "SQLiteStore",
    "StreamStore",
    "error_status",
    "from_ui_messages",
    "resume_response",
    "stream_response",
]

_WHERE = {
    "ENCODINGS": "encode",
    "from_ui_messages": "messages",
    "error_status": "response",
    "resume_response": "response",
    "stream_response": "response",
    "RedisStore": "store",
    "SQLiteStore": "store",
    "StreamStore": "store",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'steer_llm_sdk.web' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
