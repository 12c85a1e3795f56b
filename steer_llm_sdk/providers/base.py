"""What every wire codec shares: the request it encodes, the state it decodes into.

Codecs are sans-I/O: ``encode`` turns a :class:`ChatRequest` into an
:class:`HTTPRequest`, ``decode`` takes one SSE event at a time and returns the text it
carries (or ``None``), while everything else the stream says (finish reason, usage,
tool-call deltas, reasoning, errors) goes into the codec's :class:`StreamState` in one
unified shape. Text is returned rather than wrapped in an event object because it is
nearly every event of a stream: the per-chunk path stays one call and one string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContextWindowError,
    InvalidResponseError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SteerError,
)
from ..files import File, answer_file
from ..results import (
    AudioDelta,
    FileOutput,
    ReasoningDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
)

__all__ = [
    "CachedPrefix",
    "ChatRequest",
    "HTTPRequest",
    "StreamState",
    "ToolCall",
    "error_for",
    "function_calls_only",
    "function_tools",
    "mark_not_retryable",
    "openai_code_status",
    "openai_usage",
    "parse_retry_after",
    "token_count",
    "unify_finish",
]


@dataclass(frozen=True, slots=True)
class CachedPrefix:
    """A provider-side cache holding a request's prefix (Gemini's cachedContents,
    made by ``provider_caches.py``): the codec sends its ``name`` instead of the
    system instruction, the tools, the tool config and the body's first
    ``contents`` entries. ``forget`` drops it from the client's registry (stale)."""

    name: str
    contents: int
    forget: Any = None  # Callable[[], None]


@dataclass(slots=True)
class ChatRequest:
    """A provider-neutral request, built and checked by :mod:`steer_llm_sdk.request`.

    ``messages`` are validated OpenAI-shaped dicts whose list contents hold neutral
    :class:`~steer_llm_sdk.content.TextPart` / :class:`~steer_llm_sdk.content.FilePart`
    (and providers' own part dicts, passed through); codecs also take OpenAI-style
    parts, converting them the same way.
    """

    model: str  # the provider's own model name (no "provider/" prefix)
    messages: list[dict[str, Any]]
    stream: bool = True
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, ...
    extra_body: dict[str, Any] = field(default_factory=dict)  # passed through verbatim
    prefix: str = ""  # resume: text already delivered, to continue as the assistant
    # Tools in one neutral shape: {"name", "description", "parameters", "strict"}.
    tools: list[dict[str, Any]] = field(default_factory=list)
    # "auto", "none", "required", or {"name": <tool>}; None: the provider's default.
    tool_choice: str | dict[str, str] | None = None
    parallel_tool_calls: bool | None = None
    # Structured output: a JSON schema made strict-ready, and its name.
    output_schema: dict[str, Any] | None = None
    output_name: str = "output"
    # Prompt caching (providers/caching.py): None, "auto" or "long".
    cache_prompt: str | None = None
    # A provider-side cache of the request's prefix to send instead of it.
    provider_cache: CachedPrefix | None = None
    # (message, part) indexes of URLs the SDK downloads before the first attempt
    # (the provider does not fetch their type, or their type is unknown).
    unresolved: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class HTTPRequest:
    method: str
    path: str  # appended to the provider's base URL
    headers: dict[str, str]
    json: dict[str, Any]


# Finish reasons of every protocol, unified (Vercel's vocabulary, OpenAI's words).
_UNIFIED = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "eos": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "refusal",
}


