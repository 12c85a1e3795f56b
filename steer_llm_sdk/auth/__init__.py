"""Per-request credentials for the clouds: signers behind a registry, loaded on first use.

A provider whose requests need more than a static API key header (AWS SigV4 over the
exact bytes sent, a Google OAuth token that expires, an Azure Entra ID token provider)
names a signer kind in its ``ProviderSpec.auth``. The client makes one signer per
provider (:func:`make_signer`) and the attempt loop asks it for the headers of each
request, after the codec built it and before it is sent
(``streaming/attempts.py``). On a 401 or 403 the loop calls :meth:`Signer.refresh`
once per call and, when it returns True, sends the request again with fresh headers.

Adding a cloud is a module here plus a line in :data:`SIGNERS`; the SDK imports the
module (and its optional extra: botocore, google-auth) only when such a provider is
used. Signers never put a credential in an error, a log line or a repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Any, Protocol

from ..errors import ConfigurationError

__all__ = ["SIGNERS", "Signer", "make_signer"]


class Signer(Protocol):
    """What the attempt loop needs of a cloud's credentials."""

    async def sign(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """The headers to add to this request (``Authorization``, ``X-Amz-Date``,
        ``api-key`` ...), computed over its method, full URL, headers and exact body."""
        ...

    def refresh(self) -> bool:
        """The server refused the credential (401/403): drop what is cached. True when
        sending again with fresh credentials may succeed (asked once per call)."""
        ...


# signer kind → (module in this package, factory name). A factory is called as
# factory(provider_name, settings) with the client's signer settings, and returns a Signer.
SIGNERS: dict[str, tuple[str, str]] = {
    "aws-sigv4": ("aws", "make"),  # Bedrock: SigV4 (botocore) or a Bedrock API key
    "google": ("google", "make_google_signer"),
    "azure": ("azure", "make_azure_signer"),
}


def make_signer(kind: str, provider: str, settings: Mapping[str, Any]) -> Signer:
    """The signer of ``kind`` for ``provider`` (its module imported now), or a
    ConfigurationError listing the kinds."""
    try:
        module, name = SIGNERS[kind]
    except KeyError:
        raise ConfigurationError(
            f"provider {provider!r}: auth {kind!r} is not known; use one of "
            f"{', '.join(sorted(SIGNERS)) or '(none)'}"
        ) from None
    factory = getattr(import_module(f"{__name__}.{module}"), name)
    signer: Signer = factory(provider, settings)
    return signer
