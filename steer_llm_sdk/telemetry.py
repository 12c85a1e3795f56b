"""OpenTelemetry spans and metrics for each call, after the GenAI semantic conventions.

    pip install 'steer-llm-sdk[otel]'
    client = SteerLLMClient(telemetry=True)           # global tracer/meter providers
    client = SteerLLMClient(telemetry=TelemetryOptions(capture_content=True))

One CLIENT span ``chat {model}`` per call, started when the call starts and ended
when the stream ends, fails, or is abandoned by the caller; and the metrics
``gen_ai.client.token.usage``, ``gen_ai.client.operation.duration`` and
``gen_ai.client.operation.time_to_first_chunk``. The span is touched twice per call
(start and end), never per chunk, and is never made the current context across
the stream's yields.

This module imports nothing of OpenTelemetry until an :class:`OTelObserver` is made,
and the client imports this module only when ``telemetry`` is set.

An observer is any object with ``start(call)`` returning ``None`` or an object with
``end(record, error)`` (``steer_llm_sdk.streaming.observe``): ``call`` is a frozen
:class:`CallStart`, ``record`` a frozen :class:`CallRecord` computed once by the
pipeline; ``error`` is ``None`` on success, the exception on failure, and
``GeneratorExit``/``CancelledError`` when the caller abandoned the call.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from .streaming.observe import CallObserver, CallRecord, CallStart, Observation

__all__ = ["CallObserver", "OTelObserver", "Observation", "TelemetryOptions", "make_observer"]

logger = logging.getLogger("steer_llm_sdk")

CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

# gen_ai.provider.name: the conventions' well-known values where they differ from ours.
_PROVIDER_NAMES = {
    "xai": "x_ai",
    "mistral": "mistral_ai",
    "bedrock": "aws.bedrock",
    "vertex": "gcp.vertex_ai",
    "azure": "azure.ai.openai",
}
# The conventions' advisory bucket boundaries.
_TOKEN_BUCKETS = [4.0**i for i in range(14)]  # 1, 4, 16, ... 67,108,864
_SECOND_BUCKETS = [0.01 * 2**i for i in range(14)]  # 0.01, 0.02, ... 81.92
_REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("seed", "gen_ai.request.seed"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
)


@dataclass(frozen=True, slots=True)
class TelemetryOptions:
    """How :class:`OTelObserver` reports.

    ``capture_content``: put the messages and the answer on the span
    (``gen_ai.input.messages``, ``gen_ai.output.messages``,
    ``gen_ai.system_instructions``); ``None`` follows the environment variable
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (off unless ``true``).
    ``tracer_provider`` / ``meter_provider``: default to the global ones.
    """

    capture_content: bool | None = None
    tracer_provider: Any = None
    meter_provider: Any = None


def make_observer(telemetry: Any) -> CallObserver | None:
    """``SteerLLMClient(telemetry=...)`` → an observer (or None)."""
    if telemetry is None or telemetry is False:
        return None
    if telemetry is True:
        return OTelObserver(TelemetryOptions())
    if isinstance(telemetry, TelemetryOptions):
        return OTelObserver(telemetry)
    if callable(getattr(telemetry, "start", None)):
        observer: CallObserver = telemetry
        return observer
    from .errors import ConfigurationError

    raise ConfigurationError(
        "telemetry must be True, a TelemetryOptions, or an observer with a start(run) "
        f"method, not {type(telemetry).__name__}"
    )


class OTelObserver:
    """Spans and metrics after the OpenTelemetry GenAI semantic conventions."""

    def __init__(self, options: TelemetryOptions | None = None) -> None:
        options = options or TelemetryOptions()
        try:
            from opentelemetry import metrics, trace
        except ImportError:
            from .errors import ConfigurationError

            raise ConfigurationError(
                "telemetry needs OpenTelemetry: pip install 'steer-llm-sdk[otel]'"
            ) from None
        from ._version import __version__

        capture = options.capture_content
        if capture is None:
            capture = os.environ.get(CAPTURE_ENV, "").strip().lower() == "true"
        self.capture_content = capture
        self._trace = trace
        self._tracer = trace.get_tracer(
            "steer_llm_sdk", __version__, tracer_provider=options.tracer_provider
        )
        meter = metrics.get_meter(
            "steer_llm_sdk", __version__, meter_provider=options.meter_provider
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_SECOND_BUCKETS,
        )
        self._ttfc = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk in a streaming operation",
            explicit_bucket_boundaries_advisory=_SECOND_BUCKETS,
        )

    def start(self, call: CallStart) -> _Span:
        request = call.request
        provider = _PROVIDER_NAMES.get(call.provider, call.provider)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": call.model,
            "gen_ai.request.stream": request.stream,
        }
        params = request.params
        extra = request.extra_body
        for key, name in _REQUEST_PARAMS:
            value = params.get(key, extra.get(key))
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[name] = value
        stop = params.get("stop")
        if isinstance(stop, str):
            attributes["gen_ai.request.stop_sequences"] = [stop]
        elif isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop):
            attributes["gen_ai.request.stop_sequences"] = list(stop)
        n = extra.get("n")
        if isinstance(n, int) and not isinstance(n, bool) and n != 1:
            attributes["gen_ai.request.choice.count"] = n
        response_format = params.get("response_format")
        if response_format is not None:
            kind = response_format.get("type")
            attributes["gen_ai.output.type"] = "json" if kind != "text" else "text"
        if self.capture_content:
            system, messages = _input_messages(request.messages)
            attributes["gen_ai.input.messages"] = _json(messages)
            if system:
                attributes["gen_ai.system_instructions"] = _json(system)
        span = self._tracer.start_span(
            f"chat {call.model}",
            kind=self._trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        metric_attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": call.model,
        }
        return _Span(self, span, metric_attributes)


def _route_events(span: Any, record: CallRecord) -> None:
    for tried in record.route_attempts:
        event: dict[str, Any] = {
            "steer.route": tried.route,
            "gen_ai.provider.name": tried.provider,
            "gen_ai.request.model": tried.model,
            "steer.route.latency": tried.latency,
        }
        if tried.error is not None:
            event["error.type"] = type(tried.error).__name__
        span.add_event("steer.route.attempt", event)
    span.set_attribute("gen_ai.provider.name", record.provider)
    span.set_attribute("steer.route", f"{record.provider}/{record.model}")


class _Span:
    """One call's span: started by :meth:`OTelObserver.start`, ended once by :meth:`end`."""

    __slots__ = ("_attributes", "_observer", "_span")

    def __init__(self, observer: OTelObserver, span: Any, attributes: dict[str, Any]) -> None:
        self._observer = observer
        self._span = span
        self._attributes = attributes

    def end(self, record: CallRecord, error: BaseException | None) -> None:
        span = self._span
        try:
            self._record(record, error)
        except Exception as exc:  # telemetry never breaks a call
            logger.warning("telemetry: %s: %s", type(exc).__name__, exc)
        finally:
            span.end()

    def _record(self, record: CallRecord, error: BaseException | None) -> None:
        observer = self._observer
        span = self._span
        metric = self._attributes
        set_attribute = span.set_attribute
        host, port = _server(record.base_url)
        if host:
            set_attribute("server.address", host)
            metric["server.address"] = host
            if port:
                set_attribute("server.port", port)
                metric["server.port"] = port
        if record.response_id:
            set_attribute("gen_ai.response.id", record.response_id)
        if record.response_model:
            set_attribute("gen_ai.response.model", record.response_model)
            metric["gen_ai.response.model"] = record.response_model
        if record.finish_reason:
            set_attribute("gen_ai.response.finish_reasons", [record.finish_reason])
        set_attribute("steer.attempts", record.attempts)
        if record.route_attempts:  # a route: an event per entry tried, who answered
            _route_events(span, record)
        if record.resumptions:
            set_attribute("steer.resumptions", record.resumptions)
        ttfc = record.time_to_first_token if record.streamed else None
        if ttfc is not None:
            set_attribute("gen_ai.response.time_to_first_chunk", ttfc)
        if error is None:
            self._success(record, metric)
        elif isinstance(error, Exception):
            error_type = type(error).__name__
            set_attribute("error.type", error_type)
            metric["error.type"] = error_type
            status = observer._trace.Status(
                observer._trace.StatusCode.ERROR, f"{error_type}: {error}"[:500]
            )
            span.set_status(status)
        else:  # GeneratorExit / CancelledError: the caller stopped; no failure
            set_attribute("steer.cancelled", True)
        observer._duration.record(record.duration, metric)
        if ttfc is not None:
            observer._ttfc.record(ttfc, metric)

    def _success(self, record: CallRecord, metric: dict[str, Any]) -> None:
        observer = self._observer
        span = self._span
        usage = record.usage or {}
        if record.cost_usd is not None:
            span.set_attribute("steer.cost_usd", record.cost_usd)
        if usage.get("estimated"):
            # The conventions: never report a count the provider did not give.
            span.set_attribute("steer.usage.estimated", True)
        elif usage:
            input_tokens = usage.get("prompt_tokens")
            output_tokens = usage.get("completion_tokens")
            if isinstance(input_tokens, int):
                span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
                observer._tokens.record(input_tokens, {**metric, "gen_ai.token.type": "input"})
            if isinstance(output_tokens, int):
                span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
                observer._tokens.record(output_tokens, {**metric, "gen_ai.token.type": "output"})
            cache = usage.get("cache_info") or {}
            if "cached_tokens" in cache:
                span.set_attribute("gen_ai.usage.cache_read.input_tokens", cache["cached_tokens"])
            if "cache_creation_tokens" in cache:
                span.set_attribute(
                    "gen_ai.usage.cache_creation.input_tokens", cache["cache_creation_tokens"]
                )
            if isinstance(usage.get("reasoning_tokens"), int):
                span.set_attribute(
                    "gen_ai.usage.reasoning.output_tokens", usage["reasoning_tokens"]
                )
        if observer.capture_content:
            parts: list[dict[str, Any]] = []
            if record.text:
                parts.append({"type": "text", "content": record.text})
            for call_part in record.tool_calls:
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call_part.id,
                        "name": call_part.name,
                        "arguments": call_part.arguments,
                    }
                )
            message: dict[str, Any] = {"role": "assistant", "parts": parts}
            if record.finish_reason:
                message["finish_reason"] = record.finish_reason
            span.set_attribute("gen_ai.output.messages", _json([message]))


