"""The sync client SteerLLM over real sockets, against the emulator on its own thread:
chunks as they arrive, usage and cost, typed errors, threads, a running event loop,
break / Ctrl-C / close, and the generic bridge for the async client's other methods."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest

from steer_llm_sdk import (
    BadRequestError,
    ConfigurationError,
    Finish,
    ServerError,
    SteerLLM,
    SteerLLMClient,
    StreamingResponse,
    StreamInterruptedError,
    TextDelta,
    ToolResult,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator, EmulatorThread, Fault, Reply

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-3-haiku-20240307"}
WORDS = ["Once", " upon", " a", " time", " the", " keeper", " lit", " the", " lamp."]
NO_RETRY = StreamingOptions(retry_on_connection_error=False)


@pytest.fixture(scope="module")
def server() -> Iterator[EmulatorThread]:
    thread = Emulator.start_in_thread()
    yield thread
    thread.stop()


def make_llm(server: EmulatorThread) -> SteerLLM:
    return SteerLLM(
        api_keys={"openai": "sk-test-sync-0000", "anthropic": "sk-ant-test-sync-0000"},
        base_urls={"openai": server.openai_base_url, "anthropic": server.anthropic_base_url},
    )


@pytest.fixture
def llm(server: EmulatorThread) -> Iterator[SteerLLM]:
    with make_llm(server) as client:
        yield client


@pytest.fixture(params=["openai", "anthropic"])
def model(request: pytest.FixtureRequest) -> str:
    return MODELS[str(request.param)]


def wait_for(predicate: Any, seconds: float = 3.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def test_stream_yields_each_chunk_as_it_arrives(
    llm: SteerLLM, server: EmulatorThread, model: str
) -> None:
    # Two chunks, then 1.5 s of silence, then the rest: the first chunks must reach
    # the caller during the silence, not when the answer ends.
    server.enqueue(Reply(chunks=WORDS, fault=Fault.stall_after(2, 1.5)))
    times: list[float] = []
    chunks: list[str] = []
    for chunk in llm.stream("Tell me a story", model=model):
        times.append(time.monotonic())
        chunks.append(chunk)
    assert "".join(chunks) == "".join(WORDS)
    assert times[-1] - times[0] >= 1.0, "the first chunk waited for the end of the answer"


def test_stream_with_usage_and_generate(llm: SteerLLM, server: EmulatorThread, model: str) -> None:
    async def expected() -> StreamingResponse:
        async with SteerLLMClient(
            api_keys={"openai": "k", "anthropic": "k"},
            base_urls={"openai": server.openai_base_url, "anthropic": server.anthropic_base_url},
        ) as client:
            return await client.stream_with_usage("Tell me a story", model)

    reference = asyncio.run(expected())
    response = llm.stream_with_usage("Tell me a story", model=model)
    assert response.text == reference.text and response.text
    assert response.usage == reference.usage and response.usage["completion_tokens"] > 0
    assert response.cost_usd is not None and response.cost_usd == reference.cost_usd
    generated = llm.generate("Tell me a story", model=model)
    assert generated.text == reference.text
    assert generated.usage["prompt_tokens"] == reference.usage["prompt_tokens"]


def test_errors_are_the_sdks_typed_errors(
    llm: SteerLLM, server: EmulatorThread, model: str
) -> None:
    with pytest.raises(ConfigurationError):
        llm.stream("Hi")  # no model: raised at the call, before any iteration
    server.enqueue(Reply(status=400))
    with pytest.raises(BadRequestError):
        list(llm.stream("Hi", model=model))
    server.enqueue(Reply(status=500))
    with pytest.raises(ServerError):
        llm.generate("Hi", model=model, streaming_options=NO_RETRY)
    server.enqueue(Reply(status=400))
    with pytest.raises(BadRequestError):
        llm.stream_with_usage("Hi", model=model)
    server.enqueue(Reply(chunks=WORDS, fault=Fault.drop_after(3)))
    got: list[str] = []
    with pytest.raises(StreamInterruptedError):
        for chunk in llm.stream("Hi", model=model, streaming_options=NO_RETRY):
            got.append(chunk)
    assert got == WORDS[:3]
    assert llm.generate("Hi", model=model).text  # still healthy


def test_several_threads_at_once(llm: SteerLLM, model: str) -> None:
    prompts = [f"Tell me story number {i}" for i in range(8)]
    expected = {p: llm.stream_with_usage(p, model=model).text for p in prompts}
    results: dict[str, list[str]] = {p: [] for p in prompts}
    errors: list[BaseException] = []

    def worker(prompt: str) -> None:
        try:
            for _ in range(5):
                results[prompt].append("".join(llm.stream(prompt, model=model)))
                results[prompt].append(llm.generate(prompt, model=model).text)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,)) for p in prompts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    for prompt in prompts:
        assert results[prompt] == [expected[prompt]] * 10


async def test_inside_a_running_event_loop(llm: SteerLLM, model: str) -> None:
    # As in a Jupyter cell: this thread's event loop is running.
    asyncio.get_running_loop()
    text = "".join(llm.stream("Tell me a story", model=model))
    assert text and llm.stream_with_usage("Tell me a story", model=model).text == text
    assert llm.generate("Tell me a story", model=model).text == text


def _runner_jobs(llm: SteerLLM) -> int:
    runner = llm._state.runner
    return 0 if runner is None else len(runner.jobs)


def test_break_closes_the_stream_at_once(llm: SteerLLM, server: EmulatorThread, model: str) -> None:
    llm.generate("warm up", model=model)
    server.enqueue(Reply(chunks=WORDS * 200, delay_between_chunks=0.01))  # ~18 s
    start = time.monotonic()
    for i, _chunk in enumerate(llm.stream("Hi", model=model)):
        if i == 2:
            break
    # The async generator (and its HTTP response) is closed when the loop exits.
    assert _runner_jobs(llm) == 0
    assert wait_for(lambda: server.emulator.open_connections <= 1)
    assert time.monotonic() - start < 5
    # An iterator held in a variable: close() does the same.
    server.enqueue(Reply(chunks=WORDS * 200, delay_between_chunks=0.01))
    stream = llm.stream("Hi", model=model)
    assert next(stream) == WORDS[0]
    assert _runner_jobs(llm) == 1
    stream.close()
    assert _runner_jobs(llm) == 0
    assert wait_for(lambda: server.emulator.open_connections <= 1)
    assert llm.generate("Hi", model=model).text  # the pool is healthy


def test_keyboard_interrupt_in_the_loop_body_closes_the_stream(
    llm: SteerLLM, server: EmulatorThread, model: str
) -> None:
    llm.generate("warm up", model=model)
    server.enqueue(Reply(chunks=WORDS * 200, delay_between_chunks=0.01))
    got = 0
    with pytest.raises(KeyboardInterrupt):
        for _chunk in llm.stream("Hi", model=model):
            got += 1
            if got == 3:
                raise KeyboardInterrupt  # what Ctrl-C does while the body runs
    assert _runner_jobs(llm) == 0
    assert wait_for(lambda: server.emulator.open_connections <= 1)


CTRL_C_SCRIPT = """
import os, signal, sys, threading, time
from steer_llm_sdk import SteerLLM
from steer_llm_sdk.testing import Emulator, Reply

