"""AWS Bedrock runtime codecs (sans-I/O): Converse and, for Anthropic models, Invoke.

Both read AWS event stream frames (``framing = "eventstream"``): the read loop hands
``decode`` each frame's ``:event-type`` and payload, and an exception frame as
``exception:<type>`` (see ``transport/eventstream.py``). Credentials are not the
codec's business: the ``aws-sigv4`` signer (``auth/aws.py``) signs each request.

**Converse** (``POST /model/{id}/converse-stream``, ``/converse`` for ``generate()``):
system messages become ``system`` blocks, the rest ``messages`` of content blocks
(text, ``image``, ``document``, ``toolUse``, ``toolResult``, ``reasoningContent``);
``max_tokens``/``temperature``/``top_p``/``stop`` go in ``inferenceConfig``,
``thinking=`` and ``top_k`` in ``additionalModelRequestFields``; a ``cache_control``
mark on a part (or a message) becomes a ``cachePoint`` block after it, and
``cache_prompt=`` places them as ``caching.bedrock_cache_points`` says. The stream's
``toolUse`` input arrives as string fragments, folded into the call's arguments;
``metadata`` carries the usage (``inputTokens`` excludes cache reads and writes, which
the unified ``prompt_tokens`` adds back) and ends the stream.

**Invoke** (``POST /model/{id}/invoke-with-response-stream``): the Anthropic Messages
body without ``model`` and ``stream``, with ``anthropic_version``; each ``chunk``
frame's ``{"bytes": base64}`` holds one Anthropic event, decoded by
:class:`~.anthropic.AnthropicCodec` (this codec is its subclass).

The model id is percent-encoded in the path as botocore encodes it (``:`` → ``%3A``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any
from urllib.parse import quote

import msgspec
import orjson

from ..content import FilePart, TextPart, as_part
from ..errors import ConfigurationError, InvalidResponseError, SteerError
from .anthropic import JSON_SYSTEM_HINT, AnthropicCodec, _whole_json
from .base import (
    ChatRequest,
    HTTPRequest,
    cache_usage,
    error_for,
    event_json,
    function_calls_only,
    function_tools,
    parse_retry_after,
    token_count,
    unify_finish,
)
from .caching import bedrock_cache_points
from .codec import CodecBase, load_json_body, put_params, text_of, tool_call_arguments

__all__ = ["INVOKE_ANTHROPIC_VERSION", "BedrockConverseCodec", "BedrockInvokeCodec"]

# The body's anthropic_version, as the official ``anthropic`` package's
# AnthropicBedrock sends it (2.17: its ANTHROPIC_API_VERSION; checked by a test).
INVOKE_ANTHROPIC_VERSION = "2026-10-21"
# Bedrock's default endpoint; the region is filled in by normalize_base_url.
DEFAULT_BASE_URL = "https://bedrock-runtime.{region}.amazonaws.com"

_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_STOP_REASONS = {
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "malformed_model_output": "other",
    "malformed_tool_use": "other",
}
_UNSUPPORTED_PARAMS = ("seed", "frequency_penalty", "presence_penalty", "n", "logprobs")
# Converse's own top-level fields: an extra_body key among them goes to the body; any
# other (thinking=, top_k=, a model's own parameter) to additionalModelRequestFields.
_CONVERSE_FIELDS = frozenset(
    {
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "guardrailConfig",
        "inferenceConfig",
        "outputConfig",
        "performanceConfig",
        "promptVariables",
        "requestMetadata",
        "serviceTier",
        "toolConfig",
    }
)
_CACHE_POINT = {"cachePoint": {"type": "default"}}
_NAME_RE = re.compile(r"[^A-Za-z0-9\-\(\)\[\] ]+")

# An exception frame's (or an HTTP error's) type → (status, retried). The status gives
# the error class (error_for); ``retried`` False marks one another try cannot fix.
_EXCEPTIONS: dict[str, tuple[int, bool | None]] = {
    "throttlingexception": (429, None),
    "servicequotaexceededexception": (429, False),
    "serviceunavailableexception": (503, None),
    "internalserverexception": (500, None),
    "modeltimeoutexception": (408, None),
    "modelnotreadyexception": (429, None),
    "modelstreamerrorexception": (424, False),
    "modelerrorexception": (424, False),
    "validationexception": (400, False),
    "accessdeniedexception": (403, False),
    "unrecognizedclientexception": (403, False),
    "invalidsignatureexception": (403, False),
    "expiredtokenexception": (403, False),
    "resourcenotfoundexception": (404, False),
}


def model_path(model: str, action: str) -> str:
    """``/model/{id}/{action}``, the id percent-encoded as botocore does."""
    if not model or model in (".", ".."):
        raise ConfigurationError(f"a Bedrock model id is needed, got {model!r}")
    return f"/model/{quote(model, safe='-._~')}/{action}"


def bedrock_error(
    kind: str | None, message: str, status: int | None = None, **kw: Any
) -> SteerError:
    """A Bedrock exception (a frame or an HTTP error) → the typed error, with its
    retry rule: throttling, 5xx and model timeouts are retried, the rest not."""
    known = _EXCEPTIONS.get((kind or "").lower())
    retried: bool | None = None
    if known is not None:
        status = status or known[0]
        retried = known[1]
    text = f"{kind}: {message}" if kind else message
    error = error_for(status, text, **kw)
    if retried is False:
        error.retryable = False
    return error


def _exception(name: str, data: bytes) -> SteerError:
    """An ``exception:<type>`` or ``error:<code>`` frame → the typed error."""
    prefix, _, kind = name.partition(":")
    if prefix == "error":
        return bedrock_error(kind, data.decode("utf-8", "replace")[:500], 500)
    message = data.decode("utf-8", "replace")[:500]
    try:
        obj = orjson.loads(data)
        if isinstance(obj, dict):
            message = str(obj.get("message") or obj.get("Message") or message)
    except orjson.JSONDecodeError:
        pass
    return bedrock_error(kind, message, body=data[:500].decode("utf-8", "replace"))


def parse_bedrock_error(status: int, headers: Any, body: bytes) -> SteerError:
    """An HTTP error of the Bedrock runtime: the type from ``x-amzn-ErrorType`` (or the
    body's ``__type``), the body's ``message``."""
    kind = (headers.get("x-amzn-errortype") or "") if headers is not None else ""
    message = f"HTTP {status}"
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        obj = None
        if body:
            message = f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"
    if isinstance(obj, dict):
        message = str(obj.get("message") or obj.get("Message") or message)
        kind = kind or str(obj.get("__type") or "")
    kind = kind.split(":")[0].rsplit("#", 1)[-1]
    return bedrock_error(
        kind or None,
        message,
        status,
        retry_after=parse_retry_after(headers),
        request_id=headers.get("x-amzn-requestid") if headers is not None else None,
        body=body[:500].decode("utf-8", "replace"),
    )


def normalize_bedrock_url(url: str) -> str:
    """The catalog's templated endpoint → botocore's endpoint variables or the region's."""
    if "{region}" not in url:
        return url
    from ..auth.aws import aws_region, bedrock_endpoint

    return bedrock_endpoint(aws_region())


def _usage(raw: Any) -> dict[str, Any]:
    """Converse ``usage`` → unified usage (prompt tokens include cache reads/writes)."""
    if type(raw) is not dict:
        raise InvalidResponseError(f"the usage is not an object: {raw!r:.80}")
    return cache_usage(
        token_count(raw.get("inputTokens"), "inputTokens"),
        raw.get("cacheReadInputTokens"),
        raw.get("cacheWriteInputTokens"),
        token_count(raw.get("outputTokens"), "outputTokens"),
    )


def _file_block(part: FilePart, index: int) -> dict[str, Any]:
    data = part.base64()
    image = _IMAGE_FORMATS.get(part.media_type)
    if image is not None:
        return {"image": {"format": image, "source": {"bytes": data}}}
    name = _NAME_RE.sub(" ", (part.filename or "").rsplit(".", 1)[0]).strip()
    return {
        "document": {
            "format": _DOCUMENT_FORMATS[part.media_type],
            "name": " ".join(name.split()) or f"document-{index}",
            "source": {"bytes": data},
        }
    }


def _blocks(content: Any, cache_control: Any = None) -> list[dict[str, Any]]:
    """Message content → Converse blocks; a part's ``cache_control`` → a
    ``cachePoint`` after it (a message's: after its last block)."""
    if isinstance(content, str):
        blocks: list[dict[str, Any]] = [{"text": content}] if content else []
    else:
        blocks = []
        for i, raw in enumerate(content or ()):
            part = as_part(raw, BedrockConverseCodec)
            if isinstance(part, TextPart):
                blocks.append({"text": part.text})
            elif isinstance(part, FilePart):
                blocks.append(_file_block(part, i))
            else:
                blocks.append(dict(part))  # a Converse block of the caller's own
            if getattr(part, "cache_control", None):
                blocks.append(dict(_CACHE_POINT))
    if cache_control and blocks:
        blocks.append(dict(_CACHE_POINT))
    return blocks


def _reasoning_blocks(steer: Any) -> list[dict[str, Any]]:
    """An assistant turn's kept reasoning (text and signature), to send back."""
    kept = steer.get("bedrock_reasoning") if isinstance(steer, dict) else None
    return [dict(block) for block in kept or ()]


def _messages(request: ChatRequest) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if out and out[-1]["role"] == role:  # Converse wants the roles to alternate
            out[-1]["content"].extend(blocks)
        elif blocks:
            out.append({"role": role, "content": blocks})

    for m in request.messages:
        role = m["role"]
        content = m.get("content")
        if role in ("system", "developer"):
            system.extend(_blocks(content, m.get("cache_control")))
        elif role == "tool":
            result: dict[str, Any] = {
                "toolUseId": m.get("tool_call_id"),
                "content": [{"text": content}]
                if isinstance(content, str)
                else _blocks(content) or [{"text": ""}],
            }
            if m.get("is_error"):
                result["status"] = "error"
            add("user", [{"toolResult": result}])
        else:
            blocks = _reasoning_blocks(m.get("steer")) if role == "assistant" else []
            blocks += _blocks(content, m.get("cache_control"))
            if role == "assistant" and m.get("tool_calls"):
                function_calls_only(m["tool_calls"], "Bedrock's Converse API")
                for call in m["tool_calls"]:
                    blocks.append(
                        {
                            "toolUse": {
                                "toolUseId": call.get("id"),
                                "name": (call.get("function") or {}).get("name"),
                                "input": tool_call_arguments(call),
                            }
                        }
                    )
            add("assistant" if role == "assistant" else "user", blocks)
    return system, out


def _tool_config(request: ChatRequest, warn: Any) -> tuple[dict[str, Any] | None, str | None]:
    """``toolConfig`` and the forced output tool's name (structured output)."""
    tools = [
        {
            "toolSpec": {
                "name": tool["name"],
                **({"description": tool["description"]} if tool.get("description") else {}),
                "inputSchema": {"json": tool["parameters"]},
            }
        }
        for tool in function_tools(request.tools, "Bedrock's Converse API")
    ]
    choice = request.tool_choice
    output_tool = None
    if request.output_schema is not None:
        output_tool = request.output_name
        tools.append(
            {
                "toolSpec": {
                    "name": output_tool,
                    "description": "Give the answer in this structure.",
                    "inputSchema": {"json": request.output_schema},
                }
            }
        )
        if not request.tools:
            choice = {"name": output_tool}
    if not tools:
        return None, None
    config: dict[str, Any] = {"tools": tools}
    if choice == "none":
        warn("Bedrock's Converse API has no tool_choice 'none'; the tools were not sent")
        return None, None
    if isinstance(choice, dict):
        config["toolChoice"] = {"tool": {"name": choice["name"]}}
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    return config, output_tool


def _converse_body(request: ChatRequest, warn: Any) -> tuple[dict[str, Any], str | None]:
    system, messages = _messages(request)
    params = dict(request.params)
    fmt = params.pop("response_format", None)
    if fmt and fmt.get("type") == "json_object":
        system.append({"text": JSON_SYSTEM_HINT})
    elif fmt and fmt.get("type") == "json_schema":
        warn("Bedrock's Converse API takes a schema through output= (a forced tool); "
             "response_format json_schema was sent as a JSON instruction only")  # fmt: skip
        system.append({"text": JSON_SYSTEM_HINT})
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    for ours, theirs in (("max_tokens", "maxTokens"), ("temperature", "temperature"),
                         ("top_p", "topP")):  # fmt: skip
        value = params.pop(ours, None)
        if value is not None:
            inference[theirs] = value
    stop = params.pop("stop", None)
    if stop is not None:
        inference["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if inference:
        body["inferenceConfig"] = inference
    fields: dict[str, Any] = {}
    put_params(fields, params, _UNSUPPORTED_PARAMS,
               "Bedrock's Converse API does not take {key!r}; it was not sent", warn)  # fmt: skip
    tool_config, output_tool = _tool_config(request, warn)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    for key, value in request.extra_body.items():
        if key not in _CONVERSE_FIELDS:
            fields[key] = value
        elif isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    if fields:
        extra = body.get("additionalModelRequestFields")
        body["additionalModelRequestFields"] = {**fields, **(extra or {})}
    return body, output_tool


class _FastDelta(msgspec.Struct, gc=False):
    text: str | msgspec.UnsetType = msgspec.UNSET


class _FastEvent(msgspec.Struct, gc=False):
    delta: _FastDelta | None = None


_fast_decode = msgspec.json.Decoder(_FastEvent).decode
_UNSET = msgspec.UNSET


class BedrockConverseCodec(CodecBase):
    """Bedrock's Converse API: encodes a request and decodes its frames. Not reusable."""

    protocol = "bedrock-converse"
    framing = "eventstream"
    accepts = frozenset({*_IMAGE_FORMATS, *_DOCUMENT_FORMATS})

    normalize_base_url = staticmethod(normalize_bedrock_url)

    def __init__(self, *, record: bool = False) -> None:
        super().__init__(record=record)
        self._tools: dict[int, int] = {}  # content block index → tool call ordinal
        self._output_tool: str | None = None
        self._output_block: int | None = None
        self._reasoning: dict[int, dict[str, Any]] = {}  # block index → text, signature

    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest:
        body, self._output_tool = _converse_body(request, self.warn)
        bedrock_cache_points(body, request.model, request.cache_prompt)
        action = "converse-stream" if request.stream else "converse"
        headers = {"content-type": "application/json"}
        if request.stream:
            headers["accept"] = "application/vnd.amazon.eventstream"
        return HTTPRequest("POST", model_path(request.model, action), headers, body)

    def decode(self, event: str | None, data: bytes) -> str | None:
        if event == "contentBlockDelta":
            try:
                delta = _fast_decode(data).delta
                if delta is not None and delta.text is not _UNSET:
                    return delta.text or None
            except (msgspec.DecodeError, UnicodeDecodeError):
                pass
        return self._decode(event, data)

    def _decode(self, event: str | None, data: bytes) -> str | None:
        """The general path: any frame, every check."""
        if event is not None and event.startswith(("exception:", "error:")):
            raise _exception(event, data)
        obj = event_json(data)
        if type(obj) is not dict:
            raise InvalidResponseError(f"the stream sent a non-object event: {data[:120]!r}")
        state = self.state
        index = obj.get("contentBlockIndex", 0)
        if event == "contentBlockDelta":
            delta = obj["delta"]
            if type(delta) is not dict:
                raise InvalidResponseError(f"a delta is not an object: {delta!r:.80}")
            if "text" in delta:
                return text_of(delta) or None
            if "toolUse" in delta:
                fragment = delta["toolUse"].get("input")
                if index == self._output_block:
                    return text_of({"text": fragment}) or None
                ordinal = self._tools.get(index)
                if ordinal is None:  # input before its start: a call of its own
                    ordinal = self._tools[index] = state.tool_delta(("block", index))
                state.tool_delta(("block", index), arguments=fragment or None)
            elif "reasoningContent" in delta:
                self._reasoning_delta(index, delta["reasoningContent"])
            return None
        if event == "contentBlockStart":
            start = (obj.get("start") or {}).get("toolUse")
            if type(start) is dict:
                if self._output_tool is not None and start.get("name") == self._output_tool:
                    self._output_block = index
                else:
                    self._tools[index] = state.tool_delta(
                        ("block", index), id=start.get("toolUseId"), name=start.get("name")
                    )
            return None
        if event == "contentBlockStop":
            self._block_stop(index)
            return None
        if event == "messageStop":
            self._finish(obj.get("stopReason"))
            return None
        if event == "metadata":
            if obj.get("usage") is not None:
                state.usage = _usage(obj["usage"])
            state.done = True
            self._end()
            return None
        return None  # messageStart, unknown events

    def _reasoning_delta(self, index: int, delta: Any) -> None:
        if type(delta) is not dict:
            raise InvalidResponseError(f"reasoningContent is not an object: {delta!r:.80}")
        block = self._reasoning.setdefault(index, {"text": "", "signature": ""})
        if "text" in delta:
            text = delta["text"]
            self.state.reasoning(text)
            block["text"] += text
        if "signature" in delta:
            block["signature"] += str(delta["signature"] or "")
        if "redactedContent" in delta:
            block["redacted"] = block.get("redacted", "") + str(delta["redactedContent"])

    def _block_stop(self, index: int) -> None:
        ordinal = self._tools.get(index)
        if ordinal is not None and self.state.reason is not None:
            if self.state.reason != "length":
                self._end_tool(index)
        elif ordinal is not None and _whole_json(self.state.tool_calls[ordinal].arguments):
            self._end_tool(index)  # else: cut by max_tokens or not, the stop reason says
        block = self._reasoning.pop(index, None)
        if block is not None:
            if "redacted" in block:
                kept: dict[str, Any] = {"redactedContent": block["redacted"]}
            else:
                kept = {"reasoningText": {"text": block["text"], "signature": block["signature"]}}
            self.state.provider_data.setdefault("bedrock_reasoning", []).append(
                {"reasoningContent": kept}
            )

    def _end_tool(self, index: int) -> None:
        """A call is complete; a tool without input has the arguments ``{}``."""
        state = self.state
        ordinal = self._tools[index]
        if not state.tool_calls[ordinal].arguments.strip():
            state.tool_delta(("block", index), arguments="{}")
        state.tool_end(ordinal)

    def _finish(self, raw: Any) -> None:
        unified = _STOP_REASONS.get(raw) if type(raw) is str else None
        unified = unified or unify_finish(raw)
        if self._output_block is not None and unified == "tool_calls":
            unified = "stop"  # the forced output tool: an answer, not a tool call
        self.state.finish(raw, unified)

    def _end(self) -> None:
        for index in list(self._reasoning):
            self._block_stop(index)
        if self.state.reason != "length":
            for index in sorted(self._tools, key=self._tools.__getitem__):
                self._end_tool(index)

    def finish(self) -> None:
        """End of body: complete once the stop reason came (metadata may be absent)."""
        if self.state.finish_reason is not None:
            self.state.done = True
        if self.state.done:
            self._end()

    def decode_response(self, body: bytes) -> str:
        """A whole ``/converse`` answer."""
        obj = load_json_body(body)
        state = self.state
        message = (obj.get("output") or {}).get("message") or {}
        parts: list[str] = []
        for i, block in enumerate(message.get("content") or ()):
            if type(block) is not dict:
                raise InvalidResponseError(f"a content block is not an object: {block!r:.80}")
            if "text" in block:
                parts.append(text_of(block))
            elif "toolUse" in block:
                use = block["toolUse"]
                arguments = orjson.dumps(use.get("input") or {}).decode()
                if self._output_tool is not None and use.get("name") == self._output_tool:
                    self._output_block = i
                    parts.append(arguments)
                    continue
                ordinal = state.tool_delta(("block", i), id=use.get("toolUseId"),
                                           name=use.get("name"), arguments=arguments)  # fmt: skip
                state.tool_end(ordinal)
            elif "reasoningContent" in block:
                text = ((block["reasoningContent"] or {}).get("reasoningText") or {}).get("text")
                if text:
                    state.reasoning(text)
                state.provider_data.setdefault("bedrock_reasoning", []).append(block)
        self._finish(obj.get("stopReason"))
        if obj.get("usage") is not None:
            state.usage = _usage(obj["usage"])
        state.done = True
        return "".join(parts)

    parse_error = staticmethod(parse_bedrock_error)


class BedrockInvokeCodec(AnthropicCodec):
    """Bedrock's InvokeModelWithResponseStream for Anthropic models: the Anthropic
    Messages codec over event-stream frames."""

    protocol = "bedrock-invoke"
    framing = "eventstream"
    accepts_urls = frozenset()  # Bedrock fetches no URL, and has no Files API
    accepts_file_ids = frozenset()
    automatic_cache = False  # cache_prompt: a marker on the last block, not a top-level one

    normalize_base_url = staticmethod(normalize_bedrock_url)

    @staticmethod
    def can_continue(model: str) -> bool:
        return False

    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest:
        http = super().encode(request, None)
        body = http.json
        body.pop("model", None)
        stream = bool(body.pop("stream", False))
        body = {"anthropic_version": INVOKE_ANTHROPIC_VERSION, **body}
        headers = {"content-type": "application/json"}
        if stream:
            headers["accept"] = "application/vnd.amazon.eventstream"
        action = "invoke-with-response-stream" if stream else "invoke"
        return HTTPRequest("POST", model_path(request.model, action), headers, body)

    def decode(self, event: str | None, data: bytes) -> str | None:
        if event == "chunk":
            try:
                inner = base64.b64decode(orjson.loads(data)["bytes"], validate=True)
            except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
                raise InvalidResponseError(
                    f"a Bedrock chunk is not {{'bytes': base64}}: {data[:120]!r}"
                ) from None
            return super().decode(None, inner)
        if event is not None and event.startswith(("exception:", "error:")):
            raise _exception(event, data)
        return None  # unknown frames

    parse_error = staticmethod(parse_bedrock_error)
