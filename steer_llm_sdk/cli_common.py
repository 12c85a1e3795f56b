"""What ``steer-llm`` and ``steer-llm batch`` share: usage errors, the ``--schema``
short form, the model names the CLI lists and takes, and errors worded for the
command line (environment variables and flags, not constructor arguments).

Imported by the CLI only; the standard library and ``catalog`` at import time.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .catalog import LOCAL_DEFAULT, PROVIDERS, ProviderSpec, Target, resolve_model

__all__ = [
    "UsageError",
    "check_route",
    "cli_routes",
    "closest",
    "config_dir",
    "key_problem",
    "model_rows",
    "parse_schema",
    "resolve_for_cli",
    "unknown_model_message",
    "unknown_options",
]


class UsageError(Exception):
    """A mistake on the command line (or in its environment): printed as one line;
    exit status ``status`` (2 by default)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


# -- --schema ----------------------------------------------------------------------

_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}


def _short_schema(text: str) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    separator = "\n" if "\n" in text else ","
    for item in text.split(separator):
        item = item.strip()
        if not item:
            continue
        head, _, description = item.partition(":")
        words = head.split()
        if not words or len(words) > 2:
            raise UsageError(
                f"--schema: cannot read {item!r}: write 'name type: description', "
                "e.g. 'name str, age int, bio: a short biography'"
            )
        name, kind = words[0], (words[1] if len(words) == 2 else "str")
        if kind.lower() not in _TYPES:
            raise UsageError(
                f"--schema: unknown type {kind!r} for {name!r}: use str, int, float or bool"
            )
        prop: dict[str, Any] = {"type": _TYPES[kind.lower()]}
        if description.strip():
            prop["description"] = description.strip()
        properties[name] = prop
    if not properties:
        raise UsageError("--schema is empty: e.g. --schema 'name str, age int'")
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def parse_schema(text: str) -> dict[str, Any]:
    """A JSON schema from a file, JSON text, or the short form
    ``name str, age int, bio: a short biography`` (default type: str; all required)."""
    if os.path.isfile(text):
        try:
            with open(text, encoding="utf-8") as f:
                schema = json.load(f)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--schema {text}: not a JSON schema file ({exc})") from None
    elif text.lstrip().startswith("{"):
        try:
            schema = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--schema: not valid JSON ({exc})") from None
    else:
        schema = _short_schema(text)
    if not isinstance(schema, dict):
        raise UsageError("--schema: a JSON schema is an object")
    return schema


# -- model names -------------------------------------------------------------------


def _label(key: str, spec: ProviderSpec) -> str:
    if key == "openai-responses":
        return "openai (Responses API)"
    return "bedrock (Invoke API)" if key == "bedrock-invoke" else spec.name


def _key_status(spec: ProviderSpec) -> str:
    if spec.variant is not None:
        return "cloud credentials (below)"
    if spec.auth is not None:
        return "cloud credentials"
    if spec.key_env is None or not spec.key_required:
        return "no key needed"
    for env in (spec.key_env, *spec.alt_key_envs):
        if os.environ.get(env):
            return "key set" if env == spec.key_env else f"key set ({env})"
    return f"key not set: {spec.key_env}"


_FIRST = {"vertex": "vertex-anthropic", "azure": "azure-responses"}
_SECOND = tuple(_FIRST.values())


def cloud_rows() -> list[tuple[str, str]]:
    """(cloud, what is configured: project, location, endpoint, credential source;
    never a secret), for ``steer-llm models``."""
    from .clouds import describe

    return [(name, describe(name, {}, {})) for name in _FIRST]


def model_rows() -> list[tuple[str, str, list[str]]]:
    """(provider, key status, names ``-m`` takes) for each provider, as
    ``steer-llm models`` lists them. A name in capitals (``vllm/MODEL``) stands for
    any model of that server."""
    rows = []
    # a cloud's second protocol is listed with its first (vertex/claude-*, api="responses")
    keys = [k for k in PROVIDERS if k not in ("openai-responses", *_SECOND)]
    keys.insert(keys.index("openai") + 1, "openai-responses")  # beside its provider
    for key in keys:
        spec = PROVIDERS[key]
        names = [name for name in spec.examples if "<" not in name]
        if key in _FIRST:
            names += PROVIDERS[_FIRST[key]].examples
        if spec.local:
            names.append("local/PATH.gguf")
        elif not names:
            names.append(f"{spec.name}/MODEL")
        rows.append((_label(key, spec), _key_status(spec), names))
    return rows


