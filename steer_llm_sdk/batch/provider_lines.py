"""Provider batch lines, built and read back the way online calls are.

:class:`Lines` builds an item's request with the request layer
(:func:`steer_llm_sdk.request.build_request`, ``stream=False``) and its protocol's
codec (``encode``), so ``output=``, tools, files and every parameter mean what they
mean online; the line holds the body only (the key goes on the batch API's own
requests). What ``encode`` left in the codec for reading the answer (a JSON prefill,
structured output through a forced tool, logprobs asked for) is kept as the line's
*context*; an answer is read by a fresh codec given that context, with the same
``decode_response`` as a non-streamed call, and becomes the same
:class:`~steer_llm_sdk.batch.items.BatchResult` as online, priced at the batch rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import SteerError
from ..pricing import compute_batch_cost
from ..providers import codec_class
from ..providers.base import unify_finish
from .items import BatchResult, Item, error_result

if TYPE_CHECKING:
    from ..catalog import Target
    from ..wiring import Wiring

__all__ = ["Encoded", "Lines"]

_MISSING: Any = object()
_TIER_FREE = 100_000  # prompt tokens under which no model's price changes tier
_SIMPLE = (str, int, float, bool, type(None))
_JOB_ONLY = ("streaming_options", "cache")  # call options with no meaning in a line


class Encoded:
    """One item's line: its provider, endpoint path, body and read-back context."""

    __slots__ = ("body", "context", "path", "provider")

    def __init__(self, provider: str, path: str, body: dict[str, Any], context: str) -> None:
        self.provider = provider
        self.path = path
        self.body = body
        self.context = context  # JSON text: what decoding needs of the encode