def event_json(data: bytes) -> Any:
    """The JSON value of one SSE event's data, or InvalidResponseError naming it."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidResponseError(
            f"the stream sent a data line that is not JSON: {data[:120]!r}"
        ) from None


def cache_usage(uncached: int, read: Any, write: Any, completion: int) -> dict[str, Any]:
    """The unified usage of a protocol that counts cache reads and writes apart from
    its input (Anthropic, Bedrock): ``prompt_tokens`` includes them, and ``cache_info``
    says them whenever the provider reported either."""
    prompt = uncached + token_count(read, "cache reads") + token_count(write, "cache writes")
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if read is not None or write is not None:
        usage["cache_info"] = {
            "cached_tokens": int(read or 0),
            "cache_creation_tokens": int(write or 0),
        }
    return usage


def token_count(value: Any, name: str = "") -> int:
    """A token count from a provider's usage object: a whole number (a float that is
    one, as some servers send, is accepted), else an InvalidResponseError naming it."""
    if value is None:
        return 0
    if type(value) is int and value >= 0:
        return value
    if type(value) is float and value.is_integer() and value >= 0:
        return int(value)
    which = f" ({name})" if name else ""
    raise InvalidResponseError(
        f"the provider sent a token count{which} that is not a whole number: {value!r:.40}"
    )


def openai_usage(
    prompt: Any, completion: Any, input_details: Any, output_details: Any
) -> dict[str, Any]:
    """OpenAI-style usage (Chat Completions and Responses name the same figures
    differently) → unified usage; every count type-checked."""
    prompt_tokens = token_count(prompt, "prompt")
    completion_tokens = token_count(completion, "completion")
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if isinstance(input_details, dict) and (
        "cached_tokens" in input_details or "cache_write_tokens" in input_details
    ):
        usage["cache_info"] = {
            "cached_tokens": token_count(input_details.get("cached_tokens")),
            "cache_creation_tokens": token_count(input_details.get("cache_write_tokens")),
        }
    if isinstance(output_details, dict):
        if output_details.get("reasoning_tokens") is not None:
            usage["reasoning_tokens"] = token_count(output_details["reasoning_tokens"])
        for key in ("accepted_prediction_tokens", "rejected_prediction_tokens"):
            if output_details.get(key):
                usage[key] = token_count(output_details[key], key)
    return usage


def unify_finish(raw: str | None) -> str:
    """A provider's finish reason in the SDK's vocabulary (``other`` when unknown)."""
    if raw is None:
        return "other"
    return _UNIFIED.get(raw, "other")


class StreamState:
    """Everything a stream said besides its text, in the SDK's unified shape.

    The codecs write into it only through its methods on their rare paths (text
    never comes here). With ``record=True`` (``stream_events()``), each method also
    appends the matching typed part to :attr:`out`, which the pipeline drains after
    every SSE event: the one place that sees "reasoning happened" or "a tool call
    started", whatever the protocol.
    """

    __slots__ = (
        "_audio",
        "_audio_at",
        "_audio_type",
        "_b64_carry",
        "_by_id",
        "_by_key",
        "_ended",
        "_open",
        "done",
        "file_bytes",
        "files",
        "finish_reason",
        "logprobs",
        "model",
        "out",
        "provider_data",
        "reason",
        "reasoning_parts",
        "refusal_parts",
        "response_id",
        "text_logprobs",
        "tool_calls",
        "transcript_parts",
        "usage",
    )

    def __init__(self, *, record: bool = False) -> None:
        self.done = False  # the protocol's terminal event was seen
        self.finish_reason: str | None = None  # as the provider said it
        self.reason: str | None = None  # unified: stop, length, tool_calls, ...
        self.model: str | None = None
        self.response_id: str | None = None
        self.usage: dict[str, Any] | None = None  # unified usage, see usage.normalize_*
        self.tool_calls: list[ToolCall] = []  # in order of appearance (the index)
        self.reasoning_parts: list[str] = []
        self.refusal_parts: list[str] = []
        self.logprobs: dict[str, list[dict[str, Any]]] | None = None
        self.text_logprobs: list[dict[str, Any]] | None = None  # the last text's
        # Opaque data a follow-up request must echo (Anthropic thinking blocks with
        # their signatures, ...), kept for to_message().
        self.provider_data: dict[str, Any] = {}
        self.out: list[Any] | None = [] if record else None
        self._by_key: dict[Any, int] = {}  # provider's key (index, block) -> ordinal
        self._by_id: dict[str, int] = {}
        self._open: int | None = None  # the call the last delta went to
        self._ended: set[int] = set()  # calls whose ToolCallEnd was sent
        # Files of the answer in order (None: where the streamed audio sits), the
        # bytes so far (capped), the audio and its transcript.
        self.files: list[File | None] = []
        self.file_bytes = 0
        self.transcript_parts: list[str] = []
        self._audio: bytearray | None = None
        self._audio_at = 0
        self._audio_type = "audio/pcm"
        self._b64_carry = ""  # base64 characters of a piece that ended mid-quantum

    # -- reasoning, refusal ----------------------------------------------------
    def reasoning(self, text: str) -> None:
        if type(text) is not str:
            raise InvalidResponseError(
                f"the provider sent reasoning that is not a string: {text!r:.80}"
            )
        if text:
            self.reasoning_parts.append(text)
            if self.out is not None:
                self.out.append(ReasoningDelta(text))

    def refusal(self, text: str) -> None:
        if type(text) is not str:
            raise InvalidResponseError(
                f"the provider sent a refusal that is not a string: {text!r:.80}"
            )
        self.refusal_parts.append(text)

    # -- files and audio -----------------------------------------------------------
    def _count(self, size: int) -> None:
        self.file_bytes += size
        if self.file_bytes > MAX_ANSWER_FILE_BYTES:
            raise InvalidResponseError(
                f"the answer's files passed {MAX_ANSWER_FILE_BYTES // 2**20} MB "
                "(the SDK's cap on images and audio in one answer)"
            )

    def file(self, b64: Any, media_type: Any) -> None:
        """A whole file of the answer, as base64 (Gemini's ``inlineData``)."""
        if type(media_type) is not str or type(b64) is not str:
            raise InvalidResponseError(
                f"a file of the answer has no mimeType or data: {media_type!r:.40}"
            )
        data = b64decode(b64, "a file of the answer")
        self._count(len(data))
        file = answer_file(data, media_type)
        self.files.append(file)
        if self.out is not None:
            self.out.append(FileOutput(file))

    def audio(self, b64: Any, transcript: Any, media_type: str) -> None:
        """A piece of streamed audio: its base64 decoded on its own (a piece that ends
        mid-quantum keeps its last 1-3 characters for the next), and/or transcript."""
        if b64 is not None and type(b64) is not str:
            raise InvalidResponseError(f"audio data is not a string: {b64!r:.40}")
        if transcript is not None and type(transcript) is not str:
            raise InvalidResponseError(f"an audio transcript is not a string: {transcript!r:.40}")
        data = b""
        if b64:
            if self._b64_carry:
                b64 = self._b64_carry + b64
            cut = len(b64) - len(b64) % 4
            self._b64_carry = b64[cut:]
            data = b64decode(b64[:cut], "a piece of the answer's audio") if cut else b""
            self._count(len(data))
        if self._audio is None and (data or b64):
            self._audio = bytearray()
            self._audio_at = len(self.files)
            self._audio_type = media_type
            self.files.append(None)
        if self._audio is not None:
            self._audio += data
        if transcript:
            self.transcript_parts.append(transcript)
        if self.out is not None and (data or transcript):
            self.out.append(AudioDelta(data, transcript or ""))

    def answer_files(self) -> list[File]:
        """The files of the answer in order, the audio as one file."""
        files = list(self.files)
        if self._audio is not None:
            files[self._audio_at] = answer_file(bytes(self._audio), self._audio_type)
        return [f for f in files if f is not None]

    def audio_end(self) -> None:
        """The audio is over: base64 characters left that make no whole byte are an
        InvalidResponseError (never silently dropped)."""
        if self._b64_carry:
            raise InvalidResponseError(
                f"the answer's audio ended with {len(self._b64_carry)} base64 characters "
                "that make no whole byte"
            )

    @property
    def transcript(self) -> str | None:
        return "".join(self.transcript_parts) if self.transcript_parts else None

    # -- tool calls --------------------------------------------------------------
    def tool_delta(
        self,
        key: Any = None,
        *,
        id: str | None = None,
        name: str | None = None,
        arguments: str | None = None,
    ) -> int:
        """Apply one tool-call delta; return the call's ordinal.

        The rules that survive real servers: a known ``id`` wins over the key; a new
        ``id`` at an occupied key opens a new call (servers that reuse index 0 for
        every call); a delta with neither id nor key extends the call the last delta
        went to; otherwise calls are keyed by the provider's key (OpenAI's index, an
        Anthropic content block), so parallel calls never merge whatever order their
        deltas interleave in.
        """
        if id is not None and type(id) is not str:
            raise InvalidResponseError(f"a tool call id is not a string: {id!r:.80}")
        if name is not None and type(name) is not str:
            raise InvalidResponseError(f"a tool call name is not a string: {name!r:.80}")
        if arguments is not None and type(arguments) is not str:
            raise InvalidResponseError(f"tool call arguments are not a string: {arguments!r:.80}")
        ordinal: int | None = None
        if id and id in self._by_id:
            ordinal = self._by_id[id]
        elif key is not None and key in self._by_key:
            ordinal = self._by_key[key]
            known = self.tool_calls[ordinal].id
            if id and known and known != id:
                ordinal = None  # a new call at a reused index
        elif key is None and not id:
            ordinal = self._open
        if ordinal is None:
            ordinal = len(self.tool_calls)
            call = ToolCall(id=id or "", name=name or "", index=ordinal)
            self.tool_calls.append(call)
            if key is not None:
                self._by_key[key] = ordinal
            if id:
                self._by_id[id] = ordinal
            self._open = ordinal
            if self.out is not None:
                self.out.append(ToolCallStart(ordinal, call.id, call.name))
            name = None
        else:
            call = self.tool_calls[ordinal]
            self._open = ordinal
            if key is not None:
                self._by_key[key] = ordinal
            if id and not call.id:
                call.id = id
                self._by_id[id] = ordinal
        if name and call.name != name:
            # Most servers send the name once; some repeat it whole in every delta.
            call.name = name if not call.name else call.name + name
        if arguments:
            call.arguments += arguments
            call._args = None
            if self.out is not None:
                self.out.append(ToolCallDelta(ordinal, arguments))
        return ordinal

    def tool_id(self, ordinal: int, id: Any) -> None:
        """The provider's final id for a call (OpenAI Responses may announce one id
        in ``output_item.added`` and give the real one in the finished item)."""
        if not id or type(id) is not str:
            return
        call = self.tool_calls[ordinal]
        if call.id != id:
            if self._by_id.get(call.id) == ordinal:
                del self._by_id[call.id]
            call.id = id
            self._by_id[id] = ordinal

    def tool_end(self, ordinal: int) -> None:
        """A call is complete (Anthropic's block stop, a finish reason ...)."""
        call = self.tool_calls[ordinal]
        if not call.id:
            call.id = f"call_{ordinal}"  # providers that send no id (Gemini)
        if ordinal in self._ended:
            return
        self._ended.add(ordinal)
        if self.out is not None:
            self.out.append(ToolCallEnd(ordinal, call))

    def end_open_tools(self) -> None:
        for ordinal in range(len(self.tool_calls)):
            self.tool_end(ordinal)

    # -- the end -------------------------------------------------------------------
    def finish(self, raw: Any, unified: str) -> None:
        """The provider's finish reason (raw) and the SDK's unified one."""
        if raw is not None and type(raw) is not str:
            raise InvalidResponseError(f"the finish reason is not a string: {raw!r:.80}")
        self.finish_reason = raw
        if unified == "stop" and self.tool_calls:
            unified = "tool_calls"
        self.reason = unified

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning_parts)

    @property
    def refusal_text(self) -> str | None:
        return "".join(self.refusal_parts) if self.refusal_parts else None

    def tool_call_list(self) -> list[dict[str, Any]]:
        return [call.to_dict() for call in self.tool_calls]


