"""The typed parts of ``client.stream_events()``: one small closed set for every protocol.

Every part is a slotted dataclass with a ``type`` string. Text is a :class:`TextDelta`;
everything else a stream says (reasoning, tool calls, the structured output so far)
has its own part, and the last part is always a :class:`Finish` carrying the unified
finish reason, the usage and the whole response. Standard library only: importing this
module costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson

if TYPE_CHECKING:
    from .models.response import StreamingResponse

__all__ = [
    "FINISH_REASONS",
    "Finish",
    "FinishReason",
    "PartialOutput",
    "ReasoningDelta",
    "StreamPart",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolResult",
]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "refusal", "other"]
FINISH_REASONS: tuple[str, ...] = (
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "refusal",
    "other",
)


def redacted_repr(self: Any) -> str:
    """A dataclass's repr with API keys redacted: a key a server echoed into the text,
    a tool call or an id must not reach a log through ``repr()`` (the values
    themselves are the model's and stay as they are)."""
    from .errors import redact

    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
    return redact(f"{type(self).__qualname__}({shown})")


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
                    from .errors import ToolArgumentsError

                    raise ToolArgumentsError(
                        f"the arguments of tool call {self.name!r} ({self.id}) are not valid "
                        f"JSON ({reason}): {self.arguments[:200]!r}",
                        call=self,
                    )
                if not isinstance(value, dict):
                    from .errors import ToolArgumentsError

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
