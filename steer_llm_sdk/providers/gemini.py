"""Google Gemini API wire codec (sans-I/O): ``streamGenerateContent?alt=sse``.

Request mapping: system messages become ``systemInstruction``; roles become ``user``
and ``model``; an assistant turn's tool calls become ``functionCall`` parts (with the
``thoughtSignature`` Gemini gave them echoed back, as Gemini 3 requires) and each run
of ``tool`` messages becomes one user turn of ``functionResponse`` parts, named after
the call they answer; files become ``inlineData`` (data) or ``fileData`` (URLs);
tools become ``functionDeclarations`` with the schema as
``parametersJsonSchema``; ``output=`` becomes ``responseMimeType`` +
``responseJsonSchema``; ``max_tokens``, ``temperature``, ``top_p``, ``stop`` and
``seed`` go into ``generationConfig`` under Gemini's names, and so does any other
parameter that is a ``generationConfig`` field; the rest goes to the body.

Stream: every ``data:`` event is a whole ``GenerateContentResponse``; there is no
terminal event: an answer is complete when its body ends after a ``finishReason`` (the
body is read to its end: some servers send the usage alone, last; the last finish
reason and usage win); a body that ends without one is a ConnectionError saying so.
Text parts take the fast path; ``thought: true`` parts are reasoning; function calls
arrive whole (one or more per event, with or without ids). Usage is the last complete
``usageMetadata`` (each one is cumulative): ``promptTokenCount`` already includes
``cachedContentTokenCount``, and ``thoughtsTokenCount`` is output, as Google bills it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import msgspec
import orjson

from ..content import FilePart, TextPart, as_part
from ..errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConnectionError,
    ContextWindowError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SteerError,
)
from ..results import TextDelta
from .base import (
    CachedPrefix,
    ChatRequest,
    HTTPRequest,
    error_for,
    event_json,
    function_calls_only,
    function_tools,
    is_context_window,
    parse_retry_after,
    token_count,
)
from .codec import CodecBase, load_json_body, tool_call_arguments

__all__ = ["GENERATION_CONFIG_FIELDS", "GeminiCodec", "normalize_usage", "unify_gemini_finish"]


# The fast path: the shape of nearly every streamed event (one candidate whose content
# is one plain text part, no finish reason), read by msgspec straight into these
# structs; everything else in the event is skipped unparsed. An event of any other
# shape fails to decode here and takes the general path (orjson and dicts), which is
# what defines the codec's behaviour: the fast path only returns what it would.
class _FastPart(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    text: str


class _FastContent(msgspec.Struct, gc=False):
    parts: list[_FastPart] | None = None


class _FastCandidate(msgspec.Struct, gc=False):
    content: _FastContent | None = None
    finishReason: Any = msgspec.UNSET
    index: int = 0


class _FastUsage(msgspec.Struct, gc=False):
    promptTokenCount: Any = msgspec.UNSET
    candidatesTokenCount: Any = msgspec.UNSET


class _FastEvent(msgspec.Struct, gc=False):
    candidates: list[_FastCandidate] | None = None
    usageMetadata: _FastUsage | None = None


_fast_decode = msgspec.json.Decoder(_FastEvent).decode
_UNSET = msgspec.UNSET

logger = logging.getLogger("steer_llm_sdk")
_loads = orjson.loads

# Every field of the API's GenerationConfig (camelCase, as sent).
GENERATION_CONFIG_FIELDS = frozenset(
    {
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "_responseJsonSchema",
        "responseModalities",
        "candidateCount",
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseLogprobs",
        "logprobs",
        "enableEnhancedCivicAnswers",
        "speechConfig",
        "thinkingConfig",
        "imageConfig",
        "mediaResolution",
        "enableAffectiveDialog",
        "audioTimestamp",
        "routingConfig",
        "modelSelectionConfig",
    }
)
# The SDK's common parameters under Gemini's names.
_COMMON = {
    "max_tokens": "maxOutputTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "seed": "seed",
    "n": "candidateCount",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
_TOOL_CALL_ERRORS = frozenset(
    {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"}
)
# google.rpc status names → the SDK's errors.
_BY_STATUS_NAME: dict[str, type[APIStatusError]] = {
    "INVALID_ARGUMENT": BadRequestError,
    "FAILED_PRECONDITION": BadRequestError,
    "OUT_OF_RANGE": BadRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "UNAVAILABLE": ServerError,
    "INTERNAL": ServerError,
    "DEADLINE_EXCEEDED": ServerError,
}
_SNAKE = re.compile(r"_([a-z])")


def _camel(name: str) -> str:
    return _SNAKE.sub(lambda m: m.group(1).upper(), name)


def unify_gemini_finish(raw: str) -> str:
    """A Gemini ``finishReason`` in the SDK's vocabulary (``STOP`` → ``stop``; the
    caller turns it into ``tool_calls`` when a call was seen)."""
    if raw == "STOP":
        return "stop"
    if raw == "MAX_TOKENS":
        return "length"
    if raw in _FILTERED:
        return "content_filter"
    return "other"


def _is_tool_call_error(raw: str) -> bool:
    return raw in _TOOL_CALL_ERRORS or "FUNCTION_CALL" in raw or "TOOL_CALL" in raw


def normalize_usage(raw: dict[str, Any]) -> dict[str, Any]:
    """Gemini ``usageMetadata`` → the SDK's unified usage.

    ``promptTokenCount`` counts every input token, cached ones included (like the
    SDK's ``prompt_tokens``), plus ``toolUsePromptTokenCount`` for the input of
    built-in tools; completion is ``candidatesTokenCount + thoughtsTokenCount``.
    """
    prompt = token_count(raw.get("promptTokenCount"), "promptTokenCount") + token_count(
        raw.get("toolUsePromptTokenCount"), "toolUsePromptTokenCount"
    )
    thoughts = raw.get("thoughtsTokenCount")
    completion = token_count(raw.get("candidatesTokenCount"), "candidatesTokenCount") + token_count(
        thoughts, "thoughtsTokenCount"
    )
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    cached = raw.get("cachedContentTokenCount")
    if cached is not None:
        usage["cache_info"] = {
            "cached_tokens": token_count(cached, "cachedContentTokenCount"),
            "cache_creation_tokens": 0,
        }
    if thoughts is not None:
        usage["reasoning_tokens"] = thoughts
    return usage


# -- request ---------------------------------------------------------------------------
def encode_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    declarations = []
    for tool in function_tools(tools, "the Gemini API"):
        entry: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            entry["description"] = tool["description"]
        schema = tool.get("parameters")
        if schema and schema.get("properties"):
            entry["parametersJsonSchema"] = schema
        declarations.append(entry)
    return [{"functionDeclarations": declarations}]


def encode_tool_choice(choice: str | dict[str, str]) -> dict[str, Any]:
    if isinstance(choice, dict):
        config: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [choice["name"]]}
    else:
        config = {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
    return {"functionCallingConfig": config}


def _text_parts(content: Any) -> list[dict[str, Any]]:
    """Message content (a string or a list of parts) as Gemini parts: files as
    ``inlineData`` (data) or ``fileData`` (URLs); Gemini's own part dicts (no
    ``type``) as they are, without ``cache_control``."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for raw in content:
        part = as_part(raw, GeminiCodec)
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, FilePart):
            parts.append(_file_part(part))
        elif part.get("type") is None:
            parts.append({k: v for k, v in part.items() if k != "cache_control"})  # native
        else:
            raise ConfigurationError(
                f"content parts of type {part.get('type')!r} cannot be sent to Gemini: use "
                "text, image_url, input_audio, file, or Gemini's own part dicts "
                "(inlineData, fileData ...)"
            )
    return parts