server = Emulator.start_in_thread()
server.enqueue(Reply(chunks=["word "] * 2000, delay_between_chunks=0.01))
llm = SteerLLM(api_keys={"openai": "sk-test"}, base_urls={"openai": server.openai_base_url})
got = 0
try:
    for chunk in llm.stream("Hi", model="gpt-4o-mini"):
        got += 1
        if got == 3:
            # A real SIGINT, delivered while the consumer waits for the next chunk.
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
except KeyboardInterrupt:
    interrupted = time.monotonic()
    jobs = len(llm._state.runner.jobs)
    while server.emulator.open_connections and time.monotonic() - interrupted < 5:
        time.sleep(0.01)
    print("interrupted", got < 2000, jobs, server.emulator.open_connections,
          round(time.monotonic() - interrupted, 2))

# Ctrl-C while a blocking call waits (the server is silent before its headers).
server.enqueue(Reply(chunks=["word "] * 2000, delay_between_chunks=0.01))
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
start = time.monotonic()
try:
    llm.stream_with_usage("Hi", model="gpt-4o-mini")
except KeyboardInterrupt:
    print("blocking", len(llm._state.runner.jobs), round(time.monotonic() - start, 2))
"""


def test_real_ctrl_c_stops_a_sync_stream() -> None:
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", CTRL_C_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    word, partial, jobs, still_open, seconds = first.split()
    assert word == "interrupted" and partial == "True"
    assert jobs == "0" and still_open == "0", out.stdout  # the response was closed
    assert float(seconds) < 2.0
    word, jobs, seconds = second.split()
    assert word == "blocking" and jobs == "0"
    assert float(seconds) < 3.0  # the interrupt landed at 0.5 s, not after the answer (~20 s)
    assert time.monotonic() - start < 30
    assert "Traceback" not in out.stderr


def test_close_stops_running_calls_and_refuses_new_ones(server: EmulatorThread, model: str) -> None:
    llm = make_llm(server)
    assert llm.generate("Hi", model=model).text
    server.enqueue(Reply(chunks=WORDS * 200, delay_between_chunks=0.01))
    outcome: list[BaseException] = []
    first = threading.Event()

    def consume() -> None:
        try:
            for _chunk in llm.stream("Hi", model=model):
                first.set()
        except BaseException as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert first.wait(10)
    llm.close()
    consumer.join(10)
    assert not consumer.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], RuntimeError)
    assert "closed" in str(outcome[0])
    runner = llm._state.runner
    assert runner is not None and not runner.thread.is_alive() and runner.loop.is_closed()
    assert llm.closed
    with pytest.raises(RuntimeError, match="closed"):
        llm.generate("Hi", model=model)
    with pytest.raises(RuntimeError, match="closed"):
        llm.stream("Hi", model=model)
    llm.close()  # twice is fine
    assert wait_for(lambda: server.emulator.open_connections == 0)


def test_context_manager_and_repr_without_keys(server: EmulatorThread) -> None:
    with make_llm(server) as llm:
        assert "sk-test-sync" not in repr(llm)
        assert llm.generate("Hi", model="gpt-4o-mini").text
        runner = llm._state.runner
    assert runner is not None and not runner.thread.is_alive()


EXIT_SCRIPT = """
from steer_llm_sdk import SteerLLM
from steer_llm_sdk.testing import Emulator, Reply

