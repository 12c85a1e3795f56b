"""SteerLLMClient: the one place that wires catalog, codecs, transport and pipeline."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from .catalog import ProviderSpec, Route, resolve_model
from .errors import ConfigurationError, register_secret
from .models.response import StreamingResponse
from .models.streaming import StreamingOptions
from .providers.anthropic import AnthropicCodec, supports_prefill
from .providers.base import ChatRequest
from .providers.openai_chat import OpenAIChatCodec
from .streaming.pipeline import Call, Codec, StreamRun
from .transport.http import Transport

if TYPE_CHECKING:
    from .batch.ray_engine import RayBatchJob
    from .batch.runner import BatchJob

__all__ = ["SteerLLMClient"]

_ROLES = ("system", "developer", "user", "assistant", "tool")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
# Parameters every method takes, mapped onto each provider's own names by its codec.
_COMMON = ("temperature", "max_tokens", "top_p", "stop", "seed", "response_format")
_DEFAULT_OPTIONS = StreamingOptions()


def _normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """A prompt string or a list of messages → validated message dicts."""
    if isinstance(messages, str):
        if not messages:
            raise ConfigurationError("the prompt is an empty string: give some text to send")
        return [{"role": "user", "content": messages}]
    if messages is None:
        raise ConfigurationError(
            "no prompt: pass a string or a list of messages as the first argument "
            "(or messages=[...])"
        )
    if not isinstance(messages, list | tuple):
        raise ConfigurationError(
            f"messages must be a string or a list of dicts, not {type(messages).__name__}"
        )
    if not messages:
        raise ConfigurationError(
            "messages is empty: give at least one, e.g. [{'role': 'user', 'content': 'Hi'}]"
        )
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ConfigurationError(
                f"messages[{i}] must be a dict with 'role' and 'content', "
                f"not {type(message).__name__}"
            )
        role = message.get("role")
        if role not in _ROLES:
            raise ConfigurationError(
                f"messages[{i}] has role {role!r}: use one of {', '.join(_ROLES)}"
            )
        content = message.get("content")
        if content is None:
            if not (role == "assistant" and message.get("tool_calls")):
                raise ConfigurationError(
                    f"messages[{i}] ({role}) has no 'content': give a string or a list of parts"
                )
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not (isinstance(part, str) or (isinstance(part, Mapping) and "type" in part)):
                    raise ConfigurationError(
                        f"messages[{i}].content[{j}] must be a string or a dict with a "
                        "'type' (e.g. {'type': 'text', 'text': '...'})"
                    )
        elif not isinstance(content, str):
            raise ConfigurationError(
                f"messages[{i}].content must be a string or a list of parts, "
                f"not {type(content).__name__}"
            )
        out.append(dict(message))
    return out


class SteerLLMClient:
    """One async client for every provider.

    Keys come from the arguments, else from the environment at call time
    (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``XAI_API_KEY``, ``<PROVIDER>_API_KEY``).
    Base URLs likewise (``OPENAI_BASE_URL`` with ``/v1``, ``ANTHROPIC_BASE_URL``
    without it, ``<PROVIDER>_BASE_URL``). Use it as ``async with`` or call
    :meth:`aclose`; it keeps one HTTP connection pool per provider.
    """

    def __init__(
        self,
        *,
        openai_api_key: str | None = None,
        anthropic_api_key: str | None = None,
        xai_api_key: str | None = None,
        openai_base_url: str | None = None,
        anthropic_base_url: str | None = None,
        api_keys: Mapping[str, str] | None = None,
        base_urls: Mapping[str, str] | None = None,
        providers: Mapping[str, Mapping[str, Any] | ProviderSpec] | None = None,
        default_options: StreamingOptions | None = None,
        prices: Mapping[str, Any] | None = None,
        max_connections: int = 1000,
    ) -> None:
        self._keys: dict[str, str] = {}
        for name, key in (
            ("openai", openai_api_key),
            ("anthropic", anthropic_api_key),
            ("xai", xai_api_key),
            *((api_keys or {}).items()),
        ):
            if key:
                self._keys[name] = key
                register_secret(key)
        self._base_urls: dict[str, str] = {}
        for name, url in (
            ("openai", openai_base_url),
            ("anthropic", anthropic_base_url),
            *((base_urls or {}).items()),
        ):
            if url:
                self._base_urls[name] = url
        self._providers: dict[str, ProviderSpec] = {}
        for name, spec in (providers or {}).items():
            self.register_provider(name, spec)
        if default_options is not None and not isinstance(default_options, StreamingOptions):
            raise ConfigurationError("default_options must be a StreamingOptions")
        self._default_options = default_options or _DEFAULT_OPTIONS
        self._prices = dict(prices) if prices else None
        self._transport = Transport(max_connections=max_connections)

    def __repr__(self) -> str:  # never shows a key
        known = sorted({*self._keys, *self._base_urls})
        return f"SteerLLMClient(configured={known})"

    # -- lifecycle -------------------------------------------------------------
    async def __aenter__(self) -> SteerLLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every connection pool."""
        await self._transport.aclose()

    # -- providers -----------------------------------------------------------
    def register_provider(self, name: str, spec: Mapping[str, Any] | ProviderSpec) -> None:
        """Add an OpenAI-compatible (or Anthropic-protocol) server under ``name``.

        ``spec`` is a ProviderSpec or a dict with ``base_url`` and optionally
        ``api_key``, ``api_key_env``, ``protocol`` ("openai-chat" or
        "anthropic-messages") and ``continues_prefix``. Then use ``"name/model"``.
        """
        name = name.lower()
        if isinstance(spec, ProviderSpec):
            self._providers[name] = spec
            return
        if "base_url" not in spec:
            raise ConfigurationError(f"provider {name!r} needs a 'base_url'")
        protocol = spec.get("protocol", "openai-chat")
        if protocol not in ("openai-chat", "anthropic-messages"):
            raise ConfigurationError(
                f"provider {name!r}: protocol {protocol!r} is not known; "
                "use 'openai-chat' or 'anthropic-messages'"
            )
        self._providers[name] = ProviderSpec(
            name,
            protocol,
            str(spec["base_url"]),
            spec.get("api_key_env"),
            key_required=False,
            continues_prefix=bool(spec.get("continues_prefix", False)),
        )
        if spec.get("api_key"):
            self._keys[name] = spec["api_key"]
            register_secret(spec["api_key"])

    def _api_key(self, spec: ProviderSpec) -> str | None:
        key = self._keys.get(spec.name)
        if key is None and spec.key_env:
            key = os.environ.get(spec.key_env) or None
            if key:
                register_secret(key)
        if key is None and spec.key_required:
            raise ConfigurationError(
                f"no API key for {spec.name}: set the environment variable {spec.key_env} "
                f"or pass SteerLLMClient(api_keys={{'{spec.name}': ...}})"
            )
        return key

    async def _base_url(self, route: Route) -> str:
        spec = route.provider
        if spec.local:
            from .local import ensure_server

            return (await ensure_server(route.model)) + "/v1"
        url = self._base_urls.get(spec.name) or os.environ.get(spec.base_url_env) or spec.base_url
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"the base URL for {spec.name} ({url!r}, from base_urls= or "
                f"{spec.base_url_env}) must start with http:// or https://"
            )
        if spec.protocol == "anthropic-messages" and url.endswith("/v1"):
            url = url[:-3]  # ANTHROPIC_BASE_URL is without /v1, like the official SDK
        return url

    # -- calls ---------------------------------------------------------------
    def _prepare(
        self,
        messages: Any,
        model: str | None,
        params: dict[str, Any],
        *,
        stream: bool,
        method: str,
    ) -> tuple[Call, Route]:
        if "return_usage" in params:
            raise TypeError(
                f"{method}() does not take return_usage (removed in v0.3.0): use "
                "`await client.stream_with_usage(...)` for text with usage and cost, or "
                "`async for chunk in client.stream(...)` for text chunks only"
            )
        if model is None:
            raise ConfigurationError(
                f"{method}() needs a model, e.g. model='gpt-4o-mini' or "
                "model='claude-3-haiku-20240307'"
            )
        options = params.pop("streaming_options", None)
        if options is None:
            options = self._default_options
        elif not isinstance(options, StreamingOptions):
            raise ConfigurationError(
                "streaming_options must be a StreamingOptions (from "
                f"steer_llm_sdk.models.streaming), not {type(options).__name__}"
            )
        route = resolve_model(model, self._providers)
        spec = route.provider
        msgs = _normalize_messages(messages)
        common: dict[str, Any] = {}
        if "max_completion_tokens" in params and "max_tokens" not in params:
            params["max_tokens"] = params.pop("max_completion_tokens")
        for key in _COMMON:
            if key in params:
                common[key] = params.pop(key)
        response_format = common.get("response_format")
        if response_format is not None:
            if not isinstance(response_format, Mapping) or (
                response_format.get("type") not in _RESPONSE_FORMATS
            ):
                raise ConfigurationError(
                    f"response_format={response_format!r} is not known: use "
                    "{'type': 'json_object'}, {'type': 'json_schema', 'json_schema': {...}} "
                    "or {'type': 'text'}"
                )
            if response_format["type"] == "text":
                common.pop("response_format")
        max_tokens = common.get("max_tokens")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise ConfigurationError(f"max_tokens={max_tokens!r} must be a whole number >= 1")
        extra_body = dict(params.pop("extra_body", None) or {})
        extra_body.update(params)  # anything else passes through to the provider's body
        request = ChatRequest(
            model=route.model,
            messages=msgs,
            stream=stream,
            params=common,
            extra_body=extra_body,
        )
        codec_factory = self._codec_factory(spec)
        call = Call(
            provider=spec,
            base_url="",  # resolved when the call starts (a local server may need starting)
            resolve_base_url=lambda: self._base_url(route),
            api_key=self._api_key(spec),
            model=route.model,
            request=request,
            options=options,
            codec_factory=codec_factory,
            transport=self._transport,
            price_overrides=self._prices,
            context={"provider": spec.name, "model": route.model},
            can_resume=spec.continues_prefix
            and (spec.protocol != "anthropic-messages" or supports_prefill(route.model)),
        )
        return call, route

    @staticmethod
    def _codec_factory(spec: ProviderSpec) -> Any:
        if spec.protocol == "anthropic-messages":
            return AnthropicCodec
        field = spec.max_tokens_field

        def make() -> Codec:
            return OpenAIChatCodec(max_tokens_field=field)

        return make

    def stream(
        self, messages: Any = None, model: str | None = None, **params: Any
    ) -> AsyncGenerator[str, None]:
        """Stream text chunks as they arrive: ``async for chunk in client.stream(...)``.

        ``messages`` is a prompt string or a list of message dicts; ``model`` names
        the model (``"gpt-4o-mini"``, ``"claude-3-haiku-20240307"``,
        ``"provider/model"``). Common parameters: temperature, max_tokens, top_p,
        stop, seed, response_format, streaming_options; anything else is sent to the
        provider as is.
        """
        call, _ = self._prepare(messages, model, params, stream=True, method="stream")
        return StreamRun(call).chunks()

    async def stream_with_usage(
        self, messages: Any = None, model: str | None = None, **params: Any
    ) -> StreamingResponse:
        """Stream the answer and return it whole: text, usage, cost, JSON, timings."""
        call, _ = self._prepare(messages, model, params, stream=True, method="stream_with_usage")
        run = StreamRun(call)
        generator = run.chunks()
        try:
            async for _ in generator:
                pass
        finally:
            await generator.aclose()
        return run.response()

    async def generate(
        self, messages: Any = None, model: str | None = None, **params: Any
    ) -> StreamingResponse:
        """One request without streaming; the same response shape as stream_with_usage."""
        call, _ = self._prepare(messages, model, params, stream=False, method="generate")
        return await StreamRun(call).generate()

    def batch(self, items: Any, model: str | None = None, **options: Any) -> BatchJob | RayBatchJob:
        """A batch job over ``items`` (prompts, message lists or dicts with ``custom_id``):
        ``async for result in job`` or ``await job.run()``; ``engine="ray"`` runs it on a
        Ray cluster. Options: README, "Batch jobs"; :class:`steer_llm_sdk.batch.BatchJob`."""
        from .batch.runner import make_job

        return make_job(self, items, model, **options)
