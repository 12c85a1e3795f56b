"""The answer to a messages-style request: OpenAI Chat Completions, Anthropic Messages,
and the Responses API read in its chat form. The protocol modules turn a :class:`Turn`
into their own wire format.

The answer's text is the reply's, or the default one (see :func:`answer_text`); a
final assistant message is a prefill the answer continues; stop sequences cut it and
``max_tokens`` (one chunk a token) truncates it. Usage counts every input token, and
with a wire's prompt cache (``_cache.py``) the prefixes it marks are written to the
cache the first time and read from it after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._wire import (
    Plan,
    Reply,
    Settings,
    answer_text,
    count_tokens,
    cut_at_stops,
    json_plan,
    pause_of,
    split_words,
    text_of,
)

__all__ = ["Turn", "compose", "json_format", "json_schema"]


@dataclass(slots=True)
class Turn:
    """One answer, before it is put on the wire."""

    model: str
    chunks: list[str]
    calls: list[dict[str, Any]] | None  # {"id", "name", "arguments": JSON text}
    usage: dict[str, int]  # prompt_tokens (all input), completion_tokens, cached_tokens,
    # cache_creation_tokens
    truncated: bool
    pause: float

    @property
    def text(self) -> str:
        return "".join(self.chunks)

    @property
    def tokens(self) -> int:
        return self.usage["prompt_tokens"] + self.usage["completion_tokens"]

    def whole(self, payload: dict[str, Any], reply: Reply) -> Plan:
        """The plan of a non-streamed answer."""
        plan = json_plan(200, payload, reply.headers)
        plan.fault, plan.tokens = reply.fault, self.tokens
        return plan

    def streamed(self, pieces: list[bytes], reply: Reply) -> Plan:
        """The plan of a streamed answer."""
        return Plan(
            200,
            "text/event-stream",
            pieces,
            extra_headers=reply.headers,
            fault=reply.fault,
            pause=self.pause,
            tokens=self.tokens,
        )


def compose(
    settings: Settings,
    body: dict[str, Any],
    reply: Reply,
    calls: list[dict[str, Any]] | None,
    *,
    prefill: bool,
    cache: Any = None,
) -> Turn:
    """The turn for ``reply`` to ``body``. ``calls`` alone answer (no text) unless the
    reply scripts both; ``prefill``: a final assistant message is continued."""
    if calls and (reply.tool_calls is None or (reply.text is None and reply.chunks is None)):
        chunks: list[str] = []  # only calls (a forced tool answers with its call)
    else:
        chunks = _chunks(settings, body, reply, prefill)
    limit = body.get("max_tokens") or body.get("max_completion_tokens")
    truncated = isinstance(limit, int) and len(chunks) > limit
    if truncated:
        chunks = chunks[:limit]
    usage = _usage(body, chunks, reply, cache)
    if calls:
        usage["completion_tokens"] += sum(count_tokens(c["arguments"]) for c in calls)
    if reply.reasoning:
        usage["completion_tokens"] += count_tokens(reply.reasoning)
    model = str(body.get("model") or "emulator")
    return Turn(model, chunks, calls, usage, truncated, pause_of(settings, reply))


def json_format(body: dict[str, Any]) -> dict[str, Any]:
    """The requested format: OpenAI's ``response_format`` or Anthropic's
    ``output_config.format`` (``{}`` when neither)."""
    fmt = body.get("response_format") or (body.get("output_config") or {}).get("format") or {}
    return fmt if isinstance(fmt, dict) else {}


def json_schema(body: dict[str, Any]) -> Any:
    """The JSON schema the answer must fit, or None: OpenAI's
    ``response_format.json_schema.schema``, Anthropic's ``output_config.format.schema``."""
    fmt = json_format(body)
    if fmt.get("type") != "json_schema":
        return None
    inner = fmt.get("json_schema")
    return inner.get("schema") if isinstance(inner, dict) else fmt.get("schema")


def _chunks(settings: Settings, body: dict[str, Any], reply: Reply, prefill: bool) -> list[str]:
    if reply.chunks is not None:
        return list(reply.chunks)
    messages = body.get("messages") or []
    prefix = ""
    if prefill and messages and messages[-1].get("role") == "assistant":
        prefix = text_of(messages[-1].get("content"))
        messages = messages[:-1]
    prompt = "\n".join(text_of(m.get("content")) for m in messages)
    full = answer_text(
        settings, reply, prompt, wants_json=_wants_json(body, prefix), schema=json_schema(body)
    )
    text = full
    if prefix and full.startswith(prefix):
        text = full[len(prefix) :]
    elif prefix == "{" and full.startswith("{"):
        text = full[1:]
    text = cut_at_stops(text, body.get("stop") or body.get("stop_sequences"))
    return split_words(text, settings.chunk_words)


def _wants_json(body: dict[str, Any], prefix: str) -> bool:
    if json_format(body).get("type") in ("json_object", "json_schema"):
        return True
    if prefix.startswith("{"):
        return True
    last_user = next(
        (m for m in reversed(body.get("messages") or []) if m.get("role") == "user"), None
    )
    return last_user is not None and "JSON" in text_of(last_user.get("content"))


def _usage(body: dict[str, Any], chunks: list[str], reply: Reply, cache: Any) -> dict[str, int]:
    if reply.usage is not None:
        usage = {"cached_tokens": 0, "cache_creation_tokens": 0, **reply.usage}
        usage.setdefault("completion_tokens", len(chunks))
        return usage
    system = body.get("system")
    blocks: list[Any] = []
    if isinstance(system, str):
        blocks.append({"text": system})
    elif isinstance(system, list):
        blocks.extend(system)
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            blocks.extend(content)
        else:
            blocks.append({"text": content or ""})
    texts = [text_of([block]) if isinstance(block, dict) else str(block) for block in blocks]
    prompt = count_tokens("\n".join(texts)) + 4 * len(body.get("messages") or [])
    cached = created = 0
    if cache is not None:  # the wire's prompt cache (_cache.py)
        cached, created = cache.usage(body)
        prompt = max(prompt, cached + created)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": len(chunks),
        "cached_tokens": cached,
        "cache_creation_tokens": created,
    }
