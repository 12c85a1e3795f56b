"""Tools, the tool loop, typed events and reasoning over real sockets, on both
protocols, against the emulator (which rejects tool conversations the real APIs
reject)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from steer_llm_sdk import (
    ConfigurationError,
    Finish,
    MaxStepsError,
    ReasoningDelta,
    SteerLLMClient,
    StreamInterruptedError,
    TextDelta,
    Tool,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolResult,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator, Fault, Reply

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-haiku-20240307"}
NO_RETRY = StreamingOptions(retry_on_connection_error=False, preserve_partial_response=True)


def client_for(emu: Emulator) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": "sk-test-key-000000", "anthropic": "sk-ant-test-key-0000"},
        base_urls={"openai": emu.openai_base_url, "anthropic": emu.anthropic_base_url},
    )


def get_weather(city: str, units: Literal["c", "f"] = "c") -> str:
    """Get the current weather in a city.

    Args:
        city: The city's name.
        units: Celsius or Fahrenheit.
    """
    return f"{city}: 21 degrees {units.upper()}, sunny"


async def get_time(zone: str) -> dict[str, str]:
    """The local time in a time zone."""
    await asyncio.sleep(0)
    return {"zone": zone, "time": "14:05"}


def bodies(emu: Emulator) -> list[dict[str, Any]]:
    return [r.json for r in emu.requests]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_run_tools_two_parallel_calls_then_an_answer(provider: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                tool_calls=[
                    {"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"name": "get_time", "arguments": {"zone": "Europe/Paris"}},
                ]
            ),
            Reply(text="It is sunny in Paris and 14:05."),
        )
        response = await client.run_tools(
            "Weather and time in Paris?", MODELS[provider], tools=[get_weather, get_time]
        )
        sent = bodies(emu)
    assert response.text == "It is sunny in Paris and 14:05."
    assert response.finish_reason == "stop" and response.steps == 2
    # usage and cost summed over both steps
    assert response.usage["prompt_tokens"] > 0 and response.usage["completion_tokens"] > 8
    assert response.cost_usd is not None and response.cost_usd > 0
    roles = [m["role"] for m in response.messages or []]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]
    assert response.messages is not None
    results = {m["tool_call_id"]: m["content"] for m in response.messages if m["role"] == "tool"}
    assert "Paris: 21 degrees C, sunny" in results.values()
    assert json.dumps({"zone": "Europe/Paris", "time": "14:05"}).replace(" ", "") in {
        v.replace(" ", "") for v in results.values()
    }
    first, second = sent
    if provider == "openai":
        assert [t["function"]["name"] for t in first["tools"]] == ["get_weather", "get_time"]
        weather = first["tools"][0]["function"]
        assert weather["description"] == "Get the current weather in a city."
        assert weather["parameters"]["required"] == ["city"]
        assert weather["parameters"]["properties"]["city"]["description"] == "The city's name."
        assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool", "tool"]
        assert all("steer" not in c for c in second["messages"][1]["tool_calls"])
    else:
        assert [t["name"] for t in first["tools"]] == ["get_weather", "get_time"]
        assert "input_schema" in first["tools"][0]
        # Both results in ONE user message, right after the assistant's tool_use turn.
        assert [m["role"] for m in second["messages"]] == ["user", "assistant", "user"]
        blocks = second["messages"][2]["content"]
        assert [b["type"] for b in blocks] == ["tool_result", "tool_result"]
        uses = [b for b in second["messages"][1]["content"] if b["type"] == "tool_use"]
        assert [b["id"] for b in uses] == [b["tool_use_id"] for b in blocks]
        assert uses[0]["input"] == {"city": "Paris"}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_stream_events_parallel_interleaved_calls(provider: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                text="Checking.",
                tool_calls=[
                    {"name": "get_weather", "arguments": {"city": "Edinburgh", "units": "c"}},
                    {"name": "get_weather", "arguments": {"city": "Oslo", "units": "f"}},
                    {"name": "ping", "arguments": ""},
                ],
                interleave_tool_calls=True,
            )
        )
        ping = {"type": "function", "function": {"name": "ping", "parameters": {}}}
        parts = [
            p
            async for p in client.stream_events(
                "Weather?", MODELS[provider], tools=[get_weather, ping], tool_choice="auto"
            )
        ]
    starts = [p for p in parts if isinstance(p, ToolCallStart)]
    ends = [p for p in parts if isinstance(p, ToolCallEnd)]
    assert [s.name for s in starts] == ["get_weather", "get_weather", "ping"]
    assert [e.index for e in ends] == [0, 1, 2]
    assert ends[0].call.args == {"city": "Edinburgh", "units": "c"}
    assert ends[1].call.args == {"city": "Oslo", "units": "f"}
    assert ends[2].call.args == {}  # a tool that takes nothing
    for index in range(3):
        deltas = "".join(
            p.arguments for p in parts if isinstance(p, ToolCallDelta) and p.index == index
        )
        assert deltas == ends[index].call.arguments
    assert "".join(p.text for p in parts if isinstance(p, TextDelta)) == "Checking."
    finish = parts[-1]
    assert isinstance(finish, Finish)
    assert finish.reason == "tool_calls"
    assert finish.raw_reason == ("tool_calls" if provider == "openai" else "tool_use")
    assert [c.id for c in finish.response.tool_calls] == [e.call.id for e in ends]
    assert all(p.type for p in parts)  # every part says what it is


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_failing_and_unknown_tools_go_back_as_errors(provider: str) -> None:
    def broken(x: int) -> str:
        """Always fails."""
        raise RuntimeError("the database is down")

    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                tool_calls=[
                    {"name": "broken", "arguments": {"x": 1}},
                    {"name": "nope", "arguments": {}},
                    {"name": "broken", "arguments": {"x": "not a number"}},
                ]
            ),
            Reply(text="Sorry, the tools failed."),
        )
        parts = [p async for p in client.stream_tools("Go", MODELS[provider], tools=[broken])]
        sent = bodies(emu)[1]
    results = [p for p in parts if isinstance(p, ToolResult)]
    assert [r.is_error for r in results] == [True, True, True]
    assert "the database is down" in results[0].content
    assert "no tool named 'nope'" in results[1].content
    assert "x" in results[2].content  # the validation error names the argument
    finishes = [p for p in parts if isinstance(p, Finish)]
    assert [f.reason for f in finishes] == ["tool_calls", "stop"]
    assert finishes[-1].response.text == "Sorry, the tools failed."
    if provider == "anthropic":
        blocks = sent["messages"][2]["content"]
        assert all(b.get("is_error") is True for b in blocks)
    else:
        assert all("is_error" not in m for m in sent["messages"])


async def test_max_steps_raises_with_the_conversation() -> None:
    async with Emulator() as emu, client_for(emu) as client:
        call = Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Rome"}}])
        emu.enqueue(call, call, call)
        with pytest.raises(MaxStepsError) as info:
            await client.run_tools("Loop", "gpt-4o-mini", tools=[get_weather], max_steps=2)
    error = info.value
    assert "max_steps=2" in str(error)
    assert [m["role"] for m in error.messages] == ["user", "assistant", "tool", "assistant"]
    assert error.response.tool_calls[0].name == "get_weather"


async def test_sync_tools_run_in_a_thread_and_calls_run_concurrently() -> None:
    threads: set[int] = set()
    barrier = threading.Barrier(2, timeout=5)

    def slow(n: int) -> int:
        """Wait for the other call: only concurrent calls pass the barrier."""
        threads.add(threading.get_ident())
        barrier.wait()
        return n * 2

    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                tool_calls=[
                    {"name": "slow", "arguments": {"n": 1}},
                    {"name": "slow", "arguments": {"n": 2}},
                ]
            ),
            Reply(text="done"),
        )
        response = await client.run_tools("x", "gpt-4o-mini", tools=[slow])
    assert response.text == "done"
    assert threading.get_ident() not in threads and len(threads) == 2
    assert [m["content"] for m in response.messages or [] if m["role"] == "tool"] == ["2", "4"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_tool_choice_and_parallel_flag_map_to_each_protocol(provider: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        for choice in ("auto", "none", "required", "get_weather"):
            emu.enqueue(Reply(text="ok"))
            await client.generate(
                "x",
                MODELS[provider],
                tools=[get_weather],
                tool_choice=choice,
                parallel_tool_calls=False,
            )
        sent = bodies(emu)
    got = [b["tool_choice"] for b in sent]
    if provider == "openai":
        assert got == [
            "auto",
            "none",
            "required",
            {"type": "function", "function": {"name": "get_weather"}},
        ]
        assert all(b["parallel_tool_calls"] is False for b in sent)
    else:
        assert got == [
            {"type": "auto", "disable_parallel_tool_use": True},
            {"type": "none"},
            {"type": "any", "disable_parallel_tool_use": True},
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_generate_returns_tool_calls(provider: str) -> None:
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Lima"}}]))
        response = await client.generate("x", MODELS[provider], tools=[get_weather])
    assert response.finish_reason == "tool_calls"
    assert [(c.name, c.args) for c in response.tool_calls] == [("get_weather", {"city": "Lima"})]
    message = response.to_message()
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_reasoning_streams_and_is_echoed_back(provider: str) -> None:
    thinking = "The user wants weather; I should call the tool."
    async with Emulator() as emu, client_for(emu) as client:
        emu.enqueue(
            Reply(
                reasoning=thinking,
                tool_calls=[{"name": "get_weather", "arguments": {"city": "Kyiv"}}],
            ),
            Reply(text="Sunny."),
        )
        parts = [
            p async for p in client.stream_tools("Weather?", MODELS[provider], tools=[get_weather])
        ]
        sent = bodies(emu)
    reasoning = "".join(p.text for p in parts if isinstance(p, ReasoningDelta))
    assert reasoning == thinking
    first_reasoning = next(i for i, p in enumerate(parts) if isinstance(p, ReasoningDelta))
    first_call = next(i for i, p in enumerate(parts) if isinstance(p, ToolCallStart))
    assert first_reasoning < first_call
    step1 = next(p for p in parts if isinstance(p, Finish)).response
    assert step1.reasoning_text == thinking
    if provider == "anthropic":
        # The signed thinking block goes back first in the assistant turn, as required.
        echoed = sent[1]["messages"][1]["content"][0]
        assert echoed["type"] == "thinking" and echoed["thinking"] == thinking
        assert echoed["signature"]
    else:
        assert "steer" not in sent[1]["messages"][1]


async def test_a_break_after_a_tool_call_part_is_not_resumed() -> None:
    # llama.cpp-like servers can resume text; a tool call that was already shown to
    # the caller cannot be continued from a text prefix.
    async with Emulator() as emu:
        client = SteerLLMClient(
            providers={"resumable": {"base_url": emu.openai_base_url, "continues_prefix": True}}
        )
        emu.enqueue(
            Reply(
                text="one two three four five six",
                reasoning="thinking about it at some length",
                fault=Fault.drop_after(7),
            )
        )
        got: list[Any] = []
        with pytest.raises(StreamInterruptedError) as info:
            async for part in client.stream_events(
                "x",
                "resumable/m",
                streaming_options=StreamingOptions(preserve_partial_response=True),
            ):
                got.append(part)
        await client.aclose()
    assert any(isinstance(p, ReasoningDelta) for p in got)
    assert len(emu.requests) == 1  # no resumption attempt
    assert info.value.partial_text == "".join(p.text for p in got if isinstance(p, TextDelta))


class Weather(BaseModel):
    city: str


def test_bad_tool_input_is_a_typed_error_naming_the_problem() -> None:
    client = SteerLLMClient(api_keys={"openai": "sk-test-key-000000"})

    def call(**params: Any) -> None:
        client._prepare("x", "gpt-4o-mini", dict(params), stream=True, method="stream")

    with pytest.raises(ConfigurationError, match=r"tools\[0\] is a int"):
        call(tools=[42])
    with pytest.raises(ConfigurationError, match="two tools are named 'get_weather'"):
        call(tools=[get_weather, {"type": "function", "function": {"name": "get_weather"}}])
    with pytest.raises(ConfigurationError, match="tool_choice='nope' names no tool"):
        call(tools=[get_weather], tool_choice="nope")
    with pytest.raises(ConfigurationError, match="tools must be a list"):
        call(tools=get_weather)
    with pytest.raises(ConfigurationError, match="tool name 'bad name'"):
        call(tools=[Tool("bad name")])
    with pytest.raises(ConfigurationError, match="parallel_tool_calls"):
        call(tools=[get_weather], parallel_tool_calls="yes")
    with pytest.raises(ConfigurationError, match="max_steps"):
        asyncio.run(client.run_tools("x", "gpt-4o-mini", tools=[get_weather], max_steps=0))
    # a pydantic model is a tool whose arguments are the model
    tool = Tool.from_model(Weather)
    assert tool.name == "Weather" and tool.parameters["required"] == ["city"]  # type: ignore[index]


async def test_the_readme_emulator_example_runs() -> None:
    """The README's "Testing your tool loops" example, as written."""
    async with Emulator() as emu:
        emu.enqueue(
            Reply(
                tool_calls=[
                    {"name": "get_weather", "arguments": {"city": "Paris"}},
                    {"name": "get_weather", "arguments": {"city": "Rome"}},
                ],
                interleave_tool_calls=True,
                reasoning="Two cities: two calls.",
            ),
            Reply(text="Sunny in both."),
        )
        client = SteerLLMClient(
            api_keys={"openai": "sk-test"}, base_urls={"openai": emu.openai_base_url}
        )
        response = await client.run_tools("Weather?", "gpt-4o-mini", tools=[get_weather])
        await client.aclose()
    assert response.text == "Sunny in both."
    assert response.reasoning_text is None  # the last step did not think
    results = [m["content"] for m in response.messages or [] if m["role"] == "tool"]
    assert results == ["Paris: 21 degrees C, sunny", "Rome: 21 degrees C, sunny"]