_FILES_URI = "https://generativelanguage.googleapis.com/v1beta/"


def _file_part(part: FilePart) -> dict[str, Any]:
    """A file → ``inlineData`` (data) or ``fileData`` (a URL, or a Files API name
    such as ``files/abc``)."""
    if part.url is None and part.file_id is None:
        return {"inlineData": {"mimeType": part.media_type, "data": part.base64()}}
    uri = part.url if part.url is not None else str(part.file_id)
    if not uri.startswith(("https://", "http://", "gs://")):
        uri = _FILES_URI + uri
    data = {"fileUri": uri}
    if part.media_type:
        data["mimeType"] = part.media_type
    return {"fileData": data}


# What a functionResponse carries in its own parts (inline data only; the Gemini API
# takes no fileData there): images, PDFs and text.
_RESPONSE_FILES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "application/pdf", "text/plain"}
)


def _gemini_data(holder: Any) -> dict[str, Any]:
    steer = holder.get("steer") if isinstance(holder, dict) else None
    data = steer.get("gemini") if isinstance(steer, dict) else None
    return data if isinstance(data, dict) else {}


def _response_files(content: Any, response: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool result's files: inline images, PDFs and text in the functionResponse's
    own ``parts``; any other file (a URL, a file id, another type) returned as parts
    to add to the results' user turn."""
    if type(content) is not list:
        return []
    inner: list[dict[str, Any]] = []
    outer: list[dict[str, Any]] = []
    for part in content:
        if type(part) is FilePart:
            mapped = _file_part(part)
            inline = "inlineData" in mapped and part.media_type in _RESPONSE_FILES
            (inner if inline else outer).append(mapped)
    if inner:
        response["parts"] = inner
    return outer


def _tool_response(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, dict) and part.get("type") == "text":
                texts.append(part.get("text") or "")
        content = "".join(texts)
    if message.get("is_error"):
        return {"error": content}
    if isinstance(content, str):
        try:
            value = _loads(content)
        except orjson.JSONDecodeError:
            value = content
        if isinstance(value, dict):
            return value
        return {"output": value}
    return {"output": content}


def convert_messages(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI-shaped messages → (systemInstruction parts, contents)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    results: dict[str, Any] | None = None  # the user turn of the latest tool results
    calls: dict[Any, tuple[Any, Any]] = {}  # tool_call_id → (name, Gemini's id)
    for m in messages:
        role = m["role"]
        if role in ("system", "developer"):
            system.extend(_text_parts(m.get("content")))
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if call_id not in calls:
                raise ConfigurationError(
                    f"the tool message for {call_id!r} answers no tool call of the "
                    "conversation: Gemini names each result after its call"
                )
            name, gemini_id = calls[call_id]
            response: dict[str, Any] = {"name": name, "response": _tool_response(m)}
            if gemini_id:
                response["id"] = gemini_id
            more = _response_files(m.get("content"), response)
            part = {"functionResponse": response}
            if results is not None and contents and contents[-1] is results:
                results["parts"].append(part)  # consecutive results: one user turn
            else:
                results = {"role": "user", "parts": [part]}
                contents.append(results)
            # Files the functionResponse cannot hold follow the results, in order.
            results["parts"].extend(more)
        elif role == "assistant":
            parts = _text_parts(m.get("content"))
            signature = _gemini_data(m).get("thoughtSignature")
            if signature and parts and "text" in parts[-1]:
                parts[-1]["thoughtSignature"] = signature
            function_calls_only(m.get("tool_calls"), "the Gemini API")
            for call in m.get("tool_calls") or ():
                fn = call.get("function") or {}
                value = tool_call_arguments(call)
                data = _gemini_data(call)
                function_call: dict[str, Any] = {"name": fn.get("name"), "args": value or {}}
                if data.get("id"):
                    function_call["id"] = data["id"]
                part = {"functionCall": function_call}
                if data.get("thoughtSignature"):
                    part["thoughtSignature"] = data["thoughtSignature"]
                parts.append(part)
                calls[call.get("id")] = (fn.get("name"), data.get("id"))
            contents.append({"role": "model", "parts": parts or [{"text": ""}]})
        else:
            contents.append({"role": "user", "parts": _text_parts(m.get("content"))})
    return system, contents


def _request_body(request: ChatRequest, warn: Callable[[str], None]) -> dict[str, Any]:
    """The generateContent body of a request."""
    system, contents = convert_messages(request.messages)
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    for key, value in request.params.items():
        if value is None:
            continue
        if key in _COMMON:
            config[_COMMON[key]] = value
        elif key == "stop":
            config["stopSequences"] = [value] if isinstance(value, str) else list(value)
        elif key == "response_format":
            kind = value.get("type")
            if kind in ("json_object", "json_schema"):
                config["responseMimeType"] = "application/json"
            if kind == "json_schema":
                schema = (value.get("json_schema") or {}).get("schema") or value.get("schema")
                if not isinstance(schema, dict):
                    raise ConfigurationError(
                        "response_format json_schema needs a 'json_schema': "
                        "{'schema': {...}} object for Gemini models"
                    )
                config["responseJsonSchema"] = schema
        else:
            config[key] = value
    if request.output_schema is not None:
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = request.output_schema
    if request.tools:
        body["tools"] = encode_tools(request.tools)
        if request.tool_choice is not None:
            body["toolConfig"] = encode_tool_choice(request.tool_choice)
    if request.parallel_tool_calls is False:
        warn("Gemini has no parallel_tool_calls switch; it was not sent")
    extra = dict(request.extra_body)
    merged = extra.pop("generationConfig", None) or extra.pop("generation_config", None)
    for key in list(extra):
        camel = _camel(key)
        if camel in GENERATION_CONFIG_FIELDS:
            config[camel] = extra.pop(key)
        elif key == "modalities" and isinstance(extra[key], list):  # OpenAI's name
            config["responseModalities"] = [str(m).upper() for m in extra.pop(key)]
        elif camel in _COMMON.values() or key in _COMMON:
            config[_COMMON.get(key, camel)] = extra.pop(key)
    if isinstance(merged, dict):
        config.update(merged)
    if config:
        body["generationConfig"] = config
    body.update(extra)
    return body


# -- errors ------------------------------------------------------------------------------
def _duration(value: Any) -> float | None:
    """A google.protobuf.Duration in JSON ("37s", "1.5s") as seconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def _typed_error(
    status: int | None,
    err: dict[str, Any],
    *,
    headers: Any = None,
    body: str = "",
    request_id: str | None = None,
) -> SteerError:
    message = str(err.get("message") or (f"HTTP {status}" if status else "Gemini error"))
    name = err.get("status") if isinstance(err.get("status"), str) else None
    code = err.get("code")
    if status is None and type(code) is int:
        status = code
    if name:
        message = f"{message} ({name})"
    cls = _BY_STATUS_NAME.get(name or "")
    if status is not None and (status >= 500 or status in (401, 403, 404, 429)):
        cls = None  # the HTTP status decides (a 5xx stays retryable whatever it says)
    retry_after = parse_retry_after(headers)
    details = err.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type") or "")
        if kind.endswith("RetryInfo") and retry_after is None:
            retry_after = _duration(detail.get("retryDelay"))
        if detail.get("reason") == "API_KEY_INVALID":
            cls = AuthenticationError  # Gemini says 400 INVALID_ARGUMENT for a bad key
    if cls is None:
        return error_for(status, message, retry_after=retry_after, body=body, request_id=request_id)
    if cls is RateLimitError:
        return RateLimitError(
            message, retry_after=retry_after, status_code=status, body=body, request_id=request_id
        )
    if cls is BadRequestError and is_context_window(message):
        cls = ContextWindowError
    return cls(message, status_code=status, body=body, request_id=request_id)


def _parse_error(status: int, headers: Any, body: bytes) -> SteerError:
    err: dict[str, Any] = {}
    try:
        obj = _loads(body)
        if isinstance(obj, list) and obj:  # errors of the array form
            obj = obj[0]
        found = obj.get("error") if isinstance(obj, dict) else None
        if isinstance(found, dict):
            err = found
        elif isinstance(found, str):
            err = {"message": found}
    except (orjson.JSONDecodeError, AttributeError):
        pass
    if not err and body:
        err = {"message": f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"}
    return _typed_error(
        status,
        err,
        headers=headers,
        body=body[:500].decode("utf-8", "replace"),
        request_id=headers.get("x-request-id") if headers is not None else None,
    )


def _use_cache(body: dict[str, Any], cached: CachedPrefix) -> None:
    """The body names the cache instead of what it holds: the API refuses a
    systemInstruction, tools or toolConfig beside a cachedContent."""
    for key in ("systemInstruction", "tools", "toolConfig"):
        body.pop(key, None)
    body["contents"] = body["contents"][cached.contents :]
    body["cachedContent"] = cached.name


def _stale_cache(error: SteerError) -> bool:
    """The API's answer to a cachedContent that expired or was deleted: 403
    PERMISSION_DENIED (or 404) "CachedContent not found (or permission denied)"."""
    status = getattr(error, "status_code", None)
    return status in (403, 404) and "cachedcontent" in error.message.lower()


class GeminiCodec(CodecBase):
    """Encodes a request and decodes its stream for one call. Not reusable.
    Gemini cannot continue a prefix: nothing is put in its mouth, and a broken
    stream cannot resume (``can_continue``: False)."""

    protocol = "gemini"
    # Files it can send as inlineData: images, audio, video, PDFs and text documents
    # (Gemini's documented input types); the same by URL and by Files API name, as
    # fileData.
    accepts = frozenset(
        {
            "image/*",
            "audio/*",
            "video/*",
            "text/*",
            "application/pdf",
            "application/json",
            "application/rtf",
            "application/xml",
            "application/x-javascript",
            "application/x-python",
            "application/x-python-code",
            "application/x-typescript",
        }
    )
    accepts_urls = accepts  # fileData: Gemini fetches public URLs itself
    accepts_file_ids = accepts  # "files/abc" of Gemini's Files API, as fileData
    cached_contents = True  # cache_prompt=: explicit cachedContents (provider_caches.py)

    @staticmethod
    def normalize_base_url(url: str) -> str:
        # GEMINI_BASE_URL is without /v1beta (like google-genai's base_url); tolerate it.
        return url[: -len("/v1beta")] if url.endswith("/v1beta") else url

    def __init__(self, *, record: bool = False, vertex: bool = False) -> None:
        super().__init__(record=record)
        # Vertex AI: the base URL ends in /v1/projects/{project}/locations/{location}
        self._models = "/publishers/google/models/" if vertex else "/v1beta/models/"
        # The last complete usageMetadata: raw, or the bytes of the event that held
        # it (the fast path does not build it; it is parsed once, when needed).
        self._usage: Any = None
        self._first = True  # no event decoded yet

    # -- request ---------------------------------------------------------------
    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest:
        body = _request_body(request, self.warn)
        if request.provider_cache is not None:
            _use_cache(body, request.provider_cache)
        model = request.model.removeprefix("models/")
        name = quote(model, safe="-._~")
        if request.stream:
            path = f"{self._models}{name}:streamGenerateContent?alt=sse"
        else:
            path = f"{self._models}{name}:generateContent"
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if request.stream else "application/json",
        }
        if api_key:
            headers["x-goog-api-key"] = api_key
        return HTTPRequest("POST", path, headers, body)

    stale_cache = staticmethod(_stale_cache)

    # -- stream ----------------------------------------------------------------
    def decode(self, event: str | None, data: bytes) -> str | None:
        """One SSE event (a whole GenerateContentResponse) in, its text out."""
        try:
            fast = _fast_decode(data)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return self._decode(event, data)
        candidates = fast.candidates
        if not candidates or self._first:
            return self._decode(event, data)
        candidate = candidates[0]
        content = candidate.content
        if (
            content is None
            or candidate.finishReason is not _UNSET
            or candidate.index != 0
            or not content.parts
            or len(content.parts) != 1
        ):
            return self._decode(event, data)
        usage = fast.usageMetadata
        if usage is not None and (
            usage.promptTokenCount is not _UNSET or usage.candidatesTokenCount is not _UNSET
        ):
            self._usage = data
        return content.parts[0].text or None

    def _decode(self, event: str | None, data: bytes) -> str | None:
        """The general path: any event, every check."""
        obj = event_json(data)
        if type(obj) is not dict:
            raise InvalidResponseError(f"the stream sent a non-object chunk: {data[:120]!r}")
        usage = obj.get("usageMetadata")
        # Usage is cumulative, on (nearly) every event: the last complete report is
        # kept raw and made the unified usage only at the end (and once at the start,
        # for the prompt count should the stream break). An event with only
        # trafficType and the like is no report.
        if usage is not None and ("promptTokenCount" in usage or "candidatesTokenCount" in usage):
            self._usage = usage
        text = None
        candidates = obj.get("candidates")
        if candidates:
            candidate = candidates[0]
            if candidate.get("index", 0) != 0:  # candidateCount > 1: stream the first
                candidate = next((c for c in candidates if c.get("index", 0) == 0), {})
            content = candidate.get("content")
            if content:
                parts = content.get("parts")
                if parts and len(parts) == 1:
                    part = parts[0]
                    if len(part) == 1:
                        text = part.get("text")
            if type(text) is not str:  # anything but one plain text part
                text = self._rare(candidate)
            if "finishReason" in candidate:
                self._finish(candidate["finishReason"], candidate)
        else:
            self._no_candidates(obj, candidates)
        if self._first:
            self._start(obj)
        return text or None

    def _start(self, obj: dict[str, Any]) -> None:
        self._first = False
        state = self.state
        state.model = obj.get("modelVersion") or None
        state.response_id = obj.get("responseId") or None
        if self._usage is not None and state.usage is None:
            self._settle_usage()

    def _settle_usage(self) -> None:
        """The last complete usageMetadata as the unified usage."""
        usage = self._usage
        if type(usage) is bytes:  # orjson may refuse what msgspec skipped (1e999)
            usage = self._usage = event_json(usage)["usageMetadata"]
        if usage is not None:
            if type(usage) is not dict:
                raise InvalidResponseError(
                    f"the provider sent usage that is not an object: {usage!r:.80}"
                )
            self.state.usage = normalize_usage(usage)

    def _rare(self, candidate: Any) -> str | None:
        """Every candidate shape but one plain text part: thoughts, function calls,
        several parts, signatures, code execution, no content at all."""
        if type(candidate) is not dict:
            raise InvalidResponseError(f"a candidate is not an object: {candidate!r:.80}")
        content = candidate.get("content")
        if content is None:
            return None
        if type(content) is not dict:
            raise InvalidResponseError(f"a candidate's content is not an object: {content!r:.80}")
        parts = content.get("parts") or ()
        if type(parts) not in (list, tuple):
            raise InvalidResponseError(f"content.parts is not a list: {parts!r:.80}")
        state = self.state
        texts: list[str] = []
        for part in parts:
            if type(part) is not dict:
                raise InvalidResponseError(f"a content part is not an object: {part!r:.80}")
            text = part.get("text")
            if text is not None and type(text) is not str:
                raise InvalidResponseError(
                    f"the provider sent text that is not a string: {text!r:.80}"
                )
            signature = part.get("thoughtSignature")
            if signature is not None and type(signature) is not str:
                raise InvalidResponseError(f"a thoughtSignature is not a string: {signature!r:.40}")
            call = part.get("functionCall")
            inline = part.get("inlineData")
            if call is not None:
                self._call(call, signature)
            elif inline is not None and part.get("thought") is not True:
                if type(inline) is not dict:
                    raise InvalidResponseError(f"inlineData is not an object: {inline!r:.80}")
                if texts and state.out is not None:  # the text before it comes first
                    state.out.append(TextDelta("".join(texts)))
                    texts.clear()
                state.file(inline.get("data"), inline.get("mimeType"))
            elif part.get("thought") is True:
                if text:
                    state.reasoning(text)
            elif text is not None:
                texts.append(text)
                if signature:
                    state.provider_data["gemini"] = {"thoughtSignature": signature}
        return "".join(texts) or None

    def _call(self, call: Any, signature: str | None) -> None:
        if type(call) is not dict:
            raise InvalidResponseError(f"a functionCall is not an object: {call!r:.80}")
        name = call.get("name")
        if type(name) is not str or not name:
            raise InvalidResponseError(f"a functionCall has no name: {call!r:.120}")
        args = call.get("args")
        if args is None:
            args = {}
        if type(args) is not dict:
            raise InvalidResponseError(f"functionCall args are not an object: {args!r:.80}")
        call_id = call.get("id") or None
        state = self.state
        # Calls arrive whole: each one is a new call, numbered in order of appearance.
        ordinal = state.tool_delta(
            ("gemini", len(state.tool_calls)),
            id=call_id,
            name=name,
            arguments=orjson.dumps(args).decode(),
        )
        data: dict[str, Any] = {}
        if signature:
            data["thoughtSignature"] = signature
        if call_id:
            data["id"] = call_id
        if data:
            state.tool_calls[ordinal].provider_data = {"gemini": data}
        state.tool_end(ordinal)

    def _finish(self, raw: Any, candidate: dict[str, Any]) -> None:
        if raw is None:
            return
        if type(raw) is not str:
            raise InvalidResponseError(f"the finish reason is not a string: {raw!r:.80}")
        if _is_tool_call_error(raw):
            detail = candidate.get("finishMessage")
            raise InvalidResponseError(
                f"Gemini ended the answer with {raw}"
                + (f": {detail}" if isinstance(detail, str) and detail else "")
                + " (the model produced a tool call the API could not accept)"
            )
        # Not done yet: the body is read to its end, as the official SDKs read it. A
        # usage-only event may follow, and so may text (translating proxies send an
        # empty STOP chunk first): nothing after a finish reason is dropped, and the
        # last finish reason is the answer's.
        self.state.finish(raw, unify_gemini_finish(raw))
        self._settle_usage()

    def _no_candidates(self, obj: dict[str, Any], candidates: Any) -> None:
        if candidates is not None and type(candidates) is not list:
            raise InvalidResponseError(f"candidates is not a list: {candidates!r:.80}")
        error = obj.get("error")
        if error:
            err = error if isinstance(error, dict) else {"message": str(error)}
            raise _typed_error(None, err, body=orjson.dumps(obj).decode()[:500])
        feedback = obj.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            reason = feedback["blockReason"]
            detail = feedback.get("blockReasonMessage")
            raise BadRequestError(
                f"Gemini blocked the prompt: blockReason {reason}"
                + (f" ({detail})" if isinstance(detail, str) and detail else ""),
                body=orjson.dumps(obj).decode()[:500],
            )

    def finish(self) -> None:
        """End of body. Gemini has no terminal event: an answer that reached a
        ``finishReason`` is complete; one that did not was cut short (a
        ConnectionError saying so, when events came; a body without any event is
        left to the pipeline, which knows what bytes it held)."""
        self._settle_usage()  # a usage-only event may follow the finish reason
        if self.state.finish_reason is not None:
            self.state.done = True
        elif not self._first:
            raise ConnectionError(
                "the Gemini stream ended without a finishReason (the connection closed "
                "early or the body was truncated)"
            )

    # -- non-streaming and errors --------------------------------------------------
    def decode_response(self, body: bytes) -> str:
        """A whole GenerateContentResponse (or, from a server that ignored alt=sse,
        the JSON array of them): fill the state, return the text."""
        obj = load_json_body(body, arrays=True)
        chunks = obj if type(obj) is list else [obj]
        texts = []
        for chunk in chunks:
            if type(chunk) is not dict:
                raise InvalidResponseError(f"the response is not a JSON object: {body[:120]!r}")
            text = self.decode(None, orjson.dumps(chunk))
            if text:
                texts.append(text)
        if chunks:
            # A whole body is a whole answer, even without a finishReason (a blocked
            # candidate reports it in promptFeedback, raised above).
            self.state.done = True
        self._settle_usage()
        return "".join(texts)

    parse_error = staticmethod(_parse_error)
