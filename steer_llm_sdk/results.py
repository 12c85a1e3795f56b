"""What a call gives back, in one module: :class:`ToolCall`, the typed parts of
``client.stream_events()`` (:class:`TextDelta` ... :class:`Finish`) and the
:class:`StreamingResponse` of ``stream_with_usage()`` and ``generate()``, with
:func:`parse_json_text` (a model's JSON answer) and :func:`redacted_repr` (their repr,
keys redacted).

Every part is a slotted dataclass with a ``type`` string. Text is a :class:`TextDelta`;
everything else a stream says (reasoning, tool calls, the structured output so far)
has its own part, and the last part is always a :class:`Finish` carrying the unified
finish reason, the usage and the whole response. Standard library and orjson only:
importing this module costs nothing. ``steer_llm_sdk.parts`` and
``steer_llm_sdk.models.response`` re-export these names (their earlier homes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, get_args

import orjson

from .errors import JSONParseError, ToolArgumentsError, redact

__all__ = [
    "FINISH_REASONS",
    "Finish",
    "FinishReason",
    "PartialOutput",
    "ReasoningDelta",
    "StreamPart",
    "StreamingResponse",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolResult",
    "parse_json_text",
    "redacted_repr",
    "strip_fence",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "refusal", "other"]
FINISH_REASONS: tuple[str, ...] = get_args(FinishReason)

_MISSING: Any = object()


def redacted_repr(self: Any) -> str:
    """A dataclass's repr with API keys redacted: a key a server echoed into the text,
    a tool call or an id must not reach a log through ``repr()`` (the values
    themselves are the model's and stay as they are)."""
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
    return redact(f"{type(self).__qualname__}({shown})")


def strip_fence(text: str) -> str:
    """``text`` without surrounding white space and a Markdown code fence (```json
    ... ```), which models add even in JSON mode."""
    candidate = text.strip()
    if candidate.startswith("```"):
        newline = candidate.find("\n")
        candidate = candidate[newline + 1 :] if newline != -1 else ""
        if candidate.rstrip().endswith("```"):
            candidate = candidate.rstrip()[:-3]
    return candidate


def parse_json_text(text: str, **context: Any) -> Any:
    """Parse a model's JSON answer (surrounding white space and a Markdown code fence
    tolerated: :func:`strip_fence`)."""
    try:
        return orjson.loads(strip_fence(text))
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
class ToolCall:
    """One tool call the model asked for.

    ``arguments`` is the JSON text exactly as the provider streamed it (``""`` for a
    tool that takes no arguments on some providers); :attr:`args` is it parsed
    (``{}`` when empty). ``index`` is the call's position in the answer.

    ``kind`` is ``"function"`` (a tool with a JSON schema), or ``"custom"`` for a
    free-form tool of the OpenAI Responses API, whose input is plain text: then
    ``arguments`` is that text exactly as the model wrote it and :attr:`args` is
    ``{"input": <the text>}``. ``type`` is kept equal to ``kind`` (the OpenAI entry
    type of the call).
    """

    id: str
    name: str
    arguments: str = ""
    index: int = 0
    type: str = "function"
    # Opaque data a follow-up request must send back with this call (Gemini's
    # thoughtSignature, ...). Kept out of to_dict() unless present.
    provider_data: dict[str, Any] | None = None
    kind: str = "function"
    _args: Any = field(default=None, init=False, repr=False, compare=False)
    __repr__ = redacted_repr

    @property
    def args(self) -> dict[str, Any]:
        """The arguments parsed as a dict (``{}`` for none). Raises
        :class:`~steer_llm_sdk.errors.ToolArgumentsError` when they are not valid JSON
        (for example cut short by ``max_tokens``). For a custom tool's call
        (``kind == "custom"``), ``{"input": <the raw text>}``: never parsed."""
        if self.kind == "custom":
            return {"input": self.arguments}
        if self._args is None:
            text = self.arguments.strip()
            if not text:
                self._args = {}
            else:
                reason = None
                try:
                    value = orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    reason = str(exc)  # the exception itself holds the whole text
                if reason is not None:  # raised outside the handler: no __context__
                    raise ToolArgumentsError(
                        f"the arguments of tool call {self.name!r} ({self.id}) are not valid "
                        f"JSON ({reason}): {self.arguments[:200]!r}",
                        call=self,
                    )
                if not isinstance(value, dict):
                    raise ToolArgumentsError(
                        f"the arguments of tool call {self.name!r} ({self.id}) are a JSON "
                        f"{type(value).__name__}, not an object: {self.arguments[:200]!r}",
                        call=self,
                    )
                self._args = value
        return dict(self._args)

    def to_dict(self) -> dict[str, Any]:
        """The call as a plain dict (what ``response.tool_calls`` held before 0.4)."""
        out = {
            "index": self.index,
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "arguments": self.arguments,
        }
        if self.provider_data:
            out["provider_data"] = self.provider_data
        return out

    def to_openai(self) -> dict[str, Any]:
        """The call as an OpenAI ``tool_calls`` entry of an assistant message (a
        custom tool's call in Chat Completions' ``{"type": "custom", "custom": {"name",
        "input"}}`` shape)."""
        if self.kind == "custom":
            custom: dict[str, Any] = {
                "id": self.id,
                "type": "custom",
                "custom": {"name": self.name, "input": self.arguments},
            }
            if self.provider_data:
                custom["steer"] = self.provider_data
            return custom
        out: dict[str, Any] = {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments or "{}"},
        }
        if self.provider_data:
            out["steer"] = self.provider_data
        return out

    def __getitem__(self, key: str) -> Any:  # dict-style access, as before 0.4
        return self.to_dict()[key]


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
    # The response cache (SteerLLMClient(response_cache=...)): True when this answer
    # was replayed from it (cost 0.0, zero usage); the original call's usage.
    cached: bool = False
    cached_usage: dict[str, Any] | None = None
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

    @property
    def cache_hit_ratio(self) -> float | None:
        """Prompt tokens read from the provider's prompt cache ÷ prompt tokens (0.0 when
        none were); None when the usage has no prompt tokens."""
        prompt = self.usage.get("prompt_tokens") if self.usage else None
        if not prompt:
            return None
        info = self.usage.get("cache_info") or {}
        return float(info.get("cached_tokens") or 0) / float(prompt)

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


