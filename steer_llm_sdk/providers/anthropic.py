"""Anthropic Messages wire codec (sans-I/O).

Request mapping: system messages become the top-level ``system`` blocks (their
``cache_control`` kept), a message-level ``cache_control`` moves onto its last content
block, images become image blocks and PDFs document blocks, ``stop`` becomes
``stop_sequences``, and ``max_tokens`` gets a default because the API requires it.

Stream: usage starts from ``message_start`` and every non-null field of a later
``message_delta`` usage replaces it (the API reports cumulative figures, and after
compaction even resets the cache counts), exactly as the official SDK accumulates it.
``input_tokens`` excludes cache reads and writes; the unified usage adds them back.

Tool calls end at their ``content_block_stop`` when their input is a whole JSON value;
one that is not yet (cut by ``max_tokens``, or no input at all) ends only once the stop
reason is known and is not ``max_tokens``, whatever the network's read boundaries. A
tool without input has the arguments ``{}``. A second, different ``message_start`` is
two answers spliced into one stream: an InvalidResponseError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec
import orjson

from ..content import FilePart, TextPart, as_part
from ..errors import ConfigurationError, InvalidResponseError, SteerError
from .base import (
    ChatRequest,
    HTTPRequest,
    StreamState,
    cache_usage,
    error_for,
    event_json,
    function_calls_only,
    function_tools,
    token_count,
    unify_finish,
)
from .caching import anthropic_breakpoints, check_markers
from .codec import (
    CodecBase,
    error_fields,
    http_error,
    load_json_body,
    put_params,
    text_of,
    tool_call_arguments,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "AnthropicCodec",
    "normalize_usage",
    "supports_prefill",
    "supports_structured_output",
]

_loads = orjson.loads


# The fast path: a text delta (nearly every event of a stream) read by msgspec into
# these structs, the rest of the event skipped unparsed. Any other event, or one of
# another shape, takes the general path, which defines the codec's behaviour.
class _FastDelta(msgspec.Struct, gc=False):
    type: str = ""
    text: str | msgspec.UnsetType = msgspec.UNSET


class _FastEvent(msgspec.Struct, gc=False):
    type: str = ""
    delta: _FastDelta | None = None


_fast_decode = msgspec.json.Decoder(_FastEvent).decode
_UNSET = msgspec.UNSET

API_VERSION = "2023-06-01"
# Claude on Vertex AI: the body's anthropic_version, as anthropic's AnthropicVertex
# (2.17) sends it (its ANTHROPIC_API_VERSION); the model is in the path, not the body.
VERTEX_VERSION = "2026-10-21"
DEFAULT_MAX_TOKENS = 4096  # every Claude model allows at least this many output tokens
JSON_PREFILL = "{"
JSON_SYSTEM_HINT = (
    "Respond with a single valid JSON object and nothing else: no prose, no code fences."
)
_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_UNSUPPORTED_PARAMS = ("seed", "frequency_penalty", "presence_penalty", "n", "logprobs")


_VERSION_RE = re.compile(r"claude-(?:opus|sonnet|haiku)-(\d+)(?:-(\d{1,2}))?(?:\D|$)")


def supports_prefill(model: str) -> bool:
    """Whether the model continues a final assistant message. Claude 4.6 and later
    refuse it ("This model does not support assistant message prefill")."""
    match = _VERSION_RE.search(model)
    if not match:
        return True  # claude-3-*, claude-3-5-*: the older naming, which supports it
    version = (int(match.group(1)), int(match.group(2) or 0))
    return version < (4, 6)


def supports_structured_output(model: str) -> bool:
    """Whether the model takes ``output_config.format`` (Claude Opus 4.1, and the 4.5
    generation and later); older ones get the schema as a forced tool."""
    match = _VERSION_RE.search(model)
    if not match:
        return False
    version = (int(match.group(1)), int(match.group(2) or 0))
    return version >= (4, 5) or (version >= (4, 1) and "opus" in model)


def normalize_usage(raw: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage → unified usage: prompt tokens include cache reads and writes."""
    return cache_usage(
        token_count(raw.get("input_tokens")),
        raw.get("cache_read_input_tokens"),
        raw.get("cache_creation_input_tokens"),
        token_count(raw.get("output_tokens")),
    )


def encode_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in function_tools(tools, "the Anthropic Messages API"):
        entry: dict[str, Any] = {"name": tool["name"], "input_schema": tool["parameters"]}
        if tool.get("description"):
            entry["description"] = tool["description"]
        out.append(entry)
    return out


