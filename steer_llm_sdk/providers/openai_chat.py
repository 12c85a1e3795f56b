"""OpenAI Chat Completions wire codec (sans-I/O).

Used for OpenAI and every OpenAI-compatible server (xAI, Groq, OpenRouter, DeepSeek,
Mistral, Together, Ollama, vLLM, LM Studio, llama.cpp ...). Quirks it handles, all
seen in recorded streams:

- usage may ride on a final ``choices: []`` chunk (OpenAI) or on a chunk that still
  has choices (OpenRouter, Groq, llama.cpp): the last non-null ``usage`` wins;
- ``finish_reason`` may be repeated, or missing altogether (Snowflake);
- reasoning comes as ``reasoning_content`` (DeepSeek), ``reasoning`` (Groq,
  OpenRouter) or as typed ``thinking`` parts in a list-shaped ``content`` (Mistral);
- errors arrive in-band, as a top-level ``"error"`` in a chunk (OpenRouter) or as an
  ``event: error`` (Groq): they raise a typed error, never a quiet ``stop``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from ..content import FilePart, TextPart, as_part, audio_format, default_name
from ..errors import InvalidResponseError, SteerError
from .base import (
    ChatRequest,
    HTTPRequest,
    error_for,
    event_json,
    function_tools,
    mark_not_retryable,
    openai_usage,
    unify_finish,
)
from .caching import openai_cache_fields
from .codec import (
    Codec,
    CodecBase,
    add_logprobs,
    error_fields,
    http_error,
    load_json_body,
    text_of,
)

__all__ = ["OpenAIChatCodec", "encode_tool_choice", "encode_tools", "normalize_usage"]

_LOGPROBS_KEYS = (("content", "logprobs.content"), ("refusal", "logprobs.refusal"))
_MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "refusal"}
# audio={"format": ...} of an audio answer → the media type of its bytes. Streamed
# audio is pcm16 only: raw 16-bit little-endian samples, 24 kHz, mono (audio/pcm).
AUDIO_MEDIA_TYPES = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "pcm16": "audio/pcm",
}


# The fast path: a chunk of plain content (nearly every chunk of a stream) read by
# msgspec into these structs, the rest of the chunk skipped unparsed. A chunk of any
# other shape (a finish reason, usage, tool calls, reasoning, an error ...) fails to
# decode here and takes the general path, which defines the codec's behaviour.
class _FastDelta(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    content: str
    role: Any = None
    # Sent as null beside plain content by some providers (DeepSeek's
    # reasoning_content, OpenRouter's reasoning): null or absent only.
    reasoning_content: None = None
    reasoning: None = None
    refusal: None = None
    tool_calls: None = None


class _FastChoice(msgspec.Struct, gc=False):
    delta: _FastDelta
    index: int = 0
    finish_reason: None = None


class _FastChunk(msgspec.Struct, gc=False):
    choices: list[_FastChoice]
    usage: None = None
    error: None = None


_fast_decode = msgspec.json.Decoder(_FastChunk).decode


def normalize_usage(raw: dict[str, Any]) -> dict[str, Any]:
    """OpenAI usage → the SDK's unified usage (already OpenAI's convention)."""
    return openai_usage(
        raw.get("prompt_tokens"),
        raw.get("completion_tokens"),
        raw.get("prompt_tokens_details"),
        raw.get("completion_tokens_details"),
    )


def encode_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutral tool definitions as OpenAI ``function`` tools."""
    out = []
    for tool in function_tools(tools, "the OpenAI Chat Completions protocol"):
        fn: dict[str, Any] = {"name": tool["name"], "parameters": tool["parameters"]}
        if tool.get("description"):
            fn["description"] = tool["description"]
        if tool.get("strict"):
            fn["strict"] = True
        out.append({"type": "function", "function": fn})
    return out


def encode_tool_choice(choice: str | dict[str, str]) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _clean_tool_call(call: Any) -> Any:
    if not isinstance(call, dict):
        return call
    fn = call.get("function") or {}
    return {
        "id": call.get("id"),
        "type": call.get("type") or "function",
        "function": {"name": fn.get("name"), "arguments": fn.get("arguments") or "{}"},
    }