class Lines:
    """A job's line builder and reader (per-model facts cached)."""

    def __init__(self, wiring: Wiring, params: Mapping[str, Any]) -> None:
        self.wiring = wiring
        self.params = params  # the job's parameters (an item's own win)
        self._routes: dict[tuple[str, Any], Target] = {}
        self._fresh: dict[str, dict[str, Any]] = {}  # provider/model -> a fresh codec's vars
        self._job_spec: Any = _MISSING
        self._rates: dict[str, Any] = {}  # provider/model -> batch USD per token, by kind

    def route(self, model: str, api: Any = None) -> Target:
        key = (model, api)
        route = self._routes.get(key)
        if route is None:
            route = self.wiring.resolve(model)
            if api is not None:
                from ..catalog import select_api

                route = select_api(route, api)
            self._routes[key] = route
        return route

    def encode(self, item: Item) -> Encoded:
        """The item's request as a batch line body (a SteerError when it cannot be
        built: the same error an online call would raise before sending)."""
        from ..request import build_request

        params = {**self.params, **item.params}
        if self.wiring.cache_prompt is not None:  # the client's default, as online
            params.setdefault("cache_prompt", self.wiring.cache_prompt)
        for name in _JOB_ONLY:
            params.pop(name, None)
        api = params.pop("api", None)
        route = self.route(item.model, api)
        cls = codec_class(route.provider.protocol)
        request, _ = build_request(item.messages, params, route, cls, stream=False)
        codec: Any = cls.factory(route.provider, route.model)()
        http = codec.encode(request, None)
        context = self._context(route, codec)
        output = item.params.get("output")
        if output is not None:
            try:
                orjson.dumps(output)
                context["__output__"] = output
            except TypeError:
                pass  # a class: known in this run only (the job keeps the item's spec)
        return Encoded(route.provider.name, http.path, http.json, _dumps(context))

    def _context(self, route: Target, codec: Any) -> dict[str, Any]:
        """The codec's simple attributes that encode set (differ from a fresh one's)."""
        key = f"{route.provider.name}/{route.model}"
        fresh = self._fresh.get(key)
        if fresh is None:
            cls = codec_class(route.provider.protocol)
            fresh = self._fresh[key] = dict(vars(cls.factory(route.provider, route.model)()))
        return {
            name: value
            for name, value in vars(codec).items()
            if isinstance(value, _SIMPLE) and fresh.get(name, _MISSING) != value
        }

    def _cost(self, route: Target, usage: dict[str, Any]) -> float | None:
        """The batch price of ``usage``: per-token rates worked out once per model
        (genai-prices takes ~1 ms a call), the full calculation past the prompt size
        where a model's price may change tier."""
        provider, model, prices = route.provider.name, route.model, self.wiring.prices
        prompt = int(usage.get("prompt_tokens") or 0)
        if prompt >= _TIER_FREE:
            return compute_batch_cost(provider, model, usage, prices)
        key = f"{provider}/{model}"
        rates = self._rates.get(key, _MISSING)
        if rates is _MISSING:
            probes: list[dict[str, Any]] = [
                {"prompt_tokens": 1000},
                {"prompt_tokens": 1000, "cache_info": {"cached_tokens": 1000}},
                {"prompt_tokens": 1000, "cache_info": {"cache_creation_tokens": 1000}},
                {"completion_tokens": 1000},
            ]
            costs = [compute_batch_cost(provider, model, u, prices) for u in probes]
            rates = None if None in costs else [float(c or 0) / 1000 for c in costs]
            self._rates[key] = rates
        if rates is None:
            return None
        cache = usage.get("cache_info") or {}
        read = int(cache.get("cached_tokens") or 0)
        write = int(cache.get("cache_creation_tokens") or 0)
        completion = int(usage.get("completion_tokens") or 0)
        return float(
            max(0, prompt - read - write) * rates[0]
            + read * rates[1]
            + write * rates[2]
            + completion * rates[3]
        )

    def _spec(self, source: Any) -> Any:
        """The output spec of an item's own ``output=``, else the job's (made once)."""
        from ..output import make_output_spec

        if source is not None:
            return make_output_spec(source)
        if self._job_spec is _MISSING:
            job = self.params.get("output")
            self._job_spec = None if job is None else make_output_spec(job)
        return self._job_spec

    def decode(
        self,
        item_id: str,
        model: str,
        body: bytes,
        context: str,
        output: Any = None,
    ) -> tuple[BatchResult, float]:
        """An answer's result and its cost at the batch price (a failed result when
        the answer cannot be read or does not fit ``output=``)."""
        item = Item(item_id, None, model, {})
        try:
            route = self.route(model, self.params.get("api"))
            cls = codec_class(route.provider.protocol)
            codec: Any = cls.factory(route.provider, route.model)()
            ctx = orjson.loads(context) if context else {}
            spec_source = ctx.pop("__output__", None) or output
            for name, value in ctx.items():
                setattr(codec, name, value)
            text = codec.lead_text + codec.decode_response(body)
            state = codec.state
            usage = dict(state.usage or {})
            out = None
            spec = self._spec(spec_source)
            if spec is not None:
                out = _validate(spec, text, state, route)
        except SteerError as exc:
            return error_result(item, exc), 0.0
        except Exception as exc:  # a malformed answer fails the item, never the job
            return error_result(item, exc), 0.0
        reason = state.reason
        if reason is None and state.finish_reason is not None:
            reason = unify_finish(state.finish_reason)
        cost = self._cost(route, usage) if usage else None
        result = BatchResult(
            custom_id=item_id,
            text=text,
            output=out,
            usage=usage,
            cost_usd=cost,
            finish_reason=reason,
            attempts=1,
            model=model,
        )
        return result, cost or 0.0


def _dumps(value: dict[str, Any]) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() if value else ""


def _validate(spec: Any, text: str, state: Any, route: Target) -> Any:
    """``output=`` validated as online (none for a tool call without text, or a refusal)."""
    if state.tool_calls and not text.strip():
        return None
    if state.reason == "refusal":
        return None
    return spec.validate(text, provider=route.provider.name, model=route.model)
