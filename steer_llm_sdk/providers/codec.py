"""The codec contract: what the client, the request layer and the pipeline may ask
of a protocol module, written down once.

A codec is sans-I/O. Its class answers the facts needed before a call (how to build
a codec for a provider and model, how the protocol writes its base URL, whether a
model continues a prefix, which files it takes); an instance serves one attempt:
``encode`` a :class:`ChatRequest`, ``decode`` one SSE event at a time (returning the
text, recording the rest in ``state``), ``finish`` at the end of the body,
``decode_response`` for a whole JSON answer, ``parse_error`` for an HTTP error.
:class:`CodecBase` gives the defaults and the shared preambles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import orjson

from ..errors import InvalidResponseError, SteerError
from .base import ChatRequest, HTTPRequest, StreamState

__all__ = ["Codec", "CodecBase", "load_json_body"]


class Codec(Protocol):
    """One attempt's codec, as the pipeline uses it."""

    state: StreamState
    lead_text: str  # text the request put in the answer's mouth (JSON prefill)
    warnings: list[str]  # what encode() could not send, said once per call

    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest: ...
    def decode(self, event: str | None, data: bytes) -> str | None: ...
    def decode_response(self, body: bytes) -> str: ...
    def finish(self) -> None: ...
    def parse_error(self, status: int, headers: Any, body: bytes) -> SteerError: ...


class CodecBase:
    """The class facts every protocol declares, with their defaults.

    A protocol module subclasses this, sets ``protocol``, and overrides what differs.
    """

    protocol: ClassVar[str]
    # Files the protocol takes (request.py checks them before anything is sent):
    # media types, "type/*" families or "*/*"; whether URLs and file ids are sent.
    accepts: ClassVar[frozenset[str]] = frozenset()
    accepts_urls: ClassVar[bool] = False
    accepts_file_ids: ClassVar[bool] = False

    lead_text = ""

    def __init__(self, *, record: bool = False) -> None:
        self.state = StreamState(record=record)
        self.warnings: list[str] = []

    @classmethod
    def factory(cls, spec: Any, model: str) -> Callable[..., Codec]:
        """What the pipeline calls to get a fresh codec for each attempt."""

        def make(*, record: bool = False) -> Codec:
            codec: Codec = cls(record=record)  # type: ignore[assignment]
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
