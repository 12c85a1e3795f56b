"""The emulator's AWS Bedrock runtime: Converse and Invoke streams in event-stream frames.

Standard library only (no botocore, no SDK): frames are built by :func:`frame`, and
each request's SigV4 signature is computed again here from the test credentials the
emulator was given (:func:`check_sigv4`); a Bedrock API key is a bearer token.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import itertools
import json
import re
import struct
import time
import zlib
from typing import Any
from urllib.parse import quote, unquote

from ._anthropic import SIGNATURE, Messages
from ._schema import fit_schema
from ._turn import Turn, compose
from ._wire import (
    JSON_REPLY,
    Fault,
    Plan,
    RecordedRequest,
    Reply,
    Settings,
    Wire,
    json_plan,
    numbered_calls,
    small_pieces,
)

__all__ = [
    "EVENTSTREAM",
    "TEST_ACCESS_KEY",
    "TEST_API_KEY",
    "TEST_SECRET_KEY",
    "Bedrock",
    "check_sigv4",
    "error_plan",
    "event_frame",
    "exception_frame",
    "frame",
]


def _header(name: str, value: Any) -> bytes:
    raw = name.encode()
    out = bytes([len(raw)]) + raw
    if value is True:
        return out + b"\x00"
    if value is False:
        return out + b"\x01"
    if isinstance(value, tuple):  # (type, value): the integer types, timestamp, uuid
        kind, inner = value
        fmt = {2: "!b", 3: "!h", 4: "!i", 5: "!q", 8: "!q"}.get(kind)
        if fmt is not None:
            return out + bytes([kind]) + struct.pack(fmt, inner)
        return out + b"\x09" + bytes(inner)  # uuid: 16 bytes
    data = value if isinstance(value, bytes) else str(value).encode()
    kind = 6 if isinstance(value, bytes) else 7
    return out + bytes([kind]) + struct.pack("!H", len(data)) + data


def frame(headers: dict[str, Any], payload: bytes) -> bytes:
    """One event-stream message: prelude, headers, payload and both CRC32s. A header
    value is a str, bytes, a bool, or ``(type, value)`` for the integer types (2-5),
    a timestamp (8, ms) or a UUID (9, 16 bytes)."""
    head = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event_frame(event_type: str, payload: bytes) -> bytes:
    """An ``event`` message of a JSON payload."""
    return frame(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        payload,
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    """An ``exception`` message, as Bedrock sends one mid-stream."""
    return frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )


# -- the wire ---------------------------------------------------------------------------
_PATH = re.compile(
    r"^/model/([^/]+)/(converse-stream|converse|invoke-with-response-stream|invoke)$"
)
_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"  # Bedrock pads each event with a "p" field
_AWS_TYPES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
# The emulator's default test credentials (emu.aws_credentials, emu.bedrock_api_keys).
TEST_ACCESS_KEY = "AKIAEMULATOR00000000"
TEST_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY0"
TEST_API_KEY = "ABSKZW11bGF0b3ItYmVkcm9jay1rZXk="
_MAX_SKEW = 300  # seconds a signature's X-Amz-Date may differ from the clock, as on AWS
EVENTSTREAM = "application/vnd.amazon.eventstream"


def error_plan(status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
    """An AWS REST-JSON error: ``x-amzn-ErrorType`` and ``{"message": ...}``."""
    kind = error_type if error_type.endswith("Exception") else _AWS_TYPES.get(status, "")
    kind = kind or "InternalServerException"
    extra = {
        "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-requestid": "emulator-request-id",
        **headers,
    }
    return json_plan(status, {"message": message}, extra)


def _signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def check_sigv4(
    request: RecordedRequest, credentials: dict[str, tuple[str, str | None]], now: float
) -> str | None:
    """What AWS would refuse in the request's SigV4 signature (None: valid)."""
    auth = request.headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "UnrecognizedClientException:Missing Authentication Token"
    fields = dict(item.strip().split("=", 1) for item in auth[17:].split(",") if "=" in item)
    scope = fields.get("Credential", "").split("/")
    signed = fields.get("SignedHeaders", "")
    if len(scope) != 5 or not signed or "Signature" not in fields:
        return (
            "IncompleteSignatureException:Authorization header requires Credential, "
            "SignedHeaders and Signature"
        )
    akid, day, region, service, _ = scope
    known = credentials.get(akid)
    if known is None:
        return "UnrecognizedClientException:The security token included in the request is invalid."
    secret, token = known
    amz_date = request.headers.get("x-amz-date", "")
    try:
        when = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return "IncompleteSignatureException:X-Amz-Date is missing or malformed"
    if abs(now - when) > _MAX_SKEW:
        return (
            f"InvalidSignatureException:Signature expired: {amz_date} is now earlier than "
            "the allowed time window (5 min.)"
        )
    names = signed.split(";")
    if "host" not in names or (token is not None and "x-amz-security-token" not in names):
        return "InvalidSignatureException:host (and the security token) must be signed"
    if token is not None and request.headers.get("x-amz-security-token") != token:
        return "UnrecognizedClientException:The security token included in the request is invalid."
    path, _, query = request.path.partition("?")
    canonical_query = "&".join(sorted(q for q in query.split("&") if q))
    headers = "".join(
        f"{name}:{' '.join(request.headers.get(name, '').split())}\n" for name in names
    )
    payload = (
        request.headers.get("x-amz-content-sha256") or hashlib.sha256(request.body).hexdigest()
    )
    canonical = "\n".join(
        [request.method, quote(path, safe="/~"), canonical_query, headers, signed, payload]
    )
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            f"{day}/{region}/{service}/aws4_request",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _signing_key(secret, day, region, service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, fields["Signature"]):
        return (
            "InvalidSignatureException:The request signature we calculated does not match "
            "the signature you provided. Check your AWS Secret Access Key and signing method."
        )
    return None


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return event_frame(kind, json.dumps({**payload, "p": _PAD[: 1 + len(kind)]}).encode())


