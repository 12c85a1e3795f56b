"""The Anthropic Messages side of the emulator: ``POST /v1/messages``.

Streams as the real API does: ``message_start``, content blocks (a signed
``thinking`` block, the ``text`` block, ``tool_use`` blocks whose input arrives as
``input_json_delta`` pieces), a ``ping``, ``message_delta`` with the stop reason and
output tokens, ``message_stop``; an in-band error is ``event: error``. A final
assistant message is a prefill the answer continues (trailing whitespace refused, as
the API does); prompt caching is counted per ``cache_control`` prefix; a forced tool
(``tool_choice: {"type": "tool"}``, structured output on older models) answers with a
call to it.
"""

from __future__ import annotations

import json
from typing import Any

from ._cache import AnthropicCache
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
    dumps,
    json_plan,
    numbered_calls,
    small_pieces,
    text_of,
)

__all__ = ["SIGNATURE", "Messages", "check_tools", "error_plan"]

SIGNATURE = "ZW11bGF0b3Itc2lnbmF0dXJl"  # what the emulator signs thinking with


class Messages(Wire):
    rate_limited = True
    route = ("POST", "/v1/messages")

    def __init__(self) -> None:
        self.prompt_cache = AnthropicCache()  # the prefixes written, as the API keeps them

    def cacheable(self, request: RecordedRequest) -> bool:
        return b"cache_control" not in request.body  # usage depends on what was seen

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return error_plan(status, error_type, message, headers)

    def answer(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "assistant":
            prefix = text_of(messages[-1].get("content"))
            if prefix != prefix.rstrip():
                return error_plan(
                    400,
                    "invalid_request_error",
                    "messages: final assistant content cannot end with trailing whitespace",
                    {},
                )
        problem = check_tools(body) or self.prompt_cache.problem(body)
        if problem is not None:
            return error_plan(400, "invalid_request_error", problem, {})
        calls = _calls(body, reply)
        turn = compose(settings, body, reply, calls, prefill=True, cache=self.prompt_cache)
        default = "tool_use" if calls else "end_turn"
        finish = reply.finish_reason or ("max_tokens" if turn.truncated else default)
        if not body.get("stream"):
            return turn.whole(_message(turn, finish, reply.reasoning), reply)
        pieces = _frames(turn.model, turn.chunks, finish, turn.usage, reply.fault)
        if calls or reply.reasoning:
            pieces = _rich(pieces, calls, reply, bool(turn.chunks))
        return turn.streamed(pieces, reply)


def error_plan(status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
    """Anthropic's error body: ``{"type": "error", "error": {"type", "message"}}``."""
    payload = {"type": "error", "error": {"type": error_type, "message": message}}
    return json_plan(status, payload, headers)


def _calls(body: dict[str, Any], reply: Reply) -> list[dict[str, Any]] | None:
    """The reply's tool calls; or, for a forced tool (structured output on older
    models), a call to it with the reply's JSON (unscripted: an object that fits the
    tool's input schema)."""
    calls = reply.tool_calls
    if calls is None:
        choice = body.get("tool_choice")
        if not (isinstance(choice, dict) and choice.get("type") == "tool"):
            return None
        if reply.chunks is not None:
            payload = "".join(reply.chunks)
        elif reply.text is not None:
            payload = reply.text
        else:
            tools = [t for t in body.get("tools") or () if t.get("name") == choice.get("name")]
            schema = tools[0].get("input_schema") if tools else None
            known = fit_schema(schema, JSON_REPLY) if isinstance(schema, dict) else JSON_REPLY
            payload = json.dumps(known)
        try:
            json.loads(payload)
        except ValueError:
            payload = "{}"  # a forced call has arguments, whatever the text was
        calls = [{"name": choice["name"], "arguments": payload}]
    return numbered_calls(calls, "toolu_emu")


def check_tools(body: dict[str, Any]) -> str | None:
    """What the real API would reject in the tools or the tool conversation, or None."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            if not (
                isinstance(tool, dict)
                and isinstance(tool.get("name"), str)
                and isinstance(tool.get("input_schema"), dict)
            ):
                return f"tools.{i}.custom.input_schema: Field required"
    previous: set[str] = set()
    for i, m in enumerate(body.get("messages") or []):
        content = m.get("content")
        blocks = content if isinstance(content, list) else []
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if results:
            if m.get("role") != "user":
                return f"messages.{i}: tool_result blocks must be in a user message"
            first_other = next(
                (j for j, b in enumerate(blocks) if b.get("type") != "tool_result"), len(blocks)
            )
            if any(b.get("type") == "tool_result" for b in blocks[first_other:]):
                return f"messages.{i}: tool_result blocks must come before any other content"
            unknown = [r for r in results if r not in previous]
            if unknown:
                return (
                    f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {unknown[0]}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        if previous and not set(previous) <= set(results):
            missing = sorted(set(previous) - set(results))
            return (
                f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                "corresponding `tool_result` block in the next message."
            )
        previous = (
            {b.get("id") for b in blocks if b.get("type") == "tool_use"}
            if m.get("role") == "assistant"
            else set()
        )
    return None


def _usage(usage: dict[str, int]) -> dict[str, int]:
    read, write = usage.get("cached_tokens", 0), usage.get("cache_creation_tokens", 0)
    return {
        "input_tokens": max(0, usage["prompt_tokens"] - read - write),
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
        "output_tokens": usage["completion_tokens"],
    }


def _message(turn: Turn, finish: str, reasoning: str | None) -> dict[str, Any]:
    text = turn.text
    content: list[dict[str, Any]] = []
    if reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": SIGNATURE})
    if text or not turn.calls:
        content.append({"type": "text", "text": text})
    for c in turn.calls or ():
        content.append(
            {
                "type": "tool_use",
                "id": c["id"],
                "name": c["name"],
                "input": json.loads(c["arguments"]),
            }
        )
    return {
        "id": "msg_emulator",
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": content,
        "stop_reason": finish,
        "stop_sequence": None,
        "usage": _usage(turn.usage),
    }


def _event(kind: bytes, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind + b"\ndata: " + dumps(payload) + b"\n\n"


def _frames(
    model: str, chunks: list[str], finish: str, usage: dict[str, int], fault: Fault | None
) -> list[bytes]:
    wire = _usage(usage)
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_emulator",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**wire, "output_tokens": 1},
        },
    }
    frames = [
        _event(b"message_start", start)
        + b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: ping\ndata: {"type": "ping"}\n\n'
    ]
    for i, chunk in enumerate(chunks):
        if fault is not None and fault.kind == "error_event" and i == fault.after:
            error = {"type": "error", "error": {"type": fault.error_type, "message": "Overloaded"}}
            frames.append(_event(b"error", error))
            return frames
        frames.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":' + dumps(chunk) + b"}}\n\n"
        )
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": finish, "stop_sequence": None},
        "usage": {"output_tokens": wire["output_tokens"]},
    }
    frames.append(
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
        + _event(b"message_delta", delta)
        + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    return frames


def _block(index: int, block: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    """One content block's events: start, deltas, stop."""
    start = {"type": "content_block_start", "index": index, "content_block": block}
    out = [_event(b"content_block_start", start)]
    for delta in deltas:
        payload = {"type": "content_block_delta", "index": index, "delta": delta}
        out.append(_event(b"content_block_delta", payload))
    out.append(_event(b"content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


def _rich(
    frames: list[bytes], calls: list[dict[str, Any]] | None, reply: Reply, has_text: bool
) -> list[bytes]:
    """Rebuild a stream's blocks: thinking (signed), text, tool_use."""
    opening = frames[0].split(b"event: content_block_start")[0]  # message_start
    body = frames[1:-1]  # text deltas
    closing = frames[-1].split(b"event: message_delta")[1]
    out = [opening]
    index = 0
    if reply.reasoning:
        thinking = [
            {"type": "thinking_delta", "thinking": p} for p in small_pieces(reply.reasoning)
        ]
        thinking.append({"type": "signature_delta", "signature": SIGNATURE})
        out += _block(0, {"type": "thinking", "thinking": "", "signature": ""}, thinking)
        index = 1
    if has_text or not calls:
        text = _block(index, {"type": "text", "text": ""}, [])
        texts = [f.replace(b'"index":0,', b'"index":%d,' % index, 1) for f in body]
        out += [text[0], *texts, text[1]]
        index += 1
    for c in calls or ():
        block = {"type": "tool_use", "id": c["id"], "name": c["name"], "input": {}}
        deltas = [
            {"type": "input_json_delta", "partial_json": p}
            for p in ["", *small_pieces(c["arguments"])]
        ]
        out += _block(index, block, deltas)
        index += 1
    out.append(b"event: message_delta" + closing)
    return out
