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
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, register_secret
from .providers import codec_class

if TYPE_CHECKING:
    from .catalog import ProviderSpec, Target
    from .models.streaming import StreamingOptions
    from .routing import Router
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
        from .provider_caches import ProviderCaches

        self.provider_caches = ProviderCaches()  # Gemini's cachedContents it made
        self.signer_settings: dict[str, Any] = {}  # what auth/ signers read (cloud options)
        self.signers: dict[str, Any] = {}  # provider name → its Signer (auth/), made once
        self.allow_private_urls = False  # downloads from private addresses (downloads.py)
        self.router: Router | None = None  # routes= and model=[...] (routing.py)
        self.named: Mapping[str, Any] = {}  # the named routes
        self.pricing_models: dict[str, str] = {}  # "azure/deployment" → the model priced

    def set_clouds(self, pricing_models: Mapping[str, str] | None, **settings: Any) -> None:
        """The clouds' client options (``clouds.py``, ``auth/``): Vertex project and
        location, Azure's api_version and token provider; who prices a deployment."""
        self.signer_settings.update({k: v for k, v in settings.items() if v is not None})
        self.pricing_models.update(pricing_models or {})

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

            settings = {**self.signer_settings, "api_keys": self.keys}
            signer = self.signers[spec.name] = auth.make_signer(spec.auth, spec.name, settings)
        return signer

    async def base_url(self, route: Target) -> str:
        from .catalog import configured_base_url

        spec = route.provider
        codec = codec_class(spec.protocol)
        if spec.local:
            from .local import ensure_server

            return str(codec.local_base_url(await ensure_server(route.model)))
        if spec.variant is not None:
            from .clouds import base_url

            return await base_url(spec, self.base_urls, self.signer_settings, self.signer(spec))
        return str(codec.normalize_base_url(configured_base_url(spec, self.base_urls)))

    def resolve(self, model: str) -> Target:
        from .catalog import resolve_model

        if model in self.named:  # a named route: its first entry's
            model = self.routes().first_model(model)
        return resolve_model(model, self.providers)

    # -- routes (routing.py; README, "Routes") ----------------------------------------
    def set_routes(self, routes: Any, cooldown: Any, fallback_on: Any) -> None:
        """The client's ``routes=``, ``cooldown=``, ``fallback_on=``, every model name of
        them known."""
        from .catalog import resolve_model
        from .routing import Router

        router = Router(routes, cooldown, fallback_on)
        router.check(lambda name: resolve_model(name, self.providers))
        self.router = router
        self.named = router.named

    def routes(self) -> Router:
        if self.router is None:
            from .routing import Router

            self.router = Router()
        return self.router

    def cost_usd(self, route: Target, usage: Mapping[str, Any]) -> float | None:
        from .pricing import compute_cost

        name = route.provider.name
        priced = self.pricing_models.get(f"{name}/{route.model}")
        return compute_cost(name, route.model, usage, self.prices, priced)

    def worker_config(self) -> dict[str, Any]:
        return {
            "api_keys": dict(self.keys),
            "base_urls": dict(self.base_urls),
            "providers": dict(self.providers),
            "prices": self.prices,
            # the clouds' options (a Ray worker's client; credentials found there by ADC
            # or the environment, or the token provider when it pickles)
            **{k: v for k, v in self.signer_settings.items() if k != "api_keys"},
            **({"pricing_models": dict(self.pricing_models)} if self.pricing_models else {}),
            "cache_prompt": self.cache_prompt,
        }

    def prepare(
        self,
        messages: Any,
        model: Any,
        params: dict[str, Any],
        *,
        stream: bool,
        method: str,
        record: bool,
        transport: Transport,
        default_options: StreamingOptions,
        observer: Any,
    ) -> Call:
        """Wire one call: of one model, or the first of a route's (``model=[...]`` or a
        named route) with the route's :class:`~steer_llm_sdk.routing.Chain`."""
        from .request import check_call, take_options

        name = check_call(method, model, params)
        options = take_options(params, default_options)

        def wire(entry: str, entry_params: dict[str, Any]) -> Call:
            return self.wire(
                messages, entry, entry_params, options, stream, record, transport, observer
            )

        if type(name) is not str or name in self.named:
            return self.routes().chain(name, wire, params, options, record)
        if "fallback_on" in params:
            raise ConfigurationError("fallback_on= applies to routes: give model=[...]")
        return wire(name, params)

    def wire(
        self,
        messages: Any,
        name: str,
        params: dict[str, Any],
        options: StreamingOptions,
        stream: bool,
        record: bool,
        transport: Transport,
        observer: Any,
    ) -> Call:
        """One model's call: the request (built and checked by :mod:`.request`), its
        route, key, base URL, codec, signer, caches and before-send steps."""
        from .catalog import resolve_model, select_api
        from .request import build_request
        from .streaming.call import Call

        if options.on_interrupt != "resume" and not record:
            raise ConfigurationError(
                'on_interrupt="restart" works with stream_events() only (a Restart part '
                "tells you to clear what you showed); other methods cannot take back "
                "delivered text"
            )
        use_cache = params.pop("cache", True)
        if not isinstance(use_cache, bool):
            raise ConfigurationError(f"cache= takes True or False, not {use_cache!r}")
        if self.cache_prompt is not None:
            params.setdefault("cache_prompt", self.cache_prompt)
        route = resolve_model(name, self.providers)
        api = params.pop("api", None)
        if api is not None:
            route = select_api(route, api)
        provider = route.provider
        codec = codec_class(provider.protocol)
        variant: dict[str, Any] = {}
        if provider.variant is not None:  # a cloud's paths (clouds.py)
            from .clouds import codec_options

            variant = codec_options(
                provider, route.model, self.base_urls, self.signer_settings, params
            )
        pricing_model = params.pop("pricing_model", None) or self.pricing_models.get(
            f"{provider.name}/{route.model}"
        )
        if pricing_model is not None and not isinstance(pricing_model, str):
            raise ConfigurationError(f"pricing_model must be a model name, not {pricing_model!r}")
        request, output = build_request(messages, params, route, codec, stream=stream)
        hooks: tuple[Any, ...] = ()
        if request.unresolved:  # URLs to download before sending (downloads.py)
            from .downloads import resolve_files

            hooks = (resolve_files,)
            if options.allow_private_urls is None and self.allow_private_urls:
                options = replace(options, allow_private_urls=True)
        if request.cache_prompt is not None:  # a provider-side cache made first
            cache_hook = self.provider_caches.hook(codec, request)
            if cache_hook is not None:
                hooks = (*hooks, cache_hook)
        return Call(
            provider=provider,
            base_url="",  # resolved when the call starts (a local server may need starting)
            resolve_base_url=lambda: self.base_url(route),
            api_key=self.api_key(provider),
            model=route.model,
            request=request,
            options=options,
            codec_factory=codec.factory(provider, route.model, **variant),
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
            before_send=hooks,
            pricing_model=pricing_model,
        )
