"""Timeouts, retries, resumption, typed errors, cancellation and load, over real sockets
against the emulator's scripted faults, for both wire protocols."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from steer_llm_sdk import (
    AuthenticationError,
    BadRequestError,
    ConnectionError,
    ConnectTimeoutError,
    InvalidResponseError,
    NotFoundError,
    OverloadedError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    SteerError,
    SteerLLMClient,
    StreamInterruptedError,
    TotalTimeoutError,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator, Fault, Reply

FAST = StreamingOptions(reconnect_delay=0.01)
NO_RETRY = StreamingOptions(retry_on_connection_error=False)
WORDS = ["Once", " upon", " a", " time", " the", " keeper", " lit", " the", " lamp."]


def requests_to(emu: Emulator) -> int:
    return sum(r.method == "POST" for r in emu.requests)


# -- timeouts ----------------------------------------------------------------------
async def test_read_timeout_fires_on_time(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(chunks=WORDS, fault=Fault.stall_after(2, seconds=10)))
    options = StreamingOptions(read_timeout=1.0, retry_on_connection_error=False)
    start = time.perf_counter()
    with pytest.raises(StreamInterruptedError) as info:
        await client.stream_with_usage("x", model, streaming_options=options)
    elapsed = time.perf_counter() - start
    assert 0.9 <= elapsed < 3.0, elapsed
    assert isinstance(info.value.cause, ReadTimeoutError)
    assert isinstance(info.value.cause, TimeoutError)  # the built-in too


async def test_stall_before_headers_is_a_read_timeout(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(fault=Fault.stall_before_headers(10)))
    options = StreamingOptions(read_timeout=0.5, retry_on_connection_error=False)
    start = time.perf_counter()
    with pytest.raises(ReadTimeoutError) as info:
        await client.stream_with_usage("x", model, streaming_options=options)
    assert time.perf_counter() - start < 2.0
    assert info.value.provider in ("openai", "anthropic") and info.value.model == model


async def test_total_timeout_covers_the_whole_call(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(chunks=WORDS, delay_between_chunks=0.4))
    options = StreamingOptions(read_timeout=5.0, total_timeout=1.0, preserve_partial_response=True)
    start = time.perf_counter()
    with pytest.raises(TotalTimeoutError) as info:
        await client.stream_with_usage("x", model, streaming_options=options)
    assert 0.9 <= time.perf_counter() - start < 2.0
    assert info.value.partial_text
    assert isinstance(info.value, TimeoutError)


async def test_total_timeout_bounds_retry_after(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(status=429, headers={"retry-after": "30"}))
    options = StreamingOptions(total_timeout=2.0)
    start = time.perf_counter()
    with pytest.raises(TotalTimeoutError, match="before the next retry"):
        await client.stream_with_usage("x", model, streaming_options=options)
    assert time.perf_counter() - start < 1.0  # gives up at once instead of sleeping 30 s


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A listening socket whose accept queue is full: connections hang in SYN."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    yield port
    for s in fillers:
        s.close()
    server.close()


async def test_connection_timeout(unanswered_port: int) -> None:
    client = SteerLLMClient(
        api_keys={"openai": "sk-test"},
        base_urls={"openai": f"http://127.0.0.1:{unanswered_port}/v1"},
    )
    options = StreamingOptions(connection_timeout=0.5, retry_on_connection_error=False)
    start = time.perf_counter()
    with pytest.raises(ConnectTimeoutError) as info:
        await client.stream_with_usage("x", "gpt-4o-mini", streaming_options=options)
    assert time.perf_counter() - start < 2.0
    assert isinstance(info.value, TimeoutError)
    await client.aclose()


async def test_connection_refused_is_retried_then_raised() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    client = SteerLLMClient(
        api_keys={"openai": "sk-test"}, base_urls={"openai": f"http://127.0.0.1:{port}/v1"}
    )
    options = StreamingOptions(max_reconnect_attempts=2, reconnect_delay=0.01)
    with pytest.raises(ConnectionError, match="could not connect") as info:
        await client.stream_with_usage("x", "gpt-4o-mini", streaming_options=options)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    assert info.value.url == url and url in str(info.value)  # the error names what it tried
    await client.aclose()


# -- retries before any text -------------------------------------------------------
@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
async def test_retryable_statuses(
    client: SteerLLMClient, guide_env: Emulator, model: str, status: int
) -> None:
    guide_env.enqueue(Reply(status=status), Reply(chunks=WORDS))
    response = await client.stream_with_usage("x", model, streaming_options=FAST)
    assert response.text == "".join(WORDS) and response.attempts == 2
    assert requests_to(guide_env) == 2


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, SteerError),
        (404, NotFoundError),
        (422, BadRequestError),
    ],
)
async def test_client_errors_are_never_retried(
    client: SteerLLMClient, guide_env: Emulator, model: str, status: int, cls: type
) -> None:
    guide_env.enqueue(Reply(status=status, error_message="nope"), Reply(chunks=WORDS))
    with pytest.raises(cls) as info:
        await client.stream_with_usage("x", model, streaming_options=FAST)
    assert requests_to(guide_env) == 1
    error = info.value
    assert error.status_code == status and error.request_id == "req_emulator"
    assert "nope" in str(error) and error.body and "nope" in error.body
    assert error.provider and error.model == model


async def test_attempts_are_bounded(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(*[Reply(status=503)] * 5)
    options = StreamingOptions(max_reconnect_attempts=3, reconnect_delay=0.01)
    with pytest.raises(ServerError) as info:
        await client.stream_with_usage("x", model, streaming_options=options)
    assert info.value.status_code == 503 and requests_to(guide_env) == 4
    guide_env.enqueue(Reply(status=503))
    with pytest.raises(ServerError):
        await client.stream_with_usage("x", model, streaming_options=NO_RETRY)


async def test_retry_after_is_honoured(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(status=429, headers={"retry-after": "1"}), Reply(chunks=WORDS))
    start = time.perf_counter()
    response = await client.stream_with_usage("x", model, streaming_options=FAST)
    assert time.perf_counter() - start >= 0.95 and response.attempts == 2
    guide_env.enqueue(Reply(status=429, headers={"retry-after-ms": "300"}), Reply(chunks=WORDS))
    start = time.perf_counter()
    await client.stream_with_usage("x", model, streaming_options=FAST)
    assert time.perf_counter() - start >= 0.28


async def test_rate_limit_error_carries_retry_after(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(status=429, headers={"retry-after": "7"}))
    with pytest.raises(RateLimitError) as info:
        await client.stream_with_usage("x", model, streaming_options=NO_RETRY)
    assert info.value.retry_after == 7.0


async def test_in_band_overload_before_text_is_retried(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(chunks=WORDS, fault=Fault.error_event_after(0)), Reply(chunks=WORDS))
    response = await client.stream_with_usage("x", model, streaming_options=FAST)
    assert response.text == "".join(WORDS) and response.attempts == 2


async def test_drop_before_text_is_retried(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(fault=Fault.drop_after(0)), Reply(chunks=WORDS))
    chunks = [c async for c in client.stream("x", model, streaming_options=FAST)]
    assert chunks == WORDS


# -- failures after text -----------------------------------------------------------
async def test_anthropic_resumes_seamlessly(client: SteerLLMClient, guide_env: Emulator) -> None:
    model = "claude-3-haiku-20240307"
    full = await client.stream_with_usage("Tell me a story", model)
    guide_env.enqueue(Reply(fault=Fault.drop_after(5)))
    chunks = [c async for c in client.stream("Tell me a story", model, streaming_options=FAST)]
    assert "".join(chunks) == full.text
    # nothing delivered twice: the resumed request asked to continue after the prefix
    resumed = guide_env.requests[-1].json["messages"][-1]
    assert resumed["role"] == "assistant" and resumed["content"] == "".join(chunks[:5])

    guide_env.enqueue(Reply(fault=Fault.drop_after(5)))
    response = await client.stream_with_usage("Tell me a story", model, streaming_options=FAST)
    assert response.text == full.text and response.resumptions == 1 and response.attempts == 2
    # usage adds up both attempts: the first one's prompt and its 5 chunks (estimated)
    assert response.usage["completion_tokens"] >= full.usage["completion_tokens"]
    assert response.usage["prompt_tokens"] > full.usage["prompt_tokens"]
    assert response.usage.get("estimated") is True


async def test_resume_strips_trailing_white_space_without_losing_it(
    client: SteerLLMClient, guide_env: Emulator
) -> None:
    text = "Hello big world, said the keeper."
    chunks = ["Hello ", "big ", "world,", " said", " the", " keeper."]
    guide_env.enqueue(Reply(text=text, chunks=chunks, fault=Fault.drop_after(2)), Reply(text=text))
    got = [c async for c in client.stream("x", "claude-3-haiku-20240307", streaming_options=FAST)]
    assert "".join(got) == text
    assert guide_env.requests[-1].json["messages"][-1]["content"] == "Hello big"


async def test_openai_cannot_resume_and_says_so(
    client: SteerLLMClient, guide_env: Emulator
) -> None:
    guide_env.enqueue(Reply(chunks=WORDS, fault=Fault.drop_after(3)))
    keep = StreamingOptions(reconnect_delay=0.01, preserve_partial_response=True)
    with pytest.raises(StreamInterruptedError) as info:
        await client.stream_with_usage("x", "gpt-4o-mini", streaming_options=keep)
    error = info.value
    assert error.partial_text == "".join(WORDS[:3]) and isinstance(error.cause, ConnectionError)
    assert error.partial_usage and error.partial_usage["completion_tokens"] > 0
    assert requests_to(guide_env) == 1  # never re-asked: that would duplicate text

    guide_env.enqueue(Reply(chunks=WORDS, fault=Fault.drop_after(3)))
    with pytest.raises(StreamInterruptedError, match="dropped") as info:
        await client.stream_with_usage("x", "gpt-4o-mini", streaming_options=FAST)
    assert info.value.partial_text is None


async def test_stream_never_delivers_a_chunk_twice(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(chunks=WORDS, fault=Fault.error_event_after(4)))
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for chunk in client.stream("x", "gpt-4o-mini", streaming_options=FAST):
            got.append(chunk)
    assert got == WORDS[:4] and isinstance(info.value.cause, OverloadedError)


# -- bad wire data -------------------------------------------------------------------
async def test_garbage_is_an_invalid_response(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    guide_env.enqueue(Reply(fault=Fault.garbage()))
    with pytest.raises(InvalidResponseError, match="not a valid event stream"):
        await client.stream_with_usage("x", model, streaming_options=FAST)


async def test_one_byte_per_write(client: SteerLLMClient, guide_env: Emulator, model: str) -> None:
    text = "Grüße 🙂 — 漢字\u2028line"
    guide_env.enqueue(
        Reply(
            text=text,
            chunks=["Grüße", " 🙂", " — 漢字", "\u2028line"],
            fault=Fault.one_byte_per_write(),
        )
    )
    response = await client.stream_with_usage("x", model)
    assert response.text == text and "estimated" not in response.usage


# -- secrets ---------------------------------------------------------------------------
async def test_api_key_never_in_errors_or_logs(
    guide_env: Emulator,
    model: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "sk-ant-api03-VERYSECRETKEYVALUE0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    guide_env.enqueue(Reply(status=401, error_message=f"Incorrect API key provided: {secret}"))
    async with SteerLLMClient() as client:
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(AuthenticationError) as info:
                await client.stream_with_usage("x", model)
    error = info.value
    for text in (str(error), repr(error), error.body or "", caplog.text, repr(client)):
        assert secret not in text
    assert "[REDACTED]" in str(error)


# -- callbacks -----------------------------------------------------------------------
async def test_callback_exception_stops_the_stream(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    errors: list[BaseException] = []

    def on_delta(text: str) -> None:
        if text == " a":
            raise ValueError("stop here")

    guide_env.enqueue(Reply(chunks=WORDS))
    options = StreamingOptions(on_delta=on_delta, on_error=errors.append)
    got = []
    with pytest.raises(ValueError, match="stop here"):
        async for chunk in client.stream("x", model, streaming_options=options):
            got.append(chunk)
    assert got == WORDS[:2] and len(errors) == 1 and isinstance(errors[0], ValueError)


async def test_on_error_once_and_error_still_raises(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    errors: list[BaseException] = []
    completes: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(error)

    guide_env.enqueue(Reply(status=400))
    options = StreamingOptions(on_error=on_error, on_complete=completes.append)
    with pytest.raises(BadRequestError):
        await client.stream_with_usage("x", model, streaming_options=options)
    assert len(errors) == 1 and isinstance(errors[0], BadRequestError) and not completes


async def test_batched_deltas(client: SteerLLMClient, guide_env: Emulator, model: str) -> None:
    batches: list[str] = []
    guide_env.enqueue(Reply(chunks=WORDS))
    options = StreamingOptions(on_delta=batches.append, delta_batch_size=4)
    response = await client.stream_with_usage("x", model, streaming_options=options)
    assert batches == ["".join(WORDS[0:4]), "".join(WORDS[4:8]), "".join(WORDS[8:])]
    assert response.text == "".join(WORDS)


# -- cancellation and load -------------------------------------------------------------
async def test_break_and_cancel_close_the_response(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    options = StreamingOptions(read_timeout=5.0)
    long_story = WORDS * 100  # about 9 s at this pace: still streaming when we check
    for _ in range(1000):
        guide_env.enqueue(Reply(chunks=long_story, delay_between_chunks=0.01))
        stream = client.stream("x", model, streaming_options=options)
        async for _chunk in stream:
            break
        await stream.aclose()
    for _ in range(100):
        guide_env.enqueue(Reply(chunks=long_story, delay_between_chunks=0.01))

        async def consume() -> None:
            async for _chunk in client.stream("x", model, streaming_options=options):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.03)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await asyncio.sleep(0.3)
    # Every abandoned response was closed at once: the server is not still streaming
    # 1,100 answers into the void (it would be, had the SDK leaked them).
    assert guide_env.open_connections <= 2
    response = await client.stream_with_usage("x", model)  # the pool is healthy
    assert response.text


async def test_many_concurrent_streams_and_one_failure(
    client: SteerLLMClient, guide_env: Emulator, model: str
) -> None:
    expected = (await client.stream_with_usage("same prompt", model)).text
    guide_env.enqueue(Reply(status=400))  # exactly one of them fails

    async def one() -> str:
        return "".join(
            [c async for c in client.stream("same prompt", model, streaming_options=FAST)]
        )

    results = await asyncio.gather(*(one() for _ in range(1000)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], BadRequestError)
    assert all(r == expected for r in results if not isinstance(r, BaseException))
