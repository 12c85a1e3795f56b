"""Every retry, resume and interruption decision of one call, in one object.

After h11's rule, everything that affects the transitions lives here: how many
attempts and retries were made, whether the caller got anything, where the last
attempt's text begins. The rules (README, "Reliability"):

- before anything reached the caller, connection errors, timeouts and retryable
  statuses are retried with backoff, up to ``max_reconnect_attempts``;
- after text reached the caller, nothing is ever delivered twice: where the protocol
  can continue an answer from a prefix, the call resumes with the text so far as the
  assistant's prefix; otherwise a :class:`StreamInterruptedError` is raised, with the
  partial text and usage.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx
import orjson

from ..errors import (
    AuthenticationError,
    ConnectionError,
    FirstTokenTimeoutError,
    InterruptedInvalidResponseError,
    InterruptedReadTimeoutError,
    InterruptedTotalTimeoutError,
    InvalidResponseError,
    PermissionDeniedError,
    SteerError,
    StreamInterruptedError,
    TotalTimeoutError,
)
from ..providers.base import StreamState
from ..transport.http import backoff_delay, is_retryable
from .fair import turns

if TYPE_CHECKING:
    from ..providers.codec import Codec
    from ..results import Restart
    from ..transport.eventstream import EventStreamDecoder
    from ..transport.sse import SSEDecoder
    from .call import Call
    from .ledger import Ledger

__all__ = ["Attempts", "incomplete", "loop_time"]

logger = logging.getLogger("steer_llm_sdk")


def loop_time() -> float:
    # asyncio is imported where it is used, not at import: an async program has it
    # loaded already, and `import steer_llm_sdk` stays as cheap as httpx's.
    import asyncio

    return asyncio.get_running_loop().time()


class Attempts:
    """The attempts of one call: open, retry, resume, interrupted."""

    __slots__ = (
        "call",
        "count",
        "deadline",
        "delivered",
        "first_by",
        "last_start",
        "ledger",
        "on_open",
        "refreshed",
        "restarted",
        "resumptions",
        "retries",
        "rich",
        "started",
        "state",
        "timeout",
        "warnings",
    )

    def __init__(self, call: Call, delivered: list[str], ledger: Ledger) -> None:
        self.call = call
        self.delivered = delivered  # every chunk of text the caller got
        self.ledger = ledger
        self.count = 0  # attempts made
        self.retries = 0
        self.refreshed = False  # the signer's credentials were refreshed after a 401/403
        self.resumptions = 0
        self.rich = False  # a non-text part (tool call, reasoning) reached the caller
        self.started = False  # a response arrived (on_start ran)
        self.last_start = 0  # index in `delivered` where the last attempt's text begins
        self.state: StreamState | None = None  # the last attempt's codec state
        self.deadline: float | None = None  # set when the call starts (total_timeout)
        self.on_open: Callable[[], Awaitable[None]] | None = None  # on_start, bound
        self.warnings: list[str] = []  # what the protocol could not send (first attempt's)
        self.first_by: float | None = None  # first_token_timeout's deadline, until a part
        self.restarted: Restart | None = None  # on_interrupt="restart": the part to send
        opts = call.options
        self.timeout = httpx.Timeout(
            connect=opts.connection_timeout,
            read=opts.read_timeout,
            write=opts.read_timeout,
            pool=opts.connection_timeout,
        )

    def start(self) -> None:
        """The call starts: its total_timeout counts from now."""
        total = self.call.options.total_timeout
        if total and self.deadline is None:
            self.deadline = loop_time() + total

    async def open(self, *, stream: bool = True) -> tuple[Codec, httpx.Response, str]:
        """Send the request (again), retrying what may be retried before any response.
        Returns the attempt's codec, the response, and the white space to drop from
        the start of a resumed answer."""
        budget = turns()
        while True:
            wait = budget.step()  # a fair share of the loop for the request's preparation
            if wait is not None:
                await wait
            call = self.call
            if call.routes is not None and not self.count:  # a route: choose its deployment
                call = self.call = self.ledger.call = call.routes.start(call)
            if not call.base_url and call.resolve_base_url is not None:  # a route moved on
                call.base_url = await call.resolve_base_url()
            self.count += 1
            codec = call.codec_factory(record=call.record) if stream else call.codec_factory()
            request = call.request
            strip_lead = ""
            if not stream:
                request = replace(request, stream=False)
            elif self.delivered:  # resuming: continue from the text already delivered
                so_far = "".join(self.delivered)
                prefix = so_far.rstrip()
                strip_lead = so_far[len(prefix) :]
                request = replace(request, prefix=prefix)
            http = codec.encode(request, call.api_key)
            if self.count == 1 and codec.warnings:
                self.warnings += codec.warnings  # after the call's own (uploads ...)
                for warning in codec.warnings:  # once per call, not per attempt
                    logger.warning("%s (%s)", warning, call.model)
            body = orjson.dumps(http.json)
            headers = http.headers
            first = call.options.first_token_timeout
            self.first_by = None
            if first is not None and not self.delivered and not self.rich:
                self.first_by = loop_time() + first
            try:
                if call.signer is not None:  # a cloud's credentials, over the exact bytes
                    url = call.base_url.rstrip("/") + "/" + http.path.lstrip("/")
                    headers = {**headers, **await call.signer.sign(http.method, url, headers, body)}
                opening = call.transport.open(
                    call.base_url,
                    http.method,
                    http.path,
                    headers,
                    body,
                    timeout=self.timeout,
                    parse_error=codec.parse_error,
                    deadline=self.deadline,
                    context=call.context,
                    options=call.options,
                    turns=budget,  # its connection steps are gated too
                )
                response = await (opening if self.first_by is None else _first(self, opening))
            except SteerError as exc:
                if self.refresh_credentials(exc):
                    continue
                if call.request.provider_cache is not None and codec.stale_cache(exc):
                    self.drop_cache()
                    continue
                if self.may_retry(exc):
                    await self.backoff(exc)
                    continue
                if self.delivered or self.rich:
                    raise self.interrupted(exc)  # noqa: B904 - chained to exc on purpose
                if self.fall_over(exc):
                    continue
                raise
            if call.routes is not None:
                call.routes.budget(response.headers)
            if not self.started:
                self.started = True
                if self.on_open is not None:
                    await self.on_open()
            self.state = codec.state
            self.last_start = len(self.delivered)
            self.ledger.counted = False
            return codec, response, strip_lead

    def refresh_credentials(self, exc: SteerError) -> bool:
        """A 401/403 from a provider with a signer: refresh its credentials and send
        again, once per call (a token that expired between two requests)."""
        signer = self.call.signer
        if (
            signer is None
            or self.refreshed
            or not isinstance(exc, (AuthenticationError, PermissionDeniedError))
        ):
            return False
        self.refreshed = True
        return signer.refresh()

    def drop_cache(self) -> None:
        """The provider's cache of the prompt's prefix is gone (expired, deleted):
        forget it and send the whole prompt, once (provider_caches.py)."""
        call = self.call
        cached = call.request.provider_cache
        assert cached is not None
        if cached.forget is not None:
            cached.forget()
        call.request = replace(call.request, provider_cache=None)
        self.warnings.append(f"the prompt cache {cached.name} was gone: sent without it")
        logger.info("prompt cache %s was gone: sent without it", cached.name)

    def may_retry(self, exc: SteerError) -> bool:
        opts = self.call.options
        if not (
            opts.retry_on_connection_error
            and self.retries < opts.max_reconnect_attempts
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

    async def recover(self, exc: SteerError, codec: Codec) -> None:
        """An attempt failed mid-way: return to try again, else raise the right error.

        Before anything reached the caller, the call starts again; once a part did
        (text, a tool call, reasoning), it never does: it resumes from the text where
        the server can continue it, else raises StreamInterruptedError."""
        delivered = self.delivered
        if not delivered and not self.rich and self.may_retry(exc):
            await self.backoff(exc)
            return
        if delivered and self.call.can_resume and not self.rich and self.may_retry(exc):
            if "".join(delivered).strip():
                self.resumptions += 1
                self.ledger.attempt_broke(codec.state, "".join(delivered[self.last_start :]))
                logger.info(
                    "stream broke after %d chars (%s); resuming from the text so far",
                    sum(map(len, delivered)),
                    type(exc).__name__,
                )
                await self.backoff(exc)
                return
        if delivered or self.rich:
            routes = self.call.routes  # on_interrupt="restart": on the next entry
            if routes is not None and routes.restart(self, exc, codec.state):
                return
            raise self.interrupted(exc)  # chained to exc, an SDK error (redacted)
        if self.fall_over(exc, codec.state):
            return
        raise exc

    def fall_over(self, exc: SteerError, state: StreamState | None = None) -> bool:
        """Nothing reached the caller and the call's route has a next entry for
        ``exc``: the call moves to it (README, "Routes")."""
        routes = self.call.routes
        if routes is None:
            return False
        call = routes.next(exc, state, self.call)
        if call is None:
            return False
        self.call = self.ledger.call = call
        self.retries = 0
        return True

    def first_token_error(self) -> FirstTokenTimeoutError:
        first = self.call.options.first_token_timeout
        return FirstTokenTimeoutError(
            f"no part of the answer within first_token_timeout={first:g} s", **self.call.context
        )

    async def backoff(self, exc: SteerError) -> None:
        self.retries += 1
        opts = self.call.options
        delay = backoff_delay(
            self.retries,
            opts.reconnect_delay,
            getattr(exc, "retry_after", None),
            opts.max_retry_after,
        )
        deadline = self.deadline
        if deadline is not None:
            remaining = deadline - loop_time()
            if delay >= remaining:
                raise TotalTimeoutError(
                    f"total_timeout would pass before the next retry ({exc.message})",
                    **self.call.context,
                ) from exc
        logger.info("retry %d in %.2fs after %s", self.retries, delay, type(exc).__name__)
        if delay > 0:
            import asyncio

            await asyncio.sleep(delay)

    def interrupted(self, exc: SteerError) -> SteerError:
        """The error for a call that broke after a part reached the caller: always a
        StreamInterruptedError, and also the kind of what broke it where the caller
        would catch that kind before any part came (a TimeoutError for every timeout,
        an InvalidResponseError for what the provider sent wrong), carrying the
        partial text and usage when preserve_partial_response is on."""
        text = "".join(self.delivered)
        preserve = self.call.options.preserve_partial_response
        received = f"{len(text)} characters"
        if self.rich:  # parts besides text reached the caller
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
        partial = (
            self.ledger.partial(self.state, "".join(self.delivered[self.last_start :]))
            if preserve
            else None
        )
        error = kind(
            f"the stream was interrupted after {received}: {exc.message}; {how}",
            partial_text=text if preserve else None,
            partial_usage=partial,
            cause=exc,
            **self.call.context,
        )
        error.attempts = self.count
        error.__cause__ = exc  # an SDK error (redacted): safe to chain
        return error


async def _first(attempts: Attempts, opening: Awaitable[httpx.Response]) -> httpx.Response:
    """The response, within first_token_timeout."""
    import asyncio

    first_by = attempts.first_by
    assert first_by is not None
    scope = asyncio.timeout_at(first_by)
    try:
        async with scope:
            return await opening
    except TimeoutError:
        if scope.expired():
            raise attempts.first_token_error() from None
        raise


def incomplete(
    call: Call, state: StreamState, got_text: bool, sse: SSEDecoder | EventStreamDecoder
) -> SteerError:
    """The error for a body that ended before the protocol said it was complete."""
    context = call.context
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