def _clean_message(message: dict[str, Any]) -> dict[str, Any]:
    """Drop keys OpenAI rejects (``cache_control`` is Anthropic's, ``steer`` holds
    other providers' opaque data) from a message."""
    out = {k: v for k, v in message.items() if k in _MESSAGE_KEYS}
    if out.get("tool_calls"):
        out["tool_calls"] = [_clean_tool_call(c) for c in out["tool_calls"]]
    if type(out.get("content")) is list:
        out["content"] = _content(out["content"])
    return out


def _content(content: list[Any]) -> list[Any]:
    """Neutral content parts → Chat Completions parts: images (data or URL) as
    ``image_url``, audio data as ``input_audio``, PDFs (data or file id) as ``file``;
    a provider's own part dicts as they are (without ``cache_control``)."""
    out: list[Any] = []
    for raw in content:
        part = as_part(raw, OpenAIChatCodec)
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, FilePart):
            out.append(_file_part(part))
        else:
            out.append({k: v for k, v in part.items() if k != "cache_control"})
    return out


def _file_part(part: FilePart) -> dict[str, Any]:
    media = part.media_type
    if part.file_id is not None:
        file = {"file_id": part.file_id}
        if part.filename:
            file["filename"] = part.filename
        return {"type": "file", "file": file}
    if part.url is not None or media.startswith("image/"):
        image = {"url": part.url if part.url is not None else part.data_url()}
        if part.detail:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    if media.startswith("audio/"):
        return {
            "type": "input_audio",
            "input_audio": {"data": part.base64(), "format": audio_format(media)},
        }
    file = {"file_data": part.data_url(), "filename": part.filename or default_name(media)}
    return {"type": "file", "file": file}


