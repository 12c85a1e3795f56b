"""The Gemini API side of the emulator: ``/v1beta/models/{model}:streamGenerateContent``
(``alt=sse``, or the JSON array without it) and ``:generateContent`` (``/v1/`` too,
google-genai's default).

Answers as the real API does: each SSE event is a whole ``GenerateContentResponse``
with cumulative ``usageMetadata``, CRLF line endings, no terminal event; the last
event carries the ``finishReason``. Thoughts are ``thought: true`` parts, function calls
arrive whole (all in one event, or one per event with ``interleave_tool_calls``), and
for Gemini 3 models the first call of a turn is signed with a ``thoughtSignature``
that the next request must send back. Requests the real API rejects are rejected with
its words: unknown fields, roles other than ``user``/``model``, function responses
that do not answer the previous turn's calls, a Gemini 3 function call without its
signature, a call without a key.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from ._media import check_gemini
from ._wire import (
    Plan,
    RecordedRequest,
    Reply,
    Settings,
    Wire,
    answer_text,
    count_tokens,
    cut_at_stops,
    pause_of,
    small_pieces,
    split_words,
)

__all__ = ["GEMINI_SIGNATURE", "Gemini", "check_request", "error_plan"]

GEMINI_SIGNATURE = "ZW11bGF0b3ItZ2VtaW5pLXNpZ25hdHVyZQ=="  # what the emulator signs calls with
_ROUTE = re.compile(r"^/v1(?:beta)?/models/([^/:]+):(streamGenerateContent|generateContent)$")
_REQUEST_FIELDS = {
    "model",
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
    "serviceTier",
    "store",
}
_CONFIG_FIELDS = {
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
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# In-band error events, by the fault's (Anthropic-style) error type.
_IN_BAND = {
    "overloaded_error": (503, "The model is overloaded. Please try again later."),
    "rate_limit_error": (429, "Resource has been exhausted (e.g. check quota)."),
    "api_error": (500, "An internal error has occurred."),
}
_CRLF = b"\r\n\r\n"
# Where a request carries the schema its JSON answer must fit (JSON Schema, or the
# API's own OpenAPI Schema).
_SCHEMA_FIELDS = ("responseJsonSchema", "_responseJsonSchema", "responseSchema")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


class Gemini(Wire):
    """``/v1beta/models/{model}:streamGenerateContent`` and ``:generateContent``."""

    not_json = ("INVALID_ARGUMENT", "Invalid JSON payload received.")

    def __init__(self, caches: Any = None) -> None:
        self.caches = caches  # _cached_contents.CachedContents: what cachedContent names

    def cacheable(self, request: RecordedRequest) -> bool:
        return b'"cachedContent"' not in request.body  # a cache expires: not by body alone

    def matches(self, method: str, path: str) -> bool:
        # the Gemini API (v1beta, and v1, google-genai's default)
        return path.startswith("/v1beta/") or (path.startswith("/v1/models/") and ":" in path)

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return error_plan(status, error_type, message, headers)

    def read(self, request: RecordedRequest) -> dict[str, Any] | Plan:
        path, _, query = request.path.partition("?")
        if request.method != "POST" or _ROUTE.match(path) is None:
            return error_plan(404, "NOT_FOUND", f"Requested entity was not found: {path}", {})
        if not request.headers.get("x-goog-api-key") and "key=" not in query:
            return error_plan(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to call "
                "this API.",
                {},
            )
        return super().read(request)

    def answer(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        path, _, query = request.path.partition("?")
        match = _ROUTE.match(path)
        assert match is not None  # read() answered 404 otherwise
        model = unquote(match.group(1))
        if "cachedContent" in body:  # the cache's contents come first (_cached_contents.py)
            if self.caches is None:
                return error_plan(403, "PERMISSION_DENIED", "CachedContent not found", {})
            expanded = self.caches.expand(model, body)
            if isinstance(expanded, Plan):
                return expanded
            body, cached = expanded
            usage = {"prompt_tokens": prompt_tokens(body), "cached_tokens": cached}
            reply = replace(reply, usage={**usage, **(reply.usage or {})})
        problem = check_request(model, body)
        if problem is not None:
            return error_plan(400, "INVALID_ARGUMENT", problem, {})
        if match.group(2) == "generateContent":
            kind = "json"
        else:
            kind = "sse" if "alt=sse" in query else "array"
        return _answer(settings, model, kind, body, reply)


def error_plan(status: int, name: str | None, message: str, headers: dict[str, str]) -> Plan:
    """Gemini's error body: ``{"error": {"code", "message", "status", "details"}}``. A
    429 says when to retry in a RetryInfo detail (a ``retry-after`` header given to
    the Reply moves there, as Gemini sends no such header)."""
    name = name if name and name.isupper() else _STATUS_NAMES.get(status, "UNKNOWN")
    error: dict[str, Any] = {"code": status, "message": message, "status": name}
    headers = dict(headers)
    if status == 429:
        delay = headers.pop("retry-after", None)
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generate_content_free_tier_requests"}],
            },
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{float(delay or 1):g}s",
            },
        ]
    body = json.dumps({"error": error}, indent=2).encode()
    return Plan(status, "application/json; charset=UTF-8", [body], extra_headers=headers)


def _dumps(obj: Any) -> bytes:
    # The API's own spacing: a space after each colon, none after commas.
    return json.dumps(obj, separators=(",", ": "), ensure_ascii=False).encode()


def _texts(body: dict[str, Any]) -> list[str]:
    texts = []
    system = body.get("systemInstruction") or {}
    for part in system.get("parts") or () if isinstance(system, dict) else ():
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
    for content in body.get("contents") or ():
        for part in content.get("parts") or ():
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif "functionResponse" in part or "functionCall" in part:
                texts.append(json.dumps(part))
    return texts


def prompt_tokens(body: dict[str, Any]) -> int:
    """The emulator's input tokens of a body: its texts, 4 per turn, and its tools."""
    texts: list[str] = []
    system = body.get("systemInstruction")
    if isinstance(system, dict):
        texts += [p["text"] for p in system.get("parts") or () if isinstance(p.get("text"), str)]
    for content in body.get("contents") or ():
        for part in content.get("parts") or ():
            texts.append(part["text"] if isinstance(part.get("text"), str) else json.dumps(part))
    tools = count_tokens(json.dumps(body["tools"])) if body.get("tools") else 0
    return count_tokens("\n".join(texts)) + 4 * len(body.get("contents") or ()) + tools


