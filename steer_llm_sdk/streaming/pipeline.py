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
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson

from ..catalog import ProviderSpec
from ..errors import (
    ConnectionError,
    InterruptedInvalidResponseError,
    InterruptedReadTimeoutError,
    InterruptedTotalTimeoutError,
    InvalidResponseError,
    JSONParseError,
    SteerError,
    StreamInterruptedError,
    TotalTimeoutError,
    scrub_chain,
)
from ..models.response import StreamingResponse, parse_json_text
from ..models.streaming import StreamingOptions
from ..parts import Finish, PartialOutput, TextDelta
from ..providers.base import ChatRequest, HTTPRequest, StreamState, unify_finish
from ..transport.http import Transport, backoff_delay, is_retryable, map_httpx_error
from ..transport.sse import SSEDecoder
from .fair import Turns, turns

if TYPE_CHECKING:
    from ..telemetry import CallObserver

__all__ = ["Call", "StreamRun", "add_usage"]

logger = logging.getLogger("steer_llm_sdk")
_MISSING: Any = object()


class Codec(Protocol):
    state: StreamState
    lead_text: str

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
    codec_factory: Callable[..., Codec]
    transport: Transport
    price_overrides: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    resolve_base_url: Callable[[], Awaitable[str]] | None = None  # when base_url is ""
    can_resume: bool = False  # the server continues a final assistant message
    record: bool = False  # stream_events(): the codec records typed parts
    output: Any = None  # an output.OutputSpec when output= was given
    tools: list[Any] = field(default_factory=list)  # the Tool objects offered
    observer: CallObserver | None = None  # telemetry: start(run) at the call, end() once


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
        self._rich = False  # a non-text part (tool call, reasoning) reached the caller
        self._counted = False  # the last streaming attempt's usage is already counted
        self._output: Any = _MISSING  # the validated output, once validated
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
        observation = call.observer.start(self) if call.observer is not None else None
        try:
            self._start_clock()
            if self._deadline is not None and on_delta is not None:
                on_delta = self._bound(on_delta, "on_delta")
                delta_async = True
            if not call.base_url and call.resolve_base_url is not None:
                call.base_url = await call.resolve_base_url()
            while True:
                codec, response, strip_lead = await self._open()
                sse = SSEDecoder(opts.max_event_bytes)
                got_text = False
                texts: AsyncGenerator[list[str], None] | None = None
                try:
                    lead = codec.lead_text
                    if lead:
                        parts.append(lead)
                        self._first_token()
                        yield lead
                    if response.headers.get("content-type", "").startswith("application/json"):
                        # The server ignored stream=true and sent one JSON body.
                        body = await self._read_body(response)
                        try:
                            texts = _once([codec.decode_response(body)])
                        except _SHAPE_ERRORS as exc:
                            raise _shape_error(exc) from None
                    else:
                        texts = self._decoded(response, sse, codec)
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
            if call.output is not None:
                self.output()
            await self._complete()
        except BaseException as exc:
            if isinstance(exc, SteerError):
                scrub_chain(exc)  # no raw library exception (server bytes) in its chain
            if observation is not None:
                observation.end(self, exc)  # a failure, or abandoned by the caller
            if isinstance(exc, Exception):  # not GeneratorExit / CancelledError: no failure
                await self._report_error(exc)
            raise
        if observation is not None:
            observation.end(self, None)

    async def events(self) -> AsyncGenerator[Any, None]:
        """``stream_events()``: typed parts as they arrive, then :class:`Finish`.

        The same attempts, retries, callbacks and errors as :meth:`chunks`; the codec
        records non-text parts into its state, drained after every SSE event so that
        parts keep the order the provider sent them in. With ``output=``, the object
        so far is parsed incrementally, at most once per network read.
        """
        call = self.call
        opts = call.options
        parts = self.parts
        on_delta = opts.on_delta
        batch_size = opts.delta_batch_size
        pending: list[str] = []
        context = call.context
        spec = call.output
        partial = spec.partial() if spec is not None else None
        observation = call.observer.start(self) if call.observer is not None else None
        try:
            self._start_clock()
            if self._deadline is not None and on_delta is not None:
                on_delta = self._bound(on_delta, "on_delta")
            if not call.base_url and call.resolve_base_url is not None:
                call.base_url = await call.resolve_base_url()
            while True:
                codec, response, strip_lead = await self._open()
                state = codec.state
                out = state.out if state.out is not None else []
                sse = SSEDecoder(opts.max_event_bytes)
                got_text = False
                reads: AsyncGenerator[list[Any], None] | None = None
                try:
                    lead = codec.lead_text
                    if lead:
                        parts.append(lead)
                        self._first_token()
                        if partial is not None:
                            partial.feed(lead)
                        yield TextDelta(lead)
                    if response.headers.get("content-type", "").startswith("application/json"):
                        body = await self._read_body(response)
                        try:
                            text = codec.decode_response(body)
                        except _SHAPE_ERRORS as exc:
                            raise _shape_error(exc) from None
                        batch = [*out, TextDelta(text)] if text else list(out)
                        out.clear()
                        reads = _once_parts(batch)
                    else:
                        reads = self._part_reads(response, sse, codec)
                    async for batch in reads:
                        new_text = False
                        for part in batch:
                            if type(part) is TextDelta:
                                text = part.text
                                if strip_lead:
                                    text, strip_lead = _strip_resume_lead(text, strip_lead)
                                    if not text:
                                        continue
                                    part.text = text
                                got_text = new_text = True
                                parts.append(text)
                                if self.first_token_at is None:
                                    self._first_token()
                                if partial is not None:
                                    partial.feed(text)
                                if on_delta is not None:
                                    if batch_size == 1:
                                        await _invoke(on_delta, text)
                                    else:
                                        pending.append(text)
                                        if len(pending) >= batch_size:
                                            joined = "".join(pending)
                                            pending.clear()
                                            await _invoke(on_delta, joined)
                            else:
                                self._rich = True
                            yield part
                        if new_text and partial is not None and partial.value is not None:
                            yield PartialOutput(_unwrap(partial.value, spec))
                    codec.finish()
                    if not state.done:
                        raise self._incomplete(state, got_text, sse)
                    if out:  # tool calls that end with the stream
                        tail = list(out)
                        out.clear()
                        for part in tail:
                            yield part
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
                    if reads is not None:
                        await reads.aclose()
                    await response.aclose()
                break
            if pending:
                await _invoke(on_delta, "".join(pending))  # type: ignore[arg-type]
                pending.clear()
            self.finished_at = time.perf_counter()
            if spec is not None:
                self.output()
            await self._complete()
            result = self.response()
            if observation is not None:  # ended before Finish: a caller may stop at it
                observation.end(self, None)
                observation = None
            yield Finish(
                result.finish_reason or "other",
                result.raw_finish_reason,
                result.usage,
                result,
            )
        except BaseException as exc:
            if isinstance(exc, SteerError):
                scrub_chain(exc)  # no raw library exception (server bytes) in its chain
            if observation is not None:
                observation.end(self, exc)  # a failure, or abandoned by the caller
            if isinstance(exc, Exception):  # not GeneratorExit / CancelledError: no failure
                await self._report_error(exc)
            raise

    def _raw(self, response: httpx.Response) -> AsyncIterator[bytes]:
        raw = (
            response.aiter_raw()
            if "content-encoding" not in response.headers
            else response.aiter_bytes()
        )
        deadline = self._deadline
        if deadline is not None:
            raw = _with_deadline(raw, deadline, self.call.context)
        return raw

    def _part_reads(
        self, response: httpx.Response, sse: SSEDecoder, codec: Codec
    ) -> AsyncGenerator[list[Any], None]:
        return _parts(self._raw(response), sse, codec, self.call.options.read_timeout, turns())

    def _decoded(
        self, response: httpx.Response, sse: SSEDecoder, codec: Codec
    ) -> AsyncGenerator[list[str], None]:
        """Texts decoded per network read (a list per read: one resume per read, not
        per chunk). With total_timeout, each read is bounded by the time left."""
        return _texts(self._raw(response), sse, codec, self.call.options.read_timeout, turns())

    async def _open(self) -> tuple[Codec, httpx.Response, str]:
        """Send the request (again), retrying what may be retried before any response."""
        call = self.call
        budget = turns()
        while True:
            wait = budget.step()  # a fair share of the loop for the request's preparation
            if wait is not None:
                await wait
            self.attempts += 1
            codec = call.codec_factory(record=call.record)
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
                if self.parts or self._rich:
                    raise self._interrupted(exc)  # noqa: B904 - chained to exc on purpose
                raise
            if not self._started:
                self._started = True
                if call.options.on_start is not None:
                    await _invoke(self._bound(call.options.on_start, "on_start"))
            self.state = codec.state
            self._last_start = len(self.parts)
            self._counted = False
            return codec, response, strip_lead

    def _may_retry(self, exc: SteerError) -> bool:
        opts = self.call.options
        if not (
            opts.retry_on_connection_error
            and self._retries < opts.max_reconnect_attempts
            and is_retryable(exc)
        ):
            return False
        wait = getattr(exc, "retry_after", None)
        if wait is not None and wait > opts.max_retry_after:
            # Not worth a wait: the server would refuse again at max_retry_after. The
            # caller (or a fallback route) gets the server's own figure at once.
            if "max_retry_after" not in exc.message:
                exc.message += (
                    f" (Retry-After {wait:g} s is longer than max_retry_after="
                    f"{opts.max_retry_after:g} s: not retried)"
                )
            return False
        return True

    async def _recover(self, exc: SteerError, codec: Codec) -> None:
        """A stream failed mid-way: return to try again, else raise the right error.

        Before anything reached the caller, the call starts again; once a part did
        (text, a tool call, reasoning), it never does: it resumes from the text where
        the server can continue it, else raises StreamInterruptedError."""
        parts = self.parts
        delivered = bool(parts) or self._rich
        if not delivered and self._may_retry(exc):
            await self._backoff(exc)
            return
        if parts and self.call.can_resume and not self._rich and self._may_retry(exc):
            if "".join(parts).strip():
                attempt_text = "".join(parts[self._last_start :])
                self.resumptions += 1
                self._attempt_usages.append(self._attempt_usage(codec.state, attempt_text))
                self._counted = True  # this attempt's usage is in _attempt_usages now
                logger.info(
                    "stream broke after %d chars (%s); resuming from the text so far",
                    sum(map(len, parts)),
                    type(exc).__name__,
                )
                await self._backoff(exc)
                return
        if delivered:
            raise self._interrupted(exc)  # chained to exc, an SDK error (redacted)
        raise exc

    def _incomplete(self, state: StreamState, got_text: bool, sse: SSEDecoder) -> SteerError:
        context = self.call.context
        if (
            not got_text
            and state.model is None
            and state.usage is None
            and not state.tool_calls
            and not state.reasoning_parts
        ):
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
    async def _read_body(self, response: httpx.Response) -> bytes:
        """A whole (non-streamed) JSON body: at most ``max_event_bytes`` of it, read
        within what is left of ``total_timeout`` (each read within ``read_timeout``)."""
        cap = self.call.options.max_event_bytes or (1 << 62)
        context = self.call.context
        pieces: list[bytes] = []
        size = 0

        async def read() -> None:
            nonlocal size
            async for piece in response.aiter_raw():
                size += len(piece)
                if size > cap:
                    raise InvalidResponseError(
                        f"the response body is larger than max_event_bytes={cap} bytes",
                        **context,
                    )
                pieces.append(piece)

        deadline = self._deadline
        if deadline is None:
            await read()
        else:
            import asyncio

            try:
                async with asyncio.timeout_at(deadline):
                    await read()
            except TimeoutError:
                raise TotalTimeoutError(
                    "total_timeout passed while reading the response body", **context
                ) from None
        return b"".join(pieces)

    def _bound(self, fn: Any, name: str) -> Any:
        """With total_timeout, an async callback is bounded by the time left (a sync
        one cannot be interrupted: it runs to its end)."""
        deadline = self._deadline
        if fn is None or deadline is None:
            return fn
        context = self.call.context

        async def bounded(*args: Any) -> None:
            result = fn(*args)
            if hasattr(result, "__await__"):
                import asyncio

                timeout = asyncio.timeout(max(deadline - _loop_time(), 0.0))
                try:
                    async with timeout:
                        await result
                except TimeoutError:
                    if timeout.expired():
                        raise TotalTimeoutError(
                            f"total_timeout passed while the {name} callback was running",
                            **context,
                        ) from None
                    raise

        return bounded

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

    def _interrupted(self, exc: SteerError) -> SteerError:
        """The error for a stream that broke after a part reached the caller: always a
        StreamInterruptedError, and also the kind of what broke it where the caller
        would catch that kind before any part came (a TimeoutError for every timeout,
        an InvalidResponseError for what the provider sent wrong), carrying the
        partial text and usage when preserve_partial_response is on."""
        text = "".join(self.parts)
        preserve = self.call.options.preserve_partial_response
        received = f"{len(text)} characters"
        if self._rich:  # parts besides text reached the caller
            state = self.state or StreamState()
            calls = len(state.tool_calls)
            others = [f"{calls} tool call{'s' if calls != 1 else ''}"] if calls else []
            if state.reasoning_parts:
                others.append("reasoning")
            if others:
                received += " of text and " + " and ".join(others)
        how = (
            "the partial text is in .partial_text"
            if preserve
            else "the partial text was dropped (set preserve_partial_response=True to keep it)"
        )
        kind: type[StreamInterruptedError] = StreamInterruptedError
        if isinstance(exc, TotalTimeoutError):
            kind = InterruptedTotalTimeoutError
        elif isinstance(exc, TimeoutError):
            kind = InterruptedReadTimeoutError
        elif isinstance(exc, InvalidResponseError):
            kind = InterruptedInvalidResponseError
        error = kind(
            f"the stream was interrupted after {received}: {exc.message}; {how}",
            partial_text=text if preserve else None,
            partial_usage=self._partial_usage() if preserve else None,
            cause=exc,
            **self.call.context,
        )
        error.attempts = self.attempts
        error.__cause__ = exc  # an SDK error (redacted): safe to chain
        return error

    def _partial_usage(self) -> dict[str, Any]:
        if self._counted:
            # The last attempt that streamed is already in _attempt_usages (a resume
            # that then failed to open): count each attempt once.
            usage: dict[str, Any] = {}
            for earlier in self._attempt_usages:
                usage = add_usage(usage, earlier)
            return usage
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
            usage = add_usage(usage, earlier)
        return usage

    async def _complete(self) -> None:
        opts = self.call.options
        if opts.on_usage is None and opts.on_complete is None:
            return
        if opts.on_usage is not None:
            await _invoke(self._bound(opts.on_usage, "on_usage"), self.usage())
        if opts.on_complete is not None:
            await _invoke(self._bound(opts.on_complete, "on_complete"), "".join(self.parts))

    async def _report_error(self, exc: BaseException) -> None:
        """Tell on_error once. A callback that raises never replaces the SDK's
        error: it is logged and attached to the error as a note."""
        on_error = self.call.options.on_error
        if on_error is None or self._error_reported:
            return
        self._error_reported = True
        try:
            await _invoke(on_error, exc)
        except Exception as callback_error:
            logger.warning("on_error raised %s: %s", type(callback_error).__name__, callback_error)
            exc.add_note(f"on_error raised {type(callback_error).__name__}: {callback_error}")

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
        reason = state.reason
        if reason is None and state.finish_reason is not None:
            reason = unify_finish(state.finish_reason)
        refusal = state.refusal_text
        if reason == "refusal" and refusal is None:
            refusal = text  # Anthropic: a stop reason, with whatever text came before
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
        if self._output is not _MISSING:
            response.output = self._output
        return response

    def output(self) -> Any:
        """The validated structured output (``output=``); raises
        OutputValidationError, which the caller gets, when the answer does not fit."""
        if self._output is _MISSING:
            spec = self.call.output
            state = self.state
            if state is not None and state.tool_calls and not "".join(self.parts).strip():
                self._output = None  # the model called a tool instead of answering
            elif state is not None and state.reason == "refusal":
                self._output = None
            else:
                self._output = spec.validate("".join(self.parts), **self.call.context)
        return self._output

    # -- non-streaming -------------------------------------------------------------
    async def generate(self) -> StreamingResponse:
        """One non-streamed request, with the same retries and callbacks."""
        call = self.call
        observation = call.observer.start(self) if call.observer is not None else None
        self._start_clock()
        try:
            if not call.base_url and call.resolve_base_url is not None:
                call.base_url = await call.resolve_base_url()
            request = replace(call.request, stream=False)
            budget = turns()
            while True:
                wait = budget.step()
                if wait is not None:
                    await wait
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
                            await _invoke(self._bound(call.options.on_start, "on_start"))
                    try:
                        body = await self._read_body(response)
                    except httpx.HTTPError as exc:
                        raise map_httpx_error(exc, **call.context) from None
                    finally:
                        await response.aclose()
                    try:
                        text = codec.lead_text + codec.decode_response(body)
                    except _SHAPE_ERRORS as exc:
                        raise _shape_error(exc) from None
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
            if call.output is not None:
                self.output()
            await self._complete()
            result = self.response()
        except BaseException as exc:
            if isinstance(exc, SteerError):
                scrub_chain(exc)
            if observation is not None:
                observation.end(self, exc)
            if isinstance(exc, Exception):
                await self._report_error(exc)
            raise
        if observation is not None:
            observation.end(self, None)
        return result

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