def _known_names() -> list[str]:
    names = [LOCAL_DEFAULT]
    for _, _, listed in model_rows():
        names.extend(n for n in listed if not any(c.isupper() for c in n))
    return list(dict.fromkeys(names))


def closest(word: str, candidates: Iterable[str], cutoff: float = 0.55) -> list[str]:
    """The candidates closest to ``word`` (difflib), best first: only those nearly as
    close as the best one."""
    scored = sorted(
        ((difflib.SequenceMatcher(None, word, c).ratio(), c) for c in candidates),
        reverse=True,
    )
    scored = [(ratio, c) for ratio, c in scored if ratio >= cutoff]
    return [c for ratio, c in scored if ratio >= scored[0][0] - 0.1]


def _close_names(model: str) -> list[str]:
    """Up to three known names close to ``model`` (also by the part after
    ``provider/``, and by a misspelt provider)."""
    keys: dict[str, str] = {}
    for name in _known_names():
        keys.setdefault(name.lower(), name)
        tail = name.partition("/")[2]
        if tail:
            keys.setdefault(tail.lower(), name)
    found = [keys[key] for key in closest(model.lower(), keys)]
    head, sep, rest = model.partition("/")
    if sep and rest:
        providers = sorted({spec.name for spec in PROVIDERS.values()} | {"openai-responses"})
        for name in difflib.get_close_matches(head.lower(), providers, n=2, cutoff=0.6):
            found.insert(0, f"{name}/{rest}")
    return list(dict.fromkeys(found))[:3]


def unknown_model_message(model: str) -> str:
    close = _close_names(model)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return (
        f"unknown model {model!r}.{hint} `steer-llm models` lists the names -m takes; "
        "any model of a listed provider works as PROVIDER/MODEL (e.g. "
        "groq/llama-3.3-70b-versatile); for your own OpenAI-compatible server, add "
        "--base-url URL (or set NAME_BASE_URL and use -m NAME/MODEL)"
    )


def resolve_for_cli(model: str, routes: dict[str, Any] | None = None) -> Target:
    """``catalog.resolve_model``, with a command-line error for an unknown name (a
    named route of ``routes``: its first entry)."""
    from .errors import ConfigurationError

    if routes and model in routes:
        first = routes[model][0]
        members = getattr(first, "members", None)
        model = first if isinstance(first, str) else (members[0] if members else first).model
    try:
        return resolve_model(model)
    except ConfigurationError:
        raise UsageError(unknown_model_message(model)) from None


def key_problem(spec: ProviderSpec) -> str | None:
    """What is missing to call ``spec`` from the command line, if anything."""
    if not spec.key_required or spec.key_env is None:
        return None
    envs = (spec.key_env, *spec.alt_key_envs)
    if any(os.environ.get(env) for env in envs):
        return None
    return (
        f"no API key for {spec.name}: set {' or '.join(envs)} in the environment "
        f"(export {spec.key_env}=...), or choose a model that needs none with -m "
        "(`steer-llm models` lists them)"
    )


def check_route(route: Target) -> None:
    """Raise a command-line error for what the client would refuse later: a missing
    key, or a base URL variable that is not a URL."""
    spec = route.provider
    problem = key_problem(spec)
    if problem:
        raise UsageError(problem, status=1)
    url = os.environ.get(spec.base_url_env)
    if url and not spec.local and not url.startswith(("http://", "https://")):
        raise UsageError(f"{spec.base_url_env}={url!r} must start with http:// or https://")


# -- -o options a llama.cpp server takes ----------------------------------------------

