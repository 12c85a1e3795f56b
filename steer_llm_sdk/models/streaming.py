"""Streaming options and presets (the guide fixes this import path).

``StreamingOptions`` is a frozen dataclass: validated once at construction, never
mutated by a call, so the presets below are safe to share. Derive a variant with
:meth:`StreamingOptions.replace`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ConfigurationError

__all__ = [
    "HIGH_THROUGHPUT_OPTIONS",
    "JSON_MODE_OPTIONS",
    "LOW_LATENCY_OPTIONS",
    "AggregatorType",
    "StreamingOptions",
]

AggregatorType = Literal["auto", "tiktoken", "character"]
_AGGREGATORS = ("auto", "tiktoken", "character")
_CALLBACKS = ("on_start", "on_delta", "on_usage", "on_complete", "on_error")
Callback = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class StreamingOptions:
    """How one call streams. Every field has a sensible default.

    Usage and JSON:
        enable_usage_aggregation: when the provider reports no usage (or the stream
            ends early), estimate it and mark it ``estimated``. When False, such a
            response has an empty ``usage`` and ``cost_usd`` None.
        aggregator_type: how to estimate: "tiktoken" (a real BPE tokenizer, needs the
            ``tokenizers`` extra), "character" (a fast heuristic) or "auto" (tiktoken
            when available offline, else character).
        enable_json_stream_handler: parse the final text as JSON when the stream ends,
            so ``get_json()`` returns it; invalid JSON makes ``get_json()`` raise
            :class:`~steer_llm_sdk.errors.JSONParseError` carrying the raw text.

    Timeouts (seconds; None means no limit):
        connection_timeout: establishing the connection.
        read_timeout: the longest silence allowed between bytes of the response.
        total_timeout: the whole call, retries included.

    Retries:
        retry_on_connection_error: retry connection errors, timeouts before the first
            byte and retryable statuses (408, 409, 429, 5xx, 529).
        max_reconnect_attempts: how many retries (not counting the first try).
        reconnect_delay: the first backoff in seconds; it doubles each retry, with
            jitter, and ``Retry-After`` from the provider wins when longer.
        preserve_partial_response: when a stream fails after text arrived, the error
            carries that text (``error.partial_text``) and an estimate of its usage.

    Limits (what a server may make the SDK hold or wait for):
        max_retry_after: the longest ``Retry-After`` honoured, in seconds (default 60);
            past it the call is not retried: the ``RateLimitError`` is raised at once,
            its ``retry_after`` the server's figure. A wait never passes ``total_timeout``.
        max_event_bytes: the largest SSE line or event accepted (default 16 MiB; None
            for no cap); past it the call fails with ``InvalidResponseError``.
        max_error_body_bytes: how much of an error response's body is read (default
            64 KiB); the rest is discarded unread.

    Files given by URL (downloaded by the SDK where the provider does not fetch them):
        max_download_bytes: the largest download (default 20 MiB); past it the call
            fails with ``FileDownloadError`` before anything is sent.
        allow_private_urls: download from loopback, private and link-local addresses
            too (default None: the client's ``allow_private_urls``, else refused).
    Routes (``model=[...]``, README "Routes"):
        first_token_timeout: no part of the answer within this many seconds of a
            request → :class:`~steer_llm_sdk.errors.FirstTokenTimeoutError`, not
            retried on the same route: a route moves on to its next entry at once.
        on_interrupt: after a part reached the caller, "resume" (resume where the
            server can, else ``StreamInterruptedError``) or "restart": start again on
            the route's next entry, announced by a ``Restart`` part
            (``stream_events()`` only; never while a tool call is open).

    Callbacks (sync or async functions): on_start(), on_delta(text), on_usage(usage),
        on_complete(final_text), on_error(error). An exception raised by a callback
        stops the stream and reaches the caller.

    Throughput:
        coalesce_deltas: deliver all the text decoded from one network read as one
            chunk instead of one chunk per SSE event: fewer, larger chunks.
        delta_batch_size: call ``on_delta`` once per this many chunks (joined), and
            once more at the end for the remainder.
    """

    enable_usage_aggregation: bool = True
    aggregator_type: AggregatorType = "auto"
    enable_json_stream_handler: bool = False
    connection_timeout: float | None = 10.0
    read_timeout: float | None = 120.0
    total_timeout: float | None = None
    retry_on_connection_error: bool = True
    max_reconnect_attempts: int = 2
    reconnect_delay: float = 0.5
    preserve_partial_response: bool = False
    on_start: Callback | None = None
    on_delta: Callback | None = None
    on_usage: Callback | None = None
    on_complete: Callback | None = None
    on_error: Callback | None = None
    coalesce_deltas: bool = False
    delta_batch_size: int = 1
    max_retry_after: float = 60.0
    max_event_bytes: int | None = 16 * 1024 * 1024
    max_error_body_bytes: int = 64 * 1024
    max_download_bytes: int = 20 * 1024 * 1024
    allow_private_urls: bool | None = None
    first_token_timeout: float | None = None
    on_interrupt: Literal["resume", "restart"] = "resume"

    def __post_init__(self) -> None:
        if self.aggregator_type not in _AGGREGATORS:
            raise ConfigurationError(
                f"aggregator_type={self.aggregator_type!r} is not known: "
                f"use one of {', '.join(repr(a) for a in _AGGREGATORS)}"
            )
        if self.on_interrupt not in ("resume", "restart"):
            raise ConfigurationError(
                f"on_interrupt={self.on_interrupt!r} is not known: use 'resume' or 'restart'"
            )
        for name in ("connection_timeout", "read_timeout", "total_timeout", "first_token_timeout"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigurationError(
                    f"{name} must be a number of seconds or None, not {type(value).__name__}"
                )
            if not value > 0 or math.isnan(value):
                raise ConfigurationError(
                    f"{name}={value!r} must be greater than 0 (use None for no limit)"
                )
        attempts = self.max_reconnect_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ConfigurationError(
                f"max_reconnect_attempts={attempts!r} must be a whole number >= 0"
            )
        delay = self.reconnect_delay
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
            raise ConfigurationError(f"reconnect_delay={delay!r} must be a number >= 0")
        cap = self.max_download_bytes
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigurationError(f"max_download_bytes={cap!r} must be a whole number >= 1")
        size = self.delta_batch_size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigurationError(f"delta_batch_size={size!r} must be a whole number >= 1")
        wait = self.max_retry_after
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not wait >= 0:
            raise ConfigurationError(f"max_retry_after={wait!r} must be a number of seconds >= 0")
        for name in ("max_event_bytes", "max_error_body_bytes"):
            value = getattr(self, name)
            if value is None and name == "max_event_bytes":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
                raise ConfigurationError(f"{name}={value!r} must be a whole number >= 1024")
        for name in _CALLBACKS:
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ConfigurationError(
                    f"{name} must be a function (sync or async) or None, not {type(value).__name__}"
                )

    def replace(self, **changes: Any) -> StreamingOptions:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def has_callbacks(self) -> bool:
        return any(getattr(self, name) is not None for name in _CALLBACKS)


JSON_MODE_OPTIONS = StreamingOptions(enable_json_stream_handler=True)
"""Parse the answer as JSON at the end; pair with ``response_format={"type": "json_object"}``."""

HIGH_THROUGHPUT_OPTIONS = StreamingOptions(
    coalesce_deltas=True,
    delta_batch_size=16,
    aggregator_type="character",
)
"""Fewer, larger chunks and batched ``on_delta`` calls, for many concurrent streams."""

LOW_LATENCY_OPTIONS = StreamingOptions(
    connection_timeout=5.0,
    read_timeout=30.0,
    max_reconnect_attempts=1,
    reconnect_delay=0.1,
)
"""Fail fast: short timeouts, one quick retry, every chunk delivered at once."""
