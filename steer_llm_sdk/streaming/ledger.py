"""Usage across the attempts of one call, and the response built from it.

The provider's counts where it sent them; estimates (``estimate.py``) where it did
not, or for an attempt that broke; earlier attempts added in. Pure bookkeeping: no
I/O, nothing of the pipeline.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import JSONParseError
from ..providers.base import StreamState, unify_finish
from ..results import StreamingResponse, parse_json_text

if TYPE_CHECKING:
    from .call import Call

__all__ = ["Ledger", "add_usage", "build_response"]


def add_usage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two usage dicts added up (counts, cache figures; estimated if either is)."""
    out = dict(a)
    for key in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens"):
        if key in a or key in b:
            out[key] = a.get(key, 0) + b.get(key, 0)
    if "cache_info" in a or "cache_info" in b:
        ca, cb = a.get("cache_info") or {}, b.get("cache_info") or {}
        out["cache_info"] = {
            k: ca.get(k, 0) + cb.get(k, 0) for k in ("cached_tokens", "cache_creation_tokens")
        }
    if a.get("estimated") or b.get("estimated"):
        out["estimated"] = True
    return out


class Ledger:
    """The usage of one call: earlier (broken) attempts plus the current one."""

    __slots__ = ("_cache", "call", "counted", "earlier")

    def __init__(self, call: Call) -> None:
        self.call = call
        self.earlier: list[dict[str, Any]] = []  # usage of attempts that broke
        self.counted = False  # the last streaming attempt is already in `earlier`
        self._cache: dict[str, Any] | None = None

    def attempt_broke(self, state: StreamState, attempt_text: str) -> None:
        """An attempt that broke after delivering ``attempt_text``: the provider's
        prompt count when it sent one, the completion estimated from the text."""
        from .estimate import count_tokens

        call = self.call
        completion, _ = count_tokens(attempt_text, call.model, call.options.aggregator_type)
        if state.usage:
            usage = dict(state.usage)
            usage["completion_tokens"] = max(usage.get("completion_tokens", 0), completion)
        else:
            usage = self._estimate("")
            usage["completion_tokens"] = completion
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["estimated"] = True
        self.earlier.append(usage)
        self.counted = True

    def partial(self, state: StreamState | None, attempt_text: str) -> dict[str, Any]:
        """Usage so far of a call that failed (the last attempt estimated)."""
        if self.counted:  # the last attempt that streamed is in `earlier` already
            usage: dict[str, Any] = {}
            for earlier in self.earlier:
                usage = add_usage(usage, earlier)
            return usage
        return self._combine(state or StreamState(), attempt_text, force_estimate=True)

    def usage(self, state: StreamState | None, attempt_text: str) -> dict[str, Any]:
        """The call's usage once it ended (computed once)."""
        cached = self._cache
        if cached is None:
            cached = self._cache = self._combine(state or StreamState(), attempt_text)
        return cached

    def _estimate(self, text: str) -> dict[str, Any]:
        from .estimate import estimate_usage

        call = self.call
        return estimate_usage(
            call.request.messages,
            text,
            call.model,
            call.options.aggregator_type,
            protocol=call.provider.protocol,
        )

    def _combine(
        self, state: StreamState, text: str, *, force_estimate: bool = False
    ) -> dict[str, Any]:
        usage: dict[str, Any]
        if state.usage is not None and not force_estimate:
            usage = dict(state.usage)
        elif not self.call.options.enable_usage_aggregation:
            usage = {}
        else:
            usage = self._estimate(text)
            if state.usage and state.usage.get("prompt_tokens"):
                usage["prompt_tokens"] = state.usage["prompt_tokens"]
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        for earlier in self.earlier:
            usage = add_usage(usage, earlier)
        written = self.call.cache_written  # the prompt cache this call made (billed)
        if written and usage:
            made = {"cached_tokens": 0, "cache_creation_tokens": written}
            usage = add_usage(
                usage, {"prompt_tokens": written, "total_tokens": written, "cache_info": made}
            )
        return usage


class Tries(Protocol):
    """What the response tells of the attempts (an ``attempts.Attempts``)."""

    count: int
    resumptions: int
    warnings: list[str]


def build_response(
    call: Call,
    state: StreamState | None,
    text: str,
    usage: dict[str, Any],
    attempts: Tries,
    timings: tuple[float, float | None, float | None],
) -> StreamingResponse:
    """The :class:`StreamingResponse` of a call that ended: text, usage, cost (once,
    from genai-prices), the unified finish reason, the attempts' figures and
    warnings; ``timings``: the call's start, first token and end (perf_counter)."""
    started_at, first_token_at, finished_at = timings
    from ..pricing import compute_cost

    state = state or StreamState()
    cost = (
        compute_cost(
            call.provider.name, call.model, usage, call.price_overrides, call.pricing_model
        )
        if usage
        else None
    )
    end = finished_at or time.perf_counter()
    reason = state.reason
    if reason is None and state.finish_reason is not None:
        reason = unify_finish(state.finish_reason)
    refusal = state.refusal_text
    if reason == "refusal" and refusal is None:
        refusal = text  # Anthropic: a stop reason, with whatever text came before
    transcript = state.transcript
    if transcript and not text:
        text = transcript  # a spoken answer: its transcript is the answer's text
    response = StreamingResponse(
        text=text,
        usage=usage,
        cost_usd=cost,
        model=call.model,
        provider=call.provider.name,
        finish_reason=reason,
        raw_finish_reason=state.finish_reason,
        response_model=state.model,
        request_id=state.response_id,
        tool_calls=list(state.tool_calls),
        reasoning_text=state.reasoning_text or None,
        refusal=refusal,
        logprobs=state.logprobs,
        provider_data=state.provider_data or None,
        time_to_first_token=(first_token_at - started_at if first_token_at else None),
        duration=end - started_at,
        attempts=attempts.count,
        resumptions=attempts.resumptions,
        warnings=list(attempts.warnings),
        files=state.answer_files() if state.files else [],
        transcript=transcript,
    )
    if call.options.enable_json_stream_handler:
        try:
            response._json = parse_json_text(text, **call.context)
        except JSONParseError as exc:
            response._json_error = exc
    return response
