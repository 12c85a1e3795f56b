"""AWS Bedrock over real sockets: the SDK, boto3's bedrock-runtime and anthropic's
AnthropicBedrock against the emulator (event-stream frames, SigV4 checked).

botocore signs with credentials from the environment, from a profile file written
here, and with a Bedrock API key; a bad or expired signature is a 403."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.errors import (
    BadRequestError,
    ConfigurationError,
    InvalidResponseError,
    PermissionDeniedError,
    RateLimitError,
    SteerError,
    StreamInterruptedError,
)
from steer_llm_sdk.models.streaming import StreamingOptions
from steer_llm_sdk.testing import Emulator, Fault, Reply
from steer_llm_sdk.testing._anthropic import SIGNATURE
from steer_llm_sdk.testing._bedrock import TEST_ACCESS_KEY, TEST_API_KEY, TEST_SECRET_KEY

boto3 = pytest.importorskip("boto3", reason="boto3 (the dev extra) checks the emulator")
botocore_config = pytest.importorskip("botocore.config")

MODEL_ID = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
MODEL = f"bedrock/{MODEL_ID}"
REGION = "us-east-1"
FAST = StreamingOptions(reconnect_delay=0.01)
ROOT = str(Path(__file__).resolve().parents[2])


@pytest.fixture
async def emu() -> Any:
    async with Emulator(reply_words=12) as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator, aws_env: dict[str, str]) -> Any:
    async with SteerLLMClient(
        base_urls={"bedrock": emu.bedrock_base_url}, default_options=FAST
    ) as c:
        yield c


def _boto(emu: Emulator) -> Any:
    return boto3.session.Session().client(  # a fresh session reads the environment now
        "bedrock-runtime",
        region_name=REGION,
        endpoint_url=emu.bedrock_base_url,
        config=botocore_config.Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def _boto_converse(emu: Emulator, prompt: str, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"text": "", "tools": {}, "reasoning": ""}
    response = _boto(emu).converse_stream(
        modelId=MODEL_ID, messages=[{"role": "user", "content": [{"text": prompt}]}], **kw
    )
    for event in response["stream"]:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]["start"]["toolUse"]
            out["tools"][start["name"]] = ""
            out["current"] = start["name"]
        elif "contentBlockDelta" in event:
            delta = event["contentBlockDelta"]["delta"]
            if "text" in delta:
                out["text"] += delta["text"]
            elif "toolUse" in delta:
                out["tools"][out["current"]] += delta["toolUse"]["input"]
            elif "reasoningContent" in delta:
                out["reasoning"] += delta["reasoningContent"].get("text", "")
        elif "messageStop" in event:
            out["stop"] = event["messageStop"]["stopReason"]
        elif "metadata" in event:
            out["usage"] = event["metadata"]["usage"]
    return out


async def test_converse_stream_agrees_with_boto3(emu: Emulator, client: Any) -> None:
    ours = await client.stream_with_usage("Tell me about the sea", model=MODEL, max_tokens=50)
    theirs = await asyncio.to_thread(
        _boto_converse, emu, "Tell me about the sea", inferenceConfig={"maxTokens": 50}
    )
    assert ours.get_text() == theirs["text"] and len(theirs["text"]) > 20
    assert ours.usage["prompt_tokens"] == theirs["usage"]["inputTokens"]
    assert ours.usage["completion_tokens"] == theirs["usage"]["outputTokens"]
    assert ours.raw_finish_reason == theirs["stop"] == "end_turn"
    assert ours.finish_reason == "stop"
    assert ours.cost_usd is not None and ours.cost_usd > 0  # genai-prices knows aws
    sent = emu.requests[0]
    assert sent.path == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse-stream"
    assert sent.path == emu.requests[1].path  # botocore encodes the id the same way
    assert sent.json["inferenceConfig"] == {"maxTokens": 50}
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIA")


async def test_generate_uses_converse(emu: Emulator, client: Any) -> None:
    text = await client.generate("Tell me about the sea", model=MODEL)
    streamed = await client.stream_with_usage("Tell me about the sea", model=MODEL)
    assert getattr(text, "text", text) == streamed.get_text()
    assert emu.requests[0].path.endswith("/converse")
    invoked = await client.generate("Tell me about the sea", model=MODEL, api="invoke")
    assert getattr(invoked, "text", invoked) == streamed.get_text()
    assert emu.requests[-1].path.endswith("%3A0/invoke")
    with pytest.raises(ConfigurationError, match="'converse' or 'invoke'"):
        await client.generate("hi", model=MODEL, api="responses")


def _boto_invoke(emu: Emulator, prompt: str) -> dict[str, Any]:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": prompt}],
    }
    response = _boto(emu).invoke_model_with_response_stream(modelId=MODEL_ID, body=json.dumps(body))
    out: dict[str, Any] = {"text": ""}
    for event in response["body"]:
        inner = json.loads(event["chunk"]["bytes"])
        if inner["type"] == "content_block_delta":
            out["text"] += inner["delta"].get("text", "")
        elif inner["type"] == "message_delta":
            out["stop"] = inner["delta"]["stop_reason"]
            out["output_tokens"] = inner["usage"]["output_tokens"]
        elif inner["type"] == "message_start":
            out["input_tokens"] = inner["message"]["usage"]["input_tokens"]
    return out


async def test_invoke_stream_agrees_with_boto3_and_anthropic_bedrock(
    emu: Emulator, client: Any
) -> None:
    anthropic = pytest.importorskip("anthropic")
    ours = await client.stream_with_usage(
        "Tell me about the sea", model=MODEL, api="invoke", max_tokens=100
    )
    theirs = await asyncio.to_thread(_boto_invoke, emu, "Tell me about the sea")
    assert ours.get_text() == theirs["text"] and len(theirs["text"]) > 20
    assert ours.usage["prompt_tokens"] == theirs["input_tokens"]
    assert ours.usage["completion_tokens"] == theirs["output_tokens"]
    assert ours.raw_finish_reason == theirs["stop"] == "end_turn"
    assert emu.requests[0].path.endswith("%3A0/invoke-with-response-stream")

    official = anthropic.AsyncAnthropicBedrock(
        aws_access_key=TEST_ACCESS_KEY,
        aws_secret_key=TEST_SECRET_KEY,
        aws_region=REGION,
        base_url=emu.bedrock_base_url,
        max_retries=0,
    )
    text = ""
    stream = await official.messages.create(
        model=MODEL_ID,
        max_tokens=100,
        messages=[{"role": "user", "content": "Tell me about the sea"}],
        stream=True,
    )
    usage = None
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            text += event.delta.text
        elif event.type == "message_delta":
            usage = event.usage
    assert text == ours.get_text()
    assert usage is not None and usage.output_tokens == ours.usage["completion_tokens"]
    # The body's anthropic_version is what AnthropicBedrock sends.
    ours_body, theirs_body = emu.requests[0].json, emu.requests[-1].json
    assert ours_body["anthropic_version"] == theirs_body["anthropic_version"]
    assert "model" not in ours_body and "stream" not in ours_body
    # AnthropicBedrock leaves the ":" of the id unencoded; botocore (and this SDK) do not
    assert unquote(emu.requests[-1].path) == unquote(emu.requests[0].path)


async def test_profile_file_credentials(
    emu: Emulator, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(name)
    folder = Path(aws_env["dir"])
    (folder / "credentials").write_text(
        "[work]\naws_access_key_id = AKIAPROFILE000000000\n"
        "aws_secret_access_key = Pr0f1leS3cretKeyValueXYZ\n"
        "aws_session_token = FwoGZXIvYXdzEPr0f1leSessionT0ken\n"
    )
    (folder / "config").write_text(f"[profile work]\nregion = {REGION}\n")
    monkeypatch.setenv("AWS_PROFILE", "work")
    emu.aws_credentials = {
        "AKIAPROFILE000000000": ("Pr0f1leS3cretKeyValueXYZ", "FwoGZXIvYXdzEPr0f1leSessionT0ken")
    }
    async with SteerLLMClient(base_urls={"bedrock": emu.bedrock_base_url}) as c:
        ours = await c.stream_with_usage("hi", model=MODEL)
    theirs = await asyncio.to_thread(_boto_converse, emu, "hi")
    assert ours.get_text() == theirs["text"]
    sent = emu.requests[0].headers
    assert sent["x-amz-security-token"] == "FwoGZXIvYXdzEPr0f1leSessionT0ken"
    assert f"/{REGION}/bedrock/aws4_request" in sent["authorization"]


async def test_bearer_token(emu: Emulator, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore sends a bearer token only to https:// (the emulator is plain HTTP on
    # 127.0.0.1), so the SDK is checked alone here; it allows loopback addresses.
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", TEST_API_KEY)
    ours = await client.stream_with_usage("hi", model=MODEL)
    with pytest.raises(Exception, match="HTTPS"):
        await asyncio.to_thread(_boto_converse, emu, "hi")
    assert ours.get_text() and emu.requests[0].headers["authorization"] == f"Bearer {TEST_API_KEY}"
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKwr0ngBedr0ckKey123456789")
    with pytest.raises(PermissionDeniedError) as caught:
        await client.stream_with_usage("hi", model=MODEL)
    assert "wr0ngBedr0ck" not in repr(caught.value) and "wr0ngBedr0ck" not in str(caught.value)


async def test_bearer_token_is_never_sent_in_clear(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", TEST_API_KEY)
    async with SteerLLMClient(base_urls={"bedrock": "http://192.0.2.1:9"}) as c:
        with pytest.raises(ConfigurationError, match="neither https"):
            await c.stream_with_usage("hi", model=MODEL)


async def test_bad_and_expired_signatures_are_refused(
    emu: Emulator, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    secret = "Wr0ngS3cretKeyValue0123456789"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    caplog.set_level(logging.DEBUG)
    async with SteerLLMClient(base_urls={"bedrock": emu.bedrock_base_url}) as c:
        with pytest.raises(PermissionDeniedError, match="InvalidSignatureException") as caught:
            await c.stream_with_usage("hi", model=MODEL)
        assert len(emu.requests) == 2  # the chain read again once (refresh), then given up
        error: BaseException | None = caught.value
        while error is not None:
            assert secret not in str(error) and secret not in repr(error)
            error = error.__cause__ or error.__context__
        assert all(secret not in record.getMessage() for record in caplog.records)
        assert secret not in repr(c)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_SECRET_KEY)
    emu.aws_clock_skew = 600.0
    async with SteerLLMClient(base_urls={"bedrock": emu.bedrock_base_url}) as c:
        with pytest.raises(PermissionDeniedError, match="Signature expired"):
            await c.stream_with_usage("hi", model=MODEL)


async def test_tool_use_arguments_are_folded(emu: Emulator, client: Any) -> None:
    args = {"city": "Paris", "days": 3, "units": "metric"}
    emu.enqueue(Reply(tool_calls=[{"name": "weather", "arguments": args}]))
    emu.enqueue(Reply(tool_calls=[{"name": "weather", "arguments": args}]))
    tool = {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    ours = await client.stream_with_usage("weather?", model=MODEL, tools=[tool])
    theirs = await asyncio.to_thread(
        _boto_converse,
        emu,
        "weather?",
        toolConfig={"tools": [{"toolSpec": {"name": "weather", "inputSchema": {"json": {}}}}]},
    )
    assert json.loads(theirs["tools"]["weather"]) == args
    (call,) = ours.tool_calls
    assert call.name == "weather" and call.args == args
    assert ours.finish_reason == "tool_calls" and theirs["stop"] == "tool_use"
    sent = emu.requests[0].json["toolConfig"]["tools"][0]["toolSpec"]
    assert sent["name"] == "weather" and sent["inputSchema"]["json"]["type"] == "object"


async def test_events_reasoning_and_thinking(emu: Emulator, client: Any) -> None:
    emu.enqueue(Reply(reasoning="Let me think about the sea.", text="The sea is wide."))
    parts = [
        p
        async for p in client.stream_events(
            "sea?", model=MODEL, thinking={"type": "enabled", "budget_tokens": 1024}
        )
    ]
    kinds = [p.type for p in parts]
    assert "reasoning-delta" in kinds and kinds[-1] == "finish"
    reasoning = "".join(p.text for p in parts if p.type == "reasoning-delta")
    assert reasoning == "Let me think about the sea."
    sent = emu.requests[0].json
    assert sent["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024


@pytest.mark.parametrize(
    ("kind", "error", "retried"),
    [
        ("throttlingException", RateLimitError, True),
        ("serviceUnavailableException", SteerError, True),
        ("internalServerException", SteerError, True),
        ("modelStreamErrorException", SteerError, False),
        ("validationException", BadRequestError, False),
    ],
)
async def test_exception_frames(
    emu: Emulator, client: Any, kind: str, error: type, retried: bool
) -> None:
    emu.enqueue(Reply(fault=Fault.error_event_after(0, kind)))
    if retried:
        result = await client.stream_with_usage("hi", model=MODEL)
        assert result.get_text() and len(emu.requests) == 2
    else:
        with pytest.raises(error, match=kind):
            await client.stream_with_usage("hi", model=MODEL)
        assert len(emu.requests) == 1


async def test_model_timeout_is_retried_on_invoke(emu: Emulator, client: Any) -> None:
    emu.enqueue(Reply(fault=Fault.error_event_after(0, "modelTimeoutException")))
    result = await client.stream_with_usage("hi", model=MODEL, api="invoke")
    assert result.get_text() and len(emu.requests) == 2


async def test_exception_after_text_keeps_the_text(emu: Emulator, client: Any) -> None:
    emu.enqueue(Reply(fault=Fault.error_event_after(3, "throttlingException")))
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as caught:
        async for text in client.stream("hi", model=MODEL):
            got.append(text)
    assert len(got) == 3 and "throttlingException" in str(caught.value)
    assert isinstance(caught.value.__cause__, RateLimitError)


async def test_corrupt_crc_and_cut_frame(emu: Emulator, client: Any) -> None:
    emu.enqueue(Reply(fault=Fault.bad_crc_after(0)))
    with pytest.raises(InvalidResponseError, match="CRC"):
        await client.stream_with_usage("hi", model=MODEL)
    emu.enqueue(Reply(fault=Fault.cut_frame_after(0)))  # nothing delivered: sent again
    result = await client.stream_with_usage("hi", model=MODEL)
    assert result.get_text() and emu.requests[-1].path == emu.requests[-2].path


async def test_http_errors(emu: Emulator, client: Any) -> None:
    emu.enqueue(Reply(status=429))
    assert (await client.stream_with_usage("hi", model=MODEL)).get_text()
    emu.enqueue(Reply(status=400, error_type="ValidationException", error_message="bad field"))
    with pytest.raises(BadRequestError, match="ValidationException: bad field"):
        await client.stream_with_usage("hi", model=MODEL)
    emu.enqueue(Reply(status=404, error_message="no such model"))
    with pytest.raises(SteerError, match="ResourceNotFoundException"):
        await client.stream_with_usage("hi", model=MODEL)


async def test_files_and_cache_points(emu: Emulator, client: Any) -> None:
    png = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
        "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    )
    pdf = "JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDw+PgplbmRvYmoKdHJhaWxlcgo8PD4+CiUlRU9G"
    long_text = "context " * 700  # past the 1,024-token minimum cacheable length
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": long_text, "cache_control": {"type": "ephemeral"}},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                {
                    "type": "file",
                    "file": {
                        "file_data": f"data:application/pdf;base64,{pdf}",
                        "filename": "q3.pdf",
                    },
                },
                {"type": "text", "text": "Summarise."},
            ],
        }
    ]
    first = await client.stream_with_usage(messages, model=MODEL)
    second = await client.stream_with_usage(messages, model=MODEL)
    content = emu.requests[0].json["messages"][0]["content"]
    assert content[0] == {"text": long_text}
    assert content[1] == {"cachePoint": {"type": "default"}}
    assert content[2] == {"image": {"format": "png", "source": {"bytes": png}}}
    assert content[3]["document"]["format"] == "pdf"
    assert content[3]["document"]["name"] == "q3"
    assert content[4] == {"text": "Summarise."}
    assert first.usage["cache_info"]["cache_creation_tokens"] > 0
    assert second.usage["cache_info"]["cached_tokens"] > 0
    assert second.usage["prompt_tokens"] == first.usage["prompt_tokens"]


async def test_structured_output_through_a_forced_tool(emu: Emulator, client: Any) -> None:
    from pydantic import BaseModel

    class Lamp(BaseModel):
        name: str
        price: float

    result = await client.generate("a lamp", model=MODEL, output=Lamp)
    assert isinstance(result.output, Lamp)
    streamed = await client.stream_with_usage("a lamp", model=MODEL, output=Lamp)
    assert json.loads(streamed.get_text())["name"]
    choice = emu.requests[-1].json["toolConfig"]["toolChoice"]
    assert choice == {
        "tool": {"name": emu.requests[-1].json["toolConfig"]["tools"][0]["toolSpec"]["name"]}
    }


async def test_endpoint_from_botocore_variable(
    emu: Emulator, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", emu.bedrock_base_url)
    async with SteerLLMClient() as c:
        assert (await c.stream_with_usage("hi", model=MODEL)).get_text()
    monkeypatch.delenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
    monkeypatch.setenv("BEDROCK_BASE_URL", emu.bedrock_base_url)
    async with SteerLLMClient() as c:
        assert (await c.stream_with_usage("hi", model=MODEL)).get_text()
    assert len(emu.requests) == 2


async def test_models_command_lists_bedrock(aws_env: dict[str, str]) -> None:
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "steer_llm_sdk.cli", "models", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": ROOT},
    )  # fmt: skip
    raw, err = await asyncio.wait_for(proc.communicate(), 60)
    out = raw.decode()
    assert proc.returncode == 0, err.decode()
    assert "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0" in out
    assert f"AWS Bedrock: region {REGION}" in out
    assert "bedrock-runtime.us-east-1.amazonaws.com" in out
    assert TEST_SECRET_KEY not in out and "AWS_ACCESS_KEY_ID" in out


async def test_json_mode_and_options_everywhere(emu: Emulator, client: Any) -> None:
    from steer_llm_sdk.models.streaming import JSON_MODE_OPTIONS

    result = await client.stream_with_usage(
        "A product, please",
        model=MODEL,
        response_format={"type": "json_object"},
        streaming_options=JSON_MODE_OPTIONS,
    )
    assert isinstance(json.loads(result.get_text()), dict)
    assert "JSON" in emu.requests[0].json["system"][-1]["text"]
    stop = await client.stream_with_usage("hi", model=MODEL, stop=["sea"], temperature=0.2)
    sent = emu.requests[-1].json["inferenceConfig"]
    assert sent == {"temperature": 0.2, "stopSequences": ["sea"]}
    assert "sea" not in stop.get_text()


async def test_cli_streams_a_bedrock_model(
    emu: Emulator, aws_env: dict[str, str], tmp_path: Path
) -> None:
    import sys

    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), BEDROCK_BASE_URL=emu.bedrock_base_url)
    env["PYTHONPATH"] = ROOT  # this checkout's package
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "steer_llm_sdk.cli", "-m", MODEL, "Tell me about the sea",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    expected = await asyncio.to_thread(_boto_converse, emu, "Tell me about the sea")
    assert expected["text"] in out.decode()
    assert TEST_SECRET_KEY not in out.decode() + err.decode()


async def test_telemetry_names_aws_bedrock(emu: Emulator, aws_env: dict[str, str]) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from steer_llm_sdk.telemetry import OTelObserver, TelemetryOptions

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    observer = OTelObserver(TelemetryOptions(tracer_provider=provider))
    async with SteerLLMClient(base_urls={"bedrock": emu.bedrock_base_url}, telemetry=observer) as c:
        await c.stream_with_usage("hi", model=MODEL)
    (span,) = exporter.get_finished_spans()
    assert span.attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert span.attributes["gen_ai.request.model"] == MODEL_ID


_LAZY = """
import asyncio, os, sys
from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.errors import ConfigurationError
from steer_llm_sdk.testing import Emulator
from steer_llm_sdk.testing._bedrock import TEST_API_KEY

