"""The codec contract: what the client and the pipeline may ask of a protocol module.

A codec is sans-I/O. The class answers the facts the client needs before a call
(how to build a codec for a provider and model, how the protocol writes its base
URL, whether a model continues a prefix); an instance serves one attempt.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..errors import SteerError
from .base import ChatRequest, HTTPRequest, StreamState

__all__ = ["Codec"]


class Codec(Protocol):
    """One attempt's codec (built by the class's ``factory``)."""

    state: StreamState
    lead_text: str  # text the request put in the answer's mouth (JSON prefill)

    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest: ...
    def decode(self, event: str | None, data: bytes) -> str | None: ...
    def decode_response(self, body: bytes) -> str: ...
    def finish(self) -> None: ...
    def parse_error(self, status: int, headers: Any, body: bytes) -> SteerError: ...
