"""What every wire codec shares: the request it encodes, the state it decodes into.

Codecs are sans-I/O: ``encode`` turns a :class:`ChatRequest` into an
:class:`HTTPRequest`, ``decode`` takes one SSE event at a time and returns the text it
carries (or ``None``), while everything else the stream says (finish reason, usage,
tool-call deltas, reasoning, errors) goes into the codec's :class:`StreamState` in one
unified shape. Text is returned rather than wrapped in an event object because it is
nearly every event of a stream: the per-chunk path stays one call and one string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SteerError,
)

__all__ = [
    "ChatRequest",
    "HTTPRequest",
    "StreamState",
    "ToolCall",
    "error_for",
    "parse_retry_after",
]


@dataclass(slots=True)
class ChatRequest:
    """A provider-neutral request. ``messages`` are already validated dicts."""

    model: str  # the provider's own model name (no "provider/" prefix)
    messages: list[dict[str, Any]]
    stream: bool = True
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, ...
    extra_body: dict[str, Any] = field(default_factory=dict)  # passed through verbatim
    prefix: str = ""  # resume: text already delivered, to continue as the assistant


@dataclass(slots=True)
class HTTPRequest:
    method: str
    path: str  # appended to the provider's base URL
    headers: dict[str, str]
    json: dict[str, Any]


@dataclass(slots=True)
class ToolCall:
    """One tool call, accumulated from its deltas by index."""

    index: int
    id: str | None = None
    name: str = ""
    arguments: str = ""  # the raw JSON text of the arguments, as streamed
    type: str = "function"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "arguments": self.arguments,
        }


class StreamState:
    """Everything a stream said besides its text, in the SDK's unified shape."""

    __slots__ = (
        "done",
        "finish_reason",
        "model",
        "reasoning_parts",
        "refusal_parts",
        "response_id",
        "tool_calls",
        "usage",
    )

    def __init__(self) -> None:
        self.done = False  # the protocol's terminal event was seen
        self.finish_reason: str | None = None
        self.model: str | None = None
        self.response_id: str | None = None
        self.usage: dict[str, Any] | None = None  # unified usage, see usage.normalize_*
        self.tool_calls: dict[int, ToolCall] = {}
        self.reasoning_parts: list[str] = []
        self.refusal_parts: list[str] = []

    def tool_delta(
        self,
        index: int,
        *,
        id: str | None = None,
        name: str | None = None,
        arguments: str | None = None,
        type: str | None = None,
    ) -> None:
        """Apply one tool-call delta. Calls are keyed strictly by index, so parallel
        calls never merge, whatever order their deltas interleave in."""
        call = self.tool_calls.get(index)
        if call is None:
            call = self.tool_calls[index] = ToolCall(index)
        if id:
            call.id = id
        if name:
            call.name += name if call.name != name else ""
        if arguments:
            call.arguments += arguments
        if type:
            call.type = type

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def refusal(self) -> str | None:
        return "".join(self.refusal_parts) if self.refusal_parts else None

    def tool_call_list(self) -> list[dict[str, Any]]:
        return [self.tool_calls[i].to_dict() for i in sorted(self.tool_calls)]


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import time

    return max(0.0, when.timestamp() - time.time())


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    529: OverloadedError,
}

_BY_TYPE: dict[str, type[APIStatusError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "rate_limit_error": RateLimitError,
    "overloaded_error": OverloadedError,
    "api_error": ServerError,
    "server_error": ServerError,
}


def error_for(
    status: int | None,
    message: str,
    *,
    error_type: str | None = None,
    retry_after: float | None = None,
    **kw: Any,
) -> SteerError:
    """The typed error for an HTTP status or a provider error type."""
    cls: type[APIStatusError] | None = None
    if status == 408:
        # Request Timeout: the status decides (an APIStatusError, retried like 409 and
        # 429), whatever type the body claims (proxies say "invalid_request_error").
        error_type = None
    if error_type:
        cls = _BY_TYPE.get(error_type)
    if cls is None and status is not None:
        cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else None)
    if cls is None:
        cls = APIStatusError
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, status_code=status, **kw)
    return cls(message, status_code=status, **kw)
