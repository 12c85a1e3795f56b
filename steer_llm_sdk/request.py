"""The request layer: a prompt or messages plus parameters → one validated, provider-
neutral :class:`ChatRequest`, built once per call, off the per-chunk path.

Everything a caller can get wrong is checked here, before any byte leaves: the
messages, the common parameters, ``response_format``, tools, ``output=``,
``extra_body``, that all of it is JSON, and that every file in the content can be
sent with the protocol of the model's provider (each codec class declares
``accepts``, ``accepts_urls`` and ``accepts_file_ids``). Content parts become the
neutral :class:`~steer_llm_sdk.content.TextPart` / :class:`~steer_llm_sdk.content.FilePart`
here, once; the codecs map those.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .catalog import Target
from .content import FilePart, TextPart, check_part, to_part
from .errors import ConfigurationError
from .files import File
from .models.streaming import StreamingOptions
from .providers.base import ChatRequest
from .tools import normalize_tool_choice, normalize_tools

if TYPE_CHECKING:
    from .output import OutputSpec

__all__ = ["build_request", "check_call", "normalize_messages", "take_options"]

ROLES = ("system", "developer", "user", "assistant", "tool")
_RESPONSE_FORMATS = ("text", "json_object", "json_schema")
# Parameters every method takes, mapped onto each provider's own names by its codec.
COMMON = ("temperature", "max_tokens", "top_p", "stop", "seed", "response_format")


def check_call(method: str, model: str | None, params: dict[str, Any]) -> str:
    """What every call needs before anything else: no removed argument, a model
    (returned)."""
    if "return_usage" in params:
        raise TypeError(
            f"{method}() does not take return_usage (removed in v0.3.0): use "
            "`await client.stream_with_usage(...)` for text with usage and cost, or "
            "`async for chunk in client.stream(...)` for text chunks only"
        )
    if model is None:
        raise ConfigurationError(
            f"{method}() needs a model, e.g. model='gpt-4o-mini' or model='claude-3-haiku-20240307'"
        )
    return model


def take_options(params: dict[str, Any], default: StreamingOptions) -> StreamingOptions:
    """``streaming_options=`` taken out of ``params`` (else ``default``), type-checked."""
    options = params.pop("streaming_options", None)
    if options is None:
        return default
    if not isinstance(options, StreamingOptions):
        raise ConfigurationError(
            "streaming_options must be a StreamingOptions (from "
            f"steer_llm_sdk.models.streaming), not {type(options).__name__}"
        )
    return options


def normalize_messages(messages: Any) -> list[dict[str, Any]]:
    """A prompt string or a list of messages → validated message dicts (copies; the
    content as given)."""
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
    if isinstance(messages[0], str | File):  # a prompt of text and files: one message
        return normalize_messages([{"role": "user", "content": list(messages)}])
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ConfigurationError(
                f"messages[{i}] must be a dict with 'role' and 'content', "
                f"not {type(message).__name__}"
            )
        role = message.get("role")
        if role not in ROLES:
            raise ConfigurationError(
                f"messages[{i}] has role {role!r}: use one of {', '.join(ROLES)}"
            )
        content = message.get("content")
        if content is None:
            if not (role == "assistant" and message.get("tool_calls")):
                raise ConfigurationError(
                    f"messages[{i}] ({role}) has no 'content': give a string or a list of parts"
                )
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if not (
                    isinstance(part, str | File) or (isinstance(part, Mapping) and "type" in part)
                ):
                    raise ConfigurationError(
                        f"messages[{i}].content[{j}] must be a string, a File or a dict "
                        "with a 'type' (e.g. {'type': 'text', 'text': '...'}), not "
                        f"{type(part).__name__}"
                    )
        elif not isinstance(content, str):
            raise ConfigurationError(
                f"messages[{i}].content must be a string or a list of parts, "
                f"not {type(content).__name__}"
            )
        out.append(dict(message))
    return out


def neutral_content(
    messages: list[dict[str, Any]], codec: Any, model: str, spec: Any = None
) -> list[tuple[int, int]]:
    """Every list content (in place) as neutral parts, each file checked against what
    the route (``codec``, and ``spec`` where the provider narrows it) can send:
    malformed or unsendable parts fail here, named. Returns where the URLs are that
    the SDK must download before sending (``(message, part)`` indexes)."""
    unresolved: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        content = message.get("content")
        if type(content) is list:
            parts = []
            for j, raw in enumerate(content):
                where = f"messages[{i}].content[{j}]"
                part = to_part(raw, where)
                if isinstance(part, FilePart) and check_part(part, codec, where, model, spec):
                    unresolved.append((i, j))
                parts.append(part)
            message["content"] = parts
    return unresolved


def check_serialisable(
    messages: list[dict[str, Any]], common: dict[str, Any], extra_body: dict[str, Any]
) -> None:
    """Everything sent must be JSON: name the argument that is not (instead of a raw
    TypeError from the JSON encoder when the request is sent)."""
    import orjson

    option = orjson.OPT_PASSTHROUGH_DATACLASS  # neutral parts: the codecs map them
    try:
        orjson.dumps([messages, common, extra_body], default=_part, option=option)
        return
    except TypeError:
        pass
    for i, message in enumerate(messages):
        try:
            orjson.dumps(message, default=_part, option=option)
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


def _part(value: Any) -> Any:
    if type(value) is TextPart or type(value) is FilePart:
        return None
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")


def _common(params: dict[str, Any]) -> dict[str, Any]:
    """The common parameters taken out of ``params``, checked."""
    common: dict[str, Any] = {}
    if "max_completion_tokens" in params and "max_tokens" not in params:
        params["max_tokens"] = params.pop("max_completion_tokens")
    for key in COMMON:
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
    return common


def _check_limits(common: dict[str, Any]) -> None:
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


def build_request(
    messages: Any, params: dict[str, Any], route: Target, codec: Any, *, stream: bool
) -> tuple[ChatRequest, OutputSpec | None]:
    """The call's :class:`ChatRequest` and its ``output=`` spec (or None).

    ``params`` are the method's keyword arguments (taken out as they are read; what is
    left goes to the provider's body); ``codec`` is the codec class of the route's
    protocol, whose ``accepts`` facts the content is checked against.
    """
    msgs = normalize_messages(messages)
    common = _common(params)
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
    _check_limits(common)
    from .providers.caching import check_mode

    cache_prompt = check_mode(params.pop("cache_prompt", None))
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
    unresolved = neutral_content(msgs, codec, route.model, route.provider)
    check_serialisable(msgs, common, extra_body)
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
        cache_prompt=cache_prompt,
        unresolved=unresolved,
    )
    return request, spec
