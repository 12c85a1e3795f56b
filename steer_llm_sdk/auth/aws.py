"""AWS credentials for Bedrock: SigV4 through botocore's credential chain, or a Bedrock
API key (``AWS_BEARER_TOKEN_BEDROCK``) sent as a bearer token.

botocore (the ``bedrock`` extra) is imported only when a signer is made. The chain is
botocore's own: environment variables, the shared config and credentials files and
their profiles (``AWS_PROFILE``), SSO, web identity, the container and the instance
metadata. Credentials are read from it for every request (``get_frozen_credentials``
refreshes those that expire, in a thread when that may mean network I/O), never cached
past their expiry; a 403 drops them so that the next request resolves the chain again.

The region: the client's signer setting ``aws_region``, else ``AWS_REGION``,
``AWS_DEFAULT_REGION``, the profile's ``region``. The endpoint: the SDK's base URL
(``base_urls={"bedrock": ...}``, ``BEDROCK_BASE_URL``), else
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` / ``AWS_ENDPOINT_URL`` (botocore's convention),
else ``https://bedrock-runtime.{region}.amazonaws.com``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import AuthenticationError, ConfigurationError, register_secret

__all__ = ["BEARER_ENV", "BedrockSigner", "aws_region", "bedrock_endpoint", "describe", "make"]

BEARER_ENV = "AWS_BEARER_TOKEN_BEDROCK"
SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime
_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_ENDPOINT_URL")


def _botocore_session() -> Any:
    try:
        import botocore.session
    except ImportError:
        raise ConfigurationError(
            "Bedrock models need botocore for AWS credentials: pip install "
            "'steer-llm-sdk[bedrock]' (or set AWS_BEARER_TOKEN_BEDROCK to a Bedrock API key)"
        ) from None
    return botocore.session.Session()


def aws_region(settings: Mapping[str, Any] | None = None) -> str | None:
    """The region: the client's ``aws_region``, ``AWS_REGION``, ``AWS_DEFAULT_REGION``,
    else the profile's (botocore read only then, and only if installed)."""
    region = (settings or {}).get("aws_region") or os.environ.get("AWS_REGION")
    region = region or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return str(region)
    try:
        import botocore.session
    except ImportError:
        return None
    found = botocore.session.Session().get_config_variable("region")
    return str(found) if found else None


def bedrock_endpoint(region: str | None) -> str:
    """The Bedrock runtime endpoint from botocore's environment variables or the region."""
    for env in _ENDPOINT_ENVS:
        url = os.environ.get(env)
        if url:
            return url.rstrip("/")
    if not region:
        raise ConfigurationError(
            "no AWS region for Bedrock: set AWS_REGION (or AWS_DEFAULT_REGION, or a "
            "profile's region), or the endpoint with "
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME or BEDROCK_BASE_URL"
        )
    return f"https://bedrock-runtime.{region}.amazonaws.com"


