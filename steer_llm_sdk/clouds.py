"""The clouds' endpoints: Google Vertex AI and Azure OpenAI.

A cloud serves a protocol the SDK already speaks (Gemini, Anthropic Messages, OpenAI
Chat Completions and Responses) at its own URLs, with its own credentials (``auth/``).
This module turns a cloud provider's settings (client options, else the environment)
into the base URL of a call and the codec's variant options (its paths):

- Vertex AI: ``{root}/v1/projects/{project}/locations/{location}``, the root being
  ``https://{location}-aiplatform.googleapis.com`` (``aiplatform.googleapis.com`` for
  the ``global`` location) or ``VERTEX_BASE_URL`` / ``base_urls={"vertex": ...}``;
  the codecs add ``/publishers/{google|anthropic}/models/{model}:...``.
- Azure OpenAI: ``{endpoint}/openai``; the classic API's paths name the deployment
  and carry ``?api-version=``, the v1 API's (``/v1/...``) carry neither.

It reads settings only: no credential passes through here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import ConfigurationError

if TYPE_CHECKING:
    from .catalog import ProviderSpec

__all__ = ["base_url", "codec_options", "describe"]

DEFAULT_LOCATION = "global"
# Azure's classic API without an api-version given: the latest GA version, and the
# first that serves the Responses API.
AZURE_CHAT_VERSION = "2024-10-21"
AZURE_RESPONSES_VERSION = "2025-04-01-preview"


def _checked(url: str, where: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(f"the {where} ({url!r}) must start with http:// or https://")
    return url


def vertex_place(settings: Mapping[str, Any], found: str | None = None) -> tuple[str, str]:
    """Vertex AI's project and location: the client's options, else
    ``GOOGLE_CLOUD_PROJECT`` / ``GOOGLE_CLOUD_LOCATION`` (location ``global`` by
    default), else the credentials' project (``found``)."""
    project = settings.get("vertex_project") or os.environ.get("GOOGLE_CLOUD_PROJECT") or found
    if not project:
        raise ConfigurationError(
            "no Google Cloud project for vertex/ models: set GOOGLE_CLOUD_PROJECT or pass "
            "SteerLLMClient(vertex_project=...) (the credentials name none)"
        )
    location = (
        settings.get("vertex_location")
        or os.environ.get("GOOGLE_CLOUD_LOCATION")
        or DEFAULT_LOCATION
    )
    return str(project), str(location)


def _vertex_root(base_urls: Mapping[str, str], location: str) -> str:
    root = base_urls.get("vertex") or os.environ.get("VERTEX_BASE_URL")
    if root:
        root = _checked(root, "Vertex AI base URL (base_urls= or VERTEX_BASE_URL)")
        return root[:-3] if root.endswith("/v1") else root  # given without the version
    if location == "global":
        return "https://aiplatform.googleapis.com"
    return f"https://{location}-aiplatform.googleapis.com"


def azure_endpoint(base_urls: Mapping[str, str]) -> str:
    """The Azure OpenAI resource's endpoint (``https://NAME.openai.azure.com``), from
    ``base_urls={"azure": ...}``, ``AZURE_OPENAI_ENDPOINT`` or ``AZURE_BASE_URL``;
    without ``/openai`` or ``/openai/v1``."""
    url = (
        base_urls.get("azure")
        or os.environ.get("AZURE_OPENAI_ENDPOINT")
        or os.environ.get("AZURE_BASE_URL")
    )
    if not url:
        raise ConfigurationError(
            "no Azure OpenAI endpoint for azure/ models: set AZURE_OPENAI_ENDPOINT "
            "(https://<resource>.openai.azure.com) or pass base_urls={'azure': ...}"
        )
    url = _checked(url, "Azure OpenAI endpoint (AZURE_OPENAI_ENDPOINT or base_urls=)")
    for tail in ("/openai/v1", "/openai"):
        if url.endswith(tail):
            return url[: -len(tail)]
    return url


def _azure_v1(base_urls: Mapping[str, str]) -> bool:
    url = base_urls.get("azure") or os.environ.get("AZURE_OPENAI_ENDPOINT") or ""
    return url.rstrip("/").endswith("/openai/v1")


async def base_url(
    spec: ProviderSpec, base_urls: Mapping[str, str], settings: Mapping[str, Any], signer: Any
) -> str:
    """The base URL of a call to a cloud provider (``spec.variant``); Vertex's project
    may come from the credentials (``signer.default_project()``)."""
    if spec.variant == "vertex":
        found = None
        if not (settings.get("vertex_project") or os.environ.get("GOOGLE_CLOUD_PROJECT")):
            found = await signer.default_project()
        project, location = vertex_place(settings, found)
        root = _vertex_root(base_urls, location)
        return f"{root}/v1/projects/{quote(project, safe='')}/locations/{quote(location, safe='')}"
    return azure_endpoint(base_urls) + "/openai"


def codec_options(
    spec: ProviderSpec,
    model: str,
    base_urls: Mapping[str, str],
    settings: Mapping[str, Any],
    params: dict[str, Any],
) -> dict[str, Any]:
    """The codec's variant options of a call (``api_version`` is taken out of
    ``params``: a per-call parameter, never sent in the body)."""
    if spec.variant == "vertex":
        return {"vertex": True}
    # Per call, else the client's, else a v1 endpoint's "v1", else OPENAI_API_VERSION.
    version = params.pop("api_version", None) or settings.get("api_version")
    if version is None and not _azure_v1(base_urls):
        version = os.environ.get("OPENAI_API_VERSION")
    if version is not None and (not isinstance(version, str) or not version.strip()):
        raise ConfigurationError(f"api_version must be a non-empty string, not {version!r}")
    responses = spec.protocol == "openai-responses"
    where = f"Azure OpenAI deployment {model!r} at {azure_endpoint(base_urls)}"
    if version == "v1" or (version is None and _azure_v1(base_urls)):
        return {"path": "/v1/responses" if responses else "/v1/chat/completions", "where": where}
    if responses:
        query = quote(version or AZURE_RESPONSES_VERSION, safe="-.")
        return {"path": f"/responses?api-version={query}", "where": where}
    query = quote(version or AZURE_CHAT_VERSION, safe="-.")
    name = quote(model, safe="-._~")
    return {"path": f"/deployments/{name}/chat/completions?api-version={query}", "where": where}


def describe(variant: str, base_urls: Mapping[str, str], settings: Mapping[str, Any]) -> str:
    """What is configured for a cloud (``steer-llm models``), never a secret."""
    if variant == "vertex":
        project, location = vertex_place(settings, "(the credentials' own)")
        creds = (
            "GOOGLE_APPLICATION_CREDENTIALS file"
            if os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
            else "Application Default Credentials (gcloud user, metadata server)"
        )
        return f"project {project}, location {location}, credentials: {creds}"
    try:
        endpoint = azure_endpoint(base_urls)
    except ConfigurationError:
        return "not configured: set AZURE_OPENAI_ENDPOINT"
    if settings.get("azure_ad_token_provider") is not None:
        creds = "Entra ID token provider"
    elif (settings.get("api_keys") or {}).get("azure") or os.environ.get("AZURE_OPENAI_API_KEY"):
        creds = "API key (AZURE_OPENAI_API_KEY)"
    else:
        creds = "none (set AZURE_OPENAI_API_KEY or azure_ad_token_provider=)"
    version = settings.get("api_version") or os.environ.get("OPENAI_API_VERSION")
    version = version or ("v1" if _azure_v1(base_urls) else AZURE_CHAT_VERSION)
    return f"endpoint {endpoint}, api-version {version}, credentials: {creds}"
