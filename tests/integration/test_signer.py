"""The per-request signer hook (auth/): a cloud's credentials over the exact bytes sent,
refreshed once after a 401, against the emulator over a real socket."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import pytest

import steer_llm_sdk.auth as auth
from steer_llm_sdk import SteerLLMClient
from steer_llm_sdk.catalog import ProviderSpec
from steer_llm_sdk.errors import AuthenticationError
from steer_llm_sdk.testing import Emulator, Reply

SECRET = b"test-signing-secret-0000"


class HmacSigner:
    """Signs method, URL and body with a key that rotates on refresh (as a cloud token)."""

    def __init__(self, provider: str, settings: Mapping[str, Any]) -> None:
        self.provider = provider
        self.settings = settings
        self.generation = 0
        self.refreshes = 0

    async def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        mac = hmac.new(SECRET + bytes([self.generation]), digestmod=hashlib.sha256)
        mac.update(f"{method} {url}\n".encode() + body)
        return {"x-test-signature": f"{self.generation}:{mac.hexdigest()}"}

    def refresh(self) -> bool:
        self.refreshes += 1
        self.generation += 1
        return True


@pytest.fixture
def signers(monkeypatch: pytest.MonkeyPatch) -> list[HmacSigner]:
    made: list[HmacSigner] = []

    def make(kind: str, provider: str, settings: Mapping[str, Any]) -> HmacSigner:
        assert kind == "test-hmac"
        made.append(HmacSigner(provider, settings))
        return made[-1]

    monkeypatch.setattr(auth, "make_signer", make)
    return made


def _client(emulator: Emulator) -> SteerLLMClient:
    spec = ProviderSpec(
        "cloudy",
        "openai-chat",
        emulator.openai_base_url,
        None,
        key_required=False,
        auth="test-hmac",
    )
    return SteerLLMClient(providers={"cloudy": spec})


def _verify(emulator: Emulator, generation: int, request: Any) -> None:
    sig = request.headers["x-test-signature"]
    mac = hmac.new(SECRET + bytes([generation]), digestmod=hashlib.sha256)
    url = emulator.openai_base_url.rstrip("/") + "/chat/completions"
    mac.update(f"POST {url}\n".encode() + request.body)
    assert sig == f"{generation}:{mac.hexdigest()}"  # over the bytes the server received


async def test_each_request_is_signed_over_its_exact_body(
    emulator: Emulator, signers: list[HmacSigner]
) -> None:
    async with _client(emulator) as client:
        text = "".join([c async for c in client.stream("Hello", model="cloudy/m1")])
        assert text
        await client.generate("Again", model="cloudy/m1")
    assert len(signers) == 1  # one signer per provider, made once
    assert len(emulator.requests) == 2
    for request in emulator.requests:
        _verify(emulator, 0, request)


async def test_a_401_refreshes_once_and_sends_again(
    emulator: Emulator, signers: list[HmacSigner]
) -> None:
    emulator.enqueue(Reply(status=401, error_message="token expired"))
    async with _client(emulator) as client:
        response = await client.stream_with_usage("Hello", model="cloudy/m1")
    assert response.text
    assert signers[0].refreshes == 1
    first, second = emulator.requests
    _verify(emulator, 0, first)
    _verify(emulator, 1, second)  # fresh credentials on the second request


async def test_a_second_401_is_the_callers_error(
    emulator: Emulator, signers: list[HmacSigner]
) -> None:
    emulator.enqueue(Reply(status=401), Reply(status=401, error_message="still refused"))
    async with _client(emulator) as client:
        with pytest.raises(AuthenticationError):
            await client.generate("Hello", model="cloudy/m1")
    assert signers[0].refreshes == 1  # once per call, never a loop
    assert len(emulator.requests) == 2
