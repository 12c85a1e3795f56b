"""THE read loop: from network reads to what they carry, over every attempt of a call.

:func:`reads` is the one generator under both ``chunks()`` (texts) and ``events()``
(typed parts): it opens each attempt through :class:`Attempts`, yields one list per
network read (one generator resume per read, not per chunk), and hands every failure
to ``Attempts.recover``, which retries, resumes or raises. The lead text, a JSON
body sent instead of a stream, the resume's white space, keep-alive timeouts,
``total_timeout`` on each read, the terminal event, the drain after it and the
body's unterminated tail are all handled here, once for both modes.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import InvalidResponseError, ReadTimeoutError, SteerError, TotalTimeoutError
from ..results import TextDelta
from ..transport.eventstream import EventStreamDecoder
from ..transport.http import map_httpx_error
from ..transport.sse import SSEDecoder
from .attempts import incomplete, loop_time
from .fair import turns

if TYPE_CHECKING:
    from ..providers.base import StreamState
    from ..providers.codec import Codec
    from .attempts import Attempts
    from .call import Call

__all__ = ["SHAPE_ERRORS", "fill_context", "read_body", "reads", "shape_error"]

# Valid JSON of the wrong shape, met by a codec: an InvalidResponseError.
SHAPE_ERRORS = (KeyError, TypeError, AttributeError, IndexError)
# A stream that sends nothing but keep-alives for read_timeout is stalled: reads that
# deliver nothing (comments, events such as Anthropic's ping that change nothing) and
# carry less than this in total count as idle.
_IDLE_BYTES = 64 * 1024
# After the terminal event, what is left of the body is read (so that the connection
# can be reused) for at most this long and this many bytes, then the connection is
# closed: a server that holds it open never turns a complete answer into an error.
_DRAIN_SECONDS = 0.25
_DRAIN_BYTES = 64 * 1024


def _decoder(
    framing: str, max_event_bytes: int | None
) -> tuple[SSEDecoder | EventStreamDecoder, Callable[[bytes], list[tuple[str | None, bytes]]]]:
    """The attempt's body decoder and its feed: SSE events, or AWS event-stream frames
    (Bedrock) as (":event-type", payload) pairs."""
    if framing == "sse":
        sse = SSEDecoder(max_event_bytes)
        return sse, sse.feed
    frames = EventStreamDecoder(max_event_bytes)
    return frames, frames.events


async def reads(attempts: Attempts, record: bool) -> AsyncGenerator[list[Any], None]:
    """For each network read, the texts (``record=False``) or the typed parts
    (``record=True``: what the codec recorded, then the text, event by event) its
    complete SSE events carry, up to the protocol's terminal event."""
    call = attempts.call
    opts = call.options
    context = call.context
    step = turns().step  # each read is a step of the loop's fair budget (fair.py)
    coalesce = opts.coalesce_deltas
    while True:
        codec, response, strip_lead = await attempts.open()
        state = codec.state
        out = state.out if record else None
        decode = codec.decode
        sse, feed = _decoder(codec.framing, opts.max_event_bytes)
        idle = _Idle(opts.read_timeout, state)
        got_text = False
        try:
            if attempts.restarted is not None:  # on_interrupt="restart": a Restart part
                yield [attempts.restarted]
                attempts.restarted = None
            lead = codec.lead_text
            if lead:
                yield [TextDelta(lead)] if record else [lead]
            if response.headers.get("content-type", "").startswith("application/json"):
                # The server ignored stream=true and sent one JSON body.
                batch = _whole(codec, await read_body(response, call, attempts.deadline), out)
                if strip_lead:
                    batch, strip_lead = _strip(batch, strip_lead, record)
                if batch:
                    yield batch
            else:
                raw = response.aiter_raw()
                anext = raw.__anext__
                deadline, first = _deadline(attempts)
                batch = []
                while True:
                    if deadline is None:
                        try:
                            data = await anext()
                        except StopAsyncIteration:
                            break
                    else:
                        got = await _read_by(anext, deadline, context, first)
                        if got is None:
                            break
                        data = got
                    wait = step()
                    if wait is not None:
                        await wait
                    events = feed(data)
                    if not events:
                        idle.check(len(data))
                        continue
                    batch = []
                    try:
                        if out is None:
                            for event, payload in events:
                                text = decode(event, payload)
                                if text:
                                    batch.append(text)
                                elif state.done:  # terminal events carry no text
                                    break
                        else:
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
                                    got_text = True
                                elif state.done:
                                    break
                    except Exception:
                        if batch:  # what came before the error in this read comes first
                            yield batch
                        raise
                    if not batch:
                        if not state.done:  # a keep-alive event (ping) changes nothing
                            idle.quiet(state, len(data))
                    else:
                        idle.since = None
                        if first is not None:  # a part came: the call's own deadline
                            deadline, first = attempts.deadline, None
                        if strip_lead:
                            batch, strip_lead = _strip(batch, strip_lead, record)
                        if coalesce and len(batch) > 1:
                            batch = _coalesce(batch, record)
                        if out is None:
                            got_text = True
                        yield batch
                    if state.done:
                        break
                if state.done:
                    await _drain(raw)
                else:
                    batch = _tail(sse, decode, state, out)
                    if batch:
                        yield batch
            codec.finish()
            if not state.done:
                raise incomplete(attempts.call, state, got_text, sse)
            if out:  # tool calls that end with the stream
                batch = list(out)
                out.clear()
                yield batch
        except (SteerError, httpx.HTTPError, *SHAPE_ERRORS) as exc:
            await response.aclose()
            await attempts.recover(as_steer_error(exc, context), codec)
            continue
        finally:
            await response.aclose()
        return