def _messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages → Chat Completions messages. A tool message cannot carry files: its
    files go in a user message right after that turn's tool messages (the text stays
    in the tool message)."""
    out: list[dict[str, Any]] = []
    pending: list[Any] = []  # files returned by the tools of the current turn
    for m in messages:
        if pending and m.get("role") != "tool":
            out.append({"role": "user", "content": pending})
            pending = []
        content = m.get("content")
        if (
            m.get("role") == "tool"
            and type(content) is list
            and any(type(p) is FilePart for p in content)
        ):
            files = [p for p in content if type(p) is FilePart]
            texts = [p.text for p in content if type(p) is TextPart]
            text = "\n".join(texts) or f"{len(files)} file(s), sent in the next message"
            m = {**m, "content": text}
            pending.append(
                {"type": "text", "text": f"Files returned by tool call {m.get('tool_call_id')}:"}
            )
            pending.extend(_content(files))
        out.append(_clean_message(m))
    if pending:
        out.append({"role": "user", "content": pending})
    return out


IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})  # OpenAI's four


def _parse_error(status: int, headers: Any, body: bytes) -> SteerError:
    """An HTTP error response → the typed error (the Responses API's too)."""
    message, error_type, code = error_fields(status, body)
    # A 5xx keeps its status class even when the body says "invalid_request".
    if status >= 500 or status in (429, 401, 403, 404):
        error_type = None
    if code == "content_filter":  # Azure's content filter refused the prompt
        message = f"the prompt was filtered by the content filter (content_filter): {message}"
        error_type = "invalid_request_error"
    error = http_error(status, headers, body, message, error_type)
    return mark_not_retryable(error, code)  # a 429 insufficient_quota


def azure_errors(where: str) -> Callable[[int, Any, bytes], SteerError]:
    """The error parser of an Azure deployment: ``DeploymentNotFound`` (404) says which
    deployment at which endpoint (``where``)."""

    def parse(status: int, headers: Any, body: bytes) -> SteerError:
        error = _parse_error(status, headers, body)
        if status == 404 and b"DeploymentNotFound" in body[:2000]:
            error.message = (
                f"{where} does not exist (DeploymentNotFound): name it as "
                f"'azure/<deployment name>', as listed in the Azure portal; {error.message}"
            )
        elif status == 404 and b"Resource not found" in body[:2000]:
            error.message = (
                f"{where}: {error.message}: Azure says this for a wrong endpoint or an "
                "api-version it does not serve (set api_version= or OPENAI_API_VERSION)"
            )
        return error

    return parse


def _stream_error(obj: dict[str, Any]) -> SteerError:
    """An error sent inside the stream (``data: {"error": ...}``) → a typed error."""
    err = obj.get("error")
    if not isinstance(err, dict):
        err = obj
    message = str(err.get("message") or "the provider sent an error in the stream")
    status = err.get("status_code")
    code = err.get("code")
    if status is None and isinstance(code, int):
        status = code
    return error_for(
        status if isinstance(status, int) else None,
        message,
        error_type=err.get("type") if isinstance(err.get("type"), str) else None,
        body=orjson.dumps(obj).decode()[:500],
    )


class OpenAIChatCodec(CodecBase):
    """Encodes a request and decodes its stream for one call. Not reusable."""

    protocol = "openai-chat"
    # Files it can send (OpenAI's documented inputs; compatible servers take the same
    # shapes): images as image_url (data or URL), wav/mp3 as input_audio, PDFs as file
    # (file_data or file_id). A PDF or audio URL is downloaded by the SDK.
    accepts = IMAGES | frozenset({"audio/wav", "audio/mpeg", "application/pdf"})
    accepts_urls = IMAGES
    accepts_file_ids = frozenset({"application/pdf"})

    @staticmethod
    def narrow_files(
        spec: Any, model: str, accepts: frozenset[str], urls: frozenset[str], ids: frozenset[str]
    ) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """OpenAI's own models take ``input_audio`` only where their name says audio
        (``gpt-4o-audio-preview``, ``gpt-audio``); compatible servers decide."""
        if getattr(spec, "name", None) == "openai" and "audio" not in model:
            accepts = accepts - {"audio/wav", "audio/mpeg"}
        return accepts, urls, ids

    @classmethod
    def factory(cls, spec: Any, model: str, **options: Any) -> Callable[..., Codec]:
        """What the pipeline calls to get a fresh codec for each attempt."""
        field = spec.max_tokens_field
        cache_key = getattr(spec, "name", None) == "openai"  # prompt_cache_key: OpenAI only

        def make(*, record: bool = False) -> Codec:
            return cls(max_tokens_field=field, record=record, prompt_cache_key=cache_key, **options)

        return make

    @staticmethod
    def local_base_url(server: str) -> str:
        return server + "/v1"

    @staticmethod
    def can_continue(model: str) -> bool:
        return True  # where the server does (ProviderSpec.continues_prefix)

    def __init__(
        self,
        *,
        max_tokens_field: str = "max_tokens",
        record: bool = False,
        prompt_cache_key: bool = False,
        path: str = "/chat/completions",
        where: str | None = None,
    ) -> None:
        super().__init__(record=record)
        self._path = path  # Azure: /deployments/{name}/chat/completions?api-version=...
        if where is not None:  # Azure: a 404 names the deployment and endpoint
            self.parse_error = azure_errors(where)  # type: ignore[assignment]
        self._max_tokens_field = max_tokens_field
        self._prompt_cache_key = prompt_cache_key  # cache_prompt= sends prompt_cache_key
        self._logprobs = False  # the request asked for logprobs
        self._first = True  # no chunk has named the model and id yet
        self._fast = False  # the fast path is on once the model is named (and no logprobs)
        self._audio_type = "audio/pcm"  # the media type of an audio answer's bytes
        self._audio_over = False  # the audio's closing delta (expires_at) came

    # -- request ---------------------------------------------------------------
    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest:
        messages = _messages(request.messages)
        if request.prefix:
            # Resume: servers that continue a final assistant message (llama.cpp,
            # vLLM) pick up exactly where the interrupted stream stopped.
            messages.append({"role": "assistant", "content": request.prefix})
        body: dict[str, Any] = {"model": request.model, "messages": messages}
        for key, value in request.params.items():
            if value is None:
                continue
            if key == "max_tokens":
                key = self._max_tokens_field
            body[key] = value
        if request.tools:
            body["tools"] = encode_tools(request.tools)
        if request.tool_choice is not None:
            body["tool_choice"] = encode_tool_choice(request.tool_choice)
        if request.parallel_tool_calls is not None and request.tools:
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.output_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.output_name,
                    "schema": request.output_schema,
                    "strict": True,
                },
            }
        if request.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(request.extra_body)
        if request.cache_prompt and self._prompt_cache_key:
            openai_cache_fields(body, request.model, request.cache_prompt)
        self._logprobs = bool(body.get("logprobs"))
        audio = body.get("audio")
        if isinstance(audio, dict) and isinstance(audio.get("format"), str):
            self._audio_type = AUDIO_MEDIA_TYPES.get(audio["format"], "audio/pcm")
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return HTTPRequest("POST", self._path, headers, body)

    # -- stream ----------------------------------------------------------------
    def decode(self, event: str | None, data: bytes) -> str | None:
        """One SSE event in, the text it carries out (or None)."""
        if self._fast:
            try:
                choices = _fast_decode(data).choices
            except (msgspec.DecodeError, UnicodeDecodeError):
                return self._decode(event, data)
            if choices and choices[0].index == 0 and event != "error":
                return choices[0].delta.content or None
        return self._decode(event, data)

    def _decode(self, event: str | None, data: bytes) -> str | None:
        """The general path: any chunk, every check."""
        if data == b"[DONE]":
            self.state.done = True
            return None
        obj = event_json(data)
        if type(obj) is not dict:
            raise InvalidResponseError(f"the stream sent a non-object chunk: {data[:120]!r}")
        text = None
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            if choice.get("index", 0) != 0:  # n > 1: the SDK streams choice 0
                choice = next((c for c in choices if c.get("index") == 0), None)
            if choice is not None:
                delta = choice.get("delta")
                if delta:
                    text = delta.get("content")
                    if type(text) is not str or (
                        len(delta) > 1 and not (len(delta) == 2 and "role" in delta)
                    ):  # anything but plain content: tool calls, reasoning, refusal ...
                        text = self._rare_delta(delta, text)
                if self._logprobs:
                    self._add_logprobs(choice.get("logprobs"))
                reason = choice.get("finish_reason")
                if reason:
                    self._finish(reason)
        usage = obj.get("usage")
        if usage:
            if type(usage) is not dict:
                raise InvalidResponseError(
                    f"the provider sent usage that is not an object: {usage!r:.80}"
                )
            self.state.usage = normalize_usage(usage)
        if self._first:  # until a chunk names the model (one attribute test after)
            state = self.state
            state.model = obj.get("model") or None
            state.response_id = state.response_id or obj.get("id") or None
            self._first = state.model is None
            self._fast = not self._first and not self._logprobs
        if event == "error" or obj.get("error"):  # some servers send "error": null
            raise _stream_error(obj)
        return text or None

    def _rare_delta(self, delta: dict[str, Any], text: Any) -> str | None:
        """Everything but plain content: tool calls, reasoning, refusal, content lists."""
        state = self.state
        if type(delta) is not dict:
            raise InvalidResponseError(
                f"the provider sent a delta that is not an object: {delta!r:.80}"
            )
        if type(text) is list:  # Mistral: typed parts, text and thinking
            parts: list[str] = []
            for part in text:
                if type(part) is not dict:
                    raise InvalidResponseError(f"a content part is not an object: {part!r:.80}")
                kind = part.get("type")
                if kind == "text":
                    parts.append(text_of(part))
                elif kind == "thinking":
                    for sub in part.get("thinking") or ():
                        if isinstance(sub, dict) and sub.get("text"):
                            state.reasoning(sub["text"])
            text = "".join(parts)
        elif text is not None and type(text) is not str:
            raise InvalidResponseError(
                f"the provider sent content that is not a string: {text!r:.80}"
            )
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if reasoning:
            state.reasoning(reasoning)
        audio = delta.get("audio")
        if audio:
            self._audio(audio)
        if delta.get("refusal"):
            state.refusal(delta["refusal"])
        tool_calls = delta.get("tool_calls")
        if tool_calls:
            if type(tool_calls) is not list:
                raise InvalidResponseError(f"tool_calls is not a list: {tool_calls!r:.80}")
            for call in tool_calls:
                if type(call) is not dict:
                    raise InvalidResponseError(f"a tool call is not an object: {call!r:.80}")
                index = call.get("index")
                if index is not None and type(index) is not int:
                    raise InvalidResponseError(
                        f"a tool call index is not an integer: {index!r:.40}"
                    )
                fn = call.get("function") or {}
                if type(fn) is not dict:
                    raise InvalidResponseError(f"a tool call function is not an object: {fn!r:.80}")
                state.tool_delta(
                    index,
                    id=call.get("id"),
                    name=fn.get("name"),
                    arguments=fn.get("arguments"),
                )
        return text

    def _audio(self, audio: Any) -> None:
        """A piece of an audio answer: base64 ``data`` and/or ``transcript``; the
        last one holds only ``id`` and ``expires_at`` (and may come with no
        finish_reason after it: it ends the answer)."""
        if type(audio) is not dict:
            raise InvalidResponseError(f"audio is not an object: {audio!r:.80}")
        self.state.audio(audio.get("data"), audio.get("transcript"), self._audio_type)
        if audio.get("expires_at") is not None:
            self._audio_over = True
            self.state.audio_end()

    def _finish(self, reason: Any) -> None:
        state = self.state
        state.finish(reason, unify_finish(reason))
        if state.refusal_parts and state.reason == "stop":
            state.reason = "refusal"
        if state.tool_calls and state.reason != "length":
            state.end_open_tools()  # parallel calls end together, once

    def _add_logprobs(self, raw: Any) -> None:
        if not raw:
            return
        if type(raw) is not dict:
            raise InvalidResponseError(f"logprobs is not an object: {raw!r:.80}")
        for key, what in _LOGPROBS_KEYS:
            add_logprobs(self.state, raw.get(key), key, what)

    def finish(self) -> None:
        """End of body. OpenAI-compatible servers don't all send ``[DONE]``, so a
        stream that ended cleanly after a finish reason or usage counts as complete."""
        state = self.state
        if not state.done and (
            state.finish_reason is not None or state.usage is not None or self._audio_over
        ):
            state.done = True
        state.audio_end()
        if state.done and state.reason != "length":
            state.end_open_tools()
        if state.reason is None and state.done:
            state.reason = "tool_calls" if state.tool_calls else "stop"

    # -- non-streaming and errors --------------------------------------------------
    def decode_response(self, body: bytes) -> str:
        """A whole ``chat.completion`` JSON body: fill the state, return the text."""
        obj = load_json_body(body)
        if "error" in obj and not obj.get("choices"):
            raise _stream_error(obj)
        state = self.state
        state.model = obj.get("model")
        state.response_id = obj.get("id")
        choices = obj.get("choices") or [{}]
        choice = choices[0]
        message = choice.get("message") or {}
        # Tool calls in a whole message carry no index: their position is theirs.
        if message.get("tool_calls"):
            message = dict(message)
            message["tool_calls"] = [
                {**c, "index": i} if isinstance(c, dict) else c
                for i, c in enumerate(message["tool_calls"])
            ]
        text = self._rare_delta(message, message.get("content")) or ""
        if self._logprobs:
            self._add_logprobs(choice.get("logprobs"))
        if choice.get("finish_reason") is not None:
            self._finish(choice["finish_reason"])
        if obj.get("usage"):
            state.usage = normalize_usage(obj["usage"])
        state.done = True
        self.finish()
        return text

    parse_error = staticmethod(_parse_error)
