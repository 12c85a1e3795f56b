"""``from_ui_messages``: the request body of the AI SDK's ``useChat`` (UI messages)
as this SDK's messages (OpenAI-style dicts: text, files, tool calls and results)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ConfigurationError

__all__ = ["from_ui_messages"]

_MAX_MESSAGES = 10_000


def _fail(where: str, what: str) -> ConfigurationError:
    return ConfigurationError(f"{where}: {what}")


def _text(part: dict[str, Any], where: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _fail(where, "a text part needs a string 'text'")
    return text


def _file(part: dict[str, Any], where: str) -> dict[str, Any]:
    url, media_type = part.get("url"), part.get("mediaType")
    if not isinstance(url, str) or not isinstance(media_type, str) or not url:
        raise _fail(where, "a file part needs a string 'url' and 'mediaType'")
    if media_type.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": url}}
    if not url.startswith("data:"):
        raise _fail(where, f"a {media_type} file must be a data: URL (got a link)")
    file: dict[str, Any] = {"file_data": url}
    if isinstance(part.get("filename"), str):
        file["filename"] = part["filename"]
    return {"type": "file", "file": file}


def _output(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class _Assistant:
    """One assistant message's steps: text and tool calls, then the tools' results."""

    def __init__(self) -> None:
        self.out: list[dict[str, Any]] = []
        self.text: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.results: list[dict[str, Any]] = []

    def flush(self) -> None:
        if not (self.text or self.calls):
            return
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            message["tool_calls"] = self.calls
        self.out.append(message)
        self.out.extend(self.results)
        self.text, self.calls, self.results = [], [], []

    def tool(self, part: dict[str, Any], where: str) -> None:
        kind = part["type"]
        name = part.get("toolName") if kind == "dynamic-tool" else kind[5:]
        call_id = part.get("toolCallId")
        if not isinstance(name, str) or not name or not isinstance(call_id, str):
            raise _fail(where, "a tool part needs a 'toolCallId' and a tool name")
        state = part.get("state")
        if state in ("input-streaming", None):
            return  # never finished: not sent again
        arguments = json.dumps(part.get("input", {}), ensure_ascii=False)
        fn = {"name": name, "arguments": arguments}
        self.calls.append({"id": call_id, "type": "function", "function": fn})
        if state == "output-available":
            content = _output(part.get("output"))
        elif state == "output-error":
            content = f"error: {part.get('errorText', '')}"
        elif state == "output-denied":
            content = "error: the user denied this tool call"
        else:
            content = "error: no result (the answer was interrupted)"
        self.results.append({"role": "tool", "tool_call_id": call_id, "content": content})


def _user_content(parts: list[Any], where: str) -> str | list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            content.append({"type": "text", "text": _text(part, at)})
        elif kind == "file":
            content.append(_file(part, at))
        elif not isinstance(kind, str):
            raise _fail(at, "a part must be an object with a string 'type'")
    if all(p["type"] == "text" for p in content):
        return "".join(p["text"] for p in content)
    return content


def from_ui_messages(body: Any) -> list[dict[str, Any]]:
    """``useChat``'s request body (``{"messages": [...], ...}``) or its list of UI
    messages, as messages for ``stream_events()`` and the others. Text and file parts
    of user messages, text and tool parts (calls and results) of assistant messages,
    system text; reasoning, sources, data parts and step marks are not sent back.
    Anything malformed is a :class:`~steer_llm_sdk.errors.ConfigurationError` naming
    ``messages[i].parts[j]`` (a 400 in ``steer-llm serve``)."""
    messages = body.get("messages") if isinstance(body, dict) else body
    if not isinstance(messages, list) or not messages:
        raise ConfigurationError("the body needs a non-empty 'messages' list (UI messages)")
    if len(messages) > _MAX_MESSAGES:
        raise ConfigurationError(f"too many messages ({len(messages)} > {_MAX_MESSAGES})")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise _fail(where, "a message must be an object")
        role, parts = message.get("role"), message.get("parts")
        if not isinstance(parts, list):
            raise _fail(where, "a UI message needs a 'parts' list")
        if role == "user":
            out.append({"role": "user", "content": _user_content(parts, where)})
        elif role == "system":
            texts = [_text(p, f"{where}.parts[{j}]") for j, p in enumerate(parts)]
            out.append({"role": "system", "content": "".join(texts)})
        elif role == "assistant":
            out.extend(_assistant(parts, where))
        else:
            raise _fail(where, f"role {role!r} is not user, assistant or system")
    return out


def _assistant(parts: list[Any], where: str) -> list[dict[str, Any]]:
    steps = _Assistant()
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if not isinstance(kind, str):
            raise _fail(at, "a part must be an object with a string 'type'")
        if kind == "step-start":
            steps.flush()
        elif kind == "text":
            steps.text.append(_text(part, at))
        elif kind.startswith("tool-") or kind == "dynamic-tool":
            steps.tool(part, at)
    steps.flush()
    return steps.out
