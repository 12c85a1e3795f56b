"""``client.batch``'s options: which it knows (any other is a ConfigurationError, never
a field sent in the provider's body), and the mode: ``"online"`` (a request per
item, the default), ``"provider"`` (the providers' batch APIs, half price, within
24 hours) or ``"auto"`` (provider mode when the job's ``deadline=`` allows it and
the model's provider has a batch API, online otherwise)."""

from __future__ import annotations

import difflib
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, SteerError

if TYPE_CHECKING:
    from .attempt import BatchClient

__all__ = ["BATCH_WINDOW", "JOB_OPTIONS", "check_known", "choose_mode"]

BATCH_WINDOW = 24 * 3600.0  # seconds: the providers' completion window
_ONLINE = ("concurrency", "requests_per_minute", "tokens_per_minute", "max_attempts")
_RAY = ("ray_address", "num_actors", "batch_size", "num_blocks")
_PROVIDER = ("poll_interval", "retry_online")
JOB_OPTIONS = frozenset(
    {
        *_ONLINE,
        *_RAY,
        *_PROVIDER,
        "budget_usd",
        "journal",
        "on_result",
        "output_path",
        "system",
        "engine",
        "mode",
        "deadline",
    }
)
# What the request layer reads, and the providers' own parameters the SDK passes on
# as they are; anything else goes in extra_body={...}.
_REQUEST = frozenset(
    {
        "temperature", "max_tokens", "max_completion_tokens", "top_p", "stop", "seed",
        "response_format", "tools", "tool_choice", "parallel_tool_calls", "output",
        "extra_body", "streaming_options", "api", "cache", "top_k", "frequency_penalty",
        "presence_penalty", "logprobs", "top_logprobs", "logit_bias", "reasoning_effort",
        "reasoning", "thinking", "service_tier", "user", "metadata", "n", "modalities",
        "audio", "prediction", "store", "verbosity", "safety_settings", "generation_config",
        "system_instruction", "tool_config", "candidate_count", "response_mime_type",
        "response_schema", "thinking_config", "prompt_cache_key", "include", "truncation",
        "text", "instructions", "previous_response_id", "max_output_tokens", "cache_prompt",
        "prompt_cache_retention", "pricing_model", "api_version", "fallback_on",
        "response_modalities",
    }
)  # fmt: skip


def check_known(options: dict[str, Any]) -> None:
    """Refuse an option ``client.batch`` does not know, naming the closest it does."""
    for name in options:
        if name in JOB_OPTIONS or name in _REQUEST:
            continue
        close = difflib.get_close_matches(name, [*JOB_OPTIONS, *_REQUEST], n=1)
        hint = f" (did you mean {close[0]}=?)" if close else ""
        raise ConfigurationError(
            f"client.batch() does not know the option {name}={options[name]!r}{hint}: a "
            f"provider parameter the SDK does not list goes in extra_body={{{name!r}: ...}}"
        )


def _seconds(deadline: Any) -> float | None:
    if deadline is None:
        return None
    if isinstance(deadline, timedelta):
        seconds = deadline.total_seconds()
    elif isinstance(deadline, int | float) and not isinstance(deadline, bool):
        seconds = float(deadline)
    else:
        raise ConfigurationError(f"deadline={deadline!r} must be a timedelta or seconds")
    if seconds <= 0:
        raise ConfigurationError(f"deadline={deadline!r} must be in the future (> 0)")
    return seconds


def choose_mode(client: BatchClient, model: str | None, options: dict[str, Any]) -> str:
    """The job's mode (``options`` rewritten for it): ``"online"`` or ``"provider"``."""
    mode = options.pop("mode", "online")
    if mode not in ("online", "provider", "auto"):
        raise ConfigurationError(f"mode={mode!r} is not known: use 'online', 'provider' or 'auto'")
    seconds = _seconds(options.pop("deadline", None))
    if seconds is not None and mode != "auto":
        raise ConfigurationError("deadline= is an option of mode='auto'")
    if mode == "auto":
        mode = "provider" if _provider_fits(client, model, seconds, options) else "online"
        if mode == "online":
            for name in _PROVIDER:
                options.pop(name, None)
    if mode == "online":
        for name in _PROVIDER:
            if name in options:
                raise ConfigurationError(f"{name}= is an option of mode='provider' or 'auto'")
        return mode
    for name in ("engine", *_RAY):
        if name in options and not (name == "engine" and options[name] == "local"):
            raise ConfigurationError(f"{name}= is an option of mode='online'")
    options.pop("engine", None)
    if options.get("budget_usd") is not None:
        raise ConfigurationError(
            "budget_usd= is not supported with mode='provider': a provider batch is billed "
            "as a whole, once it ran; use mode='online' for a budget"
        )
    options.pop("budget_usd", None)
    online = {name: options.pop(name) for name in _ONLINE if name in options}
    if online:
        from .items import check_options

        check_options(
            online.get("concurrency", 32),
            online.get("max_attempts", 5),
            online.get("requests_per_minute"),
            online.get("tokens_per_minute"),
            None,
        )
    options["online_options"] = online  # for retry_online's online run
    return mode


def _provider_fits(
    client: BatchClient, model: str | None, seconds: float | None, options: dict[str, Any]
) -> bool:
    """auto: the deadline leaves the provider's whole window, and the job's model is
    served by a provider with a batch API (and no budget, Ray or items of many models)."""
    if seconds is not None and seconds < BATCH_WINDOW:
        return False
    if model is None or options.get("engine", "local") != "local":
        return False
    if options.get("budget_usd") is not None:
        return False
    from .provider import api_classes

    try:
        return client.resolve(model).provider.name in api_classes()
    except SteerError:
        return False
