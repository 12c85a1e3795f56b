"""Routes over real sockets: one emulator per provider (OpenAI, Anthropic, Gemini),
a fallback chain that moves on for each typed trigger and not for a 400, Retry-After
waited out or moved past, first-token timeouts, per-entry parameters, attribution,
and no credential in any error."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from steer_llm_sdk import (
    AuthenticationError,
    BadRequestError,
    Balance,
    ConfigurationError,
    ContextWindowError,
    FirstTokenTimeoutError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ReadTimeoutError,
    Route,
    ServerError,
    SteerLLMClient,
    StreamingOptions,
)
from steer_llm_sdk.errors import ConnectionError as SteerConnectionError
from steer_llm_sdk.testing import Emulator, Fault, Reply

OPENAI = "gpt-4o-mini"
ANTHROPIC = "claude-3-haiku-20240307"
GEMINI = "gemini-2.5-flash"
KEYS = {
    "openai": "sk-routes-openai-key-0000000000",
    "anthropic": "sk-ant-routes-key-0000000000",
    "gemini": "AIzaSyROUTES-gemini-key-000000000000000",
}
FAST = StreamingOptions(reconnect_delay=0.0, max_reconnect_attempts=1, read_timeout=5.0)


@dataclass
class Providers:
    openai: Emulator
    anthropic: Emulator
    gemini: Emulator

    def client(self, **kwargs: Any) -> SteerLLMClient:
        kwargs.setdefault("default_options", FAST)
        return SteerLLMClient(
            api_keys=KEYS,
            base_urls={
                "openai": self.openai.openai_base_url,
                "anthropic": self.anthropic.anthropic_base_url,
                "gemini": self.gemini.gemini_base_url,
            },
            **kwargs,
        )


@pytest.fixture
async def emus() -> AsyncIterator[Providers]:
    async with Emulator() as o, Emulator() as a, Emulator() as g:
        yield Providers(o, a, g)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Each trigger: how the Anthropic emulator (the first entry) fails, the error the
# route records, and how many requests the first entry gets (its own retries first).
TRIGGERS: dict[str, tuple[dict[str, Any], type[Exception], int]] = {
    "500": ({"kind": "down", "status": 500}, ServerError, 2),
    "502": ({"kind": "down", "status": 502}, ServerError, 2),
    "503": ({"kind": "down", "status": 503}, ServerError, 2),
    "529": ({"kind": "down", "status": 529}, OverloadedError, 2),
    "529-in-stream": ({"kind": "overloaded_mid_stream", "after": 0}, OverloadedError, 2),
    "429-long-retry-after": ({"kind": "rate_limit", "retry_after": 120}, RateLimitError, 1),
    "401": ({"kind": "down", "status": 401}, AuthenticationError, 1),
    "403": ({"kind": "down", "status": 403}, PermissionDeniedError, 1),
}


@pytest.mark.parametrize("trigger", list(TRIGGERS))
async def test_each_trigger_moves_to_the_next_route(emus: Providers, trigger: str) -> None:
    outage, kind, requests = TRIGGERS[trigger]
    emus.anthropic.outage(**outage)
    async with emus.client() as client:
        response = await client.stream_with_usage("Hello", model=[ANTHROPIC, OPENAI])
    assert response.text and response.route == f"openai/{OPENAI}"
    first, second = response.route_attempts
    assert (first.route, first.provider, first.model) == (ANTHROPIC, "anthropic", ANTHROPIC)
    assert isinstance(first.error, kind) and first.latency >= 0
    assert (second.route, second.provider, second.error) == (OPENAI, "openai", None)
    assert len(emus.anthropic.requests) == requests  # its own retries, then on
    assert len(emus.openai.requests) == 1
    assert response.attempts == requests + 1  # HTTP requests of the whole call


async def test_connection_error_and_read_timeout_move_on(emus: Providers) -> None:
    dead = {"base_url": f"http://127.0.0.1:{closed_port()}/v1", "api_key": "sk-dead-0000000000"}
    async with emus.client(providers={"dead": dead}) as client:
        response = await client.stream_with_usage("Hi", model=["dead/m1", OPENAI])
        assert isinstance(response.route_attempts[0].error, SteerConnectionError)
        assert response.route == f"openai/{OPENAI}"

        emus.anthropic.enqueue(*[Reply(fault=Fault.stall_before_headers(3.0))] * 2)
        slow = FAST.replace(read_timeout=0.3)
        response = await client.stream_with_usage(
            "Hi", model=[ANTHROPIC, GEMINI], streaming_options=slow
        )
        assert isinstance(response.route_attempts[0].error, ReadTimeoutError)
        assert response.route == f"gemini/{GEMINI}"


@pytest.mark.parametrize(
    ("protocol", "message"),
    [
        (
            "openai",
            "This model's maximum context length is 128000 tokens. However, your "
            "messages resulted in 210345 tokens. Please reduce the length of the messages.",
        ),
        ("anthropic", "prompt is too long: 210345 tokens > 200000 maximum"),
        (
            "gemini",
            "The input token count (1200000) exceeds the maximum number of tokens "
            "allowed (1048576).",
        ),
    ],
)
async def test_context_window_error_moves_to_the_larger_model(
    emus: Providers, protocol: str, message: str
) -> None:
    emu: Emulator = getattr(emus, protocol)
    model = {"openai": OPENAI, "anthropic": ANTHROPIC, "gemini": GEMINI}[protocol]
    other = OPENAI if protocol != "openai" else ANTHROPIC
    emu.add_rule(None, Reply(status=400, error_message=message))
    async with emus.client() as client:
        with pytest.raises(ContextWindowError) as caught:  # a plain model: the typed error
            await client.generate("Hi", model=model)
        assert isinstance(caught.value, BadRequestError)
        response = await client.generate("Hi", model=[model, other])
    assert isinstance(response.route_attempts[0].error, ContextWindowError)
    assert response.route is not None and response.route.endswith(other)
    assert len(emu.requests) == 2  # no retry of a 400 on the same route


async def test_a_400_does_not_move_on_unless_fallback_on_says(emus: Providers) -> None:
    emus.anthropic.add_rule(None, Reply(status=400, error_message="messages: bad role"))
    async with emus.client() as client:
        with pytest.raises(BadRequestError) as caught:
            await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI])
        assert not isinstance(caught.value, ContextWindowError)
        assert len(emus.openai.requests) == 0
        assert len(emus.anthropic.requests) == 1
        response = await client.stream_with_usage(
            "Hi", model=[ANTHROPIC, OPENAI], fallback_on=(BadRequestError,)
        )
        assert response.route == f"openai/{OPENAI}"
    seen: list[BaseException] = []

    def judge(error: BaseException) -> bool:
        seen.append(error)
        return isinstance(error, BadRequestError)

    async with emus.client(fallback_on=judge) as client:
        response = await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI])
    assert response.route == f"openai/{OPENAI}" and isinstance(seen[0], BadRequestError)
    # a plain model is not a route
    async with emus.client() as client:
        with pytest.raises(ConfigurationError, match="fallback_on"):
            await client.generate("Hi", model=OPENAI, fallback_on=(BadRequestError,))


async def test_short_retry_after_is_waited_out_on_the_same_route(emus: Providers) -> None:
    emus.anthropic.outage("rate_limit", retry_after=0.3, calls=1)
    options = FAST.replace(max_retry_after=2.0)
    async with emus.client(default_options=options) as client:
        started = time.perf_counter()
        response = await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI])
        waited = time.perf_counter() - started
    assert response.route == f"anthropic/{ANTHROPIC}"
    assert [a.error for a in response.route_attempts] == [None]
    assert waited >= 0.3 and response.attempts == 2
    assert len(emus.openai.requests) == 0


async def test_long_retry_after_moves_on_at_once(emus: Providers) -> None:
    emus.anthropic.outage("rate_limit", retry_after=30)
    options = FAST.replace(max_retry_after=2.0, max_reconnect_attempts=3)
    async with emus.client(default_options=options) as client:
        started = time.perf_counter()
        response = await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI])
        waited = time.perf_counter() - started
    assert response.route == f"openai/{OPENAI}" and waited < 2.0
    error = response.route_attempts[0].error
    assert isinstance(error, RateLimitError) and error.retry_after == 30
    assert len(emus.anthropic.requests) == 1


async def test_first_token_timeout_moves_on_without_a_retry(emus: Providers) -> None:
    emus.anthropic.outage("slow_first_token", seconds=3.0)
    options = FAST.replace(first_token_timeout=0.4, max_reconnect_attempts=3)
    async with emus.client(default_options=options) as client:
        started = time.perf_counter()
        response = await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI])
        waited = time.perf_counter() - started
        assert response.route == f"openai/{OPENAI}" and waited < 2.0
        assert isinstance(response.route_attempts[0].error, FirstTokenTimeoutError)
        assert len(emus.anthropic.requests) == 1  # no retry on the same route
        # before the headers too (a server that accepts and says nothing)
        emus.gemini.enqueue(Reply(fault=Fault.stall_before_headers(3.0)))
        response = await client.stream_with_usage("Hi", model=[GEMINI, OPENAI])
        assert isinstance(response.route_attempts[0].error, FirstTokenTimeoutError)
        # a plain model: the typed error, at once
        emus.gemini.enqueue(Reply(fault=Fault.stall_after(0, 3.0)))
        with pytest.raises(FirstTokenTimeoutError, match=r"first_token_timeout=0\.4"):
            await client.stream_with_usage("Hi", model=GEMINI)


async def test_first_token_timeout_does_not_cut_a_slow_answer(emus: Providers) -> None:
    emus.openai.enqueue(Reply(text="one two three four", delay_between_chunks=0.3))
    options = FAST.replace(first_token_timeout=0.5)
    async with emus.client(default_options=options) as client:
        response = await client.stream_with_usage("Hi", model=[OPENAI])
    assert response.text == "one two three four" and response.duration > 0.6


async def test_each_entry_gets_its_own_parameters(emus: Providers) -> None:
    emus.anthropic.outage("down", status=503)
    emus.gemini.outage("down", status=503)
    routes = {
        "smart": [
            Route(ANTHROPIC, temperature=0.1, max_tokens=50),
            Route(GEMINI, temperature=0.3),
            OPENAI,
        ]
    }
    async with emus.client(routes=routes) as client:
        response = await client.stream_with_usage(
            "Hi", model="smart", temperature=0.7, max_tokens=99
        )
    assert response.route == f"openai/{OPENAI}"
    anthropic = emus.anthropic.requests[0].json
    assert anthropic["temperature"] == 0.1 and anthropic["max_tokens"] == 50
    gemini = emus.gemini.requests[0].json["generationConfig"]
    assert gemini["temperature"] == 0.3 and gemini["maxOutputTokens"] == 99
    openai = emus.openai.requests[0].json
    assert openai["temperature"] == 0.7
    assert openai.get("max_tokens", openai.get("max_completion_tokens")) == 99
    assert [a.route for a in response.route_attempts] == [ANTHROPIC, GEMINI, OPENAI]


async def test_every_method_and_output_over_a_named_route(emus: Providers) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        population: int

    emus.anthropic.outage("down", status=529)
    async with emus.client(routes={"smart": [ANTHROPIC, OPENAI]}) as client:
        chunks = [c async for c in client.stream("Hi", model="smart")]
        assert "".join(chunks)
        parts = [p async for p in client.stream_events("Hi", model="smart")]
        assert parts[-1].type == "finish"
        assert parts[-1].response.route == f"openai/{OPENAI}"
        generated = await client.generate("Hi", model="smart")
        assert generated.route == f"openai/{OPENAI}"
        typed = await client.stream_with_usage("A city", model="smart", output=City)
        assert isinstance(typed.output, City) and typed.route == f"openai/{OPENAI}"


async def test_all_routes_fail_with_the_last_error_and_no_credential(
    emus: Providers, caplog: pytest.LogCaptureFixture
) -> None:
    emus.anthropic.outage("down", status=401)
    emus.openai.outage("down", status=403)
    emus.gemini.outage("down", status=503)
    caplog.set_level(logging.INFO, logger="steer_llm_sdk")
    async with emus.client() as client:
        with pytest.raises(ServerError) as caught:
            await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI, GEMINI])
    error = caught.value
    notes = " ".join(getattr(error, "__notes__", []))
    assert "AuthenticationError" in notes and "PermissionDeniedError" in notes
    text = "".join(traceback.format_exception(error)) + repr(error) + caplog.text
    for key in KEYS.values():
        assert key not in text and key[-12:] not in text
    assert "refused the credentials" in caplog.text  # auth errors are warned about


async def test_usage_and_cost_sum_what_was_billed(emus: Providers) -> None:
    # Anthropic's stream sends its input tokens (message_start), then breaks: billed.
    emus.anthropic.outage("overloaded_mid_stream", after=0)
    options = FAST.replace(max_reconnect_attempts=0)
    async with emus.client(default_options=options) as client:
        plain = await client.stream_with_usage("Hi there", model=OPENAI)
        routed = await client.stream_with_usage("Hi there", model=[ANTHROPIC, OPENAI])
        # a 5xx before the stream is not billed
        emus.gemini.outage("down", status=500)
        unbilled = await client.stream_with_usage("Hi there", model=[GEMINI, OPENAI])
    assert routed.usage["prompt_tokens"] > plain.usage["prompt_tokens"]
    assert routed.cost_usd is not None and plain.cost_usd is not None
    assert routed.cost_usd > plain.cost_usd
    assert unbilled.usage == plain.usage and unbilled.cost_usd == plain.cost_usd


async def test_sync_client_over_a_route() -> None:
    from steer_llm_sdk import SteerLLM

    emu = Emulator.start_in_thread()
    other = Emulator.start_in_thread()
    try:
        emu.outage("down", status=503)
        llm = SteerLLM(
            api_keys=KEYS,
            base_urls={"anthropic": emu.anthropic_base_url, "openai": other.openai_base_url},
            routes={"smart": [ANTHROPIC, OPENAI]},
            default_options=FAST,
        )
        try:
            response = await asyncio.to_thread(llm.stream_with_usage, "Hi", model="smart")
            chunks = await asyncio.to_thread(lambda: list(llm.stream("Hi", model="smart")))
        finally:
            await asyncio.to_thread(llm.close)
    finally:
        emu.stop()
        other.stop()
    assert response.route == f"openai/{OPENAI}" and "".join(chunks)


async def test_bad_routes_are_refused_before_any_request(emus: Providers) -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        emus.client(routes={"smart": []})
    with pytest.raises(ConfigurationError, match="strategy"):
        Balance([OPENAI], strategy="fastest")
    with pytest.raises(ConfigurationError, match="streaming_options"):
        Route(OPENAI, streaming_options=FAST)
    async with emus.client() as client:
        with pytest.raises(ConfigurationError):
            await client.generate("Hi", model=[])
        with pytest.raises(ConfigurationError):
            await client.generate("Hi", model=[OPENAI, 3])
    assert not emus.openai.requests


async def test_an_entry_without_a_key_is_passed_over_with_a_warning(
    emus: Providers, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    emus.anthropic.outage("down", status=503)
    async with emus.client() as client:
        response = await client.stream_with_usage("Hi", model=[ANTHROPIC, "grok-3-mini", OPENAI])
    assert response.route == f"openai/{OPENAI}"
    skipped = response.route_attempts[1]
    assert skipped.route == "grok-3-mini" and isinstance(skipped.error, ConfigurationError)
    assert "cannot use grok-3-mini" in caplog.text


async def test_a_named_route_with_an_unknown_model_is_refused_at_once(emus: Providers) -> None:
    with pytest.raises(ConfigurationError, match=r"routes=.'smart'"):
        emus.client(routes={"smart": [OPENAI, "gtp-4o"]})


async def test_outages_for_n_calls_per_model_and_over_http(emus: Providers) -> None:
    import httpx

    emu = emus.openai
    emu.outage("down", status=502, calls=2, model="gpt-4o")  # another model: untouched
    options = FAST.replace(max_reconnect_attempts=2)
    async with emus.client(default_options=options) as client:
        response = await client.stream_with_usage("Hi", model=OPENAI)
        assert response.attempts == 1
        response = await client.stream_with_usage("Hi", model="gpt-4o")
        assert response.attempts == 3  # down for two calls, then up
        async with httpx.AsyncClient() as http:
            made = await http.post(
                emu.url + "/emulator/outage", json={"kind": "rate_limit", "retry_after": 90}
            )
            assert made.status_code == 200
        with pytest.raises(RateLimitError) as caught:
            await client.generate("Hi", model=OPENAI)
        assert caught.value.retry_after == 90
        emu.end_outage()
        assert (await client.generate("Hi", model=OPENAI)).text
