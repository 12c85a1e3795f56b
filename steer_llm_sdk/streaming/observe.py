"""What an observer (telemetry, a user's own) sees of a call: two frozen records.

``observer.start(CallStart)`` when the call starts returns ``None`` or an
observation; ``observation.end(CallRecord, error)`` once when it ends: ``error`` is
``None`` on success, the exception on failure, and ``GeneratorExit`` /
``CancelledError`` when the caller abandoned the call. The records are computed by
the pipeline once (usage, cost and the unified finish reason are the response's
own); an observer reads nothing else of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..providers.base import ChatRequest
    from ..results import RouteAttempt, StreamingResponse, ToolCall

__all__ = ["CallObserver", "CallRecord", "CallStart", "Observation"]


@dataclass(frozen=True, slots=True)
class CallStart:
    """A call as it starts."""

    provider: str  # the catalog's provider name ("openai", "anthropic", ...)
    model: str  # the provider's name for the model
    request: ChatRequest  # messages, params, extra_body, stream, tools


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call as it ended (on failure: what was known; usage and cost only on success)."""

    provider: str
    model: str
    base_url: str  # the server that answered ("" if none was reached)
    streamed: bool
    attempts: int
    resumptions: int
    duration: float  # seconds from the call's start to its end
    time_to_first_token: float | None
    text: str = ""
    usage: dict[str, Any] | None = None  # the response's usage (``estimated`` if so)
    cost_usd: float | None = None
    finish_reason: str | None = None  # unified: stop, length, tool_calls, ...
    raw_finish_reason: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    # A route (model=[...]): each entry tried, in order (results.RouteAttempt).
    route_attempts: tuple[RouteAttempt, ...] = ()

    @classmethod
    def of_response(cls, response: StreamingResponse, *call: Any) -> CallRecord:
        """The record of a call that succeeded (``call``: the first eight fields),
        with the response's own figures."""
        same = [getattr(response, name) for name in _FROM_RESPONSE]
        values: list[Any] = [
            *call,
            *same,
            response.request_id,
            tuple(response.tool_calls),
            tuple(response.route_attempts),
        ]
        return cls(*values)


# Fields a CallRecord takes from the response under the same name, in field order
# (response_id and tool_calls follow them).
_FROM_RESPONSE = "text usage cost_usd finish_reason raw_finish_reason response_model".split()


class Observation(Protocol):
    def end(self, record: CallRecord, error: BaseException | None) -> None: ...


class CallObserver(Protocol):
    def start(self, call: CallStart) -> Observation | None: ...