def _converse_turn_body(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """A Converse body in the messages shape :func:`compose` reads (a ``cachePoint``
    marks the block before it)."""

    def blocks(content: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for block in content or ():
            if isinstance(block, dict) and "cachePoint" in block and out:
                out[-1] = {**out[-1], "cache_control": {"type": "ephemeral"}}
            elif isinstance(block, dict):
                out.append(block)
        return out

    inference = body.get("inferenceConfig") or {}
    system = blocks(body.get("system"))
    tools = blocks((body.get("toolConfig") or {}).get("tools"))
    # A model told in the system prompt to answer in JSON does (as Claude does).
    wants_json = any("JSON" in str(block.get("text", "")) for block in system)
    return {
        "model": model,
        "response_format": {"type": "json_object"} if wants_json else None,
        "system": system,
        "tools": tools,
        "messages": [
            {"role": m.get("role"), "content": blocks(m.get("content"))}
            for m in body.get("messages") or ()
        ],
        "max_tokens": inference.get("maxTokens"),
        "stop": inference.get("stopSequences"),
    }


_NO_CACHING = (
    "You invoked an unsupported model or your request did not allow prompt caching. "
    "See the documentation for more information."
)
_LONG_TTL = ("opus-4-5", "sonnet-4-5", "haiku-4-5", "opus-4-6", "sonnet-4-6")


def _check_cache_points(model: str, body: dict[str, Any]) -> str | None:
    """Bedrock's prompt-caching rules: Claude (tools, system, messages) and Nova
    (system, messages) only, at most four points, ``ttl`` 1h only where offered and
    never after a shorter one."""
    tools = (body.get("toolConfig") or {}).get("tools") or []
    places = [("tools", b) for b in tools] + [("system", b) for b in body.get("system") or []]
    for m in body.get("messages") or []:
        places += [("messages", b) for b in m.get("content") or []]
    points = [
        (where, b["cachePoint"]) for where, b in places if isinstance(b, dict) and "cachePoint" in b
    ]
    if not points:
        return None
    name = model.lower()
    claude, nova = "anthropic.claude" in name, "amazon.nova" in name
    if not (claude or nova) or (nova and any(w == "tools" for w, _ in points)):
        return _NO_CACHING
    if len(points) > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {len(points)}."
    ttls = [(p or {}).get("ttl", "5m") for _, p in points]
    if "1h" in ttls and not any(f in name for f in _LONG_TTL):
        return _NO_CACHING
    if any(a == "5m" and b == "1h" for a, b in itertools.pairwise(ttls)):
        return "A cache point with a 1h ttl must not come after one with a 5m ttl."
    return None


def _check_converse(model: str, body: dict[str, Any]) -> str | None:
    """What Converse's validation would refuse, or None."""
    problem = _check_cache_points(model, body)
    if problem is not None:
        return problem
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "The messages field is required and must not be empty."
    role = None
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: must be user or assistant"
        if m.get("role") == role:
            return "A conversation must alternate between user and assistant roles."
        role = m.get("role")
        if not isinstance(m.get("content"), list):
            return f"messages.{i}.content: must be a list of content blocks"
    if messages[0].get("role") != "user":
        return "A conversation must start with a user message."
    previous: set[Any] = set()
    for i, m in enumerate(messages):
        blocks = [b for b in m["content"] if isinstance(b, dict)]
        results = {b["toolResult"].get("toolUseId") for b in blocks if "toolResult" in b}
        if results != previous:
            return (
                f"messages.{i}: the toolResult blocks ({sorted(map(str, results))}) do not "
                f"match the toolUse blocks of the previous turn ({sorted(map(str, previous))})"
            )
        previous = {b["toolUse"].get("toolUseId") for b in blocks if "toolUse" in b}
        for b in blocks:
            thought = b.get("reasoningContent")
            if thought is not None and m["role"] == "assistant":
                if not (thought.get("reasoningText") or {}).get("signature"):
                    return f"messages.{i}: a reasoningContent block needs its signature"
    for name in ("model", "stream", "max_tokens", "temperature"):
        if name in body:
            return f"extraneous key [{name}] is not permitted"
    return None


class Bedrock(Wire):
    """``POST /model/{id}/converse-stream | converse | invoke-with-response-stream |
    invoke``, signed with SigV4 (or a Bedrock API key as a bearer token)."""

    rate_limited = True
    not_json = ("ValidationException", "body is not JSON")

    def __init__(self) -> None:
        self._messages = Messages()

    def matches(self, method: str, path: str) -> bool:
        return method == "POST" and _PATH.match(path) is not None

    def cacheable(self, request: RecordedRequest) -> bool:
        return False  # every request's signature is checked

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return error_plan(status, error_type, message, headers)

    def plan(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        refused = self._auth(settings, request)
        if refused is not None:
            kind, _, message = refused.partition(":")
            return error_plan(403, kind, message, {})
        return super().plan(settings, request, body, reply)

    def _auth(self, settings: Settings, request: RecordedRequest) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            keys = getattr(settings, "bedrock_api_keys", ())
            if auth[7:] in keys:
                return None
            return "UnrecognizedClientException:Invalid API Key format or the key is not valid"
        credentials = getattr(settings, "aws_credentials", {})
        skew = getattr(settings, "aws_clock_skew", 0.0)  # the server's clock ahead by
        return check_sigv4(request, credentials, time.time() + skew)

    def answer(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        match = _PATH.match(request.path.split("?")[0])
        assert match is not None
        model, action = unquote(match.group(1)), match.group(2)
        if action.startswith("invoke"):
            return self._invoke(settings, request, body, reply, model, action)
        problem = _check_converse(model, body)
        if problem is not None:
            return error_plan(400, "ValidationException", problem, {})
        turn_body = _converse_turn_body(model, body)
        calls = reply.tool_calls and numbered_calls(reply.tool_calls, "tooluse_emu")
        forced = ((body.get("toolConfig") or {}).get("toolChoice") or {}).get("tool")
        if not calls and isinstance(forced, dict):
            schema = next(
                (
                    t["toolSpec"]["inputSchema"]["json"]
                    for t in body["toolConfig"].get("tools", ())
                    if t.get("toolSpec", {}).get("name") == forced.get("name")
                ),
                None,
            )
            known = fit_schema(schema, JSON_REPLY) if isinstance(schema, dict) else JSON_REPLY
            payload = reply.text or json.dumps(known)
            calls = numbered_calls([{"name": forced["name"], "arguments": payload}], "tooluse_emu")
        turn = compose(
            settings, turn_body, reply, calls or None, prefill=False,
            cache=self._messages.prompt_cache,
        )  # fmt: skip
        default = "tool_use" if calls else "end_turn"
        finish = reply.finish_reason or ("max_tokens" if turn.truncated else default)
        usage = _converse_usage(turn.usage)
        if action == "converse":
            return turn.whole(_converse_message(turn, finish, usage, reply.reasoning), reply)
        pieces = _converse_frames(turn, finish, usage, reply.reasoning)
        return _faulted(turn.streamed(pieces, reply))

    def _invoke(
        self,
        settings: Settings,
        request: RecordedRequest,
        body: dict[str, Any],
        reply: Reply,
        model: str,
        action: str,
    ) -> Plan:
        if "model" in body or "stream" in body:
            return error_plan(400, "ValidationException",
                              "extraneous key [model or stream] is not permitted", {})  # fmt: skip
        version = body.get("anthropic_version")
        if not isinstance(version, str) or not version:
            return error_plan(400, "ValidationException",
                              "required key [anthropic_version] not found", {})  # fmt: skip
        streamed = action == "invoke-with-response-stream"
        inner = {k: v for k, v in body.items() if k != "anthropic_version"}
        plan = self._messages.answer(
            settings, request, {**inner, "model": model, "stream": streamed}, reply
        )
        if plan.status >= 400 or not streamed:
            if plan.status >= 400:
                message = json.loads(b"".join(plan.pieces))["error"]["message"]
                return error_plan(plan.status, "ValidationException", message, {})
            return plan
        pieces = [_chunks(piece) for piece in plan.pieces]
        plan.pieces = pieces
        plan.content_type = EVENTSTREAM
        return _faulted(plan)


def _chunks(piece: bytes) -> bytes:
    """SSE events of the Anthropic wire → Invoke ``chunk`` frames (an ``error`` event:
    an exception frame)."""
    out = []
    for event in piece.split(b"\n\n"):
        data = next((line[6:] for line in event.split(b"\n") if line.startswith(b"data: ")), None)
        if data is None:
            continue
        if event.startswith(b"event: error"):
            error = json.loads(data)["error"]
            out.append(exception_frame(error["type"], error["message"]))
            continue
        payload = json.dumps({"bytes": base64.b64encode(data).decode(), "p": _PAD[:8]})
        out.append(event_frame("chunk", payload.encode()))
    return b"".join(out)


def _faulted(plan: Plan) -> Plan:
    """The event-stream faults: an exception frame, a corrupt CRC, a cut frame."""
    plan.content_type = EVENTSTREAM
    fault = plan.fault
    if fault is None or fault.kind not in ("error_event", "bad_crc", "cut_frame"):
        return plan
    at = min(fault.after + 1, len(plan.pieces) - 1)
    pieces = plan.pieces[:at]
    if fault.kind == "error_event":
        kind = fault.error_type if fault.error_type.endswith("Exception") else "throttlingException"
        pieces.append(exception_frame(kind, f"emulated {kind}"))
        plan.fault = None
    elif fault.kind == "bad_crc":
        broken = bytearray(plan.pieces[at])
        broken[-5] ^= 0xFF  # the payload's last byte: the message CRC no longer matches
        pieces += [bytes(broken), *plan.pieces[at + 1 :]]
        plan.fault = None
    else:
        whole = plan.pieces[at]
        pieces += [whole[: len(whole) // 2], b""]
        plan.fault = Fault.drop_after(at)
    plan.pieces = pieces
    return plan


def _converse_usage(usage: dict[str, int]) -> dict[str, int]:
    read, write = usage.get("cached_tokens", 0), usage.get("cache_creation_tokens", 0)
    wire = {
        "inputTokens": max(0, usage["prompt_tokens"] - read - write),
        "outputTokens": usage["completion_tokens"],
    }
    wire["totalTokens"] = wire["inputTokens"] + wire["outputTokens"] + read + write
    if read or write:
        wire["cacheReadInputTokens"] = read
        wire["cacheWriteInputTokens"] = write
    return wire


def _converse_message(
    turn: Turn, finish: str, usage: dict[str, int], reasoning: str | None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reasoning:
        text = {"text": reasoning, "signature": SIGNATURE}
        content.append({"reasoningContent": {"reasoningText": text}})
    if turn.text or not turn.calls:
        content.append({"text": turn.text})
    for call in turn.calls or ():
        use = {
            "toolUseId": call["id"],
            "name": call["name"],
            "input": json.loads(call["arguments"]),
        }
        content.append({"toolUse": use})
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": finish,
        "usage": usage,
        "metrics": {"latencyMs": 1},
    }


def _converse_frames(
    turn: Turn, finish: str, usage: dict[str, int], reasoning: str | None
) -> list[bytes]:
    """The opening frame (messageStart, reasoning), one frame per text chunk, then
    the block stop, tool-use blocks, messageStop and metadata."""
    opening = _event("messageStart", {"role": "assistant"})
    index = 0
    if reasoning:
        for piece in small_pieces(reasoning):
            delta = {"reasoningContent": {"text": piece}}
            opening += _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": delta})
        signature = {"reasoningContent": {"signature": SIGNATURE}}
        opening += _event("contentBlockDelta", {"contentBlockIndex": 0, "delta": signature})
        opening += _event("contentBlockStop", {"contentBlockIndex": 0})
        index = 1
    pieces = [opening]
    has_text = bool(turn.chunks) or not turn.calls
    for chunk in turn.chunks:
        text: dict[str, Any] = {"contentBlockIndex": index, "delta": {"text": chunk}}
        pieces.append(_event("contentBlockDelta", text))
    closing = b""
    if has_text:
        closing += _event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    for call in turn.calls or ():
        start = {"toolUse": {"toolUseId": call["id"], "name": call["name"]}}
        closing += _event("contentBlockStart", {"contentBlockIndex": index, "start": start})
        for piece in small_pieces(call["arguments"]):
            fragment: dict[str, Any] = {"toolUse": {"input": piece}}
            closing += _event("contentBlockDelta", {"contentBlockIndex": index, "delta": fragment})
        closing += _event("contentBlockStop", {"contentBlockIndex": index})
        index += 1
    closing += _event("messageStop", {"stopReason": finish})
    closing += _event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}})
    pieces.append(closing)
    return pieces
