"""Serving streams to browsers (the ``web`` extra: Starlette).

``stream_response(stream, encoding="ui")`` turns ``stream_events()`` /
``stream_tools()`` / ``stream()`` into a streaming response for any ASGI app (FastAPI
included): the AI SDK's UI message stream (``useChat``), OpenAI Chat Completions
chunks, or this SDK's own parts. ``resume_response(chat_id)`` serves a resumable
answer to a client that reconnects; ``from_ui_messages(body)`` reads ``useChat``'s
request body."""

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