@dataclass(slots=True)
class TextDelta:
    """A piece of the answer's text. ``logprobs`` when asked for (OpenAI protocol)."""

    text: str
    logprobs: list[dict[str, Any]] | None = None
    type: ClassVar[str] = "text-delta"
    __repr__ = redacted_repr


@dataclass(slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning (thinking) text."""

    text: str
    type: ClassVar[str] = "reasoning-delta"
    __repr__ = redacted_repr


@dataclass(slots=True)
class ToolCallStart:
    """A tool call began: its ordinal ``index`` in the answer, ``id`` and ``name``."""

    index: int
    id: str
    name: str
    type: ClassVar[str] = "tool-call-start"
    __repr__ = redacted_repr


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a tool call's arguments (JSON text)."""

    index: int
    arguments: str
    type: ClassVar[str] = "tool-call-delta"
    __repr__ = redacted_repr


@dataclass(slots=True)
class ToolCallEnd:
    """A tool call is complete: ``call`` is the whole :class:`ToolCall`."""

    index: int
    call: ToolCall
    type: ClassVar[str] = "tool-call-end"
    __repr__ = redacted_repr


@dataclass(slots=True)
class PartialOutput:
    """The structured output parsed so far (with ``output=``): a dict or list that
    grows as fields arrive. A string field grows; numbers, booleans, enums and
    literals appear only once complete. It is the same live object each time:
    copy it if you keep it."""

    value: Any
    type: ClassVar[str] = "partial-output"
    __repr__ = redacted_repr


@dataclass(slots=True)
class ToolResult:
    """``stream_tools()`` only: a tool ran and this is what goes back to the model."""

    call: ToolCall
    content: str
    is_error: bool = False
    type: ClassVar[str] = "tool-result"
    __repr__ = redacted_repr


@dataclass(slots=True)
class Finish:
    """The last part: unified ``reason``, the provider's ``raw_reason``, the usage and
    the whole response (the same object ``stream_with_usage()`` returns)."""

    reason: str
    raw_reason: str | None
    usage: dict[str, Any]
    response: StreamingResponse
    type: ClassVar[str] = "finish"
    __repr__ = redacted_repr


StreamPart = (
    TextDelta
    | ReasoningDelta
    | ToolCallStart
    | ToolCallDelta
    | ToolCallEnd
    | PartialOutput
    | ToolResult
    | Finish
)