def _bearer_allowed(url: str) -> bool:
    """A Bedrock API key goes only over TLS, or to this machine (a local emulator)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _region_of(url: str, settings: Mapping[str, Any]) -> str:
    host = urlsplit(url).hostname or ""
    labels = host.split(".")
    # bedrock-runtime.<region>.amazonaws.com, bedrock-runtime-fips.<region>...
    if len(labels) >= 4 and labels[0].startswith("bedrock-runtime"):
        return labels[1]
    region = aws_region(settings)
    if not region:
        raise ConfigurationError(
            f"no AWS region to sign requests to {host!r} with: set AWS_REGION (or "
            "AWS_DEFAULT_REGION, or a profile's region)"
        )
    return region


class BedrockSigner:
    """Per-request AWS credentials: a bearer API key when set, else SigV4."""

    def __init__(self, provider: str, settings: Mapping[str, Any]) -> None:
        self._provider = provider
        self._settings = dict(settings)
        self._profile = self._settings.get("aws_profile")
        self._session: Any = None
        self._credentials: Any = None  # botocore's (refreshable) credentials object

    def __repr__(self) -> str:
        return f"BedrockSigner({self._provider!r}, source={self.source()!r})"

    def source(self) -> str:
        """Where the credentials come from (never the credential itself)."""
        if os.environ.get(BEARER_ENV):
            return f"bearer token ({BEARER_ENV})"
        if self._credentials is not None:
            return f"SigV4 ({self._credentials.method})"
        return "SigV4 (botocore's credential chain)"

    async def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        token = os.environ.get(BEARER_ENV)
        if token:
            if not _bearer_allowed(url):
                raise ConfigurationError(
                    f"{BEARER_ENV} is set, but the Bedrock endpoint {urlsplit(url).netloc!r} "
                    "is neither https:// nor this machine: the API key is not sent in clear"
                )
            register_secret(token)
            return {"Authorization": f"Bearer {token}"}
        frozen = await self._frozen()
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        # The Host header as httpx sends it (botocore would parse the URL twice for it).
        parts = urlsplit(url)
        host = parts.netloc
        if (parts.scheme, parts.port) in (("https", 443), ("http", 80)):
            host = host.rsplit(":", 1)[0]
        request = AWSRequest(method=method, url=url, data=body, headers={**headers, "host": host})
        SigV4Auth(frozen, SERVICE, _region_of(url, self._settings)).add_auth(request)
        out = {"Authorization": request.headers["Authorization"]}
        out["X-Amz-Date"] = request.headers["X-Amz-Date"]
        if frozen.token:
            out["X-Amz-Security-Token"] = request.headers["X-Amz-Security-Token"]
        return out

    async def _frozen(self) -> Any:
        creds = self._credentials
        if creds is None:
            if self._session is None:
                self._session = _botocore_session()
                if self._profile:
                    self._session.set_config_variable("profile", self._profile)
            # The chain may ask the instance metadata or SSO: off the event loop.
            creds = await asyncio.to_thread(self._session.get_credentials)
            if creds is None:
                raise AuthenticationError(
                    "no AWS credentials found for Bedrock: botocore's chain (environment, "
                    "AWS_PROFILE and the shared files, SSO, web identity, container, "
                    f"instance metadata) found none, and {BEARER_ENV} is not set",
                    provider=self._provider,
                )
            self._credentials = creds
        refresh_needed = getattr(creds, "refresh_needed", None)
        if refresh_needed is not None and refresh_needed():
            frozen = await asyncio.to_thread(creds.get_frozen_credentials)
        else:
            frozen = creds.get_frozen_credentials()
        register_secret(frozen.secret_key)
        if frozen.token:
            register_secret(frozen.token)
        return frozen

    def refresh(self) -> bool:
        """A 403: resolve the chain again on the next request (a bearer token cannot
        be refreshed)."""
        if os.environ.get(BEARER_ENV):
            return False
        self._credentials = None
        self._session = None
        return True


def make(provider: str, settings: Mapping[str, Any]) -> BedrockSigner:
    """The ``aws-sigv4`` signer factory (``auth.SIGNERS``)."""
    return BedrockSigner(provider, settings)


def describe(settings: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What is configured for Bedrock, for ``steer-llm models``: region, endpoint and
    credential source (never a credential)."""
    region = aws_region(settings)
    try:
        endpoint = os.environ.get("BEDROCK_BASE_URL") or bedrock_endpoint(region)
    except ConfigurationError:
        endpoint = "(no region)"
    if os.environ.get(BEARER_ENV):
        source = BEARER_ENV
    elif os.environ.get("AWS_ACCESS_KEY_ID"):
        source = "environment (AWS_ACCESS_KEY_ID)"
    elif os.environ.get("AWS_PROFILE"):
        source = f"profile {os.environ['AWS_PROFILE']!r}"
    else:
        source = "botocore's chain (default profile, SSO, container, instance)"
    return {"region": region or "(none)", "endpoint": endpoint, "credentials": source}
