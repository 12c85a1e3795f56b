"""The streaming pipeline: one :class:`StreamRun` per call.

``chunks()`` (what ``client.stream()`` returns) and ``events()`` (``stream_events()``)
are thin loops over the one read loop, :func:`reads.reads`, which yields a list per
network read; the attempts' rules live in :mod:`attempts`, usage and the response
in :mod:`ledger`, what observers see in :mod:`observe`. Per chunk, ``chunks()``
does an append, a first-token check, an ``on_delta`` check and a ``yield``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from operator import length_hint
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import SteerError, scrub_chain
from ..results import Finish, PartialOutput, Restart, StreamingResponse, TextDelta
from ..transport.http import map_httpx_error
from ..uploads import oversize, upload_oversize
from .attempts import Attempts
from .call import Call
from .callbacks import Deltas, bound, invoke
from .fair import turns
from .ledger import Ledger, build_response
from .reads import SHAPE_ERRORS, fill_context, read_body, reads, shape_error

if TYPE_CHECKING:
    from .observe import CallRecord, Observation

__all__ = ["Call", "StreamRun"]

logger = logging.getLogger("steer_llm_sdk")
_MISSING: Any = object()


class StreamRun:
    """One call: its delivered text, attempts, usage, timings, callbacks."""

    def __init__(self, call: Call) -> None:
        self.delivered: list[str] = []  # every chunk of text the caller got
        self.ledger = Ledger(call)
        self.attempts = Attempts(call, self.delivered, self.ledger)
        self.started_at = time.perf_counter()
        self.first_token_at: float | None = None
        self.finished_at: float | None = None
        self._error_reported = False
        self._output: Any = _MISSING  # the validated output, once validated
        self._response: StreamingResponse | None = None

    @property
    def call(self) -> Call:
        """The call's current route (a route's next entry once it moved on)."""
        return self.attempts.call

    # -- the two loops -------------------------------------------------------------
    async def chunks(self) -> AsyncGenerator[str, None]:
        """Yield text chunks as they arrive; raise typed errors; run the callbacks."""
        delivered = self.delivered
        observation, deltas, batches = await self._start_stream(record=False)
        sink = deltas.sink
        try:
            try:
                async for batch in batches:
                    if sink is None and self.first_token_at is not None:
                        # The common case: nothing to do per chunk but yield it (the
                        # read's chunks recorded at once, less those never taken).
                        delivered += batch
                        left = iter(batch)
                        try:
                            for text in left:
                                yield text
                        except BaseException:  # the caller stopped mid-read
                            if undelivered := length_hint(left):
                                del delivered[-undelivered:]
                            raise
                        continue
                    for text in batch:
                        delivered.append(text)
                        if self.first_token_at is None:
                            self.first_token_at = time.perf_counter()
                        if sink is not None:
                            try:  # free in 3.11 unless it raises
                                await sink(text)
                            except SteerError as exc:
                                raise self._callback_error(exc) from None
                        yield text
            finally:
                await batches.aclose()
            await deltas.flush()
            await self._end()
        except BaseException as exc:
            await self._failed(observation, exc)
            raise
        self._observed(observation, None)

    async def events(self) -> AsyncGenerator[Any, None]:
        """``stream_events()``: typed parts as they arrive, then :class:`Finish`.

        The same read loop, attempts, callbacks and errors as :meth:`chunks`; parts
        keep the order the provider sent them in. With ``output=``, the object so
        far is parsed incrementally, at most once per network read.
        """
        call = self.call
        delivered = self.delivered
        spec = call.output
        partial = spec.partial() if spec is not None else None
        observation, deltas, batches = await self._start_stream(record=True)
        sink = deltas.sink
        try:
            try:
                async for batch in batches:
                    new_text = False
                    for part in batch:
                        if type(part) is TextDelta:
                            text = part.text
                            delivered.append(text)
                            if self.first_token_at is None:
                                self.first_token_at = time.perf_counter()
                            new_text = True
                            if partial is not None:
                                partial.feed(text)
                            if sink is not None:
                                try:
                                    await sink(text)
                                except SteerError as exc:
                                    raise self._callback_error(exc) from None
                        elif type(part) is Restart:  # on_interrupt="restart"
                            partial = spec.partial() if spec is not None else None
                        else:
                            self.attempts.rich = True
                        yield part
                    if new_text and partial is not None and partial.value is not None:
                        yield PartialOutput(_unwrap(partial.value, spec))
            finally:
                await batches.aclose()
            await deltas.flush()
            await self._end()
            result = self.response()
            self._observed(observation, None)  # ended before Finish: a caller may stop there
            observation = None
            yield Finish(
                result.finish_reason or "other", result.raw_finish_reason, result.usage, result
            )
        except BaseException as exc:
            await self._failed(observation, exc)
            raise

    # -- non-streaming -------------------------------------------------------------
    async def generate(self) -> StreamingResponse:
        """One non-streamed request, with the same retries and callbacks."""
        attempts = self.attempts
        observation = await self._begin()
        try:
            while True:
                codec, response, _ = await attempts.open(stream=False)
                call = attempts.call
                try:
                    try:
                        body = await read_body(response, call, attempts.deadline)
                    except httpx.HTTPError as exc:
                        raise map_httpx_error(exc, **call.context) from None
                    finally:
                        await response.aclose()
                    try:
                        text = codec.lead_text + codec.decode_response(body)
                    except SHAPE_ERRORS as exc:
                        raise shape_error(exc) from None
                except SteerError as exc:
                    fill_context(exc, call.context)
                    if attempts.may_retry(exc):
                        await attempts.backoff(exc)
                        continue
                    if attempts.fall_over(exc):
                        continue
                    raise
                break
            if text:
                self.delivered.append(text)
            self.first_token_at = time.perf_counter()
            await self._end()
            result = self.response()
        except BaseException as exc:
            await self._failed(observation, exc)
            raise
        self._observed(observation, None)
        return result

    # -- the call's start and end ------------------------------------------------------
    async def _begin(self) -> Observation | None:
        # The call's first step is a step of the loop's fair budget (fair.py): when
        # thousands of calls start in one turn (one gather), the rest wait their turn
        # here instead of all preparing at once.
        wait = turns().step()
        if wait is not None:
            await wait
        call = self.call
        observer = call.observer
        observation = None
        if observer is not None:
            from .observe import CallStart  # only with an observer

            observation = observer.start(CallStart(call.provider.name, call.model, call.request))
        self.attempts.start()
        if call.options.on_start is not None:
            on_start = self._bound(call.options.on_start, "on_start")
            self.attempts.on_open = lambda: invoke(on_start)
        if (not call.base_url and call.resolve_base_url is not None) or call.before_send:
            try:
                if not call.base_url and call.resolve_base_url is not None:
                    call.base_url = await call.resolve_base_url()
                for hook in call.before_send:  # files (downloads.py), prompt caches
                    await hook(call, self.attempts.deadline)
                self.attempts.warnings += call.notes  # said in response.warnings
            except BaseException as exc:
                await self._failed(observation, exc)
                raise
        if oversize(call):  # inline files past the provider's limit: uploaded first
            try:
                await upload_oversize(call, self.attempts.warnings)
            except BaseException as exc:
                await self._failed(observation, exc)
                raise
        return observation

    async def _end(self) -> None:
        """The answer is complete: validate the output, run on_usage / on_complete."""
        self.finished_at = time.perf_counter()
        opts = self.call.options
        if self.call.output is not None:
            self.output()
        if opts.on_usage is not None:
            await invoke(self._bound(opts.on_usage, "on_usage"), self.usage())
        if opts.on_complete is not None:
            await invoke(self._bound(opts.on_complete, "on_complete"), "".join(self.delivered))

    async def _failed(self, observation: Observation | None, exc: BaseException) -> None:
        if isinstance(exc, SteerError):
            scrub_chain(exc)  # no raw library exception (server bytes) in its chain
        self._observed(observation, exc)  # a failure, or abandoned by the caller
        if isinstance(exc, Exception):  # not GeneratorExit / CancelledError: no failure
            await self._report_error(exc)

    def _observed(self, observation: Observation | None, error: BaseException | None) -> None:
        call = self.call
        if call.routes is not None:
            call.routes.finish(error, call, self.first_token_at)
        if observation is not None:
            try:
                observation.end(_record(self, error), error)
            except Exception as exc:  # an observer never breaks a call
                logger.warning("observer: %s: %s", type(exc).__name__, exc)

    def _callback_error(self, exc: SteerError) -> SteerError:
        """A callback raised a SteerError: after text, an interrupted call."""
        if self.delivered:
            return self.attempts.interrupted(exc)
        return exc

    async def _report_error(self, exc: BaseException) -> None:
        """Tell on_error once. A callback that raises never replaces the SDK's
        error: it is logged and attached to the error as a note."""
        on_error = self.call.options.on_error
        if on_error is None or self._error_reported:
            return
        self._error_reported = True
        try:
            await invoke(on_error, exc)
        except Exception as callback_error:
            logger.warning("on_error raised %s: %s", type(callback_error).__name__, callback_error)
            exc.add_note(f"on_error raised {type(callback_error).__name__}: {callback_error}")

    def _bound(self, fn: Any, name: str) -> Any:
        return bound(fn, name, self.attempts.deadline, self.call.context)

    async def _start_stream(
        self, *, record: bool
    ) -> tuple[Observation | None, Deltas, AsyncGenerator[list[Any], None]]:
        """The call starts; ``on_delta`` adapted once; the read loop, not yet begun."""
        observation = await self._begin()
        opts = self.call.options
        deltas = Deltas(self._bound(opts.on_delta, "on_delta"), opts.delta_batch_size)
        return observation, deltas, reads(self.attempts, record)

    # -- results ---------------------------------------------------------------------
    @property
    def state(self) -> Any:
        return self.attempts.state

    def usage(self) -> dict[str, Any]:
        attempts = self.attempts
        return self.ledger.usage(attempts.state, "".join(self.delivered[attempts.last_start :]))

    def response(self) -> StreamingResponse:
        """The call's response (built once, after the call ended)."""
        response = self._response
        if response is None:
            attempts = self.attempts
            response = build_response(
                self.call,
                attempts.state,
                "".join(self.delivered),
                self.usage(),
                attempts,
                (self.started_at, self.first_token_at, self.finished_at),
            )
            if self._output is not _MISSING:
                response.output = self._output
            if self.call.routes is not None:
                self.call.routes.attribute(response, self.call, self.first_token_at)
            self._response = response
            if self.call.cache_watch is not None:
                self.call.cache_watch.observe(response.usage)
        return response

    def output(self) -> Any:
        """The validated structured output (``output=``); raises
        OutputValidationError, which the caller gets, when the answer does not fit."""
        if self._output is _MISSING:
            spec = self.call.output
            state = self.attempts.state
            text = "".join(self.delivered)
            if state is not None and state.tool_calls and not text.strip():
                self._output = None  # the model called a tool instead of answering
            elif state is not None and state.reason == "refusal":
                self._output = None
            else:
                self._output = spec.validate(text, **self.call.context)
        return self._output


