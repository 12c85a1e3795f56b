"""The codec contract: what the client, the request layer and the pipeline may ask
of a protocol module, written down once.

A codec is sans-I/O. Its class answers the facts needed before a call (how to build
a codec for a provider and model, how the protocol writes its base URL, whether a
model continues a prefix, which files it takes); an instance serves one attempt:
``encode`` a :class:`ChatRequest`, ``decode`` one SSE event at a time (returning the
text, recording the rest in ``state``), ``finish`` at the end of the body,
``decode_response`` for a whole JSON answer, ``parse_error`` for an HTTP error.
:class:`CodecBase` gives the defaults; the functions below are the pieces two or more
protocols share (requests, whole bodies, errors, rare events: none is a fast path).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import orjson

from ..errors import ConfigurationError, InvalidResponseError, SteerError
from .base import ChatRequest, HTTPRequest, StreamState, error_for, parse_retry_after

__all__ = [
    "Codec",
    "CodecBase",
    "add_logprobs",
    "error_fields",
    "http_error",
    "load_json_body",
    "put_params",
    "text_of",
    "tool_call_arguments",
]


class Codec(Protocol):
    """One attempt's codec, as the pipeline uses it."""

    state: StreamState
    framing: ClassVar[str]  # how the body is cut into events: "sse" or "eventstream"
    lead_text: str  # text the request put in the answer's mouth (JSON prefill)
    warnings: list[str]  # what encode() could not send, said once per call

    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest: ...
    def decode(self, event: str | None, data: bytes) -> str | None: ...
    def decode_response(self, body: bytes) -> str: ...
    def finish(self) -> None: ...
    def parse_error(self, status: int, headers: Any, body: bytes) -> SteerError: ...
    def stale_cache(self, error: SteerError) -> bool: ...


class CodecBase:
    """The class facts every protocol declares, with their defaults.

    A protocol module subclasses this, sets ``protocol``, and overrides what differs.
    """

    protocol: ClassVar[str]
    # Files the protocol takes (request.py checks them before anything is sent):
    # media types, "type/*" families or "*/*", as data (``accepts``), by URL (the
    # provider fetches it; a URL of a type only in ``accepts`` is downloaded by the
    # SDK) and by the provider's file id. See content.check_part.
    accepts: ClassVar[frozenset[str]] = frozenset()
    accepts_urls: ClassVar[frozenset[str]] = frozenset()
    accepts_file_ids: ClassVar[frozenset[str]] = frozenset()
    # How a streamed body is cut into the events ``decode`` takes: "sse" (``event``,
    # ``data``) or "eventstream" (AWS frames: ``:event-type``, payload; see
    # transport/eventstream.py). Read once per attempt, never per chunk.
    framing: ClassVar[str] = "sse"
    # The protocol keeps a long prompt prefix in a cache the SDK creates first
    # (Gemini's cachedContents: provider_caches.py), for cache_prompt=.
    cached_contents: ClassVar[bool] = False

    lead_text = ""

    def __init__(self, *, record: bool = False) -> None:
        self.state = StreamState(record=record)
        self.warnings: list[str] = []

    @classmethod
    def factory(cls, spec: Any, model: str, **options: Any) -> Callable[..., Codec]:
        """What the pipeline calls to get a fresh codec for each attempt. ``options``
        are the constructor's variant options (a cloud's paths: ``clouds.py``)."""

        def make(*, record: bool = False) -> Codec:
            codec: Codec = cls(record=record, **options)  # type: ignore[assignment]
            return codec

        return make

    @staticmethod
    def normalize_base_url(url: str) -> str:
        """The base URL as the caller wrote it → as ``encode``'s paths expect it."""
        return url

    @staticmethod
    def local_base_url(server: str) -> str:
        """The base URL for the embedded llama.cpp server at ``server``."""
        return server

    @staticmethod
    def can_continue(model: str) -> bool:
        """Whether ``model`` continues an answer from a prefix (resume after text)."""
        return False

    @staticmethod
    def stale_cache(error: SteerError) -> bool:
        """Whether ``error`` says the request's provider-side cache is gone (expired,
        deleted): the attempt is sent once more without it."""
        return False

    def warn(self, message: str) -> None:
        """Something of the request was not sent: said once per call (logged and on
        ``response.warnings``), never once per process."""
        if message not in self.warnings:
            self.warnings.append(message)


