"""SteerLLMClient: the one place that wires catalog, codecs, transport and pipeline."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from .catalog import ProviderSpec, Route, resolve_model
from .errors import (
    ClientClosedError,
    ConfigurationError,
    MaxStepsError,
    ToolArgumentsError,
    register_secret,
)
from .models.response import StreamingResponse
from .models.streaming import StreamingOptions
from .parts import Finish, StreamPart, ToolCall, ToolResult
from .providers import codec_class
from .providers.base import ChatRequest
from .streaming.handle import AsyncStream
from .streaming.pipeline import Call, StreamRun, add_usage
from .tools import Tool, normalize_tool_choice, normalize_tools, tool_result_message
from .transport.http import Transport

if TYPE_CHECKING:
    from .batch import BatchJob, RayBatchJob

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


def _check_serialisable(
    messages: list[dict[str, Any]], common: dict[str, Any], extra_body: dict[str, Any]
) -> None:
    """Everything sent must be JSON: name the argument that is not (instead of a raw
    TypeError from the JSON encoder when the request is sent)."""
    import orjson

    try:
        orjson.dumps([messages, common, extra_body])
        return
    except TypeError:
        pass
    for i, message in enumerate(messages):
        try:
            orjson.dumps(message)
        except TypeError as exc:
            raise ConfigurationError(
                f"messages[{i}] cannot be sent as JSON ({exc}): give strings, numbers, "
                "lists and dicts"
            ) from None
    for name, value in [*common.items(), *extra_body.items()]:
        try:
            orjson.dumps(value)
        except TypeError as exc:
            raise ConfigurationError(
                f"the parameter {name}={type(value).__name__}(...) cannot be sent as JSON "
                f"({exc}): give strings, numbers, lists and dicts"
            ) from None
    raise ConfigurationError("the request cannot be sent as JSON (a key is not a string?)")


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
        try:
            codec_class(protocol)
        except ConfigurationError as exc:
            raise ConfigurationError(f"provider {name!r}: {exc.message}") from None
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
            for env in (spec.key_env, *spec.alt_key_envs):
                key = os.environ.get(env) or None
                if key:
                    register_secret(key)
                    break
        if key is None and spec.key_required:
            raise ConfigurationError(
                f"no API key for {spec.name}: set the environment variable {spec.key_env} "
                f"or pass SteerLLMClient(api_keys={{'{spec.name}': ...}})"
            )
        return key

    async def _base_url(self, route: Route) -> str:
        spec = route.provider
        codec = codec_class(spec.protocol)
        if spec.local:
            from .local import ensure_server

            return str(codec.local_base_url(await ensure_server(route.model)))
        url = self._base_urls.get(spec.name) or os.environ.get(spec.base_url_env) or spec.base_url
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"the base URL for {spec.name} ({url!r}, from base_urls= or "
                f"{spec.base_url_env}) must start with http:// or https://"
            )
        return str(codec.normalize_base_url(url))

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
        if self._transport.closed:
            raise ClientClosedError(
                f"{method}() on a closed SteerLLMClient (aclose() was called or its "
                "`async with` block ended): create a new client"
            )
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
        api = params.pop("api", None)
        if api is not None:
            route = _select_api(route, api)
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
        tools = normalize_tools(params.pop("tools", None))
        tool_choice = normalize_tool_choice(params.pop("tool_choice", None), tools)
        parallel = params.pop("parallel_tool_calls", None)
        if parallel is not None and not isinstance(parallel, bool):
            raise ConfigurationError(f"parallel_tool_calls={parallel!r} must be True or False")
        output = params.pop("output", None)
        spec = None
        if output is not None:
            from .output import make_output_spec

            spec = make_output_spec(output)
            if "response_format" in common:
                raise ConfigurationError(
                    "give output= or response_format=, not both (output= sets the format)"
                )
        max_tokens = common.get("max_tokens")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise ConfigurationError(f"max_tokens={max_tokens!r} must be a whole number >= 1")
        stop = common.get("stop")
        if stop is not None and not (
            isinstance(stop, str)
            or (isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop))
        ):
            raise ConfigurationError(
                f"stop={stop!r} must be a string or a list of strings (not {type(stop).__name__})"
            )
        extra = params.pop("extra_body", None)
        if extra is not None and not isinstance(extra, Mapping):
            raise ConfigurationError(
                f"extra_body must be a dict of fields to add to the request body, "
                f"not {type(extra).__name__}"
            )
        extra_body = dict(extra or {})
        extra_body.update(params)  # anything else passes through to the provider's body
        if route.provider.local:
            from .local._json import _cap_strings, local_json_params

            msgs = local_json_params(common, extra_body, msgs)
            if spec is not None:  # a small model must not run away inside a string
                spec.schema = _cap_strings(spec.schema)
        _check_serialisable(msgs, common, extra_body)
        request = ChatRequest(
            model=route.model,
            messages=msgs,
            stream=stream,
            params=common,
            extra_body=extra_body,
            tools=[tool.to_dict() for tool in tools],
            tool_choice=tool_choice,
            parallel_tool_calls=parallel,
            output_schema=spec.schema if spec is not None else None,
            output_name=spec.name if spec is not None else "output",
        )
        provider = route.provider
        codec = codec_class(provider.protocol)
        codec_factory = codec.factory(provider, route.model)
        call = Call(
            provider=provider,
            base_url="",  # resolved when the call starts (a local server may need starting)
            resolve_base_url=lambda: self._base_url(route),
            api_key=self._api_key(provider),
            model=route.model,
            request=request,
            options=options,
            codec_factory=codec_factory,
            transport=self._transport,
            price_overrides=self._prices,
            context={"provider": provider.name, "model": route.model},
            can_resume=provider.continues_prefix and codec.can_continue(route.model),
            output=spec,
            tools=tools,
            observer=self._observer,
        )
        return call, route

    def stream(
        self, messages: Any = None, model: str | None = None, **params: Any
    ) -> AsyncStream[str]:
        """Stream text chunks as they arrive: ``async for chunk in client.stream(...)``.

        ``messages`` is a prompt string or a list of message dicts; ``model`` names
        the model (``"gpt-4o-mini"``, ``"claude-3-haiku-20240307"``,
        ``"provider/model"``). Common parameters: temperature, max_tokens, top_p,
        stop, seed, response_format, streaming_options; anything else is sent to the
        provider as is.
        """
        call, _ = self._prepare(messages, model, params, stream=True, method="stream")
        return AsyncStream(StreamRun(call).chunks())

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
        from .batch import make_job

        return make_job(self, items, model, **options)

    # -- what batch jobs ask of a client (steer_llm_sdk.batch.attempt.BatchClient) --
    @property
    def default_options(self) -> StreamingOptions:
        """The options of a call without ``streaming_options=``."""
        return self._default_options

    def resolve(self, model: str) -> Route:
        """The provider (this client's own included) and provider-side name of ``model``."""
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
        self, messages: Any = None, model: str | None = None, **params: Any
    ) -> AsyncStream[StreamPart]:
        """Stream typed parts as they arrive: :class:`TextDelta`,
        :class:`ReasoningDelta`, :class:`ToolCallStart` / :class:`ToolCallDelta` /
        :class:`ToolCallEnd`, :class:`PartialOutput` (with ``output=``), and last a
        :class:`Finish` with the unified reason, usage and the whole response.
        Same parameters as :meth:`stream`, plus ``tools``, ``tool_choice``,
        ``parallel_tool_calls`` and ``output``."""
        call, _ = self._prepare(messages, model, params, stream=True, method="stream_events")
        call.record = True
        return AsyncStream(StreamRun(call).events())

    async def run_tools(
        self,
        messages: Any = None,
        model: str | None = None,
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
        final: StreamingResponse | None = None
        generator = self.stream_tools(messages, model, tools=tools, max_steps=max_steps, **params)
        try:
            async for part in generator:
                if type(part) is Finish:
                    final = part.response
        finally:
            await generator.aclose()
        assert final is not None
        return final

    async def stream_tools(
        self,
        messages: Any = None,
        model: str | None = None,
        *,
        tools: Any,
        max_steps: int = 8,
        **params: Any,
    ) -> AsyncGenerator[StreamPart, None]:
        """:meth:`run_tools`, streamed: the parts of every step as they arrive, a
        :class:`ToolResult` for each tool that ran, and a :class:`Finish` per step
        (the last one's response carries the totals and the conversation)."""
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
            raise ConfigurationError(f"max_steps={max_steps!r} must be a whole number >= 1")
        tool_list = normalize_tools(tools)
        if not tool_list:
            raise ConfigurationError("run_tools() needs tools=[...] with at least one tool")
        by_name = {tool.name: tool for tool in tool_list}
        conversation = _normalize_messages(messages)
        usage: dict[str, Any] = {}
        cost: float | None = 0.0
        last: StreamingResponse | None = None
        for step in range(1, max_steps + 1):
            finish: Finish | None = None
            generator = self.stream_events(conversation, model, tools=tool_list, **dict(params))
            try:
                async for part in generator:
                    if type(part) is Finish:
                        finish = part
                    else:
                        yield part
            finally:
                await generator.aclose()
            assert finish is not None
            response = finish.response
            usage = add_usage(usage, response.usage) if response.usage else usage
            cost = None if cost is None or response.cost_usd is None else cost + response.cost_usd
            conversation.append(response.to_message())
            last = response
            calls = response.tool_calls
            runnable = calls and all(
                call.name not in by_name or by_name[call.name].function is not None
                for call in calls
            )
            if not runnable:
                # An answer (or calls of tools the caller runs: they are in the response).
                response.usage = usage
                response.cost_usd = cost
                response.messages = conversation
                response.steps = step
                yield finish
                return
            if response.finish_reason == "length":
                raise ToolArgumentsError(
                    f"max_tokens cut the answer inside a tool call "
                    f"({calls[-1].name!r}): raise max_tokens",
                    call=calls[-1],
                    provider=response.provider,
                    model=response.model,
                )
            yield finish
            if step == max_steps:
                break
            results = await _run_calls(calls, by_name)
            for call, (content, is_error) in zip(calls, results, strict=True):
                conversation.append(tool_result_message(call.id, content, is_error=is_error))
                yield ToolResult(call, content, is_error)
        assert last is not None
        last.usage = usage
        last.cost_usd = cost
        last.messages = conversation
        last.steps = max_steps
        raise MaxStepsError(
            f"the model still called tools after max_steps={max_steps} steps "
            f"({', '.join(c.name for c in last.tool_calls)}); the conversation so far is "
            "in .messages, the last answer in .response",
            messages=conversation,
            response=last,
            provider=last.provider,
            model=last.model,
        )


def _select_api(route: Route, api: Any) -> Route:
    """``api="responses"`` / ``api="chat"`` for OpenAI models."""
    from .catalog import PROVIDERS

    if api not in ("chat", "responses"):
        raise ConfigurationError(f"api={api!r} is not known: use 'chat' or 'responses'")
    spec = route.provider
    if spec is PROVIDERS["openai"] or spec is PROVIDERS["openai-responses"]:
        return Route(PROVIDERS["openai-responses" if api == "responses" else "openai"], route.model)
    wanted = "openai-responses" if api == "responses" else "openai-chat"
    if spec.protocol == wanted:
        return route
    raise ConfigurationError(
        f"api={api!r} applies to OpenAI models; {spec.name!r} speaks {spec.protocol}: "
        f"register it with protocol={wanted!r} instead"
    )


async def _run_calls(calls: list[ToolCall], by_name: dict[str, Tool]) -> list[tuple[str, bool]]:
    """Run a step's calls concurrently; every failure becomes an error result."""
    import asyncio

    async def run(call: ToolCall) -> tuple[str, bool]:
        tool = by_name.get(call.name)
        if tool is None:
            known = ", ".join(by_name)
            return f"Error: there is no tool named {call.name!r} (tools: {known})", True
        try:
            arguments = call.args
            result = await tool.call(arguments)
        except Exception as exc:  # the model gets the error and may try again
            return f"Error: {type(exc).__name__}: {exc}", True
        content = tool_result_message(call.id, result)["content"]
        return content, False

    return list(await asyncio.gather(*(run(call) for call in calls)))