def encode_tool_choice(choice: str | dict[str, str] | None, parallel: bool | None) -> Any:
    out: dict[str, Any]
    if choice is None:
        out = {"type": "auto"}
    elif isinstance(choice, dict):
        out = {"type": "tool", "name": choice["name"]}
    else:
        out = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _text_block(text: str, cache_control: Any = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cache_control:
        block["cache_control"] = cache_control
    return block


def _blocks(content: Any, cache_control: Any = None) -> list[dict[str, Any]]:
    """Message content → Anthropic blocks: neutral text, images (base64 or URL) and
    PDFs (``document``) mapped, each part's ``cache_control`` kept; Anthropic's own
    blocks as they are. A message-level ``cache_control`` goes on the last block."""
    if isinstance(content, str):
        blocks = [_text_block(content)]
    else:
        blocks = []
        for raw in content:
            part = as_part(raw, AnthropicCodec)
            if isinstance(part, TextPart):
                blocks.append(_text_block(part.text, part.cache_control))
            elif isinstance(part, FilePart):
                blocks.append(_file_block(part))
            else:
                blocks.append(dict(part))
    if cache_control and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": cache_control}
    return blocks


_IMAGES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
# Documents: PDFs, and plain text (sent as a text source; Markdown and CSV are text).
_TEXTS = frozenset({"text/plain", "text/markdown", "text/csv"})
_DOCUMENTS = frozenset({"application/pdf"}) | _TEXTS
FILES_BETA = "files-api-2025-04-14"  # the anthropic-beta value file sources need


def _file_block(part: FilePart) -> dict[str, Any]:
    """A file → an ``image`` or ``document`` block with a base64, text, URL or file
    source."""
    media = part.media_type
    kind = "image" if media.startswith("image/") else "document"
    source: dict[str, Any]
    if part.file_id is not None:
        source = {"type": "file", "file_id": part.file_id}
    elif part.url is not None:
        source = {"type": "url", "url": part.url}
    elif media in _TEXTS:
        text = part.content().decode("utf-8", "replace")
        source = {"type": "text", "media_type": "text/plain", "data": text}
    else:
        source = {"type": "base64", "media_type": media, "data": part.base64()}
    block: dict[str, Any] = {"type": kind, "source": source}
    if part.cache_control:
        block["cache_control"] = part.cache_control
    return block


def _has_file_ids(messages: list[dict[str, Any]]) -> bool:
    return any(
        type(p) is FilePart and p.file_id is not None
        for m in messages
        if type(m.get("content")) is list
        for p in m["content"]
    )


def _convert_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        content = m.get("content")
        cache = m.get("cache_control")
        if role in ("system", "developer"):
            system.extend(_blocks(content, cache))
        elif role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id"),
                "content": content if isinstance(content, str) else _blocks(content),
            }
            if m.get("is_error"):
                block["is_error"] = True
            # Every result of one turn goes in one user message, right after the
            # assistant's tool_use turn, as Anthropic requires.
            last = out[-1] if out else None
            if (
                last is not None
                and last["role"] == "user"
                and isinstance(last["content"], list)
                and last["content"]
                and all(b.get("type") == "tool_result" for b in last["content"])
            ):
                last["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        else:
            body: Any
            steer = m.get("steer") if role == "assistant" else None
            thinking = (steer or {}).get("anthropic_thinking") if isinstance(steer, dict) else None
            if isinstance(content, str) and not cache and not m.get("tool_calls") and not thinking:
                body = content
            else:
                body = _blocks(content, cache) if content else []
            if thinking:
                body = [dict(b) for b in thinking] + body
            if role == "assistant" and m.get("tool_calls"):
                function_calls_only(m["tool_calls"], "the Anthropic Messages API")
                for call in m["tool_calls"]:
                    body.append(
                        {
                            "type": "tool_use",
                            "id": call.get("id"),
                            "name": (call.get("function") or {}).get("name"),
                            "input": tool_call_arguments(call),
                        }
                    )
            out.append({"role": role, "content": body})
    return system, out


def _message_id(message: Any) -> str:
    found = message.get("id") if isinstance(message, dict) else None
    return repr(found)[:80] if found else "without an id"


def _request_body(
    request: ChatRequest,
    default_max_tokens: int,
    warn: Callable[[str], None],
    top_level: bool = True,
) -> tuple[dict[str, Any], str, str | None]:
    """The Messages API body; the JSON prefill; the forced output tool's name."""
    system, messages = _convert_messages(request.messages)
    params = dict(request.params)
    body: dict[str, Any] = {"model": request.model}
    response_format = params.pop("response_format", None)
    prefill = ""
    if response_format:
        kind = response_format.get("type")
        if kind == "json_schema":
            schema = response_format.get("json_schema", {}).get("schema") or response_format.get(
                "schema"
            )
            if not isinstance(schema, dict):
                raise ConfigurationError(
                    "response_format json_schema needs a 'json_schema': {'schema': {...}} "
                    "object for Anthropic models"
                )
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        elif kind == "json_object":
            # Anthropic has no schema-less JSON mode: ask for it and, where the
            # model allows a prefill, start the answer with "{" so that it
            # continues one JSON object.
            system.append(_text_block(JSON_SYSTEM_HINT))
            if supports_prefill(request.model):
                prefill = JSON_PREFILL
    # Resume: the text so far (which already starts with any JSON prefill) becomes
    # the assistant's prefix. The API refuses one that ends in white space, so the
    # pipeline strips it before asking.
    prefix = request.prefix or prefill
    if prefix:
        messages.append({"role": "assistant", "content": prefix})
    tools = encode_tools(request.tools) if request.tools else []
    tool_choice = request.tool_choice
    output_tool = None
    if request.output_schema is not None:
        if supports_structured_output(request.model):
            body["output_config"] = {
                "format": {"type": "json_schema", "schema": request.output_schema}
            }
        else:
            # Older models: the schema as a tool the model must call; its
            # arguments stream back as the answer's text.
            output_tool = request.output_name
            tools.append(
                {
                    "name": request.output_name,
                    "description": "Give the answer in this structure.",
                    "input_schema": request.output_schema,
                }
            )
            if not request.tools:
                tool_choice = {"name": request.output_name}
    if tools:
        body["tools"] = tools
    if tools and (tool_choice is not None or request.parallel_tool_calls is False):
        body["tool_choice"] = encode_tool_choice(tool_choice, request.parallel_tool_calls)
    if system:
        if len(system) == 1 and set(system[0]) == {"type", "text"}:
            body["system"] = system[0]["text"]
        else:
            body["system"] = system
    body["messages"] = messages
    max_tokens = params.pop("max_tokens", None)
    body["max_tokens"] = max_tokens if max_tokens is not None else default_max_tokens
    stop = params.pop("stop", None)
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    put_params(
        body,
        params,
        _UNSUPPORTED_PARAMS,
        "Anthropic does not support {key!r}; it was not sent",
        warn,
    )
    if request.stream:
        body["stream"] = True
    body.update(request.extra_body)
    if request.cache_prompt:
        anthropic_breakpoints(body, request.model, request.cache_prompt, top_level=top_level)
    else:
        check_markers(body)  # more than four: the API's 400, said before sending
    return body, prefill, output_tool


def _headers(stream: bool, api_key: str | None) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream" if stream else "application/json",
        "anthropic-version": API_VERSION,
    }
    if api_key:
        headers["x-api-key"] = api_key
    return headers


