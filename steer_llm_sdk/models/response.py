"""The response of ``stream_with_usage()`` and ``generate()``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import JSONParseError, redact
from ..parts import ToolCall, redacted_repr

__all__ = ["StreamingResponse", "parse_json_text"]

_MISSING: Any = object()


def parse_json_text(text: str, **context: Any) -> Any:
    """Parse a model's JSON answer. Tolerates surrounding white space and a Markdown
    code fence (```json ... ```), which models add even in JSON mode."""
    candidate = text.strip()
    if candidate.startswith("```"):
        first_newline = candidate.find("\n")
        candidate = candidate[first_newline + 1 :] if first_newline != -1 else ""
        if candidate.rstrip().endswith("```"):
            candidate = candidate.rstrip()[:-3]
    try:
        return orjson.loads(candidate)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)  # orjson's message; the exception itself holds the whole text
    excerpt = text if len(text) <= 200 else text[:200] + "..."
    # Raised outside the handler: not even __context__ keeps the decoder's exception.
    raise JSONParseError(
        f"the response is not valid JSON ({reason}); the raw text is in .raw_text: {excerpt!r}",
        raw_text=text,
        **context,
    )


@dataclass(slots=True, eq=False)
class StreamingResponse:
    """Text, usage, cost and metadata of one completed call.

    ``usage`` is the SDK's one shape for every provider: ``prompt_tokens`` (all input
    tokens, cached ones included), ``completion_tokens``, ``total_tokens``; plus
    ``cache_info`` (``cached_tokens`` read from cache, ``cache_creation_tokens``
    written to it) when the provider reports caching, ``reasoning_tokens`` when it
    reports them, and ``estimated: True`` when the SDK had to estimate.
    """

    text: str
    usage: dict[str, Any]
    cost_usd: float | None
    model: str  # the model as the caller named it (without a "provider/" prefix)
    provider: str
    # Unified: stop, length, tool_calls, content_filter, refusal, other.
    finish_reason: str | None
    response_model: str | None = None  # the model the provider says answered
    request_id: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning_text: str | None = None
    refusal: str | None = None
    raw_finish_reason: str | None = None  # the provider's own word (end_turn, ...)
    logprobs: dict[str, list[dict[str, Any]]] | None = None  # content, refusal
    output: Any = None  # the validated structured output, with output=
    # Opaque data a follow-up request must echo (Anthropic thinking signatures ...).
    provider_data: dict[str, Any] | None = field(default=None, repr=False)
    # run_tools(): the whole conversation, and how many model calls it took.
    messages: list[dict[str, Any]] | None = field(default=None, repr=False)
    steps: int = 1
    time_to_first_token: float | None = None  # seconds from the call to the first text
    duration: float = 0.0  # seconds for the whole call
    attempts: int = 1  # HTTP requests made, retries included
    resumptions: int = 0  # times a broken stream was continued from its text so far
    # What the protocol could not send (a parameter it has no field for ...): said
    # for this call, and logged once per call.
    warnings: list[str] = field(default_factory=list)
    _json: Any = field(default=_MISSING, repr=False)
    _json_error: JSONParseError | None = field(default=None, repr=False)
    # Keys a server echoed into the text or a tool call are redacted in repr() (the
    # README promises it), not in the fields: the text is the model's answer.
    __repr__ = redacted_repr

    def __post_init__(self) -> None:
        # Server-sent identifiers reach repr() and to_dict(): a key a server echoed
        # there must not (the answer's text is the model's and is left alone).
        if self.request_id is not None:
            self.request_id = redact(self.request_id)
        if self.response_model is not None:
            self.response_model = redact(self.response_model)

    def get_text(self) -> str:
        return self.text

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation for the next turn:
        text, tool calls (OpenAI shape) and whatever the provider needs echoed back
        (Anthropic thinking blocks with their signatures, under a ``steer`` key that
        other protocols drop)."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        elif message["content"] is None:
            message["content"] = ""
        if self.provider_data:
            message["steer"] = self.provider_data
        return message

    def get_json(self) -> Any:
        """The answer parsed as JSON (parsed once, then cached).

        Raises :class:`~steer_llm_sdk.errors.JSONParseError`, carrying ``raw_text``,
        when the text is not valid JSON.
        """
        if self._json_error is not None:
            raise self._json_error
        if self._json is _MISSING:
            try:
                self._json = parse_json_text(self.text, provider=self.provider, model=self.model)
            except JSONParseError as exc:
                self._json_error = exc
                raise
        return self._json

    @property
    def tokens_per_second(self) -> float | None:
        """Completion tokens per second after the first token, when measurable."""
        completion = self.usage.get("completion_tokens")
        if not completion or self.time_to_first_token is None:
            return None
        span = self.duration - self.time_to_first_token
        return completion / span if span > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "usage": self.usage,
            "cost_usd": self.cost_usd,
            "model": self.model,
            "provider": self.provider,
            "finish_reason": self.finish_reason,
            "response_model": self.response_model,
            "request_id": self.request_id,
            "tool_calls": [call.to_dict() for call in self.tool_calls],
            "reasoning_text": self.reasoning_text,
            "refusal": self.refusal,
            "raw_finish_reason": self.raw_finish_reason,
            "logprobs": self.logprobs,
            "output": _plain(self.output),
            "time_to_first_token": self.time_to_first_token,
            "duration": self.duration,
            "attempts": self.attempts,
            "resumptions": self.resumptions,
            "steps": self.steps,
            "warnings": list(self.warnings),
        }


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value