def check_request(model: str, body: dict[str, Any]) -> str | None:
    """What the real API would reject in this request, in its words, or None."""
    for key in body:
        if _camel(key) not in _REQUEST_FIELDS:
            return f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.'
    config = body.get("generationConfig", body.get("generation_config")) or {}
    if not isinstance(config, dict):
        return "Invalid JSON payload received. generation_config is not an object."
    for key in config:
        if _camel(key) not in _CONFIG_FIELDS:
            return (
                f'Invalid JSON payload received. Unknown name "{key}" at '
                "'generation_config': Cannot find field."
            )
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    problem = _check_tools(body) or check_gemini(body)
    if problem:
        return problem
    previous_calls: list[dict[str, Any]] = []
    previous_role = None
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            return f"* GenerateContentRequest.contents[{i}]: not an object"
        role = content.get("role", "user")
        if role not in ("user", "model"):
            return "Please use a valid role: user, model."
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            return (
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )
        calls = [p["functionCall"] for p in parts if isinstance(p, dict) and "functionCall" in p]
        responses = [
            p["functionResponse"] for p in parts if isinstance(p, dict) and "functionResponse" in p
        ]
        if responses:
            if role != "user" or not previous_calls:
                return (
                    "Please ensure that function response turn comes immediately after a "
                    "function call turn."
                )
            if len(responses) != len(previous_calls):
                return (
                    "Please ensure that the number of function response parts is equal to "
                    "the number of function call parts of the function call turn."
                )
            want = sorted(str(c.get("name")) for c in previous_calls)
            if sorted(str(r.get("name")) for r in responses) != want:
                return (
                    "Please ensure that the function response parts name the function call "
                    f"parts of the function call turn ({', '.join(want)})."
                )
            ids = {c.get("id") for c in previous_calls if c.get("id")}
            for r in responses:
                if r.get("id") and r["id"] not in ids:
                    return f"function response id {r['id']!r} matches no function call"
                if not isinstance(r.get("response"), dict):
                    return (
                        f"* GenerateContentRequest.contents[{i}]: functionResponse.response "
                        "must be an object"
                    )
        elif previous_calls:
            return (
                "Please ensure that function call turn comes immediately before a function "
                "response turn."
            )
        if calls:
            if previous_role == "model":
                return (
                    "Please ensure that function call turn comes immediately after a user "
                    "turn or after a function response turn."
                )
            first = next(p for p in parts if isinstance(p, dict) and "functionCall" in p)
            if model.startswith("gemini-3") and not first.get("thoughtSignature"):
                name = first["functionCall"].get("name")
                return (
                    "Function call is missing a thought_signature in functionCall parts. This "
                    "is required for tools to work correctly, and missing thought_signature "
                    f"may lead to degraded model performance. Additional data, function call "
                    f"`default_api:{name}` , position {i + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )
        previous_calls = calls if role == "model" else []
        previous_role = role
    return None


def _check_tools(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            return "Invalid JSON payload received. tools is not a list."
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return f"* GenerateContentRequest.tools[{i}]: not an object"
            for j, fn in enumerate(tool.get("functionDeclarations") or ()):
                if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                    return (
                        f"* GenerateContentRequest.tools[{i}].function_declarations[{j}].name: "
                        "Name cannot be empty."
                    )
                if "parameters" in fn and "parametersJsonSchema" in fn:
                    return (
                        f"* GenerateContentRequest.tools[{i}].function_declarations[{j}]: "
                        "parameters and parameters_json_schema cannot both be set."
                    )
                names.add(fn["name"])
    config = (body.get("toolConfig") or {}).get("functionCallingConfig")
    if config is not None:
        mode = config.get("mode", "AUTO")
        if mode not in ("AUTO", "ANY", "NONE", "VALIDATED", "MODE_UNSPECIFIED"):
            return f"Invalid value at 'tool_config.function_calling_config.mode', \"{mode}\""
        allowed = config.get("allowedFunctionNames")
        if allowed and mode not in ("ANY", "VALIDATED"):
            return (
                "* GenerateContentRequest.tool_config.function_calling_config."
                "allowed_function_names: only allowed when mode is ANY or VALIDATED"
            )
        for name in allowed or ():
            if name not in names:
                return f"allowed_function_names: {name!r} is not a declared function"
    return None


def _answer(settings: Settings, model: str, kind: str, body: dict[str, Any], reply: Reply) -> Plan:
    """The answer as one ``GenerateContentResponse`` (``json``), a JSON array of them
    (``array``) or an SSE stream of them (``sse``)."""
    config = body.get("generationConfig") or {}
    if reply.files and "IMAGE" not in [
        str(m).upper() for m in config.get("responseModalities") or ()
    ]:
        return error_plan(
            400,
            "INVALID_ARGUMENT",
            "This scripted answer holds images: set generationConfig.responseModalities "
            'to ["TEXT", "IMAGE"] (the model answers in text only otherwise).',
            {},
        )
    calls = _calls(reply)
    chunks = _chunks(settings, body, config, reply, bool(calls))
    limit = config.get("maxOutputTokens")
    truncated = isinstance(limit, int) and len(chunks) > limit
    if truncated:
        chunks = chunks[:limit]
    finish = reply.finish_reason or ("MAX_TOKENS" if truncated else "STOP")
    usage = _usage(body, reply, chunks, calls)
    signed = model.startswith("gemini-3") or bool(reply.reasoning)
    function_parts = []
    for i, call in enumerate(calls):
        part: dict[str, Any] = {"functionCall": call}
        if signed and i == 0:
            part["thoughtSignature"] = GEMINI_SIGNATURE
        function_parts.append(part)
    head = {"modelVersion": model, "responseId": "emu-gemini-response"}
    if kind == "json":
        parts: list[dict[str, Any]] = []
        if reply.reasoning:
            parts.append({"text": reply.reasoning, "thought": True})
        if chunks or not calls:
            parts.append({"text": "".join(chunks)})
        parts.extend(_inline(reply))
        parts.extend(function_parts)
        candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": finish}
        payload = {"candidates": [{**candidate, "index": 0}], "usageMetadata": usage, **head}
        return Plan(
            200, "application/json; charset=UTF-8", [_dumps(payload)], extra_headers=reply.headers
        )
    events = _events(reply, chunks, function_parts, finish, usage, head)
    if kind == "array":  # streamGenerateContent without alt=sse: one JSON array
        body_bytes = b"[" + b",\r\n".join(_dumps(e) for e in events if "error" not in e) + b"]"
        return Plan(
            200, "application/json; charset=UTF-8", [body_bytes], extra_headers=reply.headers
        )
    return Plan(
        200,
        "text/event-stream",
        [b"data: " + _dumps(e) + _CRLF for e in events],
        extra_headers=reply.headers,
        fault=reply.fault,
        pause=pause_of(settings, reply),
    )


def _chunks(
    settings: Settings,
    body: dict[str, Any],
    config: dict[str, Any],
    reply: Reply,
    has_calls: bool,
) -> list[str]:
    if has_calls and reply.text is None and reply.chunks is None:
        return []
    if reply.chunks is not None:
        return list(reply.chunks)
    wants_json = config.get("responseMimeType") == "application/json" or _asks_json(body)
    schema = next((config[k] for k in _SCHEMA_FIELDS if isinstance(config.get(k), dict)), None)
    prompt = "\n".join(_texts(body))
    full = answer_text(settings, reply, prompt, wants_json=wants_json, schema=schema)
    full = cut_at_stops(full, config.get("stopSequences"))
    return split_words(full, settings.chunk_words)


def _events(
    reply: Reply,
    chunks: list[str],
    function_parts: list[dict[str, Any]],
    finish: str,
    usage: dict[str, Any],
    head: dict[str, Any],
) -> list[dict[str, Any]]:
    """The stream's GenerateContentResponses. The first carries no text (the
    emulator's faults count text events after an opening one)."""
    prompt = usage["promptTokenCount"]
    candidates = usage.get("candidatesTokenCount", 0)
    thoughts = usage.get("thoughtsTokenCount", 0)
    details = usage["promptTokensDetails"]

    def event(parts: list[dict[str, Any]], done: int, **extra: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"promptTokenCount": prompt}
        if done:
            meta["candidatesTokenCount"] = done
        meta["totalTokenCount"] = prompt + done + thoughts
        meta["promptTokensDetails"] = details  # on every event, as the API sends it
        if thoughts:
            meta["thoughtsTokenCount"] = thoughts
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, **extra}
        candidate["index"] = 0
        return {"candidates": [candidate], "usageMetadata": meta, **head}

    events = [event([{"text": ""}], 0)]
    if reply.reasoning:
        events += [event([{"text": p, "thought": True}], 0) for p in small_pieces(reply.reasoning)]
    fault = reply.fault
    for i, chunk in enumerate(chunks):
        if fault is not None and fault.kind == "error_event" and i == fault.after:
            code, message = _IN_BAND.get(fault.error_type, (500, fault.error_type))
            name = fault.error_type if fault.error_type.isupper() else _STATUS_NAMES[code]
            events.append({"error": {"code": code, "message": message, "status": name}})
            return events
        events.append(event([{"text": chunk}], min(i + 1, candidates)))
    inline = _inline(reply)
    if inline and len(events) > 1 and chunks:
        # The first file rides in the event of the last text (text, then the image),
        # as image models send them; the rest come one an event.
        events[-1]["candidates"][0]["content"]["parts"].append(inline.pop(0))
    events += [event([p], candidates) for p in inline]
    if function_parts:
        if reply.interleave_tool_calls:
            events += [event([p], candidates) for p in function_parts]
        else:
            events.append(event(function_parts, candidates))
    final = dict(usage)
    last = event([{"text": ""}], candidates, finishReason=finish)
    last["usageMetadata"] = final
    events.append(last)
    return events


def _inline(reply: Reply) -> list[dict[str, Any]]:
    """The reply's files as inlineData parts."""
    return [
        {"inlineData": {"mimeType": media, "data": base64.b64encode(data).decode()}}
        for media, data in reply.files or ()
    ]


def _calls(reply: Reply) -> list[dict[str, Any]]:
    out = []
    for call in reply.tool_calls or ():
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            arguments = json.loads(arguments) if arguments.strip() else {}
        entry: dict[str, Any] = {"name": call["name"], "args": arguments}
        if call.get("id"):
            entry["id"] = call["id"]
        out.append(entry)
    return out


def _asks_json(body: dict[str, Any]) -> bool:
    users = [c for c in body.get("contents") or () if c.get("role", "user") == "user"]
    if not users:
        return False
    return any("JSON" in str(p.get("text") or "") for p in users[-1].get("parts") or ())


def _usage(
    body: dict[str, Any],
    reply: Reply,
    chunks: list[str],
    calls: list[dict[str, Any]],
) -> dict[str, Any]:
    """usageMetadata: prompt counts every input token (cached included), thoughts
    are apart from the candidates. A Reply's ``completion_tokens`` is all output
    (candidates + thoughts, as the SDK counts it)."""
    scripted = reply.usage or {}
    prompt = scripted.get("prompt_tokens")
    if prompt is None:
        prompt = count_tokens("\n".join(_texts(body))) + 4 * len(body.get("contents") or ())
    thoughts = scripted.get("reasoning_tokens")
    if thoughts is None:
        thoughts = count_tokens(reply.reasoning) if reply.reasoning else 0
    completion = scripted.get("completion_tokens")
    if completion is None:
        completion = len(chunks) + sum(count_tokens(json.dumps(c["args"])) for c in calls)
        completion += thoughts
    candidates = max(0, completion - thoughts)
    usage: dict[str, Any] = {"promptTokenCount": prompt}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    cached = scripted.get("cached_tokens")
    if cached:
        usage["cachedContentTokenCount"] = cached
    usage["totalTokenCount"] = prompt + candidates + thoughts
    usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage
