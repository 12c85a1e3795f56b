"""OpenTelemetry GenAI spans and metrics, with the OpenTelemetry SDK's in-memory span
exporter and metric reader, over real sockets against the emulator, for both wire
protocols: success, cached input, errors, cancellation, a broken stream, content
capture, and nothing of OpenTelemetry imported without telemetry."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from steer_llm_sdk import (
    BadRequestError,
    ConfigurationError,
    Finish,
    ServerError,
    SteerLLM,
    SteerLLMClient,
    StreamInterruptedError,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.telemetry import CAPTURE_ENV, TelemetryOptions
from steer_llm_sdk.testing import Emulator, Fault, Reply

NO_RETRY = StreamingOptions(retry_on_connection_error=False)
WORDS = ["Once", " upon", " a", " time", " the", " keeper", " lit", " the", " lamp."]


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def options(self, **kwargs: Any) -> TelemetryOptions:
        return TelemetryOptions(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def only_span(self) -> ReadableSpan:
        spans = self.finished()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def points(self, name: str) -> list[tuple[dict[str, Any], int, float]]:
        """(attributes, count, sum) of each data point of a histogram."""
        out = []
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            out.append((dict(point.attributes), point.count, point.sum))
        return out


@pytest.fixture
def otel() -> Telemetry:
    return Telemetry()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        yield emu


def make_client(emulator: Emulator, telemetry: Any) -> SteerLLMClient:
    return SteerLLMClient(
        api_keys={"openai": "sk-test-otel-0000", "anthropic": "sk-ant-test-otel-0000"},
        base_urls={"openai": emulator.openai_base_url, "anthropic": emulator.anthropic_base_url},
        telemetry=telemetry,
    )


@pytest.fixture
async def client(emulator: Emulator, otel: Telemetry) -> AsyncIterator[SteerLLMClient]:
    async with make_client(emulator, otel.options()) as c:
        yield c


PROVIDERS = {"gpt-4o-mini": "openai", "claude-3-haiku-20240307": "anthropic"}


@pytest.fixture(params=list(PROVIDERS))
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_streamed_call_is_one_client_span_with_usage_and_metrics(
    client: SteerLLMClient, emulator: Emulator, otel: Telemetry, model: str
) -> None:
    response = await client.stream_with_usage(
        "Tell me a story", model, temperature=0.3, max_tokens=200, top_p=0.9, stop=["zzz"]
    )
    span = otel.only_span()
    attrs = dict(span.attributes or {})
    assert span.name == f"chat {model}" and span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == PROVIDERS[model]
    assert attrs["gen_ai.request.model"] == model
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.request.temperature"] == 0.3
    assert attrs["gen_ai.request.max_tokens"] == 200
    assert attrs["gen_ai.request.top_p"] == 0.9
    assert attrs["gen_ai.request.stop_sequences"] == ("zzz",)
    assert attrs["gen_ai.response.id"] == response.request_id
    assert attrs["gen_ai.response.model"] == response.response_model == model
    assert attrs["gen_ai.response.finish_reasons"] == (response.finish_reason,)
    assert attrs["gen_ai.usage.input_tokens"] == response.usage["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == response.usage["completion_tokens"] > 0
    assert attrs["steer.cost_usd"] == pytest.approx(response.cost_usd)
    assert attrs["server.address"] == "127.0.0.1" and attrs["server.port"] == emulator.port
    assert 0 < attrs["gen_ai.response.time_to_first_chunk"] <= response.duration
    assert "error.type" not in attrs
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs
    # The span covers the whole stream.
    assert span.end_time is not None and span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 >= response.time_to_first_token

    tokens = {
        a["gen_ai.token.type"]: (n, total)
        for a, n, total in otel.points("gen_ai.client.token.usage")
    }
    assert tokens == {
        "input": (1, response.usage["prompt_tokens"]),
        "output": (1, response.usage["completion_tokens"]),
    }
    ((duration_attrs, count, _),) = otel.points("gen_ai.client.operation.duration")
    assert count == 1 and duration_attrs["gen_ai.provider.name"] == PROVIDERS[model]
    assert "error.type" not in duration_attrs
    ((_, ttfc_count, ttfc),) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert ttfc_count == 1 and ttfc == pytest.approx(attrs["gen_ai.response.time_to_first_chunk"])


async def test_cached_input_is_counted_in_input_tokens(
    client: SteerLLMClient, emulator: Emulator, otel: Telemetry, model: str
) -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 9, "cached_tokens": 60}
    if PROVIDERS[model] == "anthropic":
        usage["cache_creation_tokens"] = 30
    emulator.enqueue(Reply(chunks=WORDS, usage=usage))
    response = await client.stream_with_usage("x", model)
    attrs = dict(otel.only_span().attributes or {})
    assert attrs["gen_ai.usage.input_tokens"] == 100 == response.usage["prompt_tokens"]
    assert attrs["gen_ai.usage.output_tokens"] == 9
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 60
    if PROVIDERS[model] == "anthropic":
        assert attrs["gen_ai.usage.cache_creation.input_tokens"] == 30


async def test_plain_stream_and_generate(
    client: SteerLLMClient, otel: Telemetry, model: str
) -> None:
    text = "".join([chunk async for chunk in client.stream("Tell me a story", model)])
    generated = await client.generate("Tell me a story", model, seed=7)
    first, second = otel.finished()
    assert text == generated.text
    assert first.attributes and first.attributes["gen_ai.usage.output_tokens"] > 0
    assert second.attributes and second.attributes["gen_ai.request.stream"] is False
    assert second.attributes["gen_ai.request.seed"] == 7
    assert "gen_ai.response.time_to_first_chunk" not in second.attributes
    assert second.attributes["gen_ai.usage.output_tokens"] == generated.usage["completion_tokens"]
    assert len(otel.points("gen_ai.client.operation.time_to_first_chunk")) == 1  # streams only
    ((_, count, _),) = otel.points("gen_ai.client.operation.duration")
    assert count == 2


@pytest.mark.parametrize(("status", "error"), [(400, BadRequestError), (500, ServerError)])
async def test_an_error_reply_fails_the_span(
    client: SteerLLMClient,
    emulator: Emulator,
    otel: Telemetry,
    model: str,
    status: int,
    error: type[Exception],
) -> None:
    emulator.enqueue(Reply(status=status))
    with pytest.raises(error):
        async for _chunk in client.stream("x", model, streaming_options=NO_RETRY):
            pass
    span = otel.only_span()
    attrs = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == error.__name__
    assert "gen_ai.usage.input_tokens" not in attrs
    ((duration_attrs, count, _),) = otel.points("gen_ai.client.operation.duration")
    assert duration_attrs["error.type"] == error.__name__ and count == 1
    assert otel.points("gen_ai.client.token.usage") == []
    emulator.enqueue(Reply(status=status))
    with pytest.raises(error):
        await client.generate("x", model, streaming_options=NO_RETRY)
    assert otel.finished()[-1].attributes["error.type"] == error.__name__  # type: ignore[index]


async def test_breaking_out_of_the_stream_ends_the_span_at_once(
    client: SteerLLMClient, emulator: Emulator, otel: Telemetry, model: str
) -> None:
    emulator.enqueue(Reply(chunks=WORDS * 100, delay_between_chunks=0.01))
    stream = client.stream("x", model)
    async for _chunk in stream:
        break
    assert otel.finished() == []  # still open: the caller may go on reading
    await stream.aclose()
    span = otel.only_span()
    attrs = dict(span.attributes or {})
    assert attrs["steer.cancelled"] is True
    assert span.status.status_code is StatusCode.UNSET and "error.type" not in attrs
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0

    # A cancelled task ends its span too.
    emulator.enqueue(Reply(chunks=WORDS * 100, delay_between_chunks=0.01))
    started = asyncio.Event()

    async def consume() -> None:
        async for _chunk in client.stream("x", model):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(otel.finished()) == 2
    assert otel.finished()[1].attributes["steer.cancelled"] is True  # type: ignore[index]


async def test_a_broken_stream_fails_the_span(
    client: SteerLLMClient, emulator: Emulator, otel: Telemetry, model: str
) -> None:
    emulator.enqueue(Reply(chunks=WORDS, fault=Fault.drop_after(3)))
    got: list[str] = []
    with pytest.raises(StreamInterruptedError):
        async for chunk in client.stream("x", model, streaming_options=NO_RETRY):
            got.append(chunk)
    assert got == WORDS[:3]
    span = otel.only_span()
    attrs = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "StreamInterruptedError"
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0


async def test_a_resumed_stream_reports_no_made_up_token_counts(
    client: SteerLLMClient, emulator: Emulator, otel: Telemetry
) -> None:
    model = "claude-3-haiku-20240307"  # continues from a prefix
    emulator.enqueue(Reply(fault=Fault.drop_after(5)))
    options = StreamingOptions(reconnect_delay=0.01)
    response = await client.stream_with_usage("Tell me a story", model, streaming_options=options)
    assert response.resumptions == 1 and response.usage["estimated"]
    attrs = dict(otel.only_span().attributes or {})
    assert attrs["steer.resumptions"] == 1 and attrs["steer.attempts"] == 2
    assert attrs["steer.usage.estimated"] is True
    assert "gen_ai.usage.output_tokens" not in attrs  # the SDK estimated it
    assert otel.points("gen_ai.client.token.usage") == []


async def test_content_only_when_asked(
    emulator: Emulator, otel: Telemetry, model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me a story"},
    ]
    async with make_client(emulator, otel.options(capture_content=True)) as client:
        response = await client.stream_with_usage(messages, model)
    attrs = dict(otel.only_span().attributes or {})
    assert attrs["gen_ai.system_instructions"] == '[{"type":"text","content":"Be brief."}]'
    assert attrs["gen_ai.input.messages"] == (
        '[{"role":"user","parts":[{"type":"text","content":"Tell me a story"}]}]'
    )
    assert response.text in str(attrs["gen_ai.output.messages"])

    monkeypatch.setenv(CAPTURE_ENV, "true")
    async with make_client(emulator, otel.options()) as client:
        await client.stream_with_usage(messages, model)
    assert "gen_ai.input.messages" in (otel.finished()[1].attributes or {})
    monkeypatch.setenv(CAPTURE_ENV, "false")
    async with make_client(emulator, otel.options()) as client:
        await client.stream_with_usage(messages, model)
    assert "gen_ai.input.messages" not in (otel.finished()[2].attributes or {})


async def test_the_span_is_not_the_current_context_while_streaming(
    client: SteerLLMClient, otel: Telemetry, model: str
) -> None:
    tracer = otel.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as outer:
        async for _chunk in client.stream("x", model):
            assert trace.get_current_span() is outer  # never ours across yields
    call_span, caller = otel.finished()
    assert call_span.parent is not None and call_span.parent.span_id == caller.context.span_id


async def test_a_custom_observer(emulator: Emulator, model: str) -> None:
    seen: list[tuple[str, Any]] = []
    records: list[Any] = []

    class Observation:
        def end(self, record: Any, error: BaseException | None) -> None:
            seen.append(("end", error))
            records.append(record)

    class Observer:
        def start(self, call: Any) -> Observation:
            seen.append(("start", call.model))
            return Observation()

    async with make_client(emulator, Observer()) as client:
        await client.stream_with_usage("x", model)
        emulator.enqueue(Reply(status=400))
        with pytest.raises(BadRequestError):
            await client.generate("x", model)
    assert seen[:2] == [("start", model), ("end", None)]
    assert seen[2] == ("start", model) and isinstance(seen[3][1], BadRequestError)
    # The observer reads a frozen record computed once: the response's own figures.
    done, failed = records
    assert done.text and done.usage and done.finish_reason == "stop" and done.attempts == 1
    assert done.cost_usd is not None and done.base_url.startswith("http://127.0.0.1")
    assert failed.usage is None and failed.cost_usd is None and not failed.streamed
    with pytest.raises(AttributeError):
        done.text = "changed"  # frozen
    with pytest.raises(ConfigurationError, match="telemetry"):
        make_client(emulator, "yes")


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"{city}: 21 degrees, sunny"


async def test_stream_events_and_the_tool_loop(
    emulator: Emulator, otel: Telemetry, model: str
) -> None:
    async with make_client(emulator, otel.options(capture_content=True)) as client:
        async for part in client.stream_events("Tell me a story", model):
            if isinstance(part, Finish):
                finish = part
                break  # stopping at Finish is no cancellation: the call had ended
        emulator.enqueue(
            Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]),
            Reply(text="Sunny in Paris."),
        )
        response = await client.run_tools("Weather in Paris?", model, tools=[get_weather])
    events_span, tool_step, answer_step = otel.finished()
    attrs = dict(events_span.attributes or {})
    assert "steer.cancelled" not in attrs and events_span.status.status_code is StatusCode.UNSET
    assert attrs["gen_ai.usage.output_tokens"] == finish.usage["completion_tokens"]
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    # The tool loop: one chat span per model call.
    step = dict(tool_step.attributes or {})
    assert step["gen_ai.response.finish_reasons"] == ("tool_calls",)
    output = json.loads(str(step["gen_ai.output.messages"]))
    assert output[0]["parts"][0]["type"] == "tool_call"
    assert output[0]["parts"][0]["name"] == "get_weather"
    assert json.loads(output[0]["parts"][0]["arguments"]) == {"city": "Paris"}
    final = dict(answer_step.attributes or {})
    assert "Sunny in Paris." in str(final["gen_ai.output.messages"])
    assert "get_weather" in str(final["gen_ai.input.messages"])  # the tool turn was sent
    assert response.usage["completion_tokens"] == (
        step["gen_ai.usage.output_tokens"] + final["gen_ai.usage.output_tokens"]
    )


NO_OTEL_SCRIPT = """
import asyncio, sys
from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.testing import Emulator