def load_json_body(body: bytes, *, arrays: bool = False) -> Any:
    """A whole response body as a JSON object (or array, where the protocol may send
    one), else an InvalidResponseError quoting its start."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidResponseError(f"the response is not JSON: {body[:120]!r}") from None
    if not isinstance(obj, dict) and not (arrays and isinstance(obj, list)):
        raise InvalidResponseError(f"the response is not a JSON object: {body[:120]!r}")
    return obj


def text_of(part: dict[str, Any]) -> str:
    """A part's ``text`` (absent or null: empty), which must be a string."""
    text = part.get("text") or ""
    if type(text) is not str:
        raise InvalidResponseError(f"the provider sent text that is not a string: {text!r:.80}")
    return text


def add_logprobs(
    state: StreamState, items: Any, key: str = "content", what: str = "logprobs"
) -> None:
    """Record a report's logprobs of the text (``key`` "content") or of a refusal,
    which must be a list; the state holds both lists from the first report on."""
    if state.logprobs is None:
        state.logprobs = {"content": [], "refusal": []}
    if items:
        if type(items) is not list:
            raise InvalidResponseError(f"{what} is not a list: {items!r:.80}")
        state.logprobs[key].extend(items)
        if key == "content":
            state.text_logprobs = items


def put_params(
    body: dict[str, Any],
    params: dict[str, Any],
    unsupported: tuple[str, ...],
    warning: str,
    warn: Callable[[str], None],
) -> None:
    """The request's remaining parameters into ``body`` as they are; a parameter the
    protocol lacks is not sent, and ``warn`` says so (``warning`` with ``{key!r}``)."""
    for key, value in params.items():
        if value is None:
            continue
        if key in unsupported:
            warn(warning.format(key=key))
            continue
        body[key] = value


def tool_call_arguments(call: dict[str, Any]) -> Any:
    """The arguments of a tool call of the conversation (OpenAI-shaped, a JSON string
    or already a value) as a JSON value; "{}" when it has none."""
    args = (call.get("function") or {}).get("arguments") or "{}"
    try:
        return orjson.loads(args) if isinstance(args, str) else args
    except orjson.JSONDecodeError:
        raise ConfigurationError(
            f"the arguments of tool call {call.get('id')!r} in the "
            f"conversation are not valid JSON: {args[:120]!r}"
        ) from None


def error_fields(status: int, body: bytes, *, strings: bool = True) -> tuple[str, str | None, Any]:
    """An HTTP error body's message, type and code, from its ``error`` object (or,
    with ``strings``, an ``error`` string); a body that is not JSON is quoted, one
    without either is ``HTTP status``."""
    message = f"HTTP {status}"
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        if body:
            message = f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
        return message, None, None
    err = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(err, dict):
        error_type = err.get("type")
        return (
            str(err.get("message") or message),
            error_type if isinstance(error_type, str) else None,
            err.get("code"),
        )
    if strings and isinstance(err, str):
        return err, None, None
    return message, None, None


def http_error(
    status: int,
    headers: Any,
    body: bytes,
    message: str,
    error_type: str | None,
    *,
    request_id: str = "x-request-id",
) -> SteerError:
    """The typed error of an HTTP error response, with its ``retry-after``, its
    request id (from the header ``request_id``) and the start of its body."""
    return error_for(
        status,
        message,
        error_type=error_type,
        retry_after=parse_retry_after(headers),
        request_id=headers.get(request_id) if headers is not None else None,
        body=body[:500].decode("utf-8", "replace"),
    )
