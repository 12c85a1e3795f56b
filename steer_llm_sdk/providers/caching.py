"""Prompt caching by one switch: ``cache_prompt="auto"`` (or ``"long"``) places each
protocol's cache markers; the codecs call these on the body they built.

Anthropic (the Messages API, also through Bedrock Invoke and Vertex): cache
breakpoints in prefix order, tools → system → messages. The conversation gets the
API's automatic top-level ``cache_control`` where the endpoint offers it (it marks the
last cacheable block), else a marker on the last block; the system prompt and the
tools each get their own breakpoint once the prefix up to them passes the model's
minimum cacheable length (a shorter prefix is never cached by the API, and a
breakpoint there would only use up one of the four). Never more than four in all,
counting the caller's own markers and the top-level one: with fewer free, the
conversation's comes first (it covers the others' prefix), then the system's, then
the tools'. A request that already holds more than four is refused before it is
sent (the API answers it with a 400).

Bedrock Converse: ``cachePoint`` blocks by the same rules (after the tools in
``toolConfig.tools``, the system blocks, the last message's blocks), on the models
Bedrock caches for: Anthropic Claude (tools, system, messages) and Amazon Nova
(system and messages only); another model gets none (Bedrock refuses a
``cachePoint`` there). ``"long"`` asks for a 1-hour TTL on the models that offer it.

OpenAI (Chat Completions and Responses, on OpenAI's own API): a ``prompt_cache_key``
from the hash of the stable prefix (tools and system/developer messages), so that
requests sharing it are routed to the same cache; ``"long"`` also asks for 24-hour
retention (``prompt_cache_retention``) on the models that offer it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..errors import ConfigurationError

__all__ = [
    "MAX_BREAKPOINTS",
    "CacheWatch",
    "anthropic_breakpoints",
    "bedrock_cache_points",
    "count_markers",
    "estimate_tokens",
    "min_cacheable_tokens",
    "openai_cache_fields",
]

MAX_BREAKPOINTS = 4
MODES = ("auto", "long")

# Anthropic's minimum cacheable prompt length by model (prompt-caching docs, 2026):
# the first matching fragment wins.
_MINIMUMS: tuple[tuple[str, int], ...] = (
    ("opus-4-6", 4096),
    ("opus-4-5", 4096),
    ("haiku-4-5", 4096),
    ("haiku-4", 4096),
    ("3-5-haiku", 2048),
    ("3-haiku", 2048),
    ("haiku-3", 2048),
)
_DEFAULT_MINIMUM = 1024  # Sonnet 4.x, Opus 4 / 4.1, Sonnet 3.7 ...

# Bedrock: the model families with prompt caching, and which Claude models take a
# 1-hour cachePoint TTL (Bedrock prompt-caching docs, 2026; Nova: tools not cacheable).
_BEDROCK_LONG_TTL = ("opus-4-5", "sonnet-4-5", "haiku-4-5", "opus-4-6", "sonnet-4-6")
_NOVA_MINIMUM = 1000

# OpenAI models that keep a prompt cache for 24 hours when asked (extended retention).
_LONG_RETENTION = ("gpt-5", "gpt-4.1")


def check_mode(value: Any) -> str | None:
    """``cache_prompt=`` checked: None/False off, True or "auto", or "long"."""
    if value is None or value is False:
        return None
    if value is True:
        return "auto"
    if value in MODES:
        return str(value)
    raise ConfigurationError(
        f"cache_prompt={value!r} is not known: use 'auto' (place the provider's cache "
        "markers), 'long' (the same with the longest cache lifetime) or False"
    )


def min_cacheable_tokens(model: str) -> int:
    """The shortest prefix (tokens) Anthropic caches for ``model``."""
    name = model.lower()
    for fragment, minimum in _MINIMUMS:
        if fragment in name:
            return minimum
    return _DEFAULT_MINIMUM


def estimate_tokens(value: Any) -> int:
    """A cautious token estimate of a block (its JSON): one per 4 ASCII characters,
    one per other character, so a prefix is marked only when it surely passes."""
    if isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(value).decode()
    ascii_chars = len(text.encode("ascii", "ignore"))
    return ascii_chars // 4 + (len(text) - ascii_chars)


def _blocks_of(message: dict[str, Any]) -> list[Any]:
    content = message.get("content")
    return content if isinstance(content, list) else [content]


def count_markers(body: dict[str, Any]) -> int:
    """Cache breakpoints in an Anthropic body: on tools, system and message blocks
    (and blocks inside tool results), plus a top-level one."""
    count = 1 if body.get("cache_control") else 0
    system = body.get("system")
    for block in (body.get("tools") or []) + (system if isinstance(system, list) else []):
        count += isinstance(block, dict) and bool(block.get("cache_control"))
    for message in body.get("messages") or []:
        for block in _blocks_of(message):
            if not isinstance(block, dict):
                continue
            count += bool(block.get("cache_control"))
            inner = block.get("content")
            if block.get("type") == "tool_result" and isinstance(inner, list):
                count += sum(isinstance(b, dict) and bool(b.get("cache_control")) for b in inner)
    return count


def check_markers(body: dict[str, Any]) -> None:
    """A ConfigurationError before sending a body with more than four breakpoints."""
    found = count_markers(body)
    if found > MAX_BREAKPOINTS:
        raise ConfigurationError(
            f"the request has {found} cache_control markers; Anthropic takes at most "
            f"{MAX_BREAKPOINTS} (counting a top-level cache_control): remove "
            f"{found - MAX_BREAKPOINTS}"
        )


def _mark(ttl: str | None) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": ttl} if ttl else {"type": "ephemeral"}


def anthropic_breakpoints(body: dict[str, Any], model: str, mode: str, *, top_level: bool) -> None:
    """Place the breakpoints of ``cache_prompt=mode`` in an Anthropic body (in place)."""
    check_markers(body)
    free = MAX_BREAKPOINTS - count_markers(body)
    if free <= 0:
        return
    ttl = "1h" if mode == "long" else None
    minimum = min_cacheable_tokens(model)
    # Copies of the lists the markers go into: a caller's own lists (extra_body) stay
    # as they were.
    tools = list(body.get("tools") or [])
    system = body.get("system")
    if isinstance(system, list):
        system = list(system)
    messages = list(body.get("messages") or [])
    if messages:
        messages[-1] = dict(messages[-1])
        if isinstance(messages[-1].get("content"), list):
            messages[-1]["content"] = list(messages[-1]["content"])
    tools_size = estimate_tokens(tools) if tools else 0
    system_size = estimate_tokens(system) if system else 0
    total = tools_size + system_size + sum(estimate_tokens(_blocks_of(m)) for m in messages)
    wanted: list[str] = []  # in order of value: the conversation's covers the others
    if messages and total >= minimum and not _marked_conversation(body):
        wanted.append("conversation")
    if system and tools_size + system_size >= minimum and not _marked_system(system):
        wanted.append("system")
    if tools and tools_size >= minimum and not any(t.get("cache_control") for t in tools):
        wanted.append("tools")
    if tools:
        body["tools"] = tools
    if system:
        body["system"] = system
    if messages:
        body["messages"] = messages
    for place in wanted[:free]:
        if place == "conversation":
            if top_level:
                body["cache_control"] = _mark(ttl)
            else:
                _mark_last_block(messages[-1], _mark(ttl))
        elif place == "system":
            blocks: list[Any] = (
                [{"type": "text", "text": system}]
                if isinstance(system, str)
                else list(system or [])
            )
            blocks[-1] = {**blocks[-1], "cache_control": _mark(ttl)}
            body["system"] = blocks
        else:
            tools[-1] = {**tools[-1], "cache_control": _mark(ttl)}
    if ttl:
        _all_long(body)


def _marked_conversation(body: dict[str, Any]) -> bool:
    if body.get("cache_control"):
        return True
    messages = body.get("messages") or []
    last = _blocks_of(messages[-1]) if messages else []
    return bool(last) and isinstance(last[-1], dict) and bool(last[-1].get("cache_control"))


def _marked_system(system: Any) -> bool:
    return isinstance(system, list) and any(
        isinstance(b, dict) and b.get("cache_control") for b in system
    )


def _mark_last_block(message: dict[str, Any], mark: dict[str, str]) -> None:
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = [{"type": "text", "text": content, "cache_control": mark}]
    elif isinstance(content, list) and content and isinstance(content[-1], dict):
        content[-1] = {**content[-1], "cache_control": mark}


def _all_long(body: dict[str, Any]) -> None:
    """With ``"long"``, every marker without a TTL becomes 1h: Anthropic refuses a
    longer TTL after a shorter one, and the SDK's markers are 1h. Blocks are
    replaced, never changed in place (a caller's own block dicts stay as they were)."""
    system = body.get("system")
    lists: list[list[Any]] = [body.get("tools") or []]
    if isinstance(system, list):
        lists.append(system)
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            lists.append(content)
    for blocks in lists:
        for i, block in enumerate(blocks):
            if not isinstance(block, dict):
                continue
            inner = block.get("content")
            if block.get("type") == "tool_result" and isinstance(inner, list):
                block = blocks[i] = {**block, "content": [_long(b) for b in inner]}
            blocks[i] = _long(block)


def _long(block: Any) -> Any:
    mark = block.get("cache_control") if isinstance(block, dict) else None
    if isinstance(mark, dict) and "ttl" not in mark:
        return {**block, "cache_control": {**mark, "ttl": "1h"}}
    return block


def _bedrock_family(model: str) -> str | None:
    name = model.lower()
    if "anthropic.claude" in name or name.startswith("claude"):
        return "claude"
    if "amazon.nova" in name or name.startswith("nova"):
        return "nova"
    return None


def _is_point(block: Any) -> bool:
    return isinstance(block, dict) and "cachePoint" in block


def count_cache_points(body: dict[str, Any]) -> int:
    """``cachePoint`` blocks in a Converse body (tools, system, messages)."""
    tools = (body.get("toolConfig") or {}).get("tools") or []
    count = sum(map(_is_point, tools)) + sum(map(_is_point, body.get("system") or []))
    for message in body.get("messages") or []:
        count += sum(map(_is_point, message.get("content") or []))
    return count


def bedrock_cache_points(body: dict[str, Any], model: str, mode: str | None) -> None:
    """Place ``cache_prompt=mode``'s ``cachePoint`` blocks in a Converse body (in
    place; the lists they go into are copied first). With any mode (None too), more
    than four is refused before sending."""
    family = _bedrock_family(model)
    found = count_cache_points(body)
    if found > MAX_BREAKPOINTS:
        raise ConfigurationError(
            f"the request has {found} cachePoint blocks (cache_control marks); Bedrock "
            f"takes at most {MAX_BREAKPOINTS}: remove {found - MAX_BREAKPOINTS}"
        )
    if mode is None or family is None or found >= MAX_BREAKPOINTS:
        return
    long_ttl = mode == "long" and any(f in model.lower() for f in _BEDROCK_LONG_TTL)
    point: dict[str, Any] = {"type": "default", "ttl": "1h"} if long_ttl else {"type": "default"}
    minimum = _NOVA_MINIMUM if family == "nova" else min_cacheable_tokens(model)
    config = body.get("toolConfig")
    tools = list((config or {}).get("tools") or []) if family == "claude" else []
    system = list(body.get("system") or [])
    messages = list(body.get("messages") or [])
    tools_size = estimate_tokens(tools) if tools else 0
    system_size = estimate_tokens(system) if system else 0
    total = tools_size + system_size + sum(estimate_tokens(m.get("content")) for m in messages)
    wanted: list[str] = []  # in order of value: the conversation's covers the others
    last = (messages[-1].get("content") or []) if messages else []
    if last and total >= minimum and not _is_point(last[-1]):
        wanted.append("conversation")
    if system and tools_size + system_size >= minimum and not any(map(_is_point, system)):
        wanted.append("system")
    if tools and tools_size >= minimum and not any(map(_is_point, tools)):
        wanted.append("tools")
    for place in wanted[: MAX_BREAKPOINTS - found]:
        if place == "conversation":
            messages[-1] = {**messages[-1], "content": [*last, {"cachePoint": dict(point)}]}
            body["messages"] = messages
        elif place == "system":
            body["system"] = [*system, {"cachePoint": dict(point)}]
        else:
            body["toolConfig"] = {**(config or {}), "tools": [*tools, {"cachePoint": dict(point)}]}
    if long_ttl:
        _all_points_long(body)


def _all_points_long(body: dict[str, Any]) -> None:
    """With a 1-hour TTL, every cachePoint without one gets it: a longer TTL may not
    follow a shorter one. Lists and blocks are replaced, never changed in place."""

    def longer(blocks: list[Any]) -> list[Any]:
        return [
            {"cachePoint": {**b["cachePoint"], "ttl": "1h"}}
            if _is_point(b) and "ttl" not in (b["cachePoint"] or {})
            else b
            for b in blocks
        ]

    config = body.get("toolConfig")
    if config and config.get("tools"):
        body["toolConfig"] = {**config, "tools": longer(config["tools"])}
    if body.get("system"):
        body["system"] = longer(body["system"])
    body["messages"] = [
        {**m, "content": longer(m.get("content") or [])} for m in body.get("messages") or []
    ]


def openai_cache_fields(body: dict[str, Any], model: str, mode: str) -> None:
    """``prompt_cache_key`` (the hash of tools and system/developer messages) and, for
    ``"long"``, 24-hour retention on the models that offer it; a caller's own wins."""
    if "prompt_cache_key" not in body:
        stable = {
            "model": model,
            "tools": body.get("tools"),
            "instructions": body.get("instructions"),
            "system": [
                m
                for m in (body.get("messages") or body.get("input") or [])
                if isinstance(m, dict) and m.get("role") in ("system", "developer")
            ],
        }
        digest = hashlib.sha256(orjson.dumps(stable, option=orjson.OPT_SORT_KEYS)).hexdigest()
        body["prompt_cache_key"] = "steer-" + digest[:32]
    if mode == "long" and "prompt_cache_retention" not in body:
        if model.lower().startswith(_LONG_RETENTION):
            body["prompt_cache_retention"] = "24h"


class CacheWatch:
    """A client's prompt-cache health: warns once (the SDK's logger) when calls keep
    writing to a provider's prompt cache and none ever reads from it."""

    __slots__ = ("reads", "warned", "writes", "written")

    AFTER = 3  # calls that wrote, with no read, before the warning

    def __init__(self) -> None:
        self.writes = 0  # calls that wrote to the cache
        self.reads = 0  # calls that read from it
        self.written = 0  # tokens written
        self.warned = False

    def observe(self, usage: dict[str, Any]) -> None:
        info = usage.get("cache_info")
        if not info or self.warned:
            return
        if info.get("cached_tokens"):
            self.reads += 1
        if info.get("cache_creation_tokens"):
            self.writes += 1
            self.written += info["cache_creation_tokens"]
        if self.writes >= self.AFTER and not self.reads:
            self.warned = True
            import logging

            logging.getLogger("steer_llm_sdk").warning(
                "prompt cache: %d calls wrote %d tokens to the provider's cache and none "
                "read from it: a prefix is read only when it is byte-identical and asked "
                "again within the cache's lifetime (about 5 minutes; cache_prompt='long' "
                "for longer); a timestamp or an id early in the system prompt breaks it",
                self.writes,
                self.written,
            )