def _whole(codec: Codec, body: bytes, out: list[Any] | None) -> list[Any]:
    """A whole JSON answer as one batch (the recorded parts first)."""
    text = codec.decode_response(body)
    if out is None:
        return [text] if text else []
    batch = [*out, TextDelta(text)] if text else list(out)
    out.clear()
    return batch


def _coalesce(batch: list[Any], record: bool) -> list[Any]:
    """``coalesce_deltas``: a read's texts as one chunk (adjacent TextDeltas as one,
    their logprobs joined)."""
    if not record:
        return ["".join(batch)]
    out: list[Any] = []
    for part in batch:
        if type(part) is TextDelta and out and type(out[-1]) is TextDelta:
            last = out[-1]
            logprobs = (
                [*(last.logprobs or ()), *(part.logprobs or ())]
                if last.logprobs is not None or part.logprobs is not None
                else None
            )
            out[-1] = TextDelta(last.text + part.text, logprobs)
        else:
            out.append(part)
    return out


def _strip(batch: list[Any], strip_lead: str, record: bool) -> tuple[list[Any], str]:
    """After a resume, the white space cut from the prefix was already delivered:
    drop it from the start of the continuation instead of sending it twice."""
    kept: list[Any] = []
    for item in batch:
        if strip_lead and (not record or type(item) is TextDelta):
            text = item.text if record else item
            i = 0
            while i < len(text) and i < len(strip_lead) and text[i].isspace():
                i += 1
            if i < len(text) or i >= len(strip_lead):
                text, strip_lead = text[i:], ""
            else:
                text, strip_lead = "", strip_lead[i:]
            if not text:
                continue
            if record:
                item.text = text
            else:
                item = text
        kept.append(item)
    return kept, strip_lead


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
        state.file_bytes,
        len(state.transcript_parts),
    )


class _Idle:
    """Counts reads that deliver nothing (keep-alive comments, events that change
    nothing, such as Anthropic's ``ping``); too long with only those is a timeout.

    The read loop resets ``since`` on a read that yields text or parts; only reads
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
        now = loop_time()
        if self.since is None:
            self.since = now
            self.bytes = 0
        self.bytes += size
        if now - self.since >= self.limit and self.bytes < _IDLE_BYTES:
            raise ReadTimeoutError(
                f"nothing for {self.limit:g} s (read_timeout): the server sent only "
                "keep-alives (comments or events that carry nothing)"
            )


def _deadline(attempts: Attempts) -> tuple[float | None, Attempts | None]:
    """The reads' deadline: total_timeout's, or first_token_timeout's until a part
    comes (then its attempts, for the error)."""
    deadline = attempts.deadline
    first_by = attempts.first_by
    if first_by is not None and (deadline is None or first_by < deadline):
        return first_by, attempts
    return deadline, None


async def _read_by(
    anext: Callable[[], Any],
    deadline: float,
    context: dict[str, Any],
    first: Attempts | None = None,
) -> bytes | None:
    """One read bounded by what is left of ``total_timeout`` (None: the body ended),
    or by ``first_token_timeout`` (``first``: its attempts) before any part came."""
    import asyncio

    remaining = deadline - loop_time()
    if remaining <= 0:
        if first is not None:
            raise first.first_token_error()
        raise TotalTimeoutError("total_timeout passed", **context)
    try:
        async with asyncio.timeout(remaining):
            data: bytes = await anext()
            return data
    except StopAsyncIteration:
        return None
    except TimeoutError:
        if first is not None:
            raise first.first_token_error() from None
        raise TotalTimeoutError("total_timeout passed while streaming", **context) from None


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
    sse: SSEDecoder | EventStreamDecoder,
    decode: Callable[[str | None, bytes], str | None],
    state: StreamState,
    out: list[Any] | None,
) -> list[Any]:
    """What the body's unterminated tail carries. The SSE spec drops an event that
    never ended; it is decoded here only when the answer is not complete without
    it, and when it cannot be decoded after a complete answer it is dropped."""
    batch: list[Any] = []
    for event, payload in sse.close():
        if state.done:
            break
        try:
            text = decode(event, payload)
        except (InvalidResponseError, *SHAPE_ERRORS):
            if state.finish_reason is not None:
                break
            raise
        if out is None:
            if text:
                batch.append(text)
            continue
        if out:
            batch += out
            out.clear()
        if text:
            lp = state.text_logprobs
            state.text_logprobs = None
            batch.append(TextDelta(text, lp))
    return batch


async def read_body(response: httpx.Response, call: Call, deadline: float | None) -> bytes:
    """A whole (non-streamed) JSON body: at most ``max_event_bytes`` of it, read
    within what is left of ``total_timeout`` (each read within ``read_timeout``)."""
    cap = call.options.max_event_bytes or (1 << 62)
    context = call.context
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


def shape_error(exc: Exception) -> InvalidResponseError:
    return InvalidResponseError(
        f"the provider sent an event of an unexpected shape ({type(exc).__name__}: {exc})"
    )


def as_steer_error(exc: BaseException, context: dict[str, Any]) -> SteerError:
    """What broke an attempt, as the SDK's error: an HTTP library error mapped, valid
    JSON of the wrong shape an InvalidResponseError, the call's context filled in."""
    if isinstance(exc, httpx.HTTPError):
        return map_httpx_error(exc, **context)
    if not isinstance(exc, SteerError):
        exc = shape_error(exc if isinstance(exc, Exception) else Exception(exc))
    return fill_context(exc, context)


def fill_context(exc: SteerError, context: dict[str, Any]) -> SteerError:
    exc.provider = exc.provider or context.get("provider")
    exc.model = exc.model or context.get("model")
    return exc