async def main():
    async with Emulator() as emu:
        urls = {"openai": emu.openai_base_url, "bedrock": emu.bedrock_base_url}
        async with SteerLLMClient(api_keys={"openai": "sk-x"}, base_urls=urls) as c:
            await c.stream_with_usage("hi", model="gpt-4o-mini")
            print("after openai", "botocore" in sys.modules)
            os.environ["AWS_BEARER_TOKEN_BEDROCK"] = TEST_API_KEY
            await c.stream_with_usage("hi", model=sys.argv[1])
            print("after bearer", "botocore" in sys.modules)
            del os.environ["AWS_BEARER_TOKEN_BEDROCK"]
            sys.modules["botocore"] = None  # as if the bedrock extra were not installed
            try:
                await c.stream_with_usage("hi", model=sys.argv[1])
            except ConfigurationError as exc:
                print("without botocore:", exc)

asyncio.run(main())
"""


async def test_botocore_is_imported_only_when_signing(aws_env: dict[str, str]) -> None:
    import sys

    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LAZY, MODEL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = out.decode().splitlines()
    assert lines[:2] == ["after openai False", "after bearer False"], err.decode()
    assert "pip install 'steer-llm-sdk[bedrock]'" in lines[2]


async def test_tool_loop_and_reasoning_round_trip(emu: Emulator, client: Any) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"Sunny in {city}"

    emu.enqueue(
        Reply(
            tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
            reasoning="One city: one call.",
        ),
        Reply(text="Sunny in Paris."),
    )
    response = await client.run_tools("Weather?", MODEL, tools=[get_weather])
    assert response.text == "Sunny in Paris."
    sent = emu.requests[-1].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    thought, use = sent[1]["content"]
    assert thought["reasoningContent"]["reasoningText"] == {
        "text": "One city: one call.",
        "signature": SIGNATURE,
    }
    assert use["toolUse"]["input"] == {"city": "Paris"}
    (result,) = sent[2]["content"]
    assert result["toolResult"]["toolUseId"] == use["toolUse"]["toolUseId"]
    assert result["toolResult"]["content"] == [{"text": "Sunny in Paris"}]


_PROCESS = """
import datetime, json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text() or 0) + 1 if counter.exists() else 1
counter.write_text(str(n))
expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=5)
print(json.dumps({"Version": 1, "AccessKeyId": f"AKIAROTATING{n:08d}",
                  "SecretAccessKey": f"R0tat1ngS3cretKeyValue{n}X",
                  "SessionToken": f"IQoJR0tat1ngSessionT0ken{n}X",
                  "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}))
"""


async def test_expiring_credentials_are_read_again_not_cached(
    emu: Emulator, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential_process whose credentials expire within botocore's refresh window
    (15 min): every request gets them from the chain again, never a stale copy."""
    import sys

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    folder = Path(aws_env["dir"])
    script = folder / "creds.py"
    script.write_text(_PROCESS)
    counter = folder / "count"
    (folder / "config").write_text(
        f"[profile rotating]\ncredential_process = {sys.executable} {script} {counter}\n"
    )
    monkeypatch.setenv("AWS_PROFILE", "rotating")
    emu.aws_credentials = {
        f"AKIAROTATING{n:08d}": (f"R0tat1ngS3cretKeyValue{n}X", f"IQoJR0tat1ngSessionT0ken{n}X")
        for n in range(1, 9)
    }
    async with SteerLLMClient(base_urls={"bedrock": emu.bedrock_base_url}) as c:
        for _ in range(3):
            assert (await c.stream_with_usage("hi", model=MODEL)).get_text()
    used = [r.headers["x-amz-security-token"] for r in emu.requests]
    assert len(set(used)) == 3, used  # fresh credentials for each request
    assert not any("R0tat1ngS3cret" in repr(r.headers) for r in emu.requests)


async def test_container_credentials_are_fetched_off_the_event_loop(
    emu: Emulator, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The container provider of the chain (ECS, EKS Pod Identity) over HTTP on this
    loop: botocore's blocking fetch must run in a thread, or the call would hang."""
    import datetime

    served: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        served.append(head.decode("latin-1"))
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
        body = json.dumps(
            {
                "AccessKeyId": "AKIACONTAINER0000000",
                "SecretAccessKey": "C0nta1nerS3cretKeyValueXYZ",
                "Token": "IQoJb3JpZ2luC0nta1nerT0kenXYZ",
                "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        ).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{port}/creds")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "pod-identity-token")
    emu.aws_credentials = {
        "AKIACONTAINER0000000": ("C0nta1nerS3cretKeyValueXYZ", "IQoJb3JpZ2luC0nta1nerT0kenXYZ")
    }
    try:
        async with SteerLLMClient(base_urls={"bedrock": emu.bedrock_base_url}) as c:
            result = await asyncio.wait_for(c.stream_with_usage("hi", model=MODEL), 20)
            assert result.get_text()
    finally:
        server.close()
    assert served and "authorization: pod-identity-token" in served[0].lower()
    assert emu.requests[0].headers["x-amz-security-token"] == "IQoJb3JpZ2luC0nta1nerT0kenXYZ"
