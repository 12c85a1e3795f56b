"""The streaming pipeline: from transport bytes to the caller's chunks and response.

One :class:`StreamRun` per call. Its :meth:`StreamRun.chunks` async generator is what
``client.stream()`` returns, so the per-chunk path is a single generator: read bytes,
split SSE, decode, yield. ``stream_with_usage()`` drains the same generator and then
builds the response with :meth:`StreamRun.response`.

Reliability rules (README, "Reliability"):
- before any text reached the caller, connection errors, timeouts and retryable
  statuses are retried with backoff, up to ``max_reconnect_attempts``;
- after text reached the caller, nothing is ever delivered twice: where the protocol
  can continue an answer from a prefix, the call resumes with the text so far as the
  assistant's prefix; otherwise a :class:`StreamInterruptedError` is raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx
import orjson

from ..catalog import ProviderSpec
from ..errors import (
    ConnectionError,
    InvalidResponseError,
    JSONParseError,
    SteerError,
    StreamInterruptedError,
    TotalTimeoutError,
)
from ..models.response import StreamingResponse, parse_json_text
from ..models.streaming import StreamingOptions
from ..providers.base import ChatRequest, HTTPRequest, StreamState
from ..transport.http import Transport, backoff_delay, is_retryable, map_httpx_error
from ..transport.sse import SSEDecoder

__all__ = ["Call", "StreamRun"]

logger = logging.getLogger("steer_llm_sdk")


class Codec(Protocol):
    state: StreamState

    def encode(self, request: ChatRequest, api_key: str | None) -> HTTPRequest: ...
    def decode(self, event: str | None, data: bytes) -> str | None: ...
    def decode_response(self, body: bytes) -> str: ...
    def finish(self) -> None: ...
    def parse_error(self, status: int, headers: Any, body: bytes) -> SteerError: ...


@dataclass(slots=True)
class Call:
    """Everything one call needs, resolved by the client."""

    provider: ProviderSpec
    base_url: str
    api_key: str | None
    model: str  # the provider's name for the model
    request: ChatRequest
    options: StreamingOptions
    codec_factory: Callable[[], Codec]
    transport: Transport
    price_overrides: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    resolve_base_url: Callable[[], Awaitable[str]] | None = None  # when base_url is ""
    can_resume: bool = False  # the server continues a final assistant message


def _is_async(fn: Callable[..., Any] | None) -> bool:
    """An ``async def`` function (checked by its code flags: no inspect import)."""
    code = getattr(fn, "__code__", None)
    return code is not None and bool(code.co_flags & 0x80)  # CO_COROUTINE


async def _invoke(fn: Callable[..., Any], *args: Any) -> None:
    """Call a sync or async callback (or one that returns an awaitable)."""
    result = fn(*args)
    if hasattr(result, "__await__"):
        await result


class StreamRun:
    """One call's state: retries, resumptions, text so far, usage, timings."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.parts: list[str] = []  # every chunk delivered to the caller
        self.attempts = 0
        self.resumptions = 0
        self.started_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self.state: StreamState | None = None  # the last attempt's codec state
        self._attempt_usages: list[dict[str, Any]] = []  # earlier attempts' usage
        self._error_reported = False
        self._started = False
        self._last_start = 0  # index in parts where the last attempt's text begins
        self._retries = 0
        self._deadline: float | None = None  # set when the call starts (total_timeout)
        self._usage_cache: dict[str, Any] | None = None
        opts = call.options
        self._timeout = httpx.Timeout(
            connect=opts.connection_timeout,
            read=opts.read_timeout,
            write=opts.read_timeout,
            pool=opts.connection_timeout,
        )

    # -- the generator -----------------------------------------------------------
    async def chunks(self) -> AsyncGenerator[str, None]:
        """Yield text chunks as they arrive; raise typed errors; run the callbacks.

        Deliberately one generator with the read loop inline: each nested async
        generator would add a resume per chunk on the hottest path of the SDK.
        """
        call = self.call
        opts = call.options
        parts = self.parts
        on_delta = opts.on_delta
        delta_async = _is_async(on_delta)
        batch = opts.delta_batch_size
        pending: list[str] = []
        coalesce = opts.coalesce_deltas
        context = call.context
        try:
            self._start_clock()
            if not call.base_url and call.resolve_base_url is not None:
                call.base_url = await call.resolve_base_url()
            while True:
                codec, response, strip_lead = await self._open()
                decode = codec.decode
                sse = SSEDecoder(opts.max_event_bytes)
                feed = sse.feed
                got_text = False
                texts: AsyncGenerator[list[str], None] | None = None
                try:
                    lead = getattr(codec, "lead_text", "")
                    if lead:
                        parts.append(lead)
                        self._first_token()
                        yield lead
                    if response.headers.get("content-type", "").startswith("application/json"):
                        # The server ignored stream=true and sent one JSON body.
                        body = await response.aread()
                        try:
                            texts = _once([codec.decode_response(body)])
                        except _SHAPE_ERRORS as exc:
                            raise _shape_error(exc) from exc
                    else:
                        texts = self._decoded(response, feed, decode, sse)
                    async for batch_texts in texts:
                        if coalesce and len(batch_texts) > 1:
                            batch_texts = ["".join(batch_texts)]
                        for text in batch_texts:
                            if strip_lead:
                                text, strip_lead = _strip_resume_lead(text, strip_lead)
                                if not text:
                                    continue
                            got_text = True
                            parts.append(text)
                            if self.first_token_at is None:
                                self._first_token()
                            if on_delta is not None:
                                if batch == 1:
                                    if delta_async:
                                        await on_delta(text)
                                    else:
                                        await _invoke(on_delta, text)
                                else:
                                    pending.append(text)
                                    if len(pending) >= batch:
                                        joined = "".join(pending)
                                        pending.clear()
                                        await _invoke(on_delta, joined)
                            yield text
                    codec.finish()
                    if not codec.state.done:
                        raise self._incomplete(codec.state, got_text, sse)
                except httpx.HTTPError as exc:
                    await response.aclose()
                    await self._recover(map_httpx_error(exc, **context), codec)
                    continue
                except SteerError as exc:
                    await response.aclose()
                    _fill_context(exc, context)
                    await self._recover(exc, codec)
                    continue
                finally:
                    if texts is not None:
                        await texts.aclose()
                    await response.aclose()
                break
            if pending:
                await _invoke(on_delta, "".join(pending))  # type: ignore[arg-type]
                pending.clear()
            self.finished_at = time.perf_counter()
            await self._complete()
        except Exception as exc:  # not GeneratorExit / CancelledError: those are no failure
            await self._report_error(exc)
            raise

    def _decoded(
        self,
        response: httpx.Response,
        feed: Callable[[bytes], list[tuple[str | None, bytes]]],
        decode: Callable[[str | None, bytes], str | None],
        sse: SSEDecoder,
    ) -> AsyncGenerator[list[str], None]:
        """Texts decoded per network read (a list per read: one resume per read, not
        per chunk). Without total_timeout this is a plain async generator over httpx's
        raw reads; with it, each read is bounded by the time left."""
        raw = (
            response.aiter_raw()
            if "content-encoding" not in response.headers
            else response.aiter_bytes()
        )
        deadline = self._deadline
        if deadline is not None:
            raw = _with_deadline(raw, deadline, self.call.context)
        return _texts(raw, feed, decode, sse)

    async def _open(self) -> tuple[Codec, httpx.Response, str]:
        """Send the request (again), retrying what may be retried before any response."""
        call = self.call
        while True:
            self.attempts += 1
            codec = call.codec_factory()
            request = call.request
            strip_lead = ""
            if self.parts:  # resuming: continue from the text already delivered
                so_far = "".join(self.parts)
                prefix = so_far.rstrip()
                strip_lead = so_far[len(prefix) :]
                request = replace(request, prefix=prefix)
            http = codec.encode(request, call.api_key)
            try:
                response = await call.transport.open(
                    call.base_url,
                    http.method,
                    http.path,
                    http.headers,
                    orjson.dumps(http.json),
                    timeout=self._timeout,
                    parse_error=codec.parse_error,
                    deadline=self._deadline,
                    context=call.context,
                    options=call.options,
                )
            except SteerError as exc:
                if self._may_retry(exc):
                    await self._backoff(exc)
                    continue
                if self.parts:
                    raise self._interrupted(exc) from exc
                raise
            if not self._started:
                self._started = True
                if call.options.on_start is not None:
                    await _invoke(call.options.on_start)
            self.state = codec.state
            self._last_start = len(self.parts)
            return codec, response, strip_lead

    def _may_retry(self, exc: SteerError) -> bool:
        opts = self.call.options
        return (
            opts.retry_on_connection_error
            and self._retries < opts.max_reconnect_attempts
            and is_retryable(exc)
        )

    async def _recover(self, exc: SteerError, codec: Codec) -> None:
        """A stream failed mid-way: return to try again, else raise the right error."""
        parts = self.parts
        if not parts and self._may_retry(exc):
            await self._backoff(exc)
            return
        if parts and self.call.can_resume and self._may_retry(exc):
            if "".join(parts).strip():
                attempt_text = "".join(parts[self._last_start :])
                self.resumptions += 1
                self._attempt_usages.append(self._attempt_usage(codec.state, attempt_text))
                logger.info(
                    "stream broke after %d chars (%s); resuming from the text so far",
                    sum(map(len, parts)),
                    type(exc).__name__,
                )
                await self._backoff(exc)
                return
        if parts and not isinstance(exc, TotalTimeoutError):
            raise self._interrupted(exc) from exc
        if parts:
            self._attach_partial(exc)
        raise exc

    def _incomplete(self, state: StreamState, got_text: bool, sse: SSEDecoder) -> SteerError:
        context = self.call.context
        if not got_text and state.model is None and state.usage is None:
            return InvalidResponseError(
                "the response is not a valid event stream "
                f"({sse.pending_bytes} bytes of undecodable data)",
                **context,
            )
        return ConnectionError(
            "the stream ended before the provider said it was complete "
            "(the connection closed early or the body was truncated)",
            **context,
        )

    # -- helpers -------------------------------------------------------------
    def _first_token(self) -> None:
        self.first_token_at = time.perf_counter()

    async def _backoff(self, exc: SteerError) -> None:
        self._retries += 1
        opts = self.call.options
        delay = backoff_delay(
            self._retries,
            opts.reconnect_delay,
            getattr(exc, "retry_after", None),
            opts.max_retry_after,
        )
        deadline = self._deadline
        if deadline is not None:
            remaining = deadline - _loop_time()
            if delay >= remaining:
                raise TotalTimeoutError(
                    f"total_timeout would pass before the next retry ({exc.message})",
                    **self.call.context,
                ) from exc
        logger.info("retry %d in %.2fs after %s", self._retries, delay, type(exc).__name__)
        if delay > 0:
            import asyncio

            await asyncio.sleep(delay)

    def _interrupted(self, exc: SteerError) -> StreamInterruptedError:
        text = "".join(self.parts)
        preserve = self.call.options.preserve_partial_response
        how = (
            "the partial text is in .partial_text"
            if preserve
            else "the partial text was dropped (set preserve_partial_response=True to keep it)"
        )
        error = StreamInterruptedError(
            f"the stream was interrupted after {len(text)} characters: {exc.message}; {how}",
            partial_text=text if preserve else None,
            partial_usage=self._partial_usage() if preserve else None,
            cause=exc,
            **self.call.context,
        )
        error.attempts = self.attempts
        return error

    def _attach_partial(self, exc: SteerError) -> None:
        if self.call.options.preserve_partial_response:
            exc.partial_text = "".join(self.parts)

    def _partial_usage(self) -> dict[str, Any]:
        state = self.state or StreamState()
        attempt_text = "".join(self.parts[self._last_start :])  # earlier attempts: counted
        return self._combine_usage(state, attempt_text, force_estimate=True)

    def _attempt_usage(self, state: StreamState, attempt_text: str) -> dict[str, Any]:
        """Usage of an attempt that broke: the provider's prompt count when it sent
        one, the completion estimated from the text that attempt delivered."""
        from .estimate import count_tokens

        opts = self.call.options
        completion, _ = count_tokens(attempt_text, self.call.model, opts.aggregator_type)
        if state.usage:
            usage = dict(state.usage)
            usage["completion_tokens"] = max(usage.get("completion_tokens", 0), completion)
        else:
            usage = self._estimate("", self.call.request.messages)
            usage["completion_tokens"] = completion
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["estimated"] = True
        return usage

    def _estimate(self, text: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        from .estimate import estimate_usage

        return estimate_usage(messages, text, self.call.model, self.call.options.aggregator_type)

    def _combine_usage(
        self, state: StreamState, text: str, *, force_estimate: bool = False
    ) -> dict[str, Any]:
        opts = self.call.options
        usage: dict[str, Any]
        if state.usage is not None and not force_estimate:
            usage = dict(state.usage)
        elif not opts.enable_usage_aggregation:
            usage = {}
        else:
            usage = self._estimate(text, self.call.request.messages)
            if state.usage and state.usage.get("prompt_tokens"):
                usage["prompt_tokens"] = state.usage["prompt_tokens"]
                usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        for earlier in self._attempt_usages:
            usage = _add_usage(usage, earlier)
        return usage

    async def _complete(self) -> None:
        opts = self.call.options
        if opts.on_usage is None and opts.on_complete is None:
            return
        if opts.on_usage is not None:
            await _invoke(opts.on_usage, self.usage())
        if opts.on_complete is not None:
            await _invoke(opts.on_complete, "".join(self.parts))

    async def _report_error(self, exc: BaseException) -> None:
        on_error = self.call.options.on_error
        if on_error is None or self._error_reported:
            return
        self._error_reported = True
        await _invoke(on_error, exc)

    # -- results -------------------------------------------------------------
    def usage(self) -> dict[str, Any]:
        cached = self._usage_cache
        if cached is None:
            state = self.state or StreamState()
            text = "".join(self.parts[self._last_start :])
            cached = self._combine_usage(state, text)
            self._usage_cache = cached
        return cached

    def response(self) -> StreamingResponse:
        from ..pricing import compute_cost

        state = self.state or StreamState()
        text = "".join(self.parts)
        usage = self.usage()
        call = self.call
        cost = (
            compute_cost(call.provider.name, call.model, usage, call.price_overrides)
            if usage
            else None
        )
        end = self.finished_at or time.perf_counter()
        response = StreamingResponse(
            text=text,
            usage=usage,
            cost_usd=cost,
            model=call.model,
            provider=call.provider.name,
            finish_reason=state.finish_reason,
            response_model=state.model,
            request_id=state.response_id,
            tool_calls=state.tool_call_list(),
            reasoning_text=state.reasoning_text or None,
            refusal=state.refusal,
            time_to_first_token=(
                self.first_token_at - self.started_at if self.first_token_at else None
            ),
            duration=end - self.started_at,
            attempts=self.attempts,
            resumptions=self.resumptions,
        )
        if call.options.enable_json_stream_handler:
            try:
                response._json = parse_json_text(text, **call.context)
            except JSONParseError as exc:
                response._json_error = exc
        return response

    # -- non-streaming -------------------------------------------------------------
    async def generate(self) -> StreamingResponse:
        """One non-streamed request, with the same retries and callbacks."""
        call = self.call
        self._start_clock()
        try:
            if not call.base_url and call.resolve_base_url is not None:
                call.base_url = await call.resolve_base_url()
            request = replace(call.request, stream=False)
            while True:
                self.attempts += 1
                codec = call.codec_factory()
                http = codec.encode(request, call.api_key)
                try:
                    response = await call.transport.open(
                        call.base_url,
                        http.method,
                        http.path,
                        http.headers,
                        orjson.dumps(http.json),
                        timeout=self._timeout,
                        parse_error=codec.parse_error,
                        deadline=self._deadline,
                        context=call.context,
                        options=call.options,
                    )
                    if not self._started:
                        self._started = True
                        if call.options.on_start is not None:
                            await _invoke(call.options.on_start)
                    try:
                        body = await response.aread()
                    except httpx.HTTPError as exc:
                        raise map_httpx_error(exc, **call.context) from exc
                    finally:
                        await response.aclose()
                    try:
                        text = getattr(codec, "lead_text", "") + codec.decode_response(body)
                    except _SHAPE_ERRORS as exc:
                        raise _shape_error(exc) from exc
                except SteerError as exc:
                    _fill_context(exc, call.context)
                    if self._may_retry(exc):
                        await self._backoff(exc)
                        continue
                    raise
                break
            self.state = codec.state
            self.parts = [text] if text else []
            self.first_token_at = self.finished_at = time.perf_counter()
            await self._complete()
            return self.response()
        except Exception as exc:
            await self._report_error(exc)
            raise

    def _start_clock(self) -> None:
        total = self.call.options.total_timeout
        if total and self._deadline is None:
            self._deadline = _loop_time() + total


def _loop_time() -> float:
    # asyncio is imported where it is used, not at import: an async program has it
    # loaded already, and `import steer_llm_sdk` stays as cheap as httpx's.
    import asyncio

    return asyncio.get_running_loop().time()


async def _once(texts: list[str]) -> AsyncGenerator[list[str], None]:
    if any(texts):
        yield [t for t in texts if t]


async def _texts(
    raw: AsyncIterator[bytes],
    feed: Callable[[bytes], list[tuple[str | None, bytes]]],
    decode: Callable[[str | None, bytes], str | None],
    sse: SSEDecoder,
) -> AsyncGenerator[list[str], None]:
    """For each network read, the texts its complete SSE events carry."""
    try:
        async for data in raw:
            texts = [text for event, payload in feed(data) if (text := decode(event, payload))]
            if texts:
                yield texts
        texts = [text for event, payload in sse.close() if (text := decode(event, payload))]
    except _SHAPE_ERRORS as exc:  # valid JSON of the wrong shape (try is free in 3.11)
        raise _shape_error(exc) from exc
    if texts:
        yield texts


_SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError)


