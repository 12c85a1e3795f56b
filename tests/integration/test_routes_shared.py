"""Routes over real sockets, what a client's calls share: cooldowns (200 concurrent
calls, the downed deployment receives at most the probes), load balancing (1,000
concurrent calls spread within 10%), rate-limit headers; and restart, the tool loop,
a batch job and telemetry over a route."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from steer_llm_sdk import (
    Balance,
    ConfigurationError,
    Cooldown,
    CooldownError,
    Restart,
    ServerError,
    SteerError,
    SteerLLMClient,
    StreamInterruptedError,
    TextDelta,
    ToolCallStart,
)
from steer_llm_sdk.testing import Emulator, Fault, Reply

from .test_routes import ANTHROPIC, FAST, GEMINI, KEYS, OPENAI, Providers

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def emus() -> AsyncIterator[Providers]:
    async with Emulator() as o, Emulator() as a, Emulator() as g:
        yield Providers(o, a, g)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Emulator, Emulator]]:
    """Two deployments of one model: "east" and "west", each its own server."""
    async with Emulator(reply_words=8) as east, Emulator(reply_words=8) as west:
        yield east, west


def balanced(east: Emulator, west: Emulator, **kwargs: Any) -> SteerLLMClient:
    providers = {
        "east": {"base_url": east.openai_base_url, "api_key": "sk-east-key-000000000"},
        "west": {"base_url": west.openai_base_url, "api_key": "sk-west-key-000000000"},
    }
    kwargs.setdefault("default_options", FAST)
    return SteerLLMClient(providers=providers, **kwargs)


async def many(client: SteerLLMClient, count: int, model: Any, **params: Any) -> list[Any]:
    return await asyncio.gather(
        *[client.stream_with_usage(f"call {i}", model=model, **params) for i in range(count)]
    )


async def test_cooldown_opens_then_one_probe_closes_it(emus: Providers) -> None:
    down = emus.anthropic.outage("down", status=503)
    options = FAST.replace(max_reconnect_attempts=0)
    cooldown = Cooldown(failures=3, window=30.0, seconds=2.5)  # longer than 200 calls
    route = [ANTHROPIC, OPENAI]
    async with emus.client(cooldown=cooldown, default_options=options) as client:
        for _ in range(3):  # three failures within the window open the breaker
            response = await client.stream_with_usage("Hi", model=route)
            assert response.route == f"openai/{OPENAI}"
        assert len(emus.anthropic.requests) == 3
        # 200 concurrent calls: the cooling deployment receives none
        responses = await many(client, 200, route)
        assert len(emus.anthropic.requests) == 3
        assert {r.route for r in responses} == {f"openai/{OPENAI}"}
        assert all(len(r.route_attempts) == 1 for r in responses)  # skipped, not tried
        # a one-entry route: fails at once, no request, saying until when
        with pytest.raises(CooldownError, match=r"cooling down.*until \d\d:\d\d:\d\d UTC") as c:
            await client.generate("Hi", model=[ANTHROPIC])
        assert 0 < c.value.retry_after <= 2.5 and len(emus.anthropic.requests) == 3
        # a plain model string is not a route: no breaker
        with pytest.raises(ServerError):
            await client.generate("Hi", model=ANTHROPIC)
        assert len(emus.anthropic.requests) == 4
        # after `seconds`: 200 concurrent calls, one probe; it fails, the breaker opens
        await asyncio.sleep(2.6)
        responses = await many(client, 200, route)
        assert len(emus.anthropic.requests) == 5
        assert {r.route for r in responses} == {f"openai/{OPENAI}"}
        # the deployment recovers: the next probe closes the breaker
        emus.anthropic.end_outage(down)
        await asyncio.sleep(2.6)
        responses = await many(client, 200, route)
        routes = Counter(r.route for r in responses)
        assert routes[f"anthropic/{ANTHROPIC}"] == 1  # the probe, and only it
        assert len(emus.anthropic.requests) == 6
        responses = await many(client, 20, route)
        assert {r.route for r in responses} == {f"anthropic/{ANTHROPIC}"}  # closed


async def test_least_busy_spreads_1000_concurrent_calls(pair: tuple[Emulator, Emulator]) -> None:
    east, west = pair
    async with balanced(east, west) as client:
        responses = await many(client, 1000, Balance(["east/m", "west/m"]), max_tokens=8)
    counts = (len(east.requests), len(west.requests))
    assert sum(counts) == 1000 and all(r.text for r in responses)
    assert abs(counts[0] - counts[1]) <= 100, counts  # within 10% of 1,000
    assert Counter(r.route for r in responses) == {"east/m": counts[0], "west/m": counts[1]}


async def test_least_busy_sends_less_to_a_slow_deployment(
    pair: tuple[Emulator, Emulator],
) -> None:
    east, west = pair
    east.outage("slow_first_token", seconds=0.3)
    async with balanced(east, west) as client:
        balance = Balance(["east/m", "west/m"])
        calls = []
        for _ in range(60):  # calls arriving one by one: east's stay in flight longer
            calls.append(asyncio.ensure_future(client.stream_with_usage("Hi", model=balance)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*calls)
    assert len(west.requests) > 2 * len(east.requests)


async def test_round_robin_weighted_and_latency(pair: tuple[Emulator, Emulator]) -> None:
    east, west = pair
    async with balanced(east, west) as client:
        rr = Balance(["east/m", "west/m"], strategy="round-robin")
        for _ in range(10):
            await client.generate("Hi", model=rr)
        assert (len(east.requests), len(west.requests)) == (5, 5)
        weighted = Balance(["east/m", "west/m"], strategy="weighted", weights=[3, 1])
        for _ in range(40):
            await client.generate("Hi", model=weighted)
        assert (len(east.requests), len(west.requests)) == (35, 15)
        east.outage("slow_first_token", seconds=0.15)
        fastest = Balance(["east/m", "west/m"], strategy="latency")
        routes = [(await client.stream_with_usage("Hi", model=fastest)).route for _ in range(8)]
    assert routes[2:] == ["west/m"] * 6  # both measured, then the faster one


async def test_rate_limit_headers_skip_a_deployment_with_no_budget(
    pair: tuple[Emulator, Emulator],
) -> None:
    east, west = pair
    east.enqueue(
        Reply(headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "20s"})
    )
    async with balanced(east, west) as client:
        balance = Balance(["east/m", "west/m"], strategy="round-robin")
        routes = [(await client.stream_with_usage("Hi", model=balance)).route for _ in range(6)]
    assert routes == ["east/m"] + ["west/m"] * 5
    assert len(east.requests) == 1


async def test_anthropic_rate_limit_headers_in_a_fallback_chain(emus: Providers) -> None:
    emus.anthropic.enqueue(
        Reply(
            headers={
                "anthropic-ratelimit-tokens-remaining": "0",
                "anthropic-ratelimit-tokens-reset": "2099-01-01T00:00:00Z",
            }
        )
    )
    async with emus.client() as client:
        first = await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI])
        second = await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI])
    assert first.route == f"anthropic/{ANTHROPIC}" and second.route == f"openai/{OPENAI}"


async def test_balance_tries_its_other_deployments_first(
    pair: tuple[Emulator, Emulator], emus: Providers
) -> None:
    east, west = pair
    east.outage("down", status=502)
    providers = {
        "east": {"base_url": east.openai_base_url, "api_key": "sk-east-key-000000000"},
        "west": {"base_url": west.openai_base_url, "api_key": "sk-west-key-000000000"},
    }
    options = FAST.replace(max_reconnect_attempts=0)
    async with emus.client(providers=providers, default_options=options) as client:
        route = [Balance(["east/m", "west/m"], strategy="round-robin"), OPENAI]
        routes = [(await client.stream_with_usage("Hi", model=route)).route for _ in range(2)]
    assert routes == ["west/m", "west/m"] and not emus.openai.requests


async def test_restart_on_the_next_route_sends_no_duplicate_text(emus: Providers) -> None:
    emus.gemini.outage("overloaded_mid_stream", after=3)
    options = FAST.replace(on_interrupt="restart")
    async with emus.client(default_options=options) as client:
        parts = [p async for p in client.stream_events("Hi", model=[GEMINI, OPENAI])]
    kinds = [p.type for p in parts]
    at = kinds.index("restart")
    restart = parts[at]
    assert isinstance(restart, Restart) and restart.route == f"openai/{OPENAI}"
    assert isinstance(restart.reason, SteerError)
    before = "".join(p.text for p in parts[:at] if isinstance(p, TextDelta))
    after = "".join(p.text for p in parts[at:] if isinstance(p, TextDelta))
    assert before and after
    response = parts[-1].response
    assert response.text == after  # what came before the Restart is not in the answer
    assert kinds.count("restart") == 1 and kinds[-1] == "finish"
    assert response.route == f"openai/{OPENAI}"
    assert [type(a.error) for a in response.route_attempts][1] is type(None)


async def test_restart_is_opt_in_and_events_only(emus: Providers) -> None:
    emus.gemini.outage("overloaded_mid_stream", after=3)
    async with emus.client() as client:
        with pytest.raises(StreamInterruptedError) as caught:  # the default: as today
            async for _ in client.stream_events("Hi", model=[GEMINI, OPENAI]):
                pass
        assert not emus.openai.requests
        assert isinstance(caught.value, SteerError)
        restart = FAST.replace(on_interrupt="restart")
        for method in (client.stream, client.stream_with_usage, client.generate):
            with pytest.raises(ConfigurationError, match="stream_events"):
                result = method("Hi", model=[GEMINI, OPENAI], streaming_options=restart)
                if asyncio.iscoroutine(result):
                    await result
        with pytest.raises(ConfigurationError, match="stream_events"):
            client.stream("Hi", model=OPENAI, streaming_options=restart)


async def test_no_restart_while_a_tool_call_is_open(emus: Providers) -> None:
    call = {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
    emus.anthropic.enqueue(Reply(tool_calls=[call], fault=Fault.drop_after(2)))
    options = FAST.replace(on_interrupt="restart", max_reconnect_attempts=0)
    seen: list[Any] = []
    async with emus.client(default_options=options) as client:
        with pytest.raises(StreamInterruptedError):
            async for part in client.stream_events("Hi", model=[ANTHROPIC, OPENAI]):
                seen.append(part)
    assert any(isinstance(p, ToolCallStart) for p in seen)
    assert not any(isinstance(p, Restart) for p in seen) and not emus.openai.requests


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"{city}: 21 degrees C, sunny"


async def test_tool_loop_over_a_route(emus: Providers) -> None:
    emus.anthropic.outage("down", status=529)
    emus.openai.enqueue(
        Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]),
        Reply(text="Sunny in Paris."),
    )
    async with emus.client(routes={"smart": [ANTHROPIC, OPENAI]}) as client:
        response = await client.run_tools("Weather?", model="smart", tools=[get_weather])
    assert response.text == "Sunny in Paris." and response.steps == 2
    assert response.route == f"openai/{OPENAI}"
    second = emus.openai.requests[1].json
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]


async def test_batch_job_over_a_route(emus: Providers) -> None:
    emus.anthropic.outage("down", status=503)
    async with emus.client(routes={"smart": [ANTHROPIC, OPENAI]}) as client:
        job = client.batch(
            [f"item {i}" for i in range(30)], model="smart", max_tokens=8, concurrency=1
        )
        results = [result async for result in job]
    assert len(results) == 30 and all(r.ok and r.text for r in results)
    assert len(emus.openai.requests) == 30
    # the breaker opened after three failures: the rest skipped the downed provider
    assert len(emus.anthropic.requests) == 3


async def test_telemetry_names_the_answering_route(emus: Providers) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from steer_llm_sdk.telemetry import TelemetryOptions

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    emus.anthropic.outage("down", status=503)
    telemetry = TelemetryOptions(tracer_provider=provider)
    async with emus.client(telemetry=telemetry) as client:
        await client.stream_with_usage("Hi", model=[ANTHROPIC, OPENAI])
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["steer.route"] == f"openai/{OPENAI}"
    events = [e for e in span.events if e.name == "steer.route.attempt"]
    assert [e.attributes["gen_ai.provider.name"] for e in events] == ["anthropic", "openai"]
    assert events[0].attributes["error.type"] == "ServerError"
    assert "error.type" not in events[1].attributes
    assert all(k not in str(span.to_json()) for k in KEYS.values())


async def test_batch_takes_a_route_by_name_only(emus: Providers) -> None:
    async with emus.client() as client:
        with pytest.raises(ConfigurationError, match="routes"):
            client.batch(["a"], model=[ANTHROPIC, OPENAI])