# A stream that sends nothing but keep-alives for read_timeout is stalled: reads that
# deliver nothing (comments, events such as Anthropic's ping that change nothing) and
# carry less than this in total count as idle.
_IDLE_BYTES = 64 * 1024
# After the terminal event, what is left of the body is read (so that the connection
# can be reused) for at most this long and this many bytes, then the connection is
# closed: a server that holds it open never turns a complete answer into an error.
_DRAIN_SECONDS = 0.25
_DRAIN_BYTES = 64 * 1024


def _progress(state: StreamState) -> tuple[Any, ...]:
    """What a stream has said besides text, as far as the caller can see it: an event
    that leaves this unchanged (and carries no text or part) was only a keep-alive."""
    calls = state.tool_calls
    return (
        state.done,
        state.finish_reason,
        state.model,
        state.response_id,
        state.usage,
        len(calls),
        sum([len(call.arguments) for call in calls]) if calls else 0,
        len(state.reasoning_parts),
        len(state.refusal_parts),
        len(state.provider_data),
    )


class _Idle:
    """Counts reads that deliver nothing (keep-alive comments, events that change
    nothing, such as Anthropic's ``ping``); too long with only those is a timeout.

    The read loops reset ``since`` on a read that yields text or parts; only reads
    that yield none compare the state (:func:`_progress`): the text path pays nothing.
    """

    __slots__ = ("bytes", "limit", "mark", "since")

    def __init__(self, limit: float | None, state: StreamState) -> None:
        self.limit = limit
        self.since: float | None = None
        self.bytes = 0
        self.mark = _progress(state) if limit is not None else None

    def quiet(self, state: StreamState, size: int) -> None:
        """A read whose events yielded nothing: idle, unless they changed the state."""
        if self.limit is None:
            return
        mark = _progress(state)
        if mark != self.mark:
            self.mark = mark
            self.since = None
            return
        self.check(size)

    def check(self, size: int) -> None:
        if self.limit is None:
            return
        now = _loop_time()
        if self.since is None:
            self.since = now
            self.bytes = 0
        self.bytes += size
        if now - self.since >= self.limit and self.bytes < _IDLE_BYTES:
            from ..errors import ReadTimeoutError

            raise ReadTimeoutError(
                f"nothing for {self.limit:g} s (read_timeout): the server sent only "
                "keep-alives (comments or events that carry nothing)"
            )


