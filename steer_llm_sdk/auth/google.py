"""Google Cloud credentials for Vertex AI: google-auth's Application Default Credentials.

``google.auth.default(scopes=[cloud-platform])`` finds the credentials as every Google
client does: ``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account key file, or an
external-account / workload-identity file), the gcloud user's
``application_default_credentials.json``, else the metadata server (GCE, GKE, Cloud
Run). The OAuth token is refreshed before it expires (google-auth's own margin), in a
worker thread (google-auth is synchronous), one refresh at a time; after a 401 the
next request refreshes it first. google-auth talks to the token endpoint through a
small httpx adapter (no ``requests``). Needs the ``vertex`` extra.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..errors import AuthenticationError, ConfigurationError, ConnectionError, register_secret

__all__ = ["GoogleSigner", "make_google_signer"]

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
_MAX_TOKEN_RESPONSE = 1 << 20  # bytes read from a token endpoint or the metadata server


def _import_google_auth() -> Any:
    try:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport
    except ImportError:
        raise ConfigurationError(
            "vertex/ models need google-auth: pip install 'steer-llm-sdk[vertex]'"
        ) from None
    return google.auth


class _Response:
    """google-auth's ``transport.Response`` over an httpx response."""

    def __init__(self, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self.status = status
        self.headers = headers
        self.data = data


def _request_class() -> Any:
    import httpx
    from google.auth import exceptions, transport

    class HttpxRequest(transport.Request):
        """google-auth's ``transport.Request`` with httpx: bounded time and size."""

        def __call__(
            self,
            url: str,
            method: str = "GET",
            body: bytes | None = None,
            headers: Mapping[str, str] | None = None,
            timeout: float | None = None,
            **kwargs: Any,
        ) -> _Response:
            try:
                with (
                    httpx.Client(timeout=timeout or 30.0, follow_redirects=False) as client,
                    client.stream(method, url, content=body, headers=headers) as response,
                ):
                    data = b""
                    for piece in response.iter_bytes():
                        data += piece
                        if len(data) > _MAX_TOKEN_RESPONSE:
                            raise exceptions.TransportError(
                                f"the token response from {url} is over {_MAX_TOKEN_RESPONSE} bytes"
                            )
                    return _Response(response.status_code, response.headers, data)
            except httpx.HTTPError as exc:
                raise exceptions.TransportError(f"{type(exc).__name__} for {url}") from None

    return HttpxRequest


class GoogleSigner:
    """An OAuth bearer token from google-auth, refreshed before it expires."""

    def __init__(self, provider: str, credentials: Any = None) -> None:
        self.provider = provider
        self._credentials = credentials  # None: Application Default Credentials, on first use
        self._project: str | None = getattr(credentials, "project_id", None)
        self._stale = False  # the server refused the token: refresh before the next request
        self._lock = threading.Lock()  # one refresh at a time (worker threads)
        self._request: Any = None
        self.refreshes = 0  # tokens fetched so far

    def __repr__(self) -> str:  # never a token
        return f"GoogleSigner(provider={self.provider!r}, refreshes={self.refreshes})"

    async def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        creds = self._credentials
        if creds is None or self._stale or not creds.valid:
            import asyncio

            creds = await asyncio.to_thread(self._fresh)
        token = creds.token
        register_secret(token)
        out = {"authorization": f"Bearer {token}"}
        quota = getattr(creds, "quota_project_id", None)
        if quota:
            out["x-goog-user-project"] = str(quota)
        return out

    def refresh(self) -> bool:
        self._stale = True
        return True

    async def default_project(self) -> str | None:
        """The credentials' own project (a service-account file's, the metadata
        server's, ``GOOGLE_CLOUD_PROJECT``'s as google-auth reads it), if any."""
        import asyncio

        await asyncio.to_thread(self._fresh, False)
        return self._project

    def _fresh(self, refresh: bool = True) -> Any:
        """Load the credentials (first use) and refresh the token if it is not valid
        (or was refused): in a worker thread, one at a time."""
        google_auth = _import_google_auth()
        errors = google_auth.exceptions
        with self._lock:
            if self._request is None:
                self._request = _request_class()()
            try:
                if self._credentials is None:
                    self._credentials, self._project = google_auth.default(scopes=list(SCOPES))
                creds = self._credentials
                if refresh and (self._stale or not creds.valid):
                    creds.refresh(self._request)
                    self.refreshes += 1
                    self._stale = False
            except errors.DefaultCredentialsError as exc:
                raise ConfigurationError(
                    "no Google credentials for vertex/ models: set GOOGLE_APPLICATION_CREDENTIALS "
                    "to a service-account key file, run `gcloud auth application-default "
                    f"login`, or run on Google Cloud ({_first_line(exc)})"
                ) from None
            except errors.TransportError as exc:
                raise ConnectionError(
                    f"could not reach Google's token endpoint: {_first_line(exc)}",
                    provider=self.provider,
                ) from None
            except errors.GoogleAuthError as exc:
                raise AuthenticationError(
                    f"Google refused the credentials: {_first_line(exc)}", provider=self.provider
                ) from None
            if refresh and not creds.token:
                raise AuthenticationError("Google gave no access token", provider=self.provider)
            return creds


def _first_line(exc: BaseException) -> str:
    # google-auth's messages quote the token endpoint's body: keep it short (redacted
    # by the error's own redaction of key-shaped strings).
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def make_google_signer(provider: str, settings: Mapping[str, Any]) -> GoogleSigner:
    """The signer of ``vertex``: ``SteerLLMClient(vertex_credentials=...)`` (any
    google-auth ``Credentials``, e.g. with a quota project), else ADC on first use."""
    _import_google_auth()
    return GoogleSigner(provider, settings.get("vertex_credentials"))