def _parse_error(status: int, headers: Any, body: bytes) -> SteerError:
    # Anthropic's errors are objects: an "error" string is not read (as before).
    message, error_type, _ = error_fields(status, body, strings=False)
    return http_error(status, headers, body, message, error_type, request_id="request-id")


def _stream_error(obj: dict[str, Any]) -> SteerError:
    """An ``error`` event (or a whole ``type: error`` body) → the typed error."""
    err: dict[str, Any] = obj["error"] if isinstance(obj.get("error"), dict) else obj
    return error_for(
        None,
        str(err.get("message") or "the provider sent an error event"),
        error_type=err.get("type"),
        body=orjson.dumps(obj).decode()[:500],
    )


_THINKING = ("thinking", "redacted_thinking")


def _thinking_record(block: dict[str, Any]) -> dict[str, Any]:
    """A thinking (or redacted thinking) block as kept for ``to_message()``."""
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data")}
    return {
        "type": "thinking",
        "thinking": block.get("thinking") or "",
        "signature": block.get("signature") or "",
    }


def _whole_json(text: str) -> bool:
    """Whether a call's input so far is a whole JSON value."""
    if not text.strip():
        return False  # no input yet: "{}", unless max_tokens cut it before any
    try:
        _loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _response_content(
    content: Any, state: StreamState, output_tool: str | None
) -> tuple[list[str], bool]:
    """A whole message's content blocks into ``state``: its texts, and whether the
    forced output tool's call (its arguments then being text) was among them."""
    parts: list[str] = []
    output_found = False
    for block in content or ():
        if type(block) is not dict:
            raise InvalidResponseError(f"a content block is not an object: {block!r:.80}")
        btype = block.get("type")
        if btype == "text":
            parts.append(text_of(block))
        elif btype == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if output_tool is not None and block.get("name") == output_tool:
                output_found = True
                parts.append(arguments)
                continue
            ordinal = state.tool_delta(
                ("block", len(state.tool_calls)),
                id=block.get("id"),
                name=block.get("name"),
                arguments=arguments,
            )
            state.tool_end(ordinal)
        elif btype in _THINKING:
            record = _thinking_record(block)
            if record.get("thinking"):
                state.reasoning(record["thinking"])
            state.provider_data.setdefault("anthropic_thinking", []).append(record)
    return parts, output_found