async def main():
    async with Emulator() as emu:
        async with SteerLLMClient(api_keys={"openai": "k"},
                                  base_urls={"openai": emu.openai_base_url}) as client:
            print((await client.stream_with_usage("Hi", "gpt-4o-mini")).text[:4])
asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "steer_llm_sdk.telemetry"))))
"""

BLOCKED_SCRIPT = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from steer_llm_sdk import ConfigurationError, SteerLLMClient
try:
    SteerLLMClient(telemetry=True)
except ConfigurationError as exc:
    print(exc)
"""


def test_without_telemetry_nothing_of_opentelemetry_is_imported() -> None:
    out = subprocess.run(
        [sys.executable, "-c", NO_OTEL_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "[]"


def test_telemetry_without_the_extra_says_what_to_install() -> None:
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert "pip install 'steer-llm-sdk[otel]'" in out.stdout, out.stderr


def test_the_sync_client_reports_the_same(otel: Telemetry) -> None:
    server = Emulator.start_in_thread()
    try:
        with SteerLLM(
            api_keys={"openai": "k"},
            base_urls={"openai": server.openai_base_url},
            telemetry=otel.options(),
        ) as llm:
            response = llm.stream_with_usage("Tell me a story", model="gpt-4o-mini")
            server.enqueue(Reply(chunks=WORDS * 100, delay_between_chunks=0.01))
            for _chunk in llm.stream("x", model="gpt-4o-mini"):
                break  # the stream, and its span, end here
            assert len(otel.finished()) == 2
    finally:
        server.stop()
    done, abandoned = otel.finished()
    assert (
        done.attributes
        and done.attributes["gen_ai.usage.output_tokens"] == (response.usage["completion_tokens"])
    )
    assert abandoned.attributes and abandoned.attributes["steer.cancelled"] is True
