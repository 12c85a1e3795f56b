"""OpenAI Responses API wire codec (sans-I/O): ``POST /v1/responses`` with
``stream: true``.

Stream: ``response.output_text.delta`` is the fast path. Function calls and custom
(free-form) tool calls are keyed by their output item (the argument / input deltas
carry neither ``call_id`` nor ``name``: those come in ``response.output_item.added``);
the ``call_id`` of the finished item, and then of the final response, is the call's
real id (it may differ from the announced one). A call whose finished item is
``incomplete`` (cut by ``max_output_tokens``) never ends. Reasoning summary and
reasoning text deltas are reasoning. The terminal events ``response.completed``,
``response.incomplete`` and ``response.failed`` carry the usage and the outcome (the
event's name decides when the response has no ``status``); an ``error`` event or a
failed response is the typed error its ``code`` stands for, as the HTTP status would
be (``insufficient_quota``: a RateLimitError that is not retried).

Requests: OpenAI-shaped messages become ``input`` items (system and developer →
``instructions``; assistant tool calls → ``function_call`` / ``custom_tool_call``
items; tool messages → ``function_call_output`` / ``custom_tool_call_output``); the
reasoning items of an earlier answer, kept by ``response.to_message()``, are sent back
in their original order, each directly before the item that followed it, as the API
requires. Custom tools are sent as ``{"type": "custom", "name", "description",
"format"}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from ..content import FilePart, TextPart, as_part, audio_format
from ..errors import InvalidResponseError, SteerError
from .base import (
    ChatRequest,
    HTTPRequest,
    StreamState,
    error_for,
    event_json,
    mark_not_retryable,
    openai_code_status,
    openai_usage,
)
from .caching import openai_cache_fields
from .codec import CodecBase, add_logprobs, load_json_body, put_params, text_of
from .openai_chat import OpenAIChatCodec

__all__ = ["OpenAIResponsesCodec", "normalize_usage"]

logger = logging.getLogger("steer_llm_sdk")
_DROPPED = ("stop", "seed", "frequency_penalty", "presence_penalty", "n", "logprobs")


# The fast path: a text delta (nearly every event of a stream) read by msgspec into
# this struct, the rest of the event skipped unparsed. Any other event, or one of
# another shape, takes the general path, which defines the codec's behaviour.
class _FastEvent(msgspec.Struct, gc=False):
    type: str = ""
    delta: str | msgspec.UnsetType = msgspec.UNSET


_fast_decode = msgspec.json.Decoder(_FastEvent).decode
_TEXT_DELTA = "response.output_text.delta"
_CUSTOM_CALL = "custom_tool_call"  # a call of a free-form (custom) tool: text input
_CALLS = ("function_call", _CUSTOM_CALL)
_UNSET = msgspec.UNSET


def normalize_usage(raw: dict[str, Any]) -> dict[str, Any]:
    """Responses usage → unified usage (input includes cached; output includes
    reasoning, as OpenAI bills them)."""
    return openai_usage(
        raw.get("input_tokens"),
        raw.get("output_tokens"),
        raw.get("input_tokens_details"),
        raw.get("output_tokens_details"),
    )


def _content(content: Any, role: str) -> Any:
    """Message content → Responses input content: text as ``input_text`` (or
    ``output_text``), images as ``input_image``, audio data as ``input_audio``, PDFs
    by URL and other files as ``input_file``; a provider's own part dicts as they are
    (without ``cache_control``)."""
    if isinstance(content, str) or content is None:
        return content or ""
    kind = "output_text" if role == "assistant" else "input_text"
    out = []
    for raw in content:
        part = as_part(raw, OpenAIResponsesCodec)
        entry: dict[str, Any]
        if isinstance(part, TextPart):
            entry = {"type": kind, "text": part.text}
        elif isinstance(part, FilePart):
            media = part.media_type
            if part.file_id is not None:
                entry = {"type": "input_file", "file_id": part.file_id}
            elif part.url is not None and media == "application/pdf":
                entry = {"type": "input_file", "file_url": part.url}
            elif part.url is not None or media.startswith("image/"):
                url = part.url if part.url is not None else part.data_url()
                entry = {"type": "input_image", "image_url": url}
                if part.detail:
                    entry["detail"] = part.detail
            elif media.startswith("audio/"):
                audio = {"data": part.base64(), "format": audio_format(media)}
                entry = {"type": "input_audio", "input_audio": audio}
            else:
                entry = {"type": "input_file", "file_data": part.data_url()}
            if part.filename and entry["type"] == "input_file":
                entry["filename"] = part.filename
        else:
            entry = {k: v for k, v in part.items() if k != "cache_control"}
        out.append(entry)
    return out


def _text_of(content: Any) -> str:
    """The text of message content (files count as empty lines), for instructions and
    tool outputs, which are strings."""
    if isinstance(content, str):
        return content
    texts = []
    for part in content or ():
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, FilePart):
            texts.append("")
        elif isinstance(part, str):
            if part:
                texts.append(part)
        elif part:
            texts.append(str(part.get("text", "")))
    return "\n".join(texts)


def _input(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    instructions: list[str] = []
    items: list[dict[str, Any]] = []
    custom: set[Any] = set()  # call ids of custom tool calls: their results differ
    for m in messages:
        role = m["role"]
        content = m.get("content")
        if role in ("system", "developer"):
            instructions.append(_text_of(content))
        elif role == "tool":
            output = content if isinstance(content, str) else _text_of(content)
            call_id = m.get("tool_call_id")
            kind = "custom_tool_call_output" if call_id in custom else "function_call_output"
            items.append({"type": kind, "call_id": call_id, "output": output})
        elif role == "assistant":
            steer = m.get("steer")
            replay = steer.get("openai_output") if isinstance(steer, dict) else None
            if replay:
                # The answer's own output items, in their order: reasoning items stay
                # directly before the item that followed them.
                items.extend(dict(item) for item in replay)
                custom.update(
                    item.get("call_id") for item in replay if item.get("type") == _CUSTOM_CALL
                )
                continue
            if content:
                items.append({"role": "assistant", "content": _content(content, "assistant")})
            for call in m.get("tool_calls") or ():
                if call.get("type") == "custom":
                    spec = call.get("custom") or {}
                    custom.add(call.get("id"))
                    items.append(
                        {
                            "type": _CUSTOM_CALL,
                            "call_id": call.get("id"),
                            "name": spec.get("name"),
                            "input": spec.get("input") or "",
                        }
                    )
                    continue
                fn = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": fn.get("name"),
                        "arguments": fn.get("arguments") or "{}",
                    }
                )
        else:
            items.append({"role": role, "content": _content(content, role)})
    return ("\n\n".join(instructions) if instructions else None), items


def encode_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for tool in tools:
        if tool.get("kind") == "custom":  # free-form text input
            custom: dict[str, Any] = {"type": "custom", "name": tool["name"]}
            if tool.get("description"):
                custom["description"] = tool["description"]
            if tool.get("format") is not None:
                custom["format"] = tool["format"]
            out.append(custom)
            continue
        entry: dict[str, Any] = {
            "type": "function",
            "name": tool["name"],
            "parameters": tool["parameters"],
            # Responses makes function tools strict by default; a schema from a
            # function is not strict-ready unless the tool says so.
            "strict": bool(tool.get("strict")),
        }
        if tool.get("description"):
            entry["description"] = tool["description"]
        out.append(entry)
    return out


def _tool_choice(choice: str | dict[str, str], tools: list[dict[str, Any]]) -> Any:
    if isinstance(choice, dict):
        name = choice["name"]
        custom = any(t["name"] == name and t.get("kind") == "custom" for t in tools)
        return {"type": "custom" if custom else "function", "name": name}
    return choice


_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}
_INPUT_DELTAS = ("response.function_call_arguments.delta", "response.custom_tool_call_input.delta")
# The terminal events and the status each one means, whatever its response says.
_TERMINAL = {
    "response.completed": "completed",
    "response.incomplete": "incomplete",
    "response.failed": "failed",
}
_REPLAYED = ("reasoning", "function_call", _CUSTOM_CALL, "message")
_KNOWN_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "overloaded_error",
        "api_error",
        "server_error",
    }
)


def _request_body(request: ChatRequest, warn: Callable[[str], None]) -> dict[str, Any]:
    """The Responses API body of a request."""
    instructions, items = _input(request.messages)
    body: dict[str, Any] = {"model": request.model, "input": items}
    if instructions is not None:
        body["instructions"] = instructions
    params = dict(request.params)
    max_tokens = params.pop("max_tokens", None)
    if max_tokens is not None:
        body["max_output_tokens"] = max_tokens
    response_format = params.pop("response_format", None)
    if response_format:
        kind = response_format.get("type")
        if kind == "json_schema":
            inner = response_format.get("json_schema") or {}
            fmt: dict[str, Any] = {
                "type": "json_schema",
                "name": inner.get("name") or "output",
                "schema": inner.get("schema") or response_format.get("schema") or {},
            }
            if inner.get("strict") is not None:
                fmt["strict"] = inner["strict"]
            body["text"] = {"format": fmt}
        elif kind == "json_object":
            body["text"] = {"format": {"type": "json_object"}}
    put_params(
        body, params, _DROPPED, "the Responses API does not take {key!r}; it was not sent", warn
    )
    if request.tools:
        body["tools"] = encode_tools(request.tools)
    if request.tool_choice is not None:
        body["tool_choice"] = _tool_choice(request.tool_choice, request.tools)
    if request.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.output_schema is not None:
        body["text"] = {
            "format": {
                "type": "json_schema",
                "name": request.output_name,
                "schema": request.output_schema,
                "strict": True,
            }
        }
    if request.stream:
        body["stream"] = True
    body.update(request.extra_body)
    if body.get("store") is False:
        # Without storage, reasoning can only be carried to the next turn encrypted.
        include = list(body.get("include") or ())
        if "reasoning.encrypted_content" not in include:
            include.append("reasoning.encrypted_content")
        body["include"] = include
    return body


def error_event(obj: dict[str, Any]) -> SteerError:
    """An ``error`` event or a failed response → the typed error its ``code`` stands
    for, as the HTTP status would be (rate limits, quota, bad requests, server
    errors); an unknown or missing code is a server error, as before."""
    inner = obj.get("error")
    err: dict[str, Any] = inner if isinstance(inner, dict) else obj
    code = err.get("code")
    status = openai_code_status(code)
    error_type = err.get("type") if inner is err else None
    if status is None and not (isinstance(error_type, str) and error_type in _KNOWN_TYPES):
        error_type = "server_error"
    message = str(err.get("message") or "the provider sent an error")
    if code and type(code) is str and code not in message:
        message = f"{message} ({code})"
    error = error_for(
        status,
        message,
        error_type=None if status else error_type,
        body=orjson.dumps(obj).decode()[:500],
    )
    return mark_not_retryable(error, code)


def _add_logprobs(state: StreamState, raw: Any) -> None:
    if not raw:
        return
    if type(raw) is not list:
        raise InvalidResponseError(f"logprobs is not a list: {raw!r:.80}")
    add_logprobs(state, raw)


def _response_output(output: Any, state: StreamState, logprobs: bool) -> list[str]:
    """A whole response's output items into ``state`` (refusals, reasoning, and
    logprobs when asked for): the texts of its messages."""
    parts: list[str] = []
    for item in output or ():
        if not isinstance(item, dict):
            raise InvalidResponseError(f"an output item is not an object: {item!r:.80}")
        if item.get("type") == "message":
            for content in item.get("content") or ():
                if content.get("type") == "output_text":
                    parts.append(text_of(content))
                    if logprobs:
                        _add_logprobs(state, content.get("logprobs"))
                elif content.get("type") == "refusal":
                    state.refusal(content.get("refusal") or "")
        elif item.get("type") == "reasoning":
            for summary in item.get("summary") or ():
                if isinstance(summary, dict) and summary.get("text"):
                    if state.reasoning_parts:
                        state.reasoning("\n\n")
                    state.reasoning(summary["text"])
            for content in item.get("content") or ():
                if isinstance(content, dict) and content.get("type") == "reasoning_text":
                    state.reasoning(content.get("text") or "")
    return parts


class OpenAIResponsesCodec(CodecBase):
    """Encodes a request and decodes its stream for one call. Not reusable."""

    protocol = "openai-responses"
    # Files it can send: any media type (images, audio and input_file documents; the
    # server decides which), by URL, and by file id.
    accepts = frozenset({"*/*"})
    accepts_urls = True
    accepts_file_ids = True

    # Like Chat Completions, the base URL includes /v1. The API has no assistant
    # prefill, so a broken stream cannot resume (can_continue: False).
    local_base_url = staticmethod(OpenAIChatCodec.local_base_url)

    def __init__(self, *, record: bool = False) -> None:
        super().__init__(record=record)
        self._by_item: dict[Any, int] = {}  # item id / output index → tool ordinal
        self._items: dict[int, dict[str, Any]] = {}  # output index → finished item
        self._logprobs = False
        self._summary_parts: set[tuple[Any, Any]] = set()

    # -- request ---------------------------------------------------------------
    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest:
        body = _request_body(request, self.warn)
        if request.cache_prompt:
            openai_cache_fields(body, request.model, request.cache_prompt)
        self._logprobs = bool(body.get("top_logprobs")) or any(
            "logprobs" in str(i) for i in body.get("include") or ()
        )
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if request.stream else "application/json",
        }
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return HTTPRequest("POST", "/responses", headers, body)

    # -- stream ----------------------------------------------------------------
    def decode(self, event: str | None, data: bytes) -> str | None:
        """One SSE event in, its text out: ``response.output_text.delta`` by the fast
        path (without logprobs), every other event by :meth:`_decode`."""
        try:
            fast = _fast_decode(data)
            if fast.type == _TEXT_DELTA and fast.delta is not _UNSET and not self._logprobs:
                return fast.delta or None
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass
        return self._decode(event, data)

    def _decode(self, event: str | None, data: bytes) -> str | None:
        """The general path: any event, every check."""
        if data == b"[DONE]":  # OpenRouter ends with it after response.completed
            return None
        obj = event_json(data)
        kind = obj.get("type") if type(obj) is dict else None
        if kind == "response.output_text.delta":
            delta = obj.get("delta")
            if type(delta) is str:
                if self._logprobs:
                    _add_logprobs(self.state, obj.get("logprobs"))
                return delta or None
            raise InvalidResponseError(f"output_text.delta is not a string: {delta!r:.80}")
        if type(obj) is not dict:
            raise InvalidResponseError(f"the stream sent a non-object event: {data[:120]!r}")
        return self._rare(kind or event, obj)

    def _rare(self, kind: Any, obj: dict[str, Any]) -> str | None:
        state = self.state
        if kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            key = (obj.get("item_id"), obj.get("summary_index"))
            if kind.startswith("response.reasoning_summary") and key not in self._summary_parts:
                if self._summary_parts and state.reasoning_parts:
                    state.reasoning("\n\n")  # between summary parts, as ChatGPT shows them
                self._summary_parts.add(key)
            state.reasoning(obj.get("delta") or "")
        elif kind in _INPUT_DELTAS:
            ordinal = self._call_for(obj)
            delta = obj.get("delta")
            if ordinal is not None and delta:
                state.tool_delta(("item", ordinal), arguments=delta)
        elif kind == "response.output_item.added":
            item = obj.get("item")
            if type(item) is not dict:
                raise InvalidResponseError(f"an output item is not an object: {item!r:.80}")
            if item.get("type") in _CALLS:
                self._open_call(item, obj.get("output_index"))
        elif kind == "response.output_item.done":
            item = obj.get("item")
            if type(item) is not dict:
                raise InvalidResponseError(f"an output item is not an object: {item!r:.80}")
            index = obj.get("output_index")
            self._items[index if type(index) is int else len(self._items)] = item
            if item.get("type") in _CALLS:
                self._end_call(item, index)
        elif kind == "response.refusal.delta":
            state.refusal(obj.get("delta") or "")
        elif kind in ("response.created", "response.in_progress", "response.queued"):
            response = obj.get("response")
            if isinstance(response, dict):
                state.model = response.get("model") or state.model
                state.response_id = response.get("id") or state.response_id
        elif kind in _TERMINAL:
            self._terminal(obj.get("response"), _TERMINAL[kind])
        elif kind == "error":
            raise error_event(obj)
        return None  # content parts, annotations, built-in tool progress ...

    def _open_call(self, item: dict[str, Any], output_index: Any) -> int:
        """A function or custom tool call's output item: its call opens."""
        custom = item.get("type") == _CUSTOM_CALL
        state = self.state
        ordinal = state.tool_delta(
            ("item", len(state.tool_calls)),
            id=item.get("call_id") or None,
            name=item.get("name") or None,
            arguments=item.get("input" if custom else "arguments") or None,
        )
        if custom:
            call = state.tool_calls[ordinal]
            call.kind = call.type = "custom"
        item_id = item.get("id")
        if item_id and type(item_id) is str:
            self._by_item[item_id] = ordinal
        if type(output_index) is int:
            self._by_item[("index", output_index)] = ordinal
        return ordinal

    def _end_call(self, item: dict[str, Any], output_index: Any) -> None:
        """The finished item of a call: its ``call_id`` is the real one (it may differ
        from the one in ``output_item.added``, as the official SDKs read it), its
        arguments whole when no delta came; it ends unless the item is incomplete."""
        state = self.state
        ordinal = self._call_for({"output_index": output_index}, item)
        if ordinal is None:  # a call announced only by its finished item
            ordinal = self._open_call(item, output_index)
        state.tool_id(ordinal, item.get("call_id"))
        call = state.tool_calls[ordinal]
        whole = item.get("input" if call.kind == "custom" else "arguments")
        if isinstance(whole, str) and whole and not call.arguments:
            state.tool_delta(("item", ordinal), arguments=whole)
        if item.get("status") != "incomplete":  # cut by max_output_tokens: never ends
            state.tool_end(ordinal)

    def _call_for(self, obj: dict[str, Any], item: dict[str, Any] | None = None) -> int | None:
        by = self._by_item
        item_id = obj.get("item_id") or (item or {}).get("id")
        if item_id and type(item_id) is str and item_id in by:
            return by[item_id]
        index = obj.get("output_index")
        return by.get(("index", index)) if type(index) is int else None

    def _terminal(self, response: Any, status: str | None) -> None:
        """A terminal event's response (or a whole non-streamed one). ``status`` is
        what the event says (``response.failed`` is a failure even when its response
        object has no ``status`` field); None: the response's own status."""
        state = self.state
        if not isinstance(response, dict):
            raise InvalidResponseError("the terminal event carries no response object")
        state.model = response.get("model") or state.model
        state.response_id = response.get("id") or state.response_id
        usage = response.get("usage")
        if usage:
            if type(usage) is not dict:
                raise InvalidResponseError(f"usage is not an object: {usage!r:.80}")
            state.usage = normalize_usage(usage)
        if status is None or status == "completed":
            status = response.get("status") or status or "completed"
        if status == "failed":
            raise error_event({"error": response.get("error") or {}})
        output = response.get("output")
        if isinstance(output, list) and output:
            self._items = dict(enumerate(output))
            self._final_calls(output)
        unified = "stop"
        if status == "incomplete":
            details = response.get("incomplete_details") or {}
            unified = _INCOMPLETE.get(str(details.get("reason")), "other")
        if state.refusal_parts and unified == "stop":
            unified = "refusal"
        state.finish(status, unified)
        if state.reason != "length":
            state.end_open_tools()
        replay = [
            item
            for _, item in sorted(self._items.items())
            if isinstance(item, dict) and item.get("type") in _REPLAYED
        ]
        if any(item.get("type") == "reasoning" for item in replay):
            state.provider_data["openai_output"] = replay
        state.done = True

    def _final_calls(self, output: list[Any]) -> None:
        """The calls of the final response: each call's id becomes the final one; a
        server that sent the calls only here gets them opened and ended."""
        state = self.state
        only_here = not state.tool_calls
        for index, item in enumerate(output):
            if not isinstance(item, dict) or item.get("type") not in _CALLS:
                continue
            if only_here:
                self._end_call(item, index)
                continue
            ordinal = self._call_for({"output_index": index}, item)
            if ordinal is not None:
                state.tool_id(ordinal, item.get("call_id"))

    def finish(self) -> None:
        """End of body: complete only after a terminal event (the API always sends
        one)."""

    # -- non-streaming and errors --------------------------------------------------
    def decode_response(self, body: bytes) -> str:
        obj = load_json_body(body)
        if obj.get("error") and not obj.get("output"):
            raise error_event(obj)
        parts = _response_output(obj.get("output"), self.state, self._logprobs)
        self._terminal(obj, None)
        return "".join(parts)

    parse_error = staticmethod(OpenAIChatCodec.parse_error)
