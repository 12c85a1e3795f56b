"""The OpenAI Chat Completions side of the emulator: ``POST /v1/chat/completions``.

Streams as the real API does: ``data:`` frames of ``chat.completion.chunk`` (an
opening frame with the role, one frame a text chunk, the finish frame, a usage frame
when ``stream_options.include_usage`` asks for it, ``data: [DONE]``); reasoning as
``reasoning_content`` deltas after the opening frame, tool calls as ``tool_calls``
deltas before the finish frame (one call after the other, or interleaved). An
in-band error is a ``data: {"error": ...}`` frame. Rejects what the real API rejects
in tools and tool conversations, in its words.
"""

from __future__ import annotations

from typing import Any

from ._cache import OpenAICache
from ._turn import Turn, compose
from ._wire import (
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
)

__all__ = ["ChatCompletions", "chat_turn", "error_plan", "finish_of", "plan_of"]


class ChatCompletions(Wire):
    rate_limited = True
    route = ("POST", "/v1/chat/completions")

    def __init__(self) -> None:
        self.prompt_cache = OpenAICache()  # prefixes under a prompt_cache_key

    def cacheable(self, request: RecordedRequest) -> bool:
        return b'"prompt_cache_key"' not in request.body  # usage depends on what was seen

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return error_plan(status, error_type, message, headers)

    def answer(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        turn = chat_turn(settings, body, reply, self.prompt_cache)
        if isinstance(turn, Plan):
            return turn
        return plan_of(body, turn, finish_of(turn, reply), reply)


def chat_turn(
    settings: Settings, body: dict[str, Any], reply: Reply, cache: Any = None
) -> Turn | Plan:
    """The turn for a Chat Completions request, or the 400 its tools earn."""
    problem = check_tools(body)
    if problem is not None:
        return error_plan(400, "invalid_request_error", problem, {})
    calls = numbered_calls(reply.tool_calls, "call_emu") if reply.tool_calls else None
    return compose(
        settings, body, reply, calls, prefill=settings.openai_continue_final_assistant, cache=cache
    )


def finish_of(turn: Turn, reply: Reply) -> str:
    """The finish reason: the reply's, else ``length``, ``tool_calls`` or ``stop``."""
    default = "tool_calls" if turn.calls else "stop"
    return reply.finish_reason or ("length" if turn.truncated else default)


def plan_of(body: dict[str, Any], turn: Turn, finish: str, reply: Reply) -> Plan:
    """The turn as a completion, or as a stream when the body asks for one."""
    if not body.get("stream"):
        return turn.whole(_message(turn, finish, reply.reasoning), reply)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    pieces = _frames(
        turn.model, turn.chunks, finish, turn.usage if include_usage else None, reply.fault
    )
    if turn.calls or reply.reasoning:
        pieces = _rich(pieces, turn.model, turn.calls, reply)
    return turn.streamed(pieces, reply)


def error_plan(status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
    """OpenAI's error body: ``{"error": {"message", "type", "param", "code"}}``."""
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return json_plan(status, payload, headers)


def check_tools(body: dict[str, Any]) -> str | None:
    """What the real API would reject in the tools or the tool conversation, or None."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not (
                isinstance(tool, dict)
                and tool.get("type") == "function"
                and isinstance(fn, dict)
                and isinstance(fn.get("name"), str)
            ):
                return f"Missing required parameter: 'tools[{i}].function'."
    pending: set[str] = set()
    for i, m in enumerate(body.get("messages") or []):
        role = m.get("role")
        if role == "tool":
            if m.get("tool_call_id") not in pending:
                return (
                    f"Invalid parameter: messages[{i}]: messages with role 'tool' must be "
                    "a response to a preceeding message with 'tool_calls'."
                )
            pending.discard(m["tool_call_id"])
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not "
                f"have response messages: {', '.join(sorted(pending))}"
            )
        if role == "assistant":
            pending = {c.get("id") for c in m.get("tool_calls") or []}
    return None


def _usage(usage: dict[str, int]) -> dict[str, Any]:
    prompt, completion = usage["prompt_tokens"], usage["completion_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": usage.get("cached_tokens", 0),
            "audio_tokens": 0,
        },
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _message(turn: Turn, finish: str, reasoning: str | None) -> dict[str, Any]:
    text = turn.text
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if turn.calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in turn.calls
        ]
    elif not text:
        message["content"] = ""
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": "chatcmpl-emu",
        "object": "chat.completion",
        "created": 1,
        "model": turn.model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": _usage(turn.usage),
    }


def _head(model: str) -> bytes:
    return (
        b'data: {"id":"chatcmpl-emu","object":"chat.completion.chunk","created":1,"model":'
        + dumps(model)
    )


def _frames(
    model: str,
    chunks: list[str],
    finish: str,
    usage: dict[str, int] | None,
    fault: Fault | None,
) -> list[bytes]:
    head = _head(model)
    frames = [
        head
        + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
        + b'"finish_reason":null}]}\n\n'
    ]
    for i, chunk in enumerate(chunks):
        if fault is not None and fault.kind == "error_event" and i == fault.after:
            error = {"error": {"message": f"emulated {fault.error_type}", "type": fault.error_type}}
            frames.append(b"data: " + dumps(error) + b"\n\n")
            return frames
        frames.append(
            head
            + b',"choices":[{"index":0,"delta":{"content":'
            + dumps(chunk)
            + b'},"finish_reason":null}]}\n\n'
        )
    frames.append(
        head + b',"choices":[{"index":0,"delta":{},"finish_reason":' + dumps(finish) + b"}]}\n\n"
    )
    if usage is not None:
        frames.append(head + b',"choices":[],"usage":' + dumps(_usage(usage)) + b"}\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def _rich(
    frames: list[bytes], model: str, calls: list[dict[str, Any]] | None, reply: Reply
) -> list[bytes]:
    """Insert reasoning frames after the opening frame and tool-call frames before the
    finish frame of a stream."""
    head = _head(model)

    def frame(delta: dict[str, Any]) -> bytes:
        return (
            head
            + b',"choices":[{"index":0,"delta":'
            + dumps(delta)
            + b',"finish_reason":null}]}\n\n'
        )

    thinking = (
        [frame({"reasoning_content": p}) for p in small_pieces(reply.reasoning)]
        if reply.reasoning
        else []
    )
    tool_frames: list[bytes] = []
    if calls:
        streams = []
        for i, c in enumerate(calls):
            first = {
                "index": i,
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": ""},
            }
            rest = [
                {"index": i, "function": {"arguments": p}} for p in small_pieces(c["arguments"])
            ]
            streams.append([first, *rest])
        if reply.interleave_tool_calls:
            # every call opens first, then their argument deltas alternate
            order = [s[0] for s in streams]
            tails = [s[1:] for s in streams]
            for k in range(max(len(t) for t in tails)):
                order.extend(t[k] for t in tails if k < len(t))
        else:
            order = [d for s in streams for d in s]
        tool_frames = [frame({"tool_calls": [d]}) for d in order]
    finish_at = next((i for i, f in enumerate(frames) if b'"finish_reason":"' in f), len(frames))
    return [frames[0], *thinking, *frames[1:finish_at], *tool_frames, *frames[finish_at:]]