# The most bytes of images and audio one answer may carry (a misbehaving server
# cannot fill memory); the SSE decoder caps each event on its own.
MAX_ANSWER_FILE_BYTES = 512 * 2**20


def b64decode(text: str, what: str) -> bytes:
    """Strict base64 → bytes; anything else is an InvalidResponseError naming ``what``."""
    import binascii

    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidResponseError(f"{what} is not valid base64: {text[:40]!r}") from None


def function_tools(tools: list[dict[str, Any]], api: str) -> list[dict[str, Any]]:
    """The tools of a protocol that takes function tools only: a custom (free-form)
    tool is a ConfigurationError naming it."""
    for tool in tools:
        if tool.get("kind") == "custom":
            raise ConfigurationError(
                f"tool {tool.get('name')!r} is a custom (free-form text) tool, which only "
                f"the OpenAI Responses API takes; {api} takes function tools: use an "
                "OpenAI model with api='responses', or give the tool a JSON schema"
            )
    return tools


def function_calls_only(calls: Any, api: str) -> None:
    """A conversation's assistant tool calls for a protocol without custom tools."""
    for call in calls or ():
        if isinstance(call, dict) and call.get("type") == "custom":
            name = (call.get("custom") or {}).get("name")
            raise ConfigurationError(
                f"the conversation holds a call of the custom tool {name!r} "
                f"({call.get('id')!r}): only the OpenAI Responses API takes custom tools, "
                f"not {api}"
            )


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

