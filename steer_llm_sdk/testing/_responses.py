"""The OpenAI Responses side of the emulator: ``POST /v1/responses``.

Checked as the real API checks it (tool types, function-call outputs that answer a
call, reasoning items followed by what they belong to), answered from the same
script as Chat Completions: the request is read in its chat form (see
:func:`as_chat`), and the turn is put on the wire as a ``response`` object, or as the
typed event stream (``response.created`` ... ``response.completed``, every event with
its ``sequence_number``).
"""

from __future__ import annotations

from typing import Any

from ._media import check_responses_input
from ._openai import chat_turn, error_plan, finish_of
from ._turn import Turn
from ._wire import (
    Plan,
    RecordedRequest,
    Reply,
    Settings,
    Wire,
    count_tokens,
    dumps,
    json_plan,
    small_pieces,
)

__all__ = ["Responses", "as_chat", "check_responses"]

_TOOL_TYPES = ("function", "web_search", "web_search_preview", "file_search")


class Responses(Wire):
    rate_limited = True
    route = ("POST", "/v1/responses")

    def error(self, status: int, error_type: str, message: str, headers: dict[str, str]) -> Plan:
        return error_plan(status, error_type, message, headers)

    def read(self, request: RecordedRequest) -> dict[str, Any] | Plan:
        body = super().read(request)
        if isinstance(body, Plan):
            return body
        problem = check_responses(body) or check_responses_input(body)
        if problem is not None:
            return error_plan(400, "invalid_request_error", problem, {})
        return body

    def answer(
        self, settings: Settings, request: RecordedRequest, body: dict[str, Any], reply: Reply
    ) -> Plan:
        turn = chat_turn(settings, as_chat(body), reply)
        if isinstance(turn, Plan):
            return turn
        response = _response(body, turn, finish_of(turn, reply), reply)
        if not body.get("stream"):
            plan = json_plan(200, response)
            plan.tokens = turn.tokens
            return plan
        pieces, error = _Events().stream(response, turn, reply)
        return Plan(
            200,
            "text/event-stream",
            pieces,
            fault=None if error else reply.fault,
            pause=turn.pause,
            tokens=turn.tokens,
        )


def check_responses(body: dict[str, Any]) -> str | None:
    """What the real Responses API rejects in a request's tools and input items."""
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type") not in _TOOL_TYPES:
            return f"Invalid value for 'tools[{i}].type'."
        if tool.get("type") == "function" and not isinstance(tool.get("name"), str):
            return f"Missing required parameter: 'tools[{i}].name'."
    items = body.get("input")
    if isinstance(items, str) or items is None:
        return None
    if not isinstance(items, list):
        return "Invalid type for 'input': expected a string or an array of items."
    calls: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            return f"Invalid type for 'input[{i}]': expected an object."
        kind = item.get("type")
        if kind == "function_call":
            calls.add(str(item.get("call_id")))
        elif kind == "function_call_output":
            if str(item.get("call_id")) not in calls:
                return (
                    "No tool call found for function call output with call_id "
                    f"{item.get('call_id')}."
                )
        elif kind == "reasoning":
            following = items[i + 1] if i + 1 < len(items) else None
            if not (
                isinstance(following, dict)
                and (
                    following.get("type") in ("function_call", "message")
                    or following.get("role") == "assistant"
                )
            ):
                return (
                    f"Item '{item.get('id')}' of type 'reasoning' was provided without its "
                    "required following item."
                )
    return None


def as_chat(body: dict[str, Any]) -> dict[str, Any]:
    """A Responses request read as the equivalent Chat Completions request."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items or ():
        kind = item.get("type")
        if kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}
            )
        elif kind == "reasoning":
            continue
        elif "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            messages.append({"role": item["role"], "content": content})
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    fmt = (body.get("text") or {}).get("format") or {}
    if fmt.get("type") in ("json_schema", "json_object"):
        chat["response_format"] = {"type": fmt["type"]}
        if isinstance(fmt.get("schema"), dict):
            chat["response_format"]["json_schema"] = {"schema": fmt["schema"]}
    tools = [
        {"type": "function", "function": {"name": t["name"], "parameters": t.get("parameters")}}
        for t in body.get("tools") or ()
        if t.get("type") == "function"
    ]
    if tools:
        chat["tools"] = tools
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _items(turn: Turn, reply: Reply, include: Any) -> list[dict[str, Any]]:
    """The output items: reasoning (when scripted), the message (when there is text or
    no call), the function calls."""
    output: list[dict[str, Any]] = []
    if reply.reasoning:
        reasoning: dict[str, Any] = {
            "id": "rs_emu0",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": reply.reasoning}],
        }
        if "reasoning.encrypted_content" in include:
            reasoning["encrypted_content"] = "ZW5jcnlwdGVkLXJlYXNvbmluZw=="
        output.append(reasoning)
    if turn.text or not turn.calls:
        text = {"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}
        output.append(
            {
                "id": "msg_emu0",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [text],
            }
        )
    for i, c in enumerate(turn.calls or ()):
        output.append(
            {
                "id": f"fc_emu{i}",
                "type": "function_call",
                "status": "completed",
                "call_id": c["id"],
                "name": c["name"],
                "arguments": c["arguments"],
            }
        )
    return output


def _response(body: dict[str, Any], turn: Turn, finish: str, reply: Reply) -> dict[str, Any]:
    """The whole ``response`` object (the non-streamed body, and the terminal event's)."""
    status = "incomplete" if finish == "length" else "completed"
    usage = turn.usage
    read, prompt = usage.get("cached_tokens", 0), usage["prompt_tokens"]
    return {
        "id": "resp_emulator",
        "object": "response",
        "created_at": 1,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": {},
        "model": turn.model,
        "output": _items(turn, reply, body.get("include") or ()),
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_p": 1.0,
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": read},
            "output_tokens": usage["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": count_tokens(reply.reasoning or "")},
            "total_tokens": prompt + usage["completion_tokens"],
        },
    }