def _server(base_url: str) -> tuple[str | None, int | None]:
    if not base_url:
        return None, None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(base_url)
        return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None, None


def _json(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


def _input_messages(messages: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    """Messages in the conventions' shape: system instructions apart, the rest as
    ``{"role", "parts": [{"type": "text", "content"}, ...]}``."""
    system: list[Any] = []
    out: list[Any] = []
    for message in messages:
        role = message.get("role")
        parts = _parts(message.get("content"))
        if role in ("system", "developer"):
            system.extend(parts)
            continue
        entry: dict[str, Any] = {"role": role, "parts": parts}
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            entry["parts"].append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "arguments": function.get("arguments"),
                }
            )
        if role == "tool":
            entry["parts"] = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": message.get("content"),
                }
            ]
        out.append(entry)
    return system, out


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    from .content import FilePart, TextPart

    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "content": part.text})
        elif isinstance(part, FilePart):  # images and files: the kind only
            media = part.media_type
            kind = (
                "file"
                if part.file_id is not None
                else "image_url"
                if part.url is not None or media.startswith("image/")
                else "input_audio"
                if media.startswith("audio/")
                else "file"
            )
            entry: dict[str, Any] = {"type": kind}  # the media type and size, never bytes
            if media:
                entry["media_type"] = media
            if part.data is not None or part.b64 is not None:
                entry["size"] = part.size()
            parts.append(entry)
        elif isinstance(part, str):
            parts.append({"type": "text", "content": part})
        elif part.get("type") == "text":
            parts.append({"type": "text", "content": part.get("text", "")})
        else:
            parts.append({"type": str(part.get("type"))})
    return parts