# A 400 that says the prompt does not fit the model's context window: OpenAI's
# context_length_exceeded ("maximum context length"), Anthropic's "prompt is too
# long", Gemini's "exceeds the maximum number of tokens", and kin (xAI, Mistral ...).
_CONTEXT_WINDOW = re.compile(
    r"context[_ ]length|context window|context limit|maximum (?:context|prompt) length"
    r"|prompt is too long|input is too long|too many (?:input )?tokens"
    r"|exceeds the maximum number of tokens|input token count",
    re.IGNORECASE,
)


def is_context_window(message: str, body: str | None = None) -> bool:
    """Whether a 400's message (or body) says the prompt does not fit the context."""
    return bool(_CONTEXT_WINDOW.search(message)) or "context_length_exceeded" in (body or "")


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


# OpenAI's error codes (an in-band ``error`` event or a failed response carries one,
# not an HTTP status) → the status each stands for, so they map as the status would.
_OPENAI_CODES: dict[str, int] = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "server_error": 500,
    "internal_error": 500,
    "internal_server_error": 500,
    "api_error": 500,
    "vector_store_timeout": 500,
    "service_unavailable": 503,
    "server_overloaded": 529,
    "overloaded": 529,
    "invalid_api_key": 401,
    "permission_denied": 403,
    "model_not_found": 404,
    "invalid_prompt": 400,
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "string_above_max_length": 400,
    "empty_image_file": 400,
    "failed_to_download_image": 400,
    "unsupported_image_media_type": 400,
}
_BAD_REQUEST_PREFIXES = ("invalid_", "image_", "unsupported_", "missing_")
# Codes another try cannot fix (only billing does): typed as their status, not retried.
_NOT_RETRYABLE_CODES = frozenset({"insufficient_quota"})


def openai_code_status(code: Any) -> int | None:
    """The HTTP status an OpenAI error ``code`` stands for (None when unknown)."""
    if type(code) is not str or not code:
        return None
    status = _OPENAI_CODES.get(code)
    if status is None:
        if code.startswith(_BAD_REQUEST_PREFIXES) or code.endswith("_not_found"):
            status = 400
        elif "rate_limit" in code or "quota" in code:
            status = 429
    return status


def mark_not_retryable(error: SteerError, code: Any) -> SteerError:
    """Flag an error whose provider code says retrying cannot help (``insufficient_quota``)."""
    if code in _NOT_RETRYABLE_CODES and isinstance(error, APIStatusError):
        error.retryable = False
    return error


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
    if cls is BadRequestError and is_context_window(message, kw.get("body")):
        cls = ContextWindowError
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, status_code=status, **kw)
    return cls(message, status_code=status, **kw)