async def _drain(raw: AsyncIterator[bytes]) -> None:
    """Read the rest of a body whose answer is complete, briefly and boundedly."""
    import asyncio

    received = 0
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for data in raw:
                received += len(data)
                if received > _DRAIN_BYTES:
                    return
    except (TimeoutError, httpx.HTTPError, SteerError):
        return


def _tail(
    sse: SSEDecoder, decode: Callable[[str | None, bytes], str | None], state: StreamState
) -> list[tuple[str | None, Any]]:
    """Events of the body's unterminated tail. The SSE spec drops an event that never
    ended; it is decoded here only when the answer is not complete without it, and
    when it cannot be decoded after a complete answer it is dropped."""
    out: list[tuple[str | None, Any]] = []
    for event, payload in sse.close():
        if state.done:
            break
        try:
            text = decode(event, payload)
        except (InvalidResponseError, *_SHAPE_ERRORS):
            if state.finish_reason is not None:
                break
            raise
        out.append((event, text))
    return out


async def _texts(
    raw: AsyncIterator[bytes],
    sse: SSEDecoder,
    codec: Codec,
    read_timeout: float | None,
    budget: Turns,
) -> AsyncGenerator[list[str], None]:
    """For each network read, the texts its complete SSE events carry; up to the
    protocol's terminal event and nothing after it. Each read is a step of the loop's
    fair budget (see fair.py)."""
    feed = sse.feed
    decode = codec.decode
    state = codec.state
    idle = _Idle(read_timeout, state)
    step = budget.step
    try:
        async for data in raw:
            wait = step()
            if wait is not None:
                await wait
            events = feed(data)
            if not events:
                idle.check(len(data))
                continue
            texts = []
            try:
                for event, payload in events:
                    text = decode(event, payload)
                    if text:
                        texts.append(text)
                    elif state.done:  # terminal events carry no text
                        break
            except Exception:
                if texts:  # what came before the error in this read is delivered first
                    yield texts
                raise
            if texts:
                idle.since = None
                yield texts
            elif not state.done:
                idle.quiet(state, len(data))
            if state.done:
                break
        if state.done:
            await _drain(raw)
            return
        texts = [text for _, text in _tail(sse, decode, state) if text]
    except _SHAPE_ERRORS as exc:  # valid JSON of the wrong shape (try is free in 3.11)
        raise _shape_error(exc) from None
    if texts:
        yield texts


