"""The tool loop: call the model, run the tools it asks for, send the results back,
and repeat until it answers without a tool call (or ``max_steps`` model calls).

Written over a ``stream_events``-like callable (``SteerLLMClient.stream_events``), so
it knows nothing of the client: ``client.run_tools`` / ``client.stream_tools``
delegate here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, Protocol

from .errors import ConfigurationError, MaxStepsError, ToolArgumentsError
from .request import normalize_messages
from .results import Finish, StreamingResponse, StreamPart, ToolCall, ToolResult
from .streaming.ledger import add_usage
from .tools import Tool, normalize_tools, tool_result_message

__all__ = ["StreamEvents", "run_calls", "run_tools", "stream_tools"]


class _Events(Protocol):
    def __aiter__(self) -> AsyncIterator[StreamPart]: ...
    def aclose(self) -> Awaitable[None]: ...


class StreamEvents(Protocol):
    """What the loop calls for each step: ``stream_events(messages, model, **params)``."""

    def __call__(self, messages: Any, model: str | None, **params: Any) -> _Events: ...


async def run_tools(
    stream_events: StreamEvents, messages: Any, model: str | None, **loop: Any
) -> StreamingResponse:
    """The last response of :func:`stream_tools` (``loop``: its keyword arguments),
    with the totals and the conversation."""
    final: StreamingResponse | None = None
    generator = stream_tools(stream_events, messages, model, **loop)
    try:
        async for part in generator:
            if type(part) is Finish:
                final = part.response
    finally:
        await generator.aclose()
    assert final is not None
    return final


async def stream_tools(
    stream_events: StreamEvents,
    messages: Any,
    model: str | None,
    *,
    tools: Any,
    max_steps: int,
    params: dict[str, Any],
) -> AsyncGenerator[StreamPart, None]:
    """The parts of every step as they arrive, a :class:`ToolResult` for each tool
    that ran, and a :class:`Finish` per step (the last one's response carries the
    usage and cost summed over the steps, and the whole conversation)."""
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigurationError(f"max_steps={max_steps!r} must be a whole number >= 1")
    tool_list = normalize_tools(tools)
    if not tool_list:
        raise ConfigurationError("run_tools() needs tools=[...] with at least one tool")
    by_name = {tool.name: tool for tool in tool_list}
    conversation = normalize_messages(messages)
    usage: dict[str, Any] = {}
    cost: float | None = 0.0
    last: StreamingResponse | None = None
    for step in range(1, max_steps + 1):
        finish: Finish | None = None
        generator = stream_events(conversation, model, tools=tool_list, **dict(params))
        try:
            async for part in generator:
                if type(part) is Finish:
                    finish = part
                else:
                    yield part
        finally:
            await generator.aclose()
        assert finish is not None
        response = finish.response
        usage = add_usage(usage, response.usage) if response.usage else usage
        cost = None if cost is None or response.cost_usd is None else cost + response.cost_usd
        conversation.append(response.to_message())
        last = response
        calls = response.tool_calls
        runnable = calls and all(
            call.name not in by_name or by_name[call.name].function is not None for call in calls
        )
        if not runnable:
            # An answer (or calls of tools the caller runs: they are in the response).
            response.usage = usage
            response.cost_usd = cost
            response.messages = conversation
            response.steps = step
            yield finish
            return
        if response.finish_reason == "length":
            raise ToolArgumentsError(
                f"max_tokens cut the answer inside a tool call "
                f"({calls[-1].name!r}): raise max_tokens",
                call=calls[-1],
                provider=response.provider,
                model=response.model,
            )
        yield finish
        if step == max_steps:
            break
        results = await run_calls(calls, by_name)
        for call, (content, is_error) in zip(calls, results, strict=True):
            conversation.append(tool_result_message(call.id, content, is_error=is_error))
            yield ToolResult(call, content, is_error)
    assert last is not None
    last.usage = usage
    last.cost_usd = cost
    last.messages = conversation
    last.steps = max_steps
    raise MaxStepsError(
        f"the model still called tools after max_steps={max_steps} steps "
        f"({', '.join(c.name for c in last.tool_calls)}); the conversation so far is "
        "in .messages, the last answer in .response",
        messages=conversation,
        response=last,
        provider=last.provider,
        model=last.model,
    )


async def run_calls(calls: list[ToolCall], by_name: dict[str, Tool]) -> list[tuple[str, bool]]:
    """Run a step's calls concurrently; every failure becomes an error result."""
    import asyncio  # here: `import steer_llm_sdk` does not load asyncio

    async def run(call: ToolCall) -> tuple[str, bool]:
        tool = by_name.get(call.name)
        if tool is None:
            known = ", ".join(by_name)
            return f"Error: there is no tool named {call.name!r} (tools: {known})", True
        try:
            arguments = call.args
            result = await tool.call(arguments)
        except Exception as exc:  # the model gets the error and may try again
            return f"Error: {type(exc).__name__}: {exc}", True
        content = tool_result_message(call.id, result)["content"]
        return content, False

    return list(await asyncio.gather(*(run(call) for call in calls)))