server = Emulator.start_in_thread()
llm = SteerLLM(api_keys={"openai": "sk-test"}, base_urls={"openai": server.openai_base_url})
print(llm.generate("Hi", model="gpt-4o-mini").text[:4])
server.enqueue(Reply(chunks=["word "] * 2000, delay_between_chunks=0.01))
held = llm.stream("Hi", model="gpt-4o-mini")
next(held)  # a stream left open, and no close(): the interpreter exits anyway
"""


def test_interpreter_exit_closes_an_unclosed_client() -> None:
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", EXIT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "Traceback" not in out.stderr and "Exception" not in out.stderr, out.stderr
    assert time.monotonic() - start < 20


def test_a_sync_call_from_the_clients_own_loop_is_refused(llm: SteerLLM, model: str) -> None:
    seen: list[BaseException] = []

    def on_start() -> None:  # callbacks run on the SteerLLM's loop thread
        try:
            llm.generate("Hi", model=model)
        except RuntimeError as exc:
            seen.append(exc)

    options = StreamingOptions(on_start=on_start)
    assert llm.stream_with_usage("Hi", model=model, streaming_options=options).text
    assert len(seen) == 1 and "own event loop" in str(seen[0])


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"{city}: 21 degrees, sunny"


def test_stream_events_and_run_tools_have_sync_twins(
    llm: SteerLLM, server: EmulatorThread, model: str
) -> None:
    text = "".join(llm.stream("Tell me a story", model=model))
    events = list(llm.stream_events("Tell me a story", model=model))
    assert isinstance(events[-1], Finish) and events[-1].response.text == text
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text
    # A generator abandoned early is closed like stream().
    server.enqueue(Reply(chunks=WORDS * 200, delay_between_chunks=0.01))
    for _event in llm.stream_events("Hi", model=model):
        break
    assert _runner_jobs(llm) == 0
    # The tool loop, blocking and streamed.
    server.enqueue(
        Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}]),
        Reply(text="Sunny in Paris."),
    )
    response = llm.run_tools("Weather in Paris?", model=model, tools=[get_weather])
    assert response.text == "Sunny in Paris." and response.steps == 2
    server.enqueue(
        Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}]),
        Reply(text="Sunny in Oslo."),
    )
    parts = list(llm.stream_tools("Weather in Oslo?", model=model, tools=[get_weather]))
    results = [p for p in parts if isinstance(p, ToolResult)]
    assert len(results) == 1 and "Oslo: 21 degrees" in results[0].content
    assert isinstance(parts[-1], Finish) and parts[-1].response.text == "Sunny in Oslo."


class ExtendedClient(SteerLLMClient):
    """A method the async client does not have (as batch() is, for now): an async
    generator method and a coroutine method over the real client."""

    async def shout(
        self, messages: Any = None, model: str | None = None, **params: Any
    ) -> AsyncGenerator[str, None]:
        async for chunk in self.stream(messages, model, **params):
            yield chunk.upper()

    async def count_words(self, messages: Any, model: str) -> int:
        return len((await self.stream_with_usage(messages, model)).text.split())


def test_any_async_method_gets_a_sync_twin(server: EmulatorThread, model: str) -> None:
    client = ExtendedClient(
        api_keys={"openai": "k", "anthropic": "k"},
        base_urls={"openai": server.openai_base_url, "anthropic": server.anthropic_base_url},
    )
    with SteerLLM.from_client(client) as llm:
        text = "".join(llm.stream("Tell me a story", model=model))
        assert "".join(llm.shout("Tell me a story", model=model)) == text.upper()
        assert llm.count_words("Tell me a story", model) == len(text.split())
        assert "shout" in dir(llm) and "stream_events" in dir(llm)
        assert not hasattr(llm, "no_such_method")
        assert not hasattr(llm, "_transport")
        llm.register_provider("mine", {"base_url": server.openai_base_url})  # sync: as is
        assert "".join(llm.stream("Tell me a story", model="mine/" + model))


def test_importing_the_package_does_not_load_the_sync_module() -> None:
    code = (
        "import sys, steer_llm_sdk; "
        "print('steer_llm_sdk.sync' in sys.modules, 'asyncio' in sys.modules); "
        "steer_llm_sdk.SteerLLM; print('steer_llm_sdk.sync' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False", "True"], out.stderr
