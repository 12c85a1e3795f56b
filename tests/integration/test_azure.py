"""Azure OpenAI over real sockets: key and Entra ID token (sync and async providers),
the classic and v1 APIs, Responses, the content filter, DeploymentNotFound, pricing of
a deployment, and the official ``AzureOpenAI`` client agreeing with the SDK."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NotFoundError,
)
from steer_llm_sdk.testing import Emulator, Reply

KEY = "az-test-key-0000000000000000"
TOKEN = "entra-test-token-000000000000"
VERSION = "2024-10-21"


@pytest.fixture
async def azure(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emu.azure_endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_API_VERSION", VERSION)
        yield emu


def _sent(emu: Emulator) -> list[str]:
    return [r.path for r in emu.requests if r.path.startswith("/openai/")]


async def test_classic_path_with_api_key(azure: Emulator) -> None:
    async with SteerLLMClient() as client:
        whole = await client.generate("Tell me a story", "azure/my-gpt")
        chunks = [c async for c in client.stream("Tell me a story", "azure/my-gpt")]
    assert whole.text and "".join(chunks) == whole.text
    assert whole.finish_reason == "stop" and whole.usage["completion_tokens"] > 0
    assert (
        _sent(azure) == [f"/openai/deployments/my-gpt/chat/completions?api-version={VERSION}"] * 2
    )
    request = azure.requests[-1]
    assert request.headers["api-key"] == KEY and "authorization" not in request.headers


async def test_cost_only_when_the_model_behind_the_deployment_is_named(azure: Emulator) -> None:
    async with SteerLLMClient(pricing_models={"azure/prod-chat": "gpt-4o-mini"}) as client:
        unnamed = await client.generate("hi", "azure/gpt-4o-mini")  # a name is not a model
        named = await client.generate("hi", "azure/gpt-4o-mini", pricing_model="gpt-4o-mini")
        mapped = await client.generate("hi", "azure/prod-chat")
    assert unnamed.cost_usd is None
    assert named.cost_usd is not None and named.cost_usd > 0
    assert mapped.cost_usd == named.cost_usd
    assert all(b"pricing_model" not in r.body for r in azure.requests)


async def test_official_azure_openai_agrees(azure: Emulator) -> None:
    openai = pytest.importorskip("openai")
    official = openai.AsyncAzureOpenAI(
        azure_endpoint=azure.azure_endpoint, api_key=KEY, api_version=VERSION, max_retries=0
    )
    prompt = "Tell me about the lighthouse keeper"
    stream = await official.chat.completions.create(
        model="my-gpt",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage, finish = "", None, None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    their_path = azure.requests[-1].path
    await official.close()
    async with SteerLLMClient() as client:
        ours = await client.stream_with_usage(prompt, "azure/my-gpt")
    assert azure.requests[-1].path == their_path
    assert ours.text == text and ours.finish_reason == finish == "stop"
    assert usage is not None
    assert ours.usage["prompt_tokens"] == usage.prompt_tokens
    assert ours.usage["completion_tokens"] == usage.completion_tokens


async def test_token_provider_sync_and_async(
    azure: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    calls: list[str] = []

    def sync_provider() -> str:
        calls.append("sync")
        return TOKEN

    async def async_provider() -> str:
        calls.append("async")
        return TOKEN

    for provider in (sync_provider, async_provider):
        async with SteerLLMClient(azure_ad_token_provider=provider) as client:
            assert (await client.generate("hi", "azure/my-gpt")).text
            assert (await client.generate("hi", "azure/my-gpt")).text
        request = azure.requests[-1]
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert "api-key" not in request.headers
    assert calls == ["sync", "sync", "async", "async"]  # called for every request


async def test_a_refused_token_asks_the_provider_again_once(azure: Emulator) -> None:
    tokens = iter(["stale-entra-token", TOKEN])
    async with SteerLLMClient(azure_ad_token_provider=lambda: next(tokens)) as client:
        assert (await client.generate("hi", "azure/my-gpt")).text
    auth = [r.headers["authorization"] for r in azure.requests]
    assert auth == ["Bearer stale-entra-token", f"Bearer {TOKEN}"]


async def test_v1_api_by_endpoint_and_by_api_version(azure: Emulator) -> None:
    async with SteerLLMClient(base_urls={"azure": azure.azure_endpoint + "/openai/v1"}) as client:
        assert (await client.generate("hi", "azure/my-gpt")).text
    async with SteerLLMClient() as client:
        assert (await client.generate("hi", "azure/my-gpt", api_version="v1")).text
    assert _sent(azure) == ["/openai/v1/chat/completions"] * 2
    bodies = [json.loads(r.body) for r in azure.requests]
    assert all(b["model"] == "my-gpt" and "api_version" not in b for b in bodies)


async def test_api_version_per_call_and_client(azure: Emulator) -> None:
    async with SteerLLMClient(api_version="2024-06-01") as client:
        await client.generate("hi", "azure/my-gpt")
        await client.generate("hi", "azure/my-gpt", api_version="2025-01-01-preview")
    assert _sent(azure) == [
        "/openai/deployments/my-gpt/chat/completions?api-version=2024-06-01",
        "/openai/deployments/my-gpt/chat/completions?api-version=2025-01-01-preview",
    ]


async def test_unknown_api_version_is_azures_404_explained(azure: Emulator) -> None:
    async with SteerLLMClient() as client:
        with pytest.raises(NotFoundError, match="api-version") as info:
            await client.generate("hi", "azure/my-gpt", api_version="2099-01-01")
        with pytest.raises(BadRequestError, match="API version not supported"):
            await client.generate("hi", "azure/my-gpt", api_version="latest")
    assert "Resource not found" in str(info.value)


async def test_responses_api_on_azure(azure: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_VERSION")  # the Responses API's default version then
    async with SteerLLMClient() as client:
        classic = await client.generate("hi", "azure/my-gpt", api="responses")
        v1 = await client.stream_with_usage("hi", "azure/my-gpt", api="responses", api_version="v1")
    assert classic.text and v1.text == classic.text
    assert _sent(azure) == [
        "/openai/responses?api-version=2025-04-01-preview",
        "/openai/v1/responses",
    ]
    assert all(json.loads(r.body)["model"] == "my-gpt" for r in azure.requests)


async def test_content_filter_on_the_prompt_and_on_the_answer(azure: Emulator) -> None:
    azure.clouds.azure_filtered = ["forbidden topic"]
    async with SteerLLMClient() as client:
        with pytest.raises(BadRequestError, match="prompt was filtered") as info:
            await client.generate("tell me a forbidden topic", "azure/my-gpt")
        assert info.value.status_code == 400
        azure.enqueue(Reply(text="Part of an answer", finish_reason="content_filter"))
        cut = await client.stream_with_usage("a fine prompt", "azure/my-gpt")
        azure.enqueue(Reply(text="Part of an answer", finish_reason="content_filter"))
        whole = await client.generate("a fine prompt", "azure/my-gpt")
    assert cut.finish_reason == "content_filter" and cut.text == "Part of an answer"
    assert whole.finish_reason == "content_filter"


async def test_deployment_not_found_names_deployment_and_endpoint(azure: Emulator) -> None:
    azure.clouds.azure_deployments = {"prod-chat"}
    async with SteerLLMClient() as client:
        with pytest.raises(NotFoundError) as info:
            await client.generate("hi", "azure/prod-chta")
        assert (await client.generate("hi", "azure/prod-chat")).text
    message = str(info.value)
    assert "'prod-chta'" in message and azure.azure_endpoint in message
    assert "DeploymentNotFound" in message
    assert len(_sent(azure)) == 2  # a 404 is not retried


async def test_wrong_key_never_shows_in_errors_or_logs(
    azure: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "azure-wrong-key-7f3a9c1e5b"
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", secret)
    async with SteerLLMClient() as client:
        with pytest.raises(AuthenticationError) as info:
            await client.generate("hi", "azure/my-gpt")
        signer = client._wiring.signers["azure"]
        text = str(info.value) + repr(info.value) + repr(signer) + repr(client) + caplog.text
    assert secret not in text
    assert azure.requests[-1].headers["api-key"] == secret


async def test_missing_endpoint_or_credentials_fail_before_sending(
    azure: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_API_KEY")
    async with SteerLLMClient() as client:
        with pytest.raises(ConfigurationError, match="AZURE_OPENAI_API_KEY"):
            await client.generate("hi", "azure/my-gpt")
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT")
    async with SteerLLMClient(api_keys={"azure": KEY}) as client:
        with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
            await client.generate("hi", "azure/my-gpt")
    assert not azure.requests


async def test_telemetry_names_the_cloud(azure: Emulator) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel test dependencies")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from steer_llm_sdk.telemetry import TelemetryOptions

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = TelemetryOptions(tracer_provider=tracer_provider)
    async with SteerLLMClient(telemetry=telemetry) as client:
        await client.generate("hi", "azure/my-gpt")
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"


async def test_cli_lists_what_is_configured_and_runs_a_deployment(
    azure: Emulator, tmp_path: Path
) -> None:
    from .test_cli import run_cli

    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.update(
        AZURE_OPENAI_ENDPOINT=azure.azure_endpoint,
        AZURE_OPENAI_API_KEY=KEY,
        GOOGLE_CLOUD_PROJECT="steer-proj",
        GOOGLE_CLOUD_LOCATION="europe-west4",
        STEER_LLM_DATA_DIR=str(tmp_path),
    )
    env.pop("OPENAI_API_VERSION", None)
    code, out, err = await run_cli("models", env=env)
    assert code == 0, err
    assert f"azure: endpoint {azure.azure_endpoint}, api-version {VERSION}" in out
    assert "credentials: API key (AZURE_OPENAI_API_KEY)" in out
    assert "vertex: project steer-proj, location europe-west4" in out
    assert KEY not in out + err
    code, out, err = await run_cli("-m", "azure/my-gpt", "--no-log", "hi", env=env)
    assert code == 0, err
    assert out.strip() and KEY not in out + err
    assert azure.requests[-1].path.startswith("/openai/deployments/my-gpt/chat/completions")


async def test_clouds_answer_a_body_that_is_not_json_with_their_400(azure: Emulator) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=azure.url) as raw:
        bad = await raw.post(
            f"/openai/deployments/d/chat/completions?api-version={VERSION}",
            content=b"{not json",
            headers={"api-key": KEY},
        )
        token, _ = azure.clouds.issue_token()
        vertex = await raw.post(
            "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:generateContent",
            content=b"{not json",
            headers={"authorization": f"Bearer {token}"},
        )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "400"
    assert vertex.status_code == 400 and vertex.json()["error"]["status"] == "INVALID_ARGUMENT"
