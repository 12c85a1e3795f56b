"""Google Vertex AI over real sockets: the real google-auth flow (a service-account key
file written here, signed with a fresh RSA key, whose token_uri is the emulator's
OAuth endpoint on 127.0.0.1), Gemini and Claude publishers, the official
``AnthropicVertex`` and ``google-genai`` clients agreeing with the SDK."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.errors import AuthenticationError, ConfigurationError
from steer_llm_sdk.testing import Emulator

pytest.importorskip("google.auth", reason="the vertex extra (google-auth) is not installed")
rsa = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

PROJECT = "steer-test-project"
LOCATION = "us-east5"
GEMINI = "vertex/gemini-2.5-flash"
CLAUDE = "vertex/claude-sonnet-4-5@20250929"


def _key_file(path: Path, emu: Emulator) -> Path:
    """A service-account key file with a fresh RSA key; the emulator checks the JWT
    assertions google-auth signs with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key()

    def verify(signing_input: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return False
        return True

    emu.clouds.jwt_verifier = verify
    emu.clouds.vertex_project = PROJECT
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "emu-key-1",
        "private_key": pem,
        "client_email": "steer-test@steer-test-project.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": emu.token_uri,
    }
    file = path / "service-account.json"
    file.write_text(json.dumps(info))
    return file


@pytest.fixture
async def vertex(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Emulator]:
    async with Emulator() as emu:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(_key_file(tmp_path, emu)))
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
        monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", LOCATION)
        monkeypatch.setenv("VERTEX_BASE_URL", emu.vertex_base_url)
        yield emu


async def test_gemini_and_claude_through_adc(vertex: Emulator) -> None:
    async with SteerLLMClient() as client:
        gemini = await client.generate("Tell me about the sea", GEMINI)
        chunks = [c async for c in client.stream("Tell me about the sea", GEMINI)]
        claude = await client.stream_with_usage("Tell me about the sea", CLAUDE, max_tokens=50)
    assert gemini.text and "".join(chunks) == gemini.text
    assert gemini.finish_reason == "stop" and gemini.usage["completion_tokens"] > 0
    assert gemini.cost_usd is not None  # Gemini on Vertex: Google's prices
    assert claude.text and claude.usage["prompt_tokens"] > 0
    assert claude.cost_usd is not None  # Claude on Vertex: Anthropic's prices
    paths = [r.path for r in vertex.requests if r.path.startswith("/v1/")]
    base = f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers"
    assert paths == [
        f"{base}/google/models/gemini-2.5-flash:generateContent",
        f"{base}/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        f"{base}/anthropic/models/claude-sonnet-4-5@20250929:streamRawPredict",
    ]
    assert vertex.clouds.token_requests == 1  # one token for the three calls
    body = json.loads(vertex.requests[-1].body)
    import anthropic._constants

    assert "model" not in body
    assert body["anthropic_version"] == anthropic._constants.ANTHROPIC_API_VERSION


async def test_global_location_host(monkeypatch: pytest.MonkeyPatch) -> None:
    from steer_llm_sdk.catalog import resolve_model
    from steer_llm_sdk.clouds import base_url

    monkeypatch.delenv("VERTEX_BASE_URL", raising=False)
    spec = resolve_model(GEMINI).provider
    place = {"vertex_project": "p", "vertex_location": "global"}
    assert await base_url(spec, {}, place, None) == (
        "https://aiplatform.googleapis.com/v1/projects/p/locations/global"
    )
    place["vertex_location"] = "europe-west4"
    assert await base_url(spec, {}, place, None) == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4"
    )
    assert resolve_model(CLAUDE).provider.protocol == "anthropic-messages"
    assert resolve_model("vertex/gemini-2.5-pro").provider.protocol == "gemini"


async def test_token_expiring_mid_job_is_refreshed_before_use(vertex: Emulator) -> None:
    from google.auth._helpers import REFRESH_THRESHOLD

    # Tokens live 2 s past google-auth's refresh margin: a job of 3 s needs a second one.
    vertex.clouds.token_lifetime = int(REFRESH_THRESHOLD.total_seconds()) + 2
    async with SteerLLMClient() as client:
        start = time.monotonic()
        texts = []
        while time.monotonic() - start < 3.2:
            texts.append((await client.generate("a short tale", GEMINI)).text)
            await asyncio.sleep(0.3)
    assert all(texts) and len(set(texts)) == 1
    assert vertex.clouds.token_requests == 2
    assert vertex.clouds.refused == 0  # refreshed before it expired, never sent stale


