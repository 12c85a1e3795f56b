"""SteerLLMClient: the one place that wires catalog, codecs, transport and pipeline."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import ClientClosedError, ConfigurationError
from .files import File
from .models.streaming import StreamingOptions
from .results import StreamingResponse, StreamPart
from .streaming.handle import AsyncStream
from .transport.http import Transport

# The request layer, the catalog, the pipeline and the tool loop are imported when
# the first call is made, not by `import steer_llm_sdk` (README, "Performance").
if TYPE_CHECKING:
    from .catalog import ProviderSpec, Target
    from .routing import Cooldown
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
    the ``otel`` extra. ``response_cache=ResponseCache("cache.db")`` answers a request
    asked before from the cache (``cache=False`` on a call bypasses it).
    ``cache_prompt="auto"`` places each provider's prompt-cache markers on every call.
    the ``otel`` extra. ``allow_private_urls=True`` lets the SDK download files from
    loopback, private and link-local addresses (refused by default).
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
        response_cache: Any = None,
        cache_prompt: Any = None,
        allow_private_urls: bool = False,
        routes: Mapping[str, Any] | None = None,
        cooldown: Cooldown | None = None,
        fallback_on: Any = None,
        vertex_project: str | None = None,
        vertex_location: str | None = None,
        vertex_credentials: Any = None,
        azure_ad_token_provider: Any = None,
        api_version: str | None = None,
        pricing_models: Mapping[str, str] | None = None,
    ) -> None:
        from .wiring import Wiring

        self._wiring = Wiring(
            keys={"openai": openai_api_key, "anthropic": anthropic_api_key, "xai": xai_api_key},
            base_urls={"openai": openai_base_url, "anthropic": anthropic_base_url},
            api_keys=api_keys,
            more_base_urls=base_urls,
            providers=providers,
            response_cache=response_cache,
            cache_prompt=cache_prompt,
        )
        if default_options is not None and not isinstance(default_options, StreamingOptions):
            raise ConfigurationError("default_options must be a StreamingOptions")
        self._default_options = default_options or _DEFAULT_OPTIONS
        self._wiring.prices = dict(prices) if prices else None
        self._wiring.allow_private_urls = bool(allow_private_urls)  # file URLs (downloads.py)
        self._wiring.set_clouds(  # README, "Google Vertex AI" and "Azure OpenAI"
            pricing_models,
            vertex_project=vertex_project,
            vertex_location=vertex_location,
            vertex_credentials=vertex_credentials,
            azure_ad_token_provider=azure_ad_token_provider,
            api_version=api_version,
        )
        self._transport = Transport(max_connections=max_connections)
        self._observer: Any = None
        if telemetry is not None and telemetry is not False:
            # OpenTelemetry (the `otel` extra) is imported only here, only when asked for.
            from .telemetry import make_observer

            self._observer = make_observer(telemetry)
        if routes or cooldown is not None or fallback_on is not None:
            self._wiring.set_routes(routes, cooldown, fallback_on)  # README, "Routes"

    def __repr__(self) -> str:  # never shows a key
        return f"SteerLLMClient(configured={self._wiring.configured()})"

    # -- lifecycle -------------------------------------------------------------
    async def __aenter__(self) -> SteerLLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Delete the prompt caches it made (Gemini's), close every connection pool."""
        await self._wiring.provider_caches.aclose(self._transport)
        await self._transport.aclose()

    # -- providers -----------------------------------------------------------
    def register_provider(self, name: str, spec: Mapping[str, Any] | ProviderSpec) -> None:
        """Add an OpenAI-compatible (or Anthropic-protocol) server under ``name``.

        ``spec`` is a ProviderSpec or a dict with ``base_url`` and optionally
        ``api_key``, ``api_key_env``, ``protocol`` (a name in
        ``steer_llm_sdk.providers.PROTOCOLS``; OpenAI's Chat Completions when not
        given) and ``continues_prefix``. Then use ``"name/model"``.
        """
        self._wiring.register_provider(name, spec)

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
        """Wire one call (wiring.Wiring.prepare), on an open client."""
        if self._transport.closed:
            raise ClientClosedError(
                f"{method}() on a closed SteerLLMClient (aclose() was called or its "
                "`async with` block ended): create a new client"
            )
        return self._wiring.prepare(
            messages,
            model,
            params,
            stream=stream,
            method=method,
            record=record,
            transport=self._transport,
            default_options=self._default_options,
            observer=self._observer,
        )

    def stream(self, messages: Any = None, model: Any = None, **params: Any) -> AsyncStream[str]:
        """Stream text chunks as they arrive: ``async for chunk in client.stream(...)``.

        ``messages`` is a prompt string or a list of message dicts; ``model`` names
        the model (``"gpt-4o-mini"``, ``"claude-3-haiku-20240307"``,
        ``"provider/model"``). Common parameters: temperature, max_tokens, top_p,
        stop, seed, response_format, streaming_options; anything else is sent to the
        provider as is.
        """
        call = self._prepare(messages, model, params, stream=True, method="stream")
        from .streaming.replay import start_run

        return AsyncStream(start_run(call).chunks())

    async def stream_with_usage(
        self, messages: Any = None, model: Any = None, **params: Any
    ) -> StreamingResponse:
        """Stream the answer and return it whole: text, usage, cost, JSON, timings."""
        call = self._prepare(messages, model, params, stream=True, method="stream_with_usage")
        from .streaming.replay import start_run

        run = start_run(call)
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
        from .streaming.replay import start_run

        return await start_run(call).generate()

    async def upload_file(
        self,
        file: File,
        *,
        provider: str,
        timeout: float = 600.0,  # noqa: ASYNC109
    ) -> File:
        """Upload ``file`` to ``provider``'s Files API (OpenAI, Anthropic, Gemini); the
        File returned names it there (a file id; Gemini: the file's uri as its url)."""
        from .uploads import upload_file

        return await upload_file(self._wiring, self._transport, file, provider, timeout=timeout)

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

    def resolve(self, model: str) -> Target:
        """The provider (this client's own included) and provider-side name of ``model``
        (of a named route: its first entry's)."""
        return self._wiring.resolve(model)

    def cost_usd(self, route: Target, usage: Mapping[str, Any]) -> float | None:
        """The cost of ``usage`` on ``route`` with this client's ``prices=``; None when
        the price is not known."""
        return self._wiring.cost_usd(route, usage)

    def worker_config(self) -> dict[str, Any]:
        """Keyword arguments that build an equivalent client in another process (a Ray
        worker): keys, base URLs, providers and prices. It holds the keys: never log it."""
        return self._wiring.worker_config()

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
        from .streaming.replay import start_run

        return AsyncStream(start_run(call).events())

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
