"""The emulator's prompt caches, as the real APIs keep them.

Anthropic: the request's blocks in prefix order (tools, system, message blocks); a
breakpoint is a block with ``cache_control`` (a top-level ``cache_control`` marks the
last block); more than four is the API's 400. A breakpoint whose prefix reaches the
model's minimum cacheable length writes that prefix; a read is the longest prefix,
ending at a block no more than 20 blocks before a breakpoint, written by an earlier
request. ``cache_control`` itself is not part of a block's identity.

OpenAI (requests that carry a ``prompt_cache_key``): prefixes at message boundaries
of 1,024 tokens or more are written; a read is the longest one seen before under
the same key, rounded down to a multiple of 128 tokens.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ._wire import count_tokens

__all__ = ["AnthropicCache", "OpenAICache", "min_tokens"]

_MINIMUMS = (
    ("opus-4-6", 4096),
    ("opus-4-5", 4096),
    ("haiku-4-5", 4096),
    ("haiku-4", 4096),
    ("3-5-haiku", 2048),
    ("3-haiku", 2048),
    ("haiku-3", 2048),
)
_LOOKBACK = 20  # blocks the API looks back from a breakpoint for an earlier hit
_MAX_BREAKPOINTS = 4


def min_tokens(model: str) -> int:
    name = model.lower()
    return next((m for fragment, m in _MINIMUMS if fragment in name), 1024)


def _identity(block: Any) -> str:
    if isinstance(block, dict):
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return json.dumps(block, sort_keys=True)


def _chain(blocks: list[Any]) -> tuple[list[str], list[int]]:
    """Each block's prefix hash and the prefix's tokens, in order."""
    hashes: list[str] = []
    tokens: list[int] = []
    digest, total = "", 0
    for block in blocks:
        text = _identity(block)
        digest = hashlib.sha256((digest + text).encode()).hexdigest()
        total += count_tokens(text)
        hashes.append(digest)
        tokens.append(total)
    return hashes, tokens


class AnthropicCache:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    @staticmethod
    def blocks(body: dict[str, Any]) -> tuple[list[Any], list[int]]:
        """The blocks in prefix order, and the indexes of the breakpoints."""
        blocks: list[Any] = list(body.get("tools") or [])
        system = body.get("system")
        if isinstance(system, str):
            blocks.append({"type": "text", "text": system})
        elif isinstance(system, list):
            blocks.extend(system)
        marks = [i for i, b in enumerate(blocks) if isinstance(b, dict) and b.get("cache_control")]
        for message in body.get("messages") or []:
            content = message.get("content")
            for block in content if isinstance(content, list) else [content]:
                inner = block.get("content") if isinstance(block, dict) else None
                nested = isinstance(inner, list) and any(
                    isinstance(b, dict) and b.get("cache_control") for b in inner
                )
                if (isinstance(block, dict) and block.get("cache_control")) or nested:
                    marks.append(len(blocks))
                    if nested and block.get("cache_control"):
                        marks.append(len(blocks))  # two markers on one block: both count
                blocks.append(block)
        if body.get("cache_control") and blocks:
            marks.append(len(blocks) - 1)
        return blocks, marks

    def problem(self, body: dict[str, Any]) -> str | None:
        _, marks = self.blocks(body)
        if len(marks) > _MAX_BREAKPOINTS:
            return (
                f"A maximum of {_MAX_BREAKPOINTS} blocks with cache_control may be "
                f"provided. Found {len(marks)}."
            )
        return None

    def usage(self, body: dict[str, Any]) -> tuple[int, int]:
        """(tokens read from the cache, tokens written to it) for this request."""
        blocks, marks = self.blocks(body)
        if not marks:
            return 0, 0
        hashes, tokens = _chain(blocks)
        minimum = min_tokens(str(body.get("model") or ""))
        valid = sorted({i for i in marks if tokens[i] >= minimum})
        read = 0
        for mark in valid:
            for j in range(mark, max(-1, mark - _LOOKBACK), -1):
                if hashes[j] in self.seen:
                    read = max(read, tokens[j])
                    break
        written = max((tokens[i] for i in valid), default=0)
        for mark in valid:
            self.seen.add(hashes[mark])
        return read, max(0, written - read)


class OpenAICache:
    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()

    def usage(self, body: dict[str, Any]) -> tuple[int, int]:
        key = body.get("prompt_cache_key")
        if not isinstance(key, str):
            return 0, 0
        head: list[Any] = [{"tools": body.get("tools")}] if body.get("tools") else []
        head += list(body.get("messages") or body.get("input") or [])
        hashes, tokens = _chain(head)
        read = 0
        for digest, size in zip(hashes, tokens, strict=True):
            if size >= 1024 and (key, digest) in self.seen:
                read = max(read, size // 128 * 128)
        for digest, size in zip(hashes, tokens, strict=True):
            if size >= 1024:
                self.seen.add((key, digest))
        return read, 0
