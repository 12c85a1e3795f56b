"""SteerLLMClient: the one place that wires catalog, codecs, transport and pipeline."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ClientClosedError, ConfigurationError, register_secret
from .models.streaming import StreamingOptions
from .providers import codec_class
from .results import StreamingResponse, StreamPart
from .streaming.handle import AsyncStream
from .transport.http import Transport

# The request layer, the catalog, the pipeline and the tool loop are imported when
# the first call is made, not by `import steer_llm_sdk` (README, "Performance").
if TYPE_CHECKING:
    from .catalog import ProviderSpec, Route
    from .routing import Cooldown, Router
    from .streaming.pipeline import Call

__all__ = ["SteerLLMClient"]

_DEFAULT_OPTIONS = StreamingOptions()


class SteerLLMClient:
    """One async client for every provider.

    Keys come from the arguments, else from the environment at call time
    (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``, ``XAI_API_KEY``, ``<PROVIDER>_API_KEY``).
    Base URLs likewise (``OPENAI_BASE_URL`` with ``/v1``, ``ANTHROPIC_BASE_URL``
    without it, ``<PROVIDER>_BASE_URL``). Use it as ``async with`` or call
    :meth:`aclose`; it keeps one HTTP connection pool per provider.

    ``telemetry=True`` (or a :class:`steer_llm_sdk.telemetry.TelemetryOptions`, or an
    observer object) emits an OpenTelemetry GenAI span and metrics per call; it needs
    the ``otel`` extra.
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
        telemetry: Any = None,
        routes: Mapping[str, Any] | None = None,
        cooldown: Cooldown | None = None,
        fallback_on: Any = None,
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
        self._observer: Any = None
        if telemetry is not None and telemetry is not False:
            # OpenTelemetry (the `otel` extra) is imported only here, only when asked for.
            from .telemetry import make_observer

            self._observer = make_observer(telemetry)
        self._router: Router | None = None  # routes= and model=[...] (README, "Routes")
        if routes or cooldown is not None or fallback_on is not None:
            self._router = _router(self, routes, cooldown, fallback_on)
        self._named: Mapping[str, Any] = self._router.named if self._router else {}

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
        ``api_key``, ``api_key_env``, ``protocol`` (a name in
        ``steer_llm_sdk.providers.PROTOCOLS``; OpenAI's Chat Completions when not
        given) and ``continues_prefix``. Then use ``"name/model"``.
        """
        from .catalog import provider_spec

        name = name.lower()
        self._providers[name] = provider_spec(name, spec)
        key = None if not isinstance(spec, Mapping) else spec.get("api_key")
        if key:
            self._keys[name] = key
            register_secret(key)

    def _api_key(self, spec: ProviderSpec) -> str | None:
        from .catalog import api_key

        return api_key(spec, self._keys)

    async def _base_url(self, route: Route) -> str:
        from .catalog import configured_base_url

        spec = route.provider
        codec = codec_class(spec.protocol)
        if spec.local:
            from .local import ensure_server

            return str(codec.local_base_url(await ensure_server(route.model)))
        return str(codec.normalize_base_url(configured_base_url(spec, self._base_urls)))

    # -- calls ---------------------------------------------------------------
    def _prepare(
        self,
        messages: Any,
        model: Any,
        params: dict[str, Any],
        *,
        stream: bool,
        method: str,
        record: bool = False,
    ) -> Call:
        """Wire one call: the request (built and checked by :mod:`.request`), its
        route, key, base URL and codec."""
        if self._transport.closed:
            raise ClientClosedError(
                f"{method}() on a closed SteerLLMClient (aclose() was called or its "
                "`async with` block ended): create a new client"
            )
        from .request import check_call, take_options

        name = check_call(method, model, params)
        options = take_options(params, self._default_options)
        if type(name) is not str or name in self._named:
            return self._routes().chain(
                name,
                lambda entry, p: _wire(self, messages, entry, p, options, stream, record),
                params,
                options,
                record,
            )
        if "fallback_on" in params:
            raise ConfigurationError("fallback_on= applies to routes: give model=[...]")
        return _wire(self, messages, name, params, options, stream, record)

    def _routes(self) -> Router:
        if self._router is None:
            from .routing import Router

            self._router = Router()
        return self._router

    def stream(self, messages: Any = None, model: Any = None, **params: Any) -> AsyncStream[str]:
        """Stream text chunks as they arrive: ``async for chunk in client.stream(...)``.

        ``messages`` is a prompt string or a list of message dicts; ``model`` names
        the model (``"gpt-4o-mini"``, ``"claude-3-haiku-20240307"``,
        ``"provider/model"``). Common parameters: temperature, max_tokens, top_p,
        stop, seed, response_format, streaming_options; anything else is sent to the
        provider as is.
        """
        call = self._prepare(messages, model, params, stream=True, method="stream")
        from .streaming.pipeline import StreamRun

        return AsyncStream(StreamRun(call).chunks())

    async def stream_with_usage(
        self, messages: Any = None, model: Any = None, **params: Any
    ) -> StreamingResponse:
        """Stream the answer and return it whole: text, usage, cost, JSON, timings."""
        call = self._prepare(messages, model, params, stream=True, method="stream_with_usage")
        from .streaming.pipeline import StreamRun

        run = StreamRun(call)
        generator = run.chunks()
        try:
            async for _ in generator:
                pass
        finally:
            await generator.aclose()
        return run.response()

    async def generate(
        self, messages: Any = None, model: Any = None, **params: Any
    ) -> StreamingResponse:
        """One request without streaming; the same response shape as stream_with_usage."""
        call = self._prepare(messages, model, params, stream=False, method="generate")
        from .streaming.pipeline import StreamRun

        return await StreamRun(call).generate()

    def batch(self, items: Any, model: Any = None, **options: Any) -> Any:
        """A batch job over ``items`` (prompts, message lists or dicts with ``custom_id``):
        ``async for result in job`` or ``await job.run()``; ``engine="ray"`` runs it on a
        Ray cluster. Options: README, "Batch jobs"; :class:`steer_llm_sdk.batch.BatchJob`."""
        from .batch import make_job

        return make_job(self, items, model, **options)

    # -- what batch jobs ask of a client (steer_llm_sdk.batch.attempt.BatchClient) --
    @property
    def default_options(self) -> StreamingOptions:
        """The options of a call without ``streaming_options=``."""
        return self._default_options

    def resolve(self, model: str) -> Route:
        """The provider (this client's own included) and provider-side name of ``model``
        (of a named route: its first entry's)."""
        from .catalog import resolve_model

        if model in self._named:
            model = self._routes().first_model(model)
        return resolve_model(model, self._providers)

    def cost_usd(self, route: Route, usage: Mapping[str, Any]) -> float | None:
        """The cost of ``usage`` on ``route`` with this client's ``prices=``; None when
        the price is not known."""
        from .pricing import compute_cost

        return compute_cost(route.provider.name, route.model, usage, self._prices)

    def worker_config(self) -> dict[str, Any]:
        """Keyword arguments that build an equivalent client in another process (a Ray
        worker): keys, base URLs, providers and prices. It holds the keys: never log it."""
        return {
            "api_keys": dict(self._keys),
            "base_urls": dict(self._base_urls),
            "providers": dict(self._providers),
            "prices": self._prices,
        }

    def stream_events(
        self, messages: Any = None, model: Any = None, **params: Any
    ) -> AsyncStream[StreamPart]:
        """Stream typed parts as they arrive: :class:`TextDelta`,
        :class:`ReasoningDelta`, :class:`ToolCallStart` / :class:`ToolCallDelta` /
        :class:`ToolCallEnd`, :class:`PartialOutput` (with ``output=``), and last a
        :class:`Finish` with the unified reason, usage and the whole response.
        Same parameters as :meth:`stream`, plus ``tools``, ``tool_choice``,
        ``parallel_tool_calls`` and ``output``."""
        call = self._prepare(
            messages, model, params, stream=True, method="stream_events", record=True
        )
        from .streaming.pipeline import StreamRun

        return AsyncStream(StreamRun(call).events())

    async def run_tools(
        self,
        messages: Any = None,
        model: Any = None,
        *,
        tools: Any,
        max_steps: int = 8,
        **params: Any,
    ) -> StreamingResponse:
        """Call the model, run the tools it asks for, send the results back, and
        repeat until it answers without a tool call (or ``max_steps`` model calls).

        Parallel calls run concurrently (sync functions in a thread). A tool that
        raises, or an unknown tool name, goes back to the model as an error result
        instead of ending the loop. Returns the last response with ``usage`` and
        ``cost_usd`` summed over every step and ``messages`` holding the whole
        conversation. Raises :class:`MaxStepsError` (carrying the conversation) when
        the model still calls tools after ``max_steps``.
        """
        from . import tool_loop

        return await tool_loop.run_tools(
            self.stream_events, messages, model, tools=tools, max_steps=max_steps, params=params
        )

    def stream_tools(
        self,
        messages: Any = None,
        model: Any = None,
        *,
        tools: Any,
        max_steps: int = 8,
        **params: Any,
    ) -> AsyncGenerator[StreamPart, None]:
        """:meth:`run_tools`, streamed: the parts of every step as they arrive, a
        :class:`ToolResult` for each tool that ran, and a :class:`Finish` per step
        (the last one's response carries the totals and the conversation)."""
        from . import tool_loop

        return tool_loop.stream_tools(
            self.stream_events, messages, model, tools=tools, max_steps=max_steps, params=params
        )


def _router(client: SteerLLMClient, routes: Any, cooldown: Any, fallback_on: Any) -> Router:
    """The client's routes (``routes=``, ``cooldown=``, ``fallback_on=``), every model
    name of them known."""
    from .catalog import resolve_model
    from .routing import Router

    router = Router(routes, cooldown, fallback_on)
    router.check(lambda name: resolve_model(name, client._providers))
    return router


def _wire(
    client: SteerLLMClient,
    messages: Any,
    name: str,
    params: dict[str, Any],
    options: StreamingOptions,
    stream: bool,
    record: bool,
) -> Call:
    """One model's call: the request (built and checked by :mod:`.request`), its
    route, key, base URL and codec."""
    from .catalog import resolve_model, select_api
    from .request import build_request
    from .streaming.pipeline import Call

    if options.on_interrupt != "resume" and not record:
        raise ConfigurationError(
            'on_interrupt="restart" works with stream_events() only (a Restart part tells '
            "you to clear what you showed); other methods cannot take back delivered text"
        )
    route = resolve_model(name, client._providers)
    api = params.pop("api", None)
    if api is not None:
        route = select_api(route, api)
    provider = route.provider
    codec = codec_class(provider.protocol)
    request, output = build_request(messages, params, route, codec, stream=stream)
    return Call(
        provider=provider,
        base_url="",  # resolved when the call starts (a local server may need starting)
        resolve_base_url=lambda: client._base_url(route),
        api_key=client._api_key(provider),
        model=route.model,
        request=request,
        options=options,
        codec_factory=codec.factory(provider, route.model),
        transport=client._transport,
        price_overrides=client._prices,
        context={"provider": provider.name, "model": route.model},
        can_resume=provider.continues_prefix and codec.can_continue(route.model),
        record=record,
        output=output,
        observer=client._observer,
    )