async def test_a_401_refreshes_once_and_retries(vertex: Emulator) -> None:
    async with SteerLLMClient() as client:
        first = await client.generate("hello", CLAUDE, max_tokens=20)
        vertex.clouds.expire_tokens()  # the server no longer takes the cached token
        second = await client.generate("hello", CLAUDE, max_tokens=20)
    assert first.text == second.text
    assert vertex.clouds.refused == 1 and vertex.clouds.token_requests == 2


async def test_a_token_refused_twice_is_an_error_without_the_token(
    vertex: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    vertex.clouds.token_lifetime = 0  # every token is dead on arrival
    caplog.set_level(logging.DEBUG)
    async with SteerLLMClient() as client:
        with pytest.raises(AuthenticationError) as info:
            await client.generate("hello", GEMINI)
        signer = client._wiring.signers["vertex"]
    assert vertex.clouds.refused == 2  # sent, refreshed once, sent again: no loop
    sent = [r.headers["authorization"].split()[1] for r in vertex.requests if r.path[:4] == "/v1/"]
    everything = str(info.value) + repr(info.value) + repr(signer) + caplog.text
    for cause in (info.value.__cause__, info.value.__context__):
        everything += repr(cause)
    for token in sent:
        assert token not in everything


async def test_bad_service_account_signature_is_an_authentication_error(
    vertex: Emulator,
) -> None:
    vertex.clouds.jwt_verifier = lambda data, sig: False
    async with SteerLLMClient() as client:
        with pytest.raises(AuthenticationError, match="Invalid JWT Signature"):
            await client.generate("hello", GEMINI)
    assert not [r for r in vertex.requests if r.path.startswith("/v1/")]  # nothing sent


def _without_project(tmp_path: Path) -> str:
    import os

    info = json.loads(Path(os.environ["GOOGLE_APPLICATION_CREDENTIALS"]).read_text())
    del info["project_id"]
    bare = tmp_path / "no-project.json"
    bare.write_text(json.dumps(info))
    return str(bare)


async def test_the_project_from_the_key_file_or_none(
    vertex: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT")
    async with SteerLLMClient() as client:  # the service-account file's project_id
        assert (await client.generate("hello", GEMINI)).text
    assert f"/projects/{PROJECT}/" in vertex.requests[-1].path
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", _without_project(tmp_path))
    sent = len(vertex.requests)
    async with SteerLLMClient() as client:
        with pytest.raises(ConfigurationError, match="GOOGLE_CLOUD_PROJECT"):
            await client.generate("hello", GEMINI)
    assert len(vertex.requests) == sent  # nothing sent
    async with SteerLLMClient(vertex_project=PROJECT, vertex_location=LOCATION) as client:
        assert (await client.generate("hello", GEMINI)).text  # a client option


async def test_anthropic_vertex_agrees(vertex: Emulator) -> None:
    anthropic = pytest.importorskip("anthropic")
    token, _ = vertex.clouds.issue_token()
    official = anthropic.AsyncAnthropicVertex(
        region=LOCATION,
        project_id=PROJECT,
        access_token=token,
        base_url=vertex.url + "/v1",
        max_retries=0,
    )
    prompt = "Tell me about the lighthouse"
    theirs = await official.messages.create(
        model="claude-sonnet-4-5@20250929",
        max_tokens=64,
        messages=[{"role": "user", "content": prompt}],
    )
    async with official.messages.stream(
        model="claude-sonnet-4-5@20250929",
        max_tokens=64,
        messages=[{"role": "user", "content": prompt}],
    ) as stream:
        streamed = await stream.get_final_message()
    await official.close()
    their_body = json.loads(vertex.requests[-1].body)
    async with SteerLLMClient() as client:
        ours = await client.stream_with_usage(prompt, CLAUDE, max_tokens=64)
    our_body = json.loads(vertex.requests[-1].body)
    their_text = "".join(b.text for b in theirs.content if b.type == "text")
    assert ours.text == their_text == "".join(b.text for b in streamed.content if b.type == "text")
    assert ours.usage["prompt_tokens"] == theirs.usage.input_tokens
    assert ours.usage["completion_tokens"] == theirs.usage.output_tokens
    assert theirs.stop_reason == "end_turn" and ours.finish_reason == "stop"
    assert our_body["anthropic_version"] == their_body["anthropic_version"]
    assert "model" not in their_body and "model" not in our_body


def _genai_vertex(genai: Any, vertex: Emulator) -> Any:
    """google-genai in Vertex mode on the emulator, with the service account's key."""
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_file(
        str(Path(__import__("os").environ["GOOGLE_APPLICATION_CREDENTIALS"])),
        scopes=["https://www.googleapis.com/auth/cloud-platform"],
    )
    return genai.Client(
        vertexai=True,
        project=PROJECT,
        location=LOCATION,
        credentials=creds,
        http_options=genai.types.HttpOptions(base_url=vertex.url, api_version="v1"),
    )


async def test_google_genai_in_vertex_mode_agrees(vertex: Emulator) -> None:
    genai = pytest.importorskip("google.genai")
    official = _genai_vertex(genai, vertex)
    prompt = "Tell me about the sea"
    theirs = await official.aio.models.generate_content(model="gemini-2.5-flash", contents=prompt)
    path = vertex.requests[-1].path
    async with SteerLLMClient() as client:
        ours = await client.generate(prompt, GEMINI)
    assert path == vertex.requests[-1].path  # the same URL
    assert ours.text == theirs.text
    assert ours.usage["prompt_tokens"] == theirs.usage_metadata.prompt_token_count
    assert ours.usage["completion_tokens"] == theirs.usage_metadata.candidates_token_count
    assert str(theirs.candidates[0].finish_reason).endswith("STOP") and ours.finish_reason == "stop"


async def test_a_batch_job_on_vertex_shares_one_token(vertex: Emulator, tmp_path: Path) -> None:
    async with SteerLLMClient() as client:
        items = ({"custom_id": f"t{i}", "prompt": f"Classify ticket {i}"} for i in range(40))
        job = client.batch(items, model=CLAUDE, max_tokens=16, journal=tmp_path / "job.sqlite")
        results = [r async for r in job]
    assert len(results) == 40 and all(r.text and not r.error for r in results)
    assert all(r.cost_usd is not None for r in results)
    assert vertex.clouds.token_requests == 1


_ON_GCE = """
import asyncio, sys
from steer_llm_sdk import SteerLLMClient

async def main():
    async with SteerLLMClient() as client:
        for _ in range(2):
            print((await client.generate("hello", sys.argv[1])).text[:20])

asyncio.run(main())
"""


async def test_metadata_server_credentials(vertex: Emulator, tmp_path: Path) -> None:
    """No key file, no gcloud user: google-auth finds the GCE metadata server (here
    the emulator's, through google-auth's own GCE_METADATA_* variables). A fresh
    process: google-auth reads those variables when it is imported."""
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_"))}
    host = f"127.0.0.1:{vertex.port}"
    env.update(
        GCE_METADATA_HOST=host,
        GCE_METADATA_IP=host,
        CLOUDSDK_CONFIG=str(tmp_path / "no-gcloud"),  # no user credentials there
        GOOGLE_CLOUD_PROJECT=PROJECT,
        GOOGLE_CLOUD_LOCATION=LOCATION,
        VERTEX_BASE_URL=vertex.vertex_base_url,
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _ON_GCE,
        GEMINI,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert len(out.decode().split("\n")) == 3 and out.strip()
    token_paths = [r.path for r in vertex.requests if "/default/token" in r.path]
    assert len(token_paths) == 1 and "cloud-platform" in token_paths[0]  # one token, two calls
    assert vertex.clouds.refused == 0


def test_without_google_auth_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from steer_llm_sdk.auth import make_signer

    monkeypatch.setitem(sys.modules, "google.auth", None)  # as if not installed
    with pytest.raises(ConfigurationError, match=r"steer-llm-sdk\[vertex\]"):
        make_signer("google", "vertex", {})


async def test_a_broken_claude_stream_resumes_from_its_text(vertex: Emulator) -> None:
    from steer_llm_sdk.testing import Fault, Reply

    async with SteerLLMClient() as client:
        whole = await client.generate("Tell me a story", CLAUDE, max_tokens=60)
        vertex.enqueue(Reply(fault=Fault.drop_after(3)))
        chunks = [c async for c in client.stream("Tell me a story", CLAUDE, max_tokens=60)]
    assert "".join(chunks) == whole.text  # nothing lost, nothing twice
    last = json.loads(vertex.requests[-1].body)
    assert last["messages"][-1]["role"] == "assistant"  # resumed with the text so far
    assert "model" not in last and last["anthropic_version"]


async def test_user_credentials_given_to_the_client_with_a_quota_project(
    vertex: Emulator,
) -> None:
    """A gcloud user's credentials (a refresh-token grant; google-auth always sends
    those to Google's own token URI when read from a file, so they are built here with
    the emulator's), given as vertex_credentials=; the quota project goes as
    x-goog-user-project."""
    from google.oauth2.credentials import Credentials

    user = Credentials(
        token=None,
        refresh_token="1//emu-refresh-token",
        client_id="emu-client.apps.googleusercontent.com",
        client_secret="emu-client-secret",
        token_uri=vertex.token_uri,
        quota_project_id="billing-project",
    )
    async with SteerLLMClient(vertex_credentials=user) as client:
        assert (await client.generate("hello", GEMINI)).text
        assert (await client.generate("hello", GEMINI)).text
    grants = [r for r in vertex.requests if r.path == "/oauth2/token"]
    assert len(grants) == 1 and b"grant_type=refresh_token" in grants[0].body
    call = vertex.requests[-1]
    assert call.headers["x-goog-user-project"] == "billing-project"
    assert call.headers["authorization"].startswith("Bearer ya29.emu-")


async def test_gemini_prompt_cache_lives_under_the_project(vertex: Emulator) -> None:
    manual = "Reference manual, section after section of stable facts. " * 200
    messages = [{"role": "system", "content": manual}, {"role": "user", "content": "Q?"}]
    async with SteerLLMClient() as client:
        first = await client.stream_with_usage(messages, GEMINI, cache_prompt="auto")
        second = await client.stream_with_usage(
            [messages[0], {"role": "user", "content": "R?"}], GEMINI, cache_prompt="auto"
        )
        parent = f"projects/{PROJECT}/locations/{LOCATION}"
        creates = [r for r in vertex.requests if r.path.endswith("/cachedContents")]
        assert [r.path for r in creates] == [f"/v1/{parent}/cachedContents"]
        assert creates[0].json["model"] == f"{parent}/publishers/google/models/gemini-2.5-flash"
        assert creates[0].headers["authorization"].startswith("Bearer ")  # the ADC token
        body = json.loads(vertex.requests[-1].body)
        assert body["cachedContent"].startswith(f"{parent}/cachedContents/")
        assert "systemInstruction" not in body
        assert first.usage["cache_info"]["cached_tokens"] > 2000 and second.cache_hit_ratio
        name = body["cachedContent"]
    assert vertex.cached_contents.deleted == [name]  # aclose() deleted it
    assert vertex.clouds.token_requests == 1


async def test_google_genai_vertex_caches_work_against_the_emulator(vertex: Emulator) -> None:
    genai = pytest.importorskip("google.genai")
    official = _genai_vertex(genai, vertex)
    manual = "Reference manual, section after section of stable facts. " * 200
    cache = await official.aio.caches.create(
        model="gemini-2.5-flash",
        config=genai.types.CreateCachedContentConfig(system_instruction=manual, ttl="60s"),
    )
    assert cache.name and cache.name.startswith(f"projects/{PROJECT}/locations/{LOCATION}/")
    answer = await official.aio.models.generate_content(
        model="gemini-2.5-flash",
        contents="Q?",
        config=genai.types.GenerateContentConfig(cached_content=cache.name),
    )
    assert answer.text and answer.usage_metadata
    assert (answer.usage_metadata.cached_content_token_count or 0) > 2000
    await official.aio.caches.delete(name=cache.name)
    assert vertex.cached_contents.deleted == [cache.name]