class _Events:
    """The typed event stream of one response, numbered as it is built."""

    def __init__(self) -> None:
        self.seq = 0

    def sse(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **payload}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + dumps(payload) + b"\n\n"

    def stream(
        self, response: dict[str, Any], turn: Turn, reply: Reply
    ) -> tuple[list[bytes], bool]:
        """The pieces (the first carries no text, one a text delta after it), and
        whether an in-band error (the fault) ended them."""
        opening = {**response, "status": "in_progress", "output": [], "usage": None}
        head = [
            self.sse("response.created", {"response": opening}),
            self.sse("response.in_progress", {"response": opening}),
        ]
        tail: list[bytes] = []
        pieces = [b""]
        for index, item in enumerate(response["output"]):
            if item["type"] == "reasoning":
                head += self.reasoning(index, item)
            elif item["type"] == "message":
                head += self.opened(index, item)
                for i, piece in enumerate(turn.chunks):
                    fault = reply.fault
                    if fault is not None and fault.kind == "error_event" and i == fault.after:
                        error = {"code": "server_error", "message": f"emulated {fault.error_type}"}
                        pieces.append(self.sse("error", error))
                        pieces[0] = b"".join(head)
                        return pieces, True
                    delta = {**self.text_ids(index), "delta": piece, "logprobs": []}
                    pieces.append(self.sse("response.output_text.delta", delta))
                tail += self.message_done(index, item)
            else:
                tail += self.call(index, item)
        terminal = (
            "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        )
        tail.append(self.sse(terminal, {"response": response}))
        pieces[0] = b"".join(head)
        pieces.append(b"".join(tail))
        return pieces, False

    @staticmethod
    def text_ids(index: int) -> dict[str, Any]:
        return {"item_id": "msg_emu0", "output_index": index, "content_index": 0}

    def reasoning(self, index: int, item: dict[str, Any]) -> list[bytes]:
        part = {"item_id": item["id"], "output_index": index, "summary_index": 0}
        text = item["summary"][0]["text"]
        return [
            self.sse(
                "response.output_item.added",
                {"output_index": index, "item": {**item, "summary": []}},
            ),
            self.sse(
                "response.reasoning_summary_part.added",
                {**part, "part": {"type": "summary_text", "text": ""}},
            ),
            *[
                self.sse("response.reasoning_summary_text.delta", {**part, "delta": piece})
                for piece in small_pieces(text)
            ],
            self.sse("response.reasoning_summary_text.done", {**part, "text": text}),
            self.sse("response.output_item.done", {"output_index": index, "item": item}),
        ]

    def opened(self, index: int, item: dict[str, Any]) -> list[bytes]:
        added = {**item, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        return [
            self.sse("response.output_item.added", {"output_index": index, "item": added}),
            self.sse("response.content_part.added", {**self.text_ids(index), "part": part}),
        ]

    def message_done(self, index: int, item: dict[str, Any]) -> list[bytes]:
        ids = self.text_ids(index)
        part = item["content"][0]
        return [
            self.sse("response.output_text.done", {**ids, "text": part["text"], "logprobs": []}),
            self.sse("response.content_part.done", {**ids, "part": part}),
            self.sse("response.output_item.done", {"output_index": index, "item": item}),
        ]

    def call(self, index: int, item: dict[str, Any]) -> list[bytes]:
        ids = {"item_id": item["id"], "output_index": index}
        added = {**item, "status": "in_progress", "arguments": ""}
        return [
            self.sse("response.output_item.added", {"output_index": index, "item": added}),
            *[
                self.sse("response.function_call_arguments.delta", {**ids, "delta": piece})
                for piece in small_pieces(item["arguments"])
            ],
            self.sse(
                "response.function_call_arguments.done",
                {**ids, "name": item["name"], "arguments": item["arguments"]},
            ),
            self.sse("response.output_item.done", {"output_index": index, "item": item}),
        ]