def _shape_error(exc: Exception) -> InvalidResponseError:
    return InvalidResponseError(
        f"the provider sent an event of an unexpected shape ({type(exc).__name__}: {exc})"
    )


async def _with_deadline(
    raw: AsyncIterator[bytes], deadline: float, context: dict[str, Any]
) -> AsyncIterator[bytes]:
    """Bound each read by what is left of ``total_timeout``."""
    import asyncio

    loop = asyncio.get_running_loop()
    iterator = raw.__aiter__()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TotalTimeoutError("total_timeout passed", **context)
        try:
            async with asyncio.timeout(remaining):
                data = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise TotalTimeoutError("total_timeout passed while streaming", **context) from None
        yield data


def _strip_resume_lead(text: str, strip_lead: str) -> tuple[str, str]:
    """After a resume, the white space cut from the prefix was already delivered:
    drop it from the start of the continuation instead of sending it twice."""
    i = 0
    while i < len(text) and i < len(strip_lead) and text[i].isspace():
        i += 1
    if i < len(text) or i >= len(strip_lead):
        return text[i:], ""
    return "", strip_lead[i:]


def _fill_context(exc: SteerError, context: dict[str, Any]) -> None:
    exc.provider = exc.provider or context.get("provider")
    exc.model = exc.model or context.get("model")


def _add_usage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
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