def _vertex_request(
    request: ChatRequest, headers: dict[str, str], body: dict[str, Any]
) -> HTTPRequest:
    """The Messages body as Vertex AI takes it: no ``model`` (it is in the path), the
    ``anthropic_version`` in the body, ``streamRawPredict`` / ``rawPredict``."""
    del body["model"], headers["anthropic-version"]
    body["anthropic_version"] = VERTEX_VERSION
    verb = "streamRawPredict" if request.stream else "rawPredict"
    path = f"/publishers/anthropic/models/{quote(request.model, safe='-._~@')}:{verb}"
    return HTTPRequest("POST", path, headers, body)


class AnthropicCodec(CodecBase):
    """Encodes a request and decodes its stream for one call. Not reusable."""

    protocol = "anthropic-messages"
    automatic_cache = True  # cache_prompt: the API's top-level cache_control (README)
    # Files it can send: images (image blocks) and PDFs and plain text (document
    # blocks) as data, images and PDFs by URL, and all of them by Files API id (sent
    # with the files beta header).
    accepts = _IMAGES | _DOCUMENTS
    accepts_urls = _IMAGES | frozenset({"application/pdf"})
    accepts_file_ids = _IMAGES | _DOCUMENTS

    @staticmethod
    def normalize_base_url(url: str) -> str:
        # ANTHROPIC_BASE_URL is without /v1, like the official SDK; tolerate it.
        return url[:-3] if url.endswith("/v1") else url

    @staticmethod
    def can_continue(model: str) -> bool:
        return supports_prefill(model)

    def __init__(
        self,
        *,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
        record: bool = False,
        vertex: bool = False,
    ) -> None:
        super().__init__(record=record)
        self._vertex = vertex  # Vertex AI: publishers/anthropic/models/{model}:streamRawPredict
        self._default_max_tokens = default_max_tokens
        self._usage: dict[str, Any] = {}
        self._blocks: dict[int, str] = {}  # content block index → type
        self._tool_index: dict[int, int] = {}  # content block index → tool call ordinal
        self._initial_input: set[int] = set()  # calls whose arguments came whole
        self._thinking: dict[int, dict[str, Any]] = {}  # block index → thinking block
        self._output_tool: str | None = None  # structured output through a forced tool
        self._output_block: int | None = None
        # Tool calls whose block stopped before their input was a whole JSON value:
        # they end only once the stop reason says the answer was not cut.
        self._held: list[int] = []
        self._message: Any = None  # message_start's message: a second one is a splice
        self.lead_text = ""  # text the SDK put in the assistant's mouth (JSON prefill)
        self._lead_pending = False  # the first text may repeat the prefill

    # -- request ---------------------------------------------------------------
    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest:
        body, prefill, self._output_tool = _request_body(
            request,
            self._default_max_tokens,
            self.warn,
            self.automatic_cache and not self._vertex,  # Vertex: a last-block marker
        )
        self.lead_text = "" if request.prefix else prefill
        self._lead_pending = bool(self.lead_text)
        headers = _headers(request.stream, api_key)
        if _has_file_ids(request.messages):
            headers["anthropic-beta"] = FILES_BETA
        if self._vertex:
            return _vertex_request(request, headers, body)
        return HTTPRequest("POST", "/v1/messages", headers, body)

    # -- stream ----------------------------------------------------------------
    def decode(self, event: str | None, data: bytes) -> str | None:
        """One SSE event in, the text it carries out (or None): a ``text_delta`` read
        by the fast path, anything else by :meth:`_decode`."""
        try:
            fast = _fast_decode(data)
            delta = fast.delta
            if (
                fast.type == "content_block_delta"
                and delta is not None
                and delta.type == "text_delta"
                and delta.text is not _UNSET
                and not self._lead_pending
            ):
                return delta.text or None
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass  # not the common text event's shape: the general path says what it is
        return self._decode(event, data)

    def _decode(self, event: str | None, data: bytes) -> str | None:
        """The general path: any event, every check."""
        obj = event_json(data)
        kind = obj.get("type") if type(obj) is dict else None
        if kind == "content_block_delta":
            delta = obj["delta"]
            dtype = delta.get("type")
            if dtype == "text_delta":
                text = delta.get("text")
                if type(text) is str:
                    if self._lead_pending:
                        text = self._dedupe_lead(text)
                    return text or None
            return self._rare_delta(obj, delta, dtype)
        if kind == "ping":
            return None
        if kind == "content_block_start":
            return self._block_start(obj)
        if kind == "content_block_stop":
            self._block_stop(obj.get("index", 0))
            return None
        if kind == "message_delta":
            delta = obj.get("delta") or {}
            if delta.get("stop_reason"):
                self._finish(delta["stop_reason"])
            self._merge_usage(obj.get("usage"))
            return None
        if kind == "message_start":
            message = obj.get("message") or {}
            if self._message is not None:
                if message == self._message:
                    return None  # the same message_start again: nothing new
                raise InvalidResponseError(
                    "the stream sent a second, different message_start (message "
                    f"{_message_id(message)} after {_message_id(self._message)}): two "
                    "answers spliced into one stream"
                )
            self._message = message
            self.state.model = message.get("model")
            self.state.response_id = message.get("id")
            self._merge_usage(message.get("usage"))
            return None
        if kind == "message_stop":
            self.state.done = True
            self._end()
            return None
        if kind == "error" or event == "error":
            raise _stream_error(obj if type(obj) is dict else {})
        if kind is None and type(obj) is not dict:
            raise InvalidResponseError(f"the stream sent a non-object event: {data[:120]!r}")
        return None  # unknown event types

    def _rare_delta(self, obj: dict[str, Any], delta: Any, dtype: Any) -> str | None:
        if type(delta) is not dict:
            raise InvalidResponseError(
                f"the provider sent a delta that is not an object: {delta!r:.80}"
            )
        index = obj.get("index", 0)
        if dtype == "input_json_delta":
            partial = delta.get("partial_json")
            if index == self._output_block:
                if partial is not None and type(partial) is not str:
                    raise InvalidResponseError(f"partial_json is not a string: {partial!r:.80}")
                return partial or None  # the structured output, streamed as text
            ordinal = self._tool_index.get(index)
            if ordinal is not None and partial:
                if ordinal in self._initial_input:
                    # Input given whole at the start and then streamed too: the
                    # stream wins (never glue "{}" or an object to the deltas).
                    self._initial_input.discard(ordinal)
                    self.state.tool_calls[ordinal].arguments = ""
                self._args(ordinal, partial)
        elif dtype == "thinking_delta":
            thinking = delta.get("thinking") or ""
            self.state.reasoning(thinking)
            block = self._thinking.get(index)
            if block is not None:
                block["thinking"] += thinking
        elif dtype == "signature_delta":
            block = self._thinking.get(index)
            if block is not None:
                block["signature"] = block.get("signature", "") + (delta.get("signature") or "")
        elif dtype == "text_delta":  # the fast path took every string
            text = delta.get("text")
            if text is not None:
                raise InvalidResponseError(
                    f"the provider sent text that is not a string: {text!r:.80}"
                )
        return None  # citations_delta, unknown: harmless

    def _dedupe_lead(self, text: str) -> str:
        """A server that ignores the ``{`` prefill starts its answer with ``{`` again:
        drop the repeat (a JSON object cannot go on with a second ``{``)."""
        stripped = text.lstrip()
        if not stripped:
            return text
        self._lead_pending = False
        if stripped.startswith(self.lead_text):
            return stripped[len(self.lead_text) :]
        return text

    def _args(self, ordinal: int, partial: str) -> None:
        call = self.state.tool_calls[ordinal]
        self.state.tool_delta(("block", ordinal), id=call.id or None, arguments=partial)

    def _block_start(self, obj: dict[str, Any]) -> str | None:
        block = obj.get("content_block") or {}
        if type(block) is not dict:
            raise InvalidResponseError(f"a content block is not an object: {block!r:.80}")
        index = obj.get("index", 0)
        btype = block.get("type", "")
        self._blocks[index] = btype
        if btype == "text":
            text = block.get("text") or None
            if text is not None and type(text) is not str:
                raise InvalidResponseError(
                    f"the provider sent text that is not a string: {text!r:.80}"
                )
            if text and self._lead_pending:
                text = self._dedupe_lead(text) or None
            return text
        if btype == "tool_use":
            if self._output_tool is not None and block.get("name") == self._output_tool:
                self._output_block = index
                initial = block.get("input")
                return orjson.dumps(initial).decode() if initial else None
            ordinal = self.state.tool_delta(
                ("block", len(self.state.tool_calls)), id=block.get("id"), name=block.get("name")
            )
            self._tool_index[index] = ordinal
            initial = block.get("input")
            if initial:  # non-streamed input (rare): keep it as the arguments text
                self._initial_input.add(ordinal)
                self._args(ordinal, orjson.dumps(initial).decode())
        elif btype in _THINKING:
            record = _thinking_record(block)
            if record.get("thinking"):
                self.state.reasoning(record["thinking"])
            self._thinking[index] = record
        return None

    def _block_stop(self, index: Any) -> None:
        ordinal = self._tool_index.get(index)
        if ordinal is not None:
            reason = self.state.reason
            if reason is None and not _whole_json(self.state.tool_calls[ordinal].arguments):
                # Cut by max_tokens or not: only the stop reason, still to come, says.
                if ordinal not in self._held:
                    self._held.append(ordinal)
            elif reason != "length":
                self._end_tool(ordinal)
        block = self._thinking.pop(index, None)
        if block is not None:
            self.state.provider_data.setdefault("anthropic_thinking", []).append(block)

    def _end_tool(self, ordinal: int) -> None:
        """A call is complete; a tool without input has the arguments ``{}``."""
        state = self.state
        call = state.tool_calls[ordinal]
        if not call.arguments.strip():
            state.tool_delta(("block", ordinal), id=call.id or None, arguments="{}")
        state.tool_end(ordinal)

    def _finish(self, raw: Any) -> None:
        state = self.state
        unified = unify_finish(raw)
        if self._output_block is not None and unified == "tool_calls":
            unified = "stop"  # the forced output tool: an answer, not a tool call
        state.finish(raw, unified)
        if self._held and state.reason != "length":
            for ordinal in self._held:  # not cut after all: they end now, in order
                self._end_tool(ordinal)
        self._held.clear()

    def _end(self) -> None:
        """The message is complete: any block left open ends now (not a cut one)."""
        for block in list(self._thinking):
            self._block_stop(block)
        if self.state.reason != "length":
            for ordinal in sorted(self._tool_index.values()):
                self._end_tool(ordinal)

    def _merge_usage(self, raw: dict[str, Any] | None) -> None:
        if not raw:
            return
        merged = self._usage
        for key in _USAGE_FIELDS:
            value = raw.get(key)
            if value is not None:
                merged[key] = value
        self.state.usage = normalize_usage(merged)

    def finish(self) -> None:
        """End of body: complete after ``message_stop``, or after the ``message_delta``
        with the stop reason (a body cut before its final newline loses the former)."""
        if self.state.finish_reason is not None:
            self.state.done = True
        if self.state.done:
            self._end()

    # -- non-streaming and errors --------------------------------------------------
    def decode_response(self, body: bytes) -> str:
        obj = load_json_body(body)
        if obj.get("type") == "error":
            raise _stream_error(obj)
        state = self.state
        state.model = obj.get("model")
        state.response_id = obj.get("id")
        parts, output_found = _response_content(obj.get("content"), state, self._output_tool)
        if output_found:
            self._output_block = -1
        if obj.get("stop_reason") is not None:
            self._finish(obj.get("stop_reason"))
        self._merge_usage(obj.get("usage"))
        state.done = True
        text = "".join(parts)
        return self._dedupe_lead(text) if self._lead_pending else text

    parse_error = staticmethod(_parse_error)
