"""What a client knows of its providers, and the wiring of one call.

:class:`Wiring` holds the client's keys, base URLs, own providers, prices and the
per-provider signers (``auth/``), and turns a call's arguments into a
:class:`~steer_llm_sdk.streaming.call.Call`: the request built and checked by
:mod:`.request`, the route from :mod:`.catalog`, key, base URL, codec and signer. It
names no protocol. The catalog, the request layer and the pipeline are imported
with the first call, not when a client is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, register_secret
from .providers import codec_class

if TYPE_CHECKING:
    from .catalog import ProviderSpec, Route
    from .models.streaming import StreamingOptions
    from .streaming.call import Call
    from .transport.http import Transport

__all__ = ["Wiring"]


class Wiring:
    """A client's providers: keys, base URLs, its own providers, prices, signers."""

    def __init__(
        self,
        *,
        keys: Mapping[str, str | None],
        base_urls: Mapping[str, str | None],
        api_keys: Mapping[str, str] | None = None,
        more_base_urls: Mapping[str, str] | None = None,
        providers: Mapping[str, Mapping[str, Any] | ProviderSpec] | None = None,
        response_cache: Any = None,
        cache_prompt: Any = None,
    ) -> None:
        self.keys: dict[str, str] = {}
        for name, key in (*keys.items(), *((api_keys or {}).items())):
            if key:
                self.keys[name] = key
                register_secret(key)
        self.base_urls: dict[str, str] = {}
        for name, url in (*base_urls.items(), *((more_base_urls or {}).items())):
            if url:
                self.base_urls[name] = url
        self.providers: dict[str, ProviderSpec] = {}
        for name, spec in (providers or {}).items():
            self.register_provider(name, spec)
        self.prices: dict[str, Any] | None = None
        if response_cache is not None and not (
            callable(getattr(response_cache, "get", None))
            and callable(getattr(response_cache, "put", None))
        ):
            raise ConfigurationError(
                "response_cache must be a ResponseCache (from steer_llm_sdk import "
                f"ResponseCache) or a store with async get/put, not {type(response_cache).__name__}"
            )
        self.response_cache = response_cache
        from .providers.caching import CacheWatch, check_mode

        self.cache_prompt = check_mode(cache_prompt)  # the calls' default cache_prompt=
        self.cache_watch = CacheWatch()
        self.signer_settings: dict[str, Any] = {}  # what auth/ signers read (cloud options)
        self.signers: dict[str, Any] = {}  # provider name → its Signer (auth/), made once

    def configured(self) -> list[str]:
        """The names of the providers given a key or a base URL (for a repr)."""
        return sorted({*self.keys, *self.base_urls})

    def register_provider(self, name: str, spec: Mapping[str, Any] | ProviderSpec) -> None:
        from .catalog import provider_spec

        name = name.lower()
        self.providers[name] = provider_spec(name, spec)
        key = None if not isinstance(spec, Mapping) else spec.get("api_key")
        if key:
            self.keys[name] = key
            register_secret(key)

    def api_key(self, spec: ProviderSpec) -> str | None:
        from .catalog import api_key

        return api_key(spec, self.keys)

    def signer(self, spec: ProviderSpec) -> Any:
        """The provider's per-request credentials (auth/), made on first use; None for
        a provider whose key header is all it needs."""
        if spec.auth is None:
            return None
        signer = self.signers.get(spec.name)
        if signer is None:
            from . import auth

            signer = self.signers[spec.name] = auth.make_signer(
                spec.auth, spec.name, self.signer_settings
            )
        return signer

    async def base_url(self, route: Route) -> str:
        from .catalog import configured_base_url

        spec = route.provider
        codec = codec_class(spec.protocol)
        if spec.local:
            from .local import ensure_server

            return str(codec.local_base_url(await ensure_server(route.model)))
        return str(codec.normalize_base_url(configured_base_url(spec, self.base_urls)))

    def resolve(self, model: str) -> Route:
        from .catalog import resolve_model

        return resolve_model(model, self.providers)

    def cost_usd(self, route: Route, usage: Mapping[str, Any]) -> float | None:
        from .pricing import compute_cost

        return compute_cost(route.provider.name, route.model, usage, self.prices)

    def worker_config(self) -> dict[str, Any]:
        return {
            "api_keys": dict(self.keys),
            "base_urls": dict(self.base_urls),
            "providers": dict(self.providers),
            "prices": self.prices,
            "cache_prompt": self.cache_prompt,
        }

    def prepare(
        self,
        messages: Any,
        model: str | None,
        params: dict[str, Any],
        *,
        stream: bool,
        method: str,
        record: bool,
        transport: Transport,
        default_options: StreamingOptions,
        observer: Any,
    ) -> Call:
        """Wire one call: the request (built and checked by :mod:`.request`), its
        route, key, base URL, codec and signer."""
        from .catalog import resolve_model, select_api
        from .request import build_request, check_call, take_options
        from .streaming.call import Call

        name = check_call(method, model, params)
        options = take_options(params, default_options)
        use_cache = params.pop("cache", True)
        if self.cache_prompt is not None:
            params.setdefault("cache_prompt", self.cache_prompt)
        if not isinstance(use_cache, bool):
            raise ConfigurationError(f"cache= takes True or False, not {use_cache!r}")
        route = resolve_model(name, self.providers)
        api = params.pop("api", None)
        if api is not None:
            route = select_api(route, api)
        provider = route.provider
        codec = codec_class(provider.protocol)
        request, output = build_request(messages, params, route, codec, stream=stream)
        return Call(
            provider=provider,
            base_url="",  # resolved when the call starts (a local server may need starting)
            resolve_base_url=lambda: self.base_url(route),
            api_key=self.api_key(provider),
            model=route.model,
            request=request,
            options=options,
            codec_factory=codec.factory(provider, route.model),
            transport=transport,
            price_overrides=self.prices,
            context={"provider": provider.name, "model": route.model},
            can_resume=provider.continues_prefix and codec.can_continue(route.model),
            record=record,
            output=output,
            observer=observer,
            signer=self.signer(provider),
            cache=self.response_cache if use_cache else None,
            cache_watch=self.cache_watch,
        )
