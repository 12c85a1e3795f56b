"""Azure OpenAI credentials: an API key sent as ``api-key``, or an Entra ID token.

``SteerLLMClient(azure_ad_token_provider=...)`` takes a callable returning a bearer
token, sync or async, as ``azure.identity.get_bearer_token_provider`` (or its
``aio`` twin) returns; it is called for every request (the provider caches and renews
its tokens) and wins over a key. Else the key: ``api_keys={"azure": ...}`` or
``AZURE_OPENAI_API_KEY``, read at call time.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

from ..errors import AuthenticationError, ConfigurationError, register_secret

__all__ = ["AzureSigner", "make_azure_signer"]


class AzureSigner:
    """``api-key: <key>`` or ``Authorization: Bearer <token from the provider>``."""

    def __init__(self, provider: str, token_provider: Any, keys: Mapping[str, str]) -> None:
        if token_provider is not None and not callable(token_provider):
            raise ConfigurationError(
                "azure_ad_token_provider must be a callable returning a token (sync or "
                "async), e.g. azure.identity.get_bearer_token_provider(credential, "
                "'https://cognitiveservices.azure.com/.default')"
            )
        self.provider = provider
        self._token_provider = token_provider
        self._keys = keys

    def __repr__(self) -> str:  # never a key or token
        source = "token provider" if self._token_provider is not None else "api key"
        return f"AzureSigner(provider={self.provider!r}, credentials={source!r})"

    async def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        if self._token_provider is not None:
            try:
                token = self._token_provider()
                if inspect.isawaitable(token):
                    token = await token
            except Exception as exc:  # the caller's provider: its own errors, not ours
                raise AuthenticationError(
                    f"azure_ad_token_provider failed: {type(exc).__name__}",
                    provider=self.provider,
                ) from None
            if not isinstance(token, str) or not token:
                raise AuthenticationError(
                    "azure_ad_token_provider returned no token (a non-empty str is needed, "
                    f"got {type(token).__name__})",
                    provider=self.provider,
                )
            register_secret(token)
            return {"authorization": f"Bearer {token}"}
        key = self._keys.get(self.provider) or os.environ.get("AZURE_OPENAI_API_KEY")
        if not key:
            raise ConfigurationError(
                "no credentials for azure/ models: set AZURE_OPENAI_API_KEY, pass "
                "api_keys={'azure': ...}, or SteerLLMClient(azure_ad_token_provider=...)"
            )
        register_secret(key)
        return {"api-key": key}

    def refresh(self) -> bool:
        # A token provider may have a newer token; a key stays what it is.
        return self._token_provider is not None


def make_azure_signer(provider: str, settings: Mapping[str, Any]) -> AzureSigner:
    return AzureSigner(
        provider, settings.get("azure_ad_token_provider"), settings.get("api_keys") or {}
    )