# What llama.cpp's server reads from a chat request besides the sampling settings
# that GET /props lists (default_generation_settings.params): the OpenAI chat fields it
# maps and its own fields (tools/server/README.md and server-schema.cpp of the
# llama.cpp bundled with xllamacpp). It ignores any other field without a word.
LLAMA_CPP_FIELDS = frozenset(
    {
        # OpenAI chat completions
        "messages", "model", "stream", "stream_options", "max_tokens",
        "max_completion_tokens", "n", "stop", "temperature", "top_p", "seed",
        "frequency_penalty", "presence_penalty", "logit_bias", "logprobs", "top_logprobs",
        "response_format", "tools", "tool_choice", "parallel_tool_calls", "user",
        "reasoning_effort", "chat_template_kwargs", "add_generation_prompt",
        "continue_final_message", "reasoning_format", "parse_tool_calls",
        "enable_thinking",
        # llama.cpp's own
        "n_predict", "n_keep", "n_discard", "n_indent", "n_cmpl", "n_probs", "min_keep",
        "cache_prompt", "n_cache_reuse", "id_slot", "samplers", "grammar", "json_schema",
        "grammar_lazy", "grammar_triggers", "preserved_tokens", "dry_sequence_breakers",
        "lora", "t_max_predict_ms", "response_fields", "return_tokens", "return_progress",
        "timings_per_token", "post_sampling_probs", "ignore_eos", "backend_sampling",
        "reasoning_budget", "thinking_forced_open", "top_k", "min_p", "typical_p",
        "top_n_sigma", "xtc_probability", "xtc_threshold", "dynatemp_range",
        "dynatemp_exponent", "repeat_last_n", "repeat_penalty", "dry_multiplier",
        "dry_base", "dry_allowed_length", "dry_penalty_last_n", "mirostat",
        "mirostat_tau", "mirostat_eta", "adaptive_target", "adaptive_decay",
    }
)  # fmt: skip


def unknown_options(keys: Iterable[str], props: Any) -> tuple[list[str], list[str]] | None:
    """The ``-o`` keys a llama.cpp server would ignore, judged by its GET /props
    answer, and the names it takes; None when ``props`` is not llama.cpp's."""
    settings = props.get("default_generation_settings") if isinstance(props, dict) else None
    params = settings.get("params") if isinstance(settings, dict) else None
    if not isinstance(params, dict):
        return None
    accepted = LLAMA_CPP_FIELDS | set(params)
    return [key for key in keys if key not in accepted], sorted(accepted)


# -- routes.toml -----------------------------------------------------------------------
ROUTES_FILE = "routes.toml"


def config_dir() -> Path:
    """Where ``steer-llm`` reads its configuration (``routes.toml``):
    ``$STEER_LLM_CONFIG_DIR`` if set, else ``$XDG_CONFIG_HOME/steer-llm`` (else
    ``~/.config/steer-llm``) on Linux, ``~/Library/Application Support/steer-llm`` on
    macOS, ``%APPDATA%\\steer-llm`` on Windows."""
    from .catalog import user_dir

    return user_dir("STEER_LLM_CONFIG_DIR", "XDG_CONFIG_HOME", (".config",))


def cli_routes() -> dict[str, Any]:
    """The named routes of ``routes.toml`` in :func:`config_dir` (``STEER_LLM_ROUTES``
    names another file); {} when there is none. Each route is a list of model names,
    ``{model = "...", temperature = 0.2, ...}`` tables (a Route) and ``{balance =
    [...], strategy = "..."}`` tables (a Balance), at the top level or under ``[routes]``."""
    import tomllib

    named = os.environ.get("STEER_LLM_ROUTES")
    path = Path(named).expanduser() if named else config_dir() / ROUTES_FILE
    if not path.is_file():
        if named:
            raise UsageError(f"STEER_LLM_ROUTES={named}: there is no such file")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    table = data.get("routes", data)
    out: dict[str, Any] = {}
    for name, entries in table.items():
        if not isinstance(entries, list) or not entries:
            raise UsageError(f"{path}: route {name!r} must be a list of models")
        out[name] = [_route_entry(entry, path, name) for entry in entries]
    return out


def _route_entry(value: Any, path: Path, name: str) -> Any:
    from .errors import ConfigurationError
    from .routing import Balance, Route

    try:
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            fields = dict(value)
            if "balance" in fields:
                return Balance(fields.pop("balance"), **fields)
            return Route(fields.pop("model", None), **fields)
    except (ConfigurationError, TypeError) as exc:
        raise UsageError(f"{path}: route {name!r}: {exc}") from None
    raise UsageError(f"{path}: route {name!r}: {value!r} is not a model name or a table")