async def _once_parts(batch: list[Any]) -> AsyncGenerator[list[Any], None]:
    if batch:
        yield batch


async def _parts(
    raw: AsyncIterator[bytes],
    sse: SSEDecoder,
    codec: Codec,
    read_timeout: float | None,
    budget: Turns,
) -> AsyncGenerator[list[Any], None]:
    """For each network read, the typed parts its complete SSE events carry: what
    the codec recorded, then the text, event by event, up to the terminal event."""
    feed = sse.feed
    decode = codec.decode
    state = codec.state
    out = state.out
    assert out is not None
    idle = _Idle(read_timeout, state)
    step = budget.step
    try:
        async for data in raw:
            wait = step()
            if wait is not None:
                await wait
            events = feed(data)
            if not events:
                idle.check(len(data))
                continue
            batch: list[Any] = []
            try:
                for event, payload in events:
                    text = decode(event, payload)
                    if out:
                        batch += out
                        out.clear()
                    if text:
                        lp = state.text_logprobs
                        if lp is not None:
                            state.text_logprobs = None
                        batch.append(TextDelta(text, lp))
                    elif state.done:
                        break
            except Exception:
                if batch:  # what came before the error in this read is delivered first
                    yield batch
                raise
            if batch:
                idle.since = None
                yield batch
            elif not state.done:
                idle.quiet(state, len(data))
            if state.done:
                break
        if state.done:
            await _drain(raw)
            return
        batch = []
        for _, text in _tail(sse, decode, state):
            if out:
                batch += out
                out.clear()
            if text:
                batch.append(TextDelta(text))
    except _SHAPE_ERRORS as exc:
        raise _shape_error(exc) from None
    if batch:
        yield batch


def _unwrap(value: Any, spec: Any) -> Any:
    if spec.wrapped and isinstance(value, dict):
        return value.get("value")
    return value


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


def add_usage(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
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