def _unwrap(value: Any, spec: Any) -> Any:
    if spec.wrapped and isinstance(value, dict):
        return value.get("value")
    return value


def _record(run: StreamRun, error: BaseException | None) -> CallRecord:
    """What an observer sees of the call (usage and cost only on success)."""
    from .observe import CallRecord

    call = run.call
    attempts = run.attempts
    end = run.finished_at or time.perf_counter()
    ttft = run.first_token_at - run.started_at if run.first_token_at else None
    # CallRecord's first fields, in order: who answered, how, how long.
    base = (call.provider.name, call.model, call.base_url, call.request.stream)
    tries = (attempts.count, attempts.resumptions, end - run.started_at, ttft)
    if error is None:
        return CallRecord.of_response(run.response(), *base, *tries)
    text = "".join(run.delivered)
    state = attempts.state
    routes = () if call.routes is None else tuple(call.routes.records)
    if state is None:
        return CallRecord(*base, *tries, text=text, route_attempts=routes)
    from ..providers.base import unify_finish

    raw = state.finish_reason
    reason = state.reason or (unify_finish(raw) if raw is not None else None)
    return CallRecord(
        *base,
        *tries,
        text,
        None,
        None,
        reason,
        raw,
        state.model,
        state.response_id,
        route_attempts=routes,
    )
