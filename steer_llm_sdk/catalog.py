"""Model names → providers, and each provider's wire protocol, base URL and key.

A new OpenAI-compatible provider is an entry here, not new code.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "DEFAULT_PROTOCOL",
    "LOCAL_DEFAULT",
    "PROVIDERS",
    "ProviderSpec",
    "Target",
    "data_dir",
    "default_model",
    "default_model_choice",
    "env_base_url",
    "resolve_model",
    "responses_only",
    "save_default_model",
    "saved_default_model",
    "select_api",
]


# The protocol of a provider registered without one (OpenAI's Chat Completions).
DEFAULT_PROTOCOL = "openai-chat"


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    protocol: str  # a name in providers.PROTOCOLS: "openai-chat", "anthropic-messages" ...
    base_url: str  # OpenAI protocol: includes /v1; Anthropic: without it
    key_env: str | None  # environment variable holding the API key
    key_required: bool = True
    max_tokens_field: str = "max_tokens"
    # The server continues a final assistant message (so a broken stream can resume).
    # Only where verified: Anthropic (before Claude 4.6) and llama.cpp.
    continues_prefix: bool = False
    # Example model names, for `steer-llm models` and error messages: each resolves to
    # this provider as written (tested).
    examples: tuple[str, ...] = ()
    local: bool = False  # a model served in this process (cost 0)
    # Other environment variables that may hold the key (GOOGLE_API_KEY for Gemini).
    alt_key_envs: tuple[str, ...] = ()
    # Per-request credentials (a kind in auth.SIGNERS: SigV4, a cloud's OAuth token ...),
    # applied by the attempt loop to each request; None: the codec's key header only.
    auth: str | None = None
    # False: text only, whatever the protocol's codec takes (the local SmolLM2 model);
    # a file in the content is a ConfigurationError before anything is sent.
    accepts_files: bool = True
    # A cloud's variant of the protocol (clouds.py: its base URL and codec options):
    # "vertex" or "azure"; None for a provider's own API.
    variant: str | None = None

    @property
    def base_url_env(self) -> str:
        return f"{_env_name(self.name)}_BASE_URL"


def _env_name(provider: str) -> str:
    return provider.upper().replace("-", "_").replace(".", "_")


def _openai_compatible(
    name: str, base_url: str, key_env: str | None, *examples: str, **kw: object
) -> ProviderSpec:
    return ProviderSpec(
        name,
        "openai-chat",
        base_url,
        key_env,
        key_required=key_env is not None and not kw.pop("key_optional", False),
        examples=examples,
        **kw,  # type: ignore[arg-type]
    )


PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "openai",
            "openai-chat",
            "https://api.openai.com/v1",
            "OPENAI_API_KEY",
            # OpenAI's reasoning models refuse max_tokens; every OpenAI model takes this.
            max_tokens_field="max_completion_tokens",
            examples=("gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini", "gpt-5"),
        ),
        ProviderSpec(
            "anthropic",
            "anthropic-messages",
            "https://api.anthropic.com",
            "ANTHROPIC_API_KEY",
            continues_prefix=True,
            examples=("claude-3-haiku-20240307", "claude-sonnet-4-5", "claude-opus-4-1"),
        ),
        ProviderSpec(
            "gemini",
            "gemini",
            "https://generativelanguage.googleapis.com",
            "GEMINI_API_KEY",
            alt_key_envs=("GOOGLE_API_KEY",),
            examples=("gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview"),
        ),
        _openai_compatible("xai", "https://api.x.ai/v1", "XAI_API_KEY", "grok-4", "grok-3-mini"),
        _openai_compatible(
            "groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "groq/llama-3.3-70b-versatile"
        ),
        _openai_compatible(
            "openrouter",
            "https://openrouter.ai/api/v1",
            "OPENROUTER_API_KEY",
            "openrouter/anthropic/claude-sonnet-4.5",
        ),
        _openai_compatible(
            "deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "deepseek/deepseek-chat"
        ),
        _openai_compatible(
            "mistral",
            "https://api.mistral.ai/v1",
            "MISTRAL_API_KEY",
            "mistral/mistral-small-latest",
        ),
        _openai_compatible(
            "together",
            "https://api.together.xyz/v1",
            "TOGETHER_API_KEY",
            "together/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        ),
        _openai_compatible("ollama", "http://localhost:11434/v1", None, "ollama/llama3.2"),
        _openai_compatible("vllm", "http://localhost:8000/v1", "VLLM_API_KEY", key_optional=True),
        _openai_compatible("lmstudio", "http://localhost:1234/v1", None),
        _openai_compatible(
            "llamacpp",
            "http://localhost:8080/v1",
            "LLAMACPP_API_KEY",
            key_optional=True,
            continues_prefix=True,
        ),
        ProviderSpec(
            "local",
            "openai-chat",
            "",  # filled in when the embedded llama.cpp server starts
            None,
            key_required=False,
            continues_prefix=True,
            examples=("local/smollm2-135m", "local/<path to a .gguf>"),
            local=True,
            accepts_files=False,  # SmolLM2 is a text model
        ),
    )
}

# The clouds (clouds.py): Vertex AI serves Gemini and Claude models (the Anthropic
# protocol for claude-* names), Azure OpenAI a deployment by Chat Completions or
# Responses (api="responses"). Credentials come from auth/ signers, not a key header.
PROVIDERS["vertex"] = ProviderSpec(
    "vertex",
    "gemini",
    "https://{location}-aiplatform.googleapis.com",
    None,
    key_required=False,
    examples=("vertex/gemini-2.5-flash", "vertex/claude-sonnet-4-5@20250929"),
    auth="google",
    variant="vertex",
)
PROVIDERS["vertex-anthropic"] = ProviderSpec(
    "vertex",
    "anthropic-messages",
    "https://{location}-aiplatform.googleapis.com",
    None,
    key_required=False,
    continues_prefix=True,  # as on Anthropic's API (before Claude 4.6)
    examples=("vertex/claude-haiku-4-5@20251001",),
    auth="google",
    variant="vertex",
)
PROVIDERS["azure"] = ProviderSpec(
    "azure",
    "openai-chat",
    "",  # AZURE_OPENAI_ENDPOINT (clouds.py)
    None,
    key_required=False,
    examples=("azure/DEPLOYMENT",),
    auth="azure",
    variant="azure",
)
PROVIDERS["azure-responses"] = ProviderSpec(
    "azure",
    "openai-responses",
    "",
    None,
    key_required=False,
    examples=(),
    auth="azure",
    variant="azure",
)

# OpenAI's Responses API: the same provider (key, base URL, prices), another protocol.
# ``openai-responses/<model>`` or ``api="responses"`` selects it; models that exist
# only there go to it by themselves.
PROVIDERS["openai-responses"] = ProviderSpec(
    "openai",
    "openai-responses",
    "https://api.openai.com/v1",
    "OPENAI_API_KEY",
    examples=("o3-pro", "gpt-5-pro", "gpt-5-codex", "openai-responses/gpt-4o"),
)
# AWS Bedrock: Converse by default; ``api="invoke"`` (or ``bedrock-invoke/<id>``) the
# InvokeModel API with the Anthropic Messages body. Credentials: the aws-sigv4 signer.
_BEDROCK_URL = "https://bedrock-runtime.{region}.amazonaws.com"  # region: the codec's
PROVIDERS["bedrock"] = ProviderSpec(
    "bedrock",
    "bedrock-converse",
    _BEDROCK_URL,
    None,
    key_required=False,
    auth="aws-sigv4",
    examples=(
        "bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "bedrock/amazon.nova-lite-v1:0",
        "bedrock/<model id or inference profile>",
    ),
)
PROVIDERS["bedrock-invoke"] = ProviderSpec(
    "bedrock",
    "bedrock-invoke",
    _BEDROCK_URL,
    None,
    key_required=False,
    auth="aws-sigv4",
    examples=("bedrock-invoke/us.anthropic.claude-sonnet-4-5-20250929-v1:0",),
)
_RESPONSES_ONLY = re.compile(r"(?:^|-)pro(?:-|$)|codex", re.IGNORECASE)


def responses_only(model: str) -> bool:
    """OpenAI models that answer only on the Responses API (o1-pro, o3-pro,
    gpt-5-pro and later -pro models, codex models)."""
    return bool(_RESPONSES_ONLY.search(model))


# Bare model names the SDK routes without a "provider/" prefix.
_PREFIX_ROUTES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("codex-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("claude-", "anthropic"),
    ("grok-", "xai"),
    ("gemini-", "gemini"),
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one model name goes: the provider and the provider's own name for the
    model. (A route, ``routing.Route``, is a caller's entry that may hold several.)"""

    provider: ProviderSpec
    model: str  # the name sent to the provider


def resolve_model(model: str, extra: dict[str, ProviderSpec] | None = None) -> Target:
    """``"claude-3-haiku-20240307"`` → Anthropic; ``"groq/llama-3.3-70b"`` → Groq.

    An explicit ``provider/model`` always wins over the name-based rules.
    """
    if not isinstance(model, str) or not model.strip():
        raise ConfigurationError(
            "model must be a non-empty string such as 'gpt-4o-mini', "
            "'claude-3-haiku-20240307' or 'provider/model'"
        )
    providers = {**PROVIDERS, **(extra or {})}
    head, sep, rest = model.partition("/")
    name = head.lower()
    if sep and name in providers and rest:
        if name == "vertex" and rest.lower().startswith("claude-"):
            name = "vertex-anthropic"  # Claude on Vertex speaks the Anthropic protocol
        return Target(providers[name], rest)
    if sep and rest and os.environ.get(f"{_env_name(name)}_BASE_URL"):
        # A provider registered through the environment: NAME_BASE_URL (+ NAME_API_KEY),
        # spoken to with the OpenAI protocol.
        env = _env_name(name)
        spec = ProviderSpec(
            name, "openai-chat", os.environ[f"{env}_BASE_URL"], f"{env}_API_KEY", key_required=False
        )
        return Target(spec, rest)
    lowered = model.lower()
    for prefix, name in _PREFIX_ROUTES:
        if lowered.startswith(prefix):
            if name == "openai" and responses_only(lowered):
                return Target(providers["openai-responses"], model)
            return Target(providers[name], model)
    raise ConfigurationError(
        f"unknown model {model!r}: name it as 'provider/model' with provider one of "
        f"{', '.join(sorted(providers))} (e.g. 'groq/llama-3.3-70b-versatile'), or use "
        "a name the SDK routes by itself: gpt-*, o1*/o3*/o4*, chatgpt-*, codex-* (OpenAI), "
        "claude-* (Anthropic), grok-* (xAI), gemini-* (Google). Register your own "
        "OpenAI-compatible server with SteerLLMClient(providers={'name': "
        "{'base_url': ...}}) or by setting NAME_BASE_URL (and NAME_API_KEY) in the environment."
    )


def provider_spec(name: str, spec: Mapping[str, Any] | ProviderSpec) -> ProviderSpec:
    """A provider a caller registers: a ProviderSpec, or a dict with ``base_url`` and
    optionally ``api_key_env``, ``protocol`` (OpenAI's Chat Completions when not given)
    and ``continues_prefix``."""
    if isinstance(spec, ProviderSpec):
        return spec
    if "base_url" not in spec:
        raise ConfigurationError(f"provider {name!r} needs a 'base_url'")
    protocol = spec.get("protocol", DEFAULT_PROTOCOL)
    from .providers import PROTOCOLS  # the names only: no protocol module is loaded

    if protocol not in PROTOCOLS:
        raise ConfigurationError(
            f"provider {name!r}: protocol {protocol!r} is not known; use one of "
            f"{', '.join(sorted(PROTOCOLS))}"
        )
    return ProviderSpec(
        name,
        protocol,
        str(spec["base_url"]),
        spec.get("api_key_env"),
        key_required=False,
        continues_prefix=bool(spec.get("continues_prefix", False)),
    )


def api_key(spec: ProviderSpec, keys: Mapping[str, str]) -> str | None:
    """A provider's key: given to the client, else from its environment variables
    (read at call time); a ConfigurationError when it needs one and has none."""
    from .errors import register_secret

    key = keys.get(spec.name)
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


def configured_base_url(spec: ProviderSpec, base_urls: Mapping[str, str]) -> str:
    """A provider's base URL: given to the client, else its environment variable,
    else the catalog's; it must be http(s)."""
    url = base_urls.get(spec.name) or os.environ.get(spec.base_url_env) or spec.base_url
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"the base URL for {spec.name} ({url!r}, from base_urls= or "
            f"{spec.base_url_env}) must start with http:// or https://"
        )
    return url


def select_api(route: Target, api: object) -> Target:
    """``api="responses"`` / ``api="chat"``: the OpenAI API a route speaks (OpenAI
    models; another provider only when it already speaks the one asked for);
    ``api="converse"`` / ``api="invoke"`` for Bedrock models."""
    if route.provider.name == "bedrock" and route.provider.auth == "aws-sigv4":
        if api not in ("converse", "invoke"):
            raise ConfigurationError(f"api={api!r}: Bedrock models take 'converse' or 'invoke'")
        return Target(PROVIDERS["bedrock-invoke" if api == "invoke" else "bedrock"], route.model)
    if api not in ("chat", "responses"):
        raise ConfigurationError(f"api={api!r} is not known: use 'chat' or 'responses'")
    spec = route.provider
    if spec.variant == "azure":
        return Target(PROVIDERS["azure-responses" if api == "responses" else "azure"], route.model)
    if spec is PROVIDERS["openai"] or spec is PROVIDERS["openai-responses"]:
        return Target(
            PROVIDERS["openai-responses" if api == "responses" else "openai"], route.model
        )
    wanted = "openai-responses" if api == "responses" else "openai-chat"
    if spec.protocol == wanted:
        return route
    raise ConfigurationError(
        f"api={api!r} applies to OpenAI models; {spec.name!r} speaks {spec.protocol}: "
        f"register it with protocol={wanted!r} instead"
    )


def env_base_url(spec: ProviderSpec) -> str | None:
    return os.environ.get(spec.base_url_env) or None


# -- the default model (the CLI's and batch's, when no model is named) ----------------

LOCAL_DEFAULT = "local/smollm2-135m"
# Without an explicit choice: the first provider whose key is set, else the local model.
KEY_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("OPENAI_API_KEY", "gpt-4o-mini"),
    ("ANTHROPIC_API_KEY", "claude-3-5-haiku-latest"),
    ("XAI_API_KEY", "grok-3-mini"),
)
DEFAULT_MODEL_FILE = "default_model.txt"


def data_dir() -> Path:
    """Where ``steer-llm`` keeps its data (the log, the saved default model):
    ``$STEER_LLM_DATA_DIR`` if set, else ``$XDG_DATA_HOME/steer-llm`` (else
    ``~/.local/share/steer-llm``) on Linux, ``~/Library/Application Support/steer-llm``
    on macOS, ``%APPDATA%\\steer-llm`` on Windows."""
    return user_dir("STEER_LLM_DATA_DIR", "XDG_DATA_HOME", (".local", "share"))


def user_dir(explicit_env: str, xdg_env: str, linux_default: tuple[str, ...]) -> Path:
    """``steer-llm``'s directory of one kind: ``$explicit_env`` if set, else
    ``$xdg_env/steer-llm`` (else ``~/<linux_default>/steer-llm``) on Linux,
    ``~/Library/Application Support/steer-llm`` on macOS, ``%APPDATA%\\steer-llm`` on
    Windows."""
    explicit = os.environ.get(explicit_env)
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "steer-llm"
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home()) / "steer-llm"
    base = os.environ.get(xdg_env) or ""
    root = Path(base) if os.path.isabs(base) else Path.home().joinpath(*linux_default)
    return root / "steer-llm"


def saved_default_model() -> str | None:
    """The default saved with ``steer-llm models default NAME``, if any."""
    try:
        text = (data_dir() / DEFAULT_MODEL_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def save_default_model(model: str | None) -> Path:
    """Save ``model`` as the default (None: forget the saved one); returns the file."""
    path = data_dir() / DEFAULT_MODEL_FILE
    if model is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(model + "\n", encoding="utf-8")
    return path


def default_model_choice() -> tuple[str, str]:
    """The default model and where it comes from: ``"STEER_DEFAULT_MODEL"``,
    ``"saved"`` (``steer-llm models default NAME``), the name of the key variable
    that chose it (``"OPENAI_API_KEY"`` ...), or ``"local"``."""
    explicit = os.environ.get("STEER_DEFAULT_MODEL", "").strip()
    if explicit:
        return explicit, "STEER_DEFAULT_MODEL"
    saved = saved_default_model()
    if saved:
        return saved, "saved"
    for env, model in KEY_DEFAULTS:
        if os.environ.get(env):
            return model, env
    return LOCAL_DEFAULT, "local"


def default_model() -> str:
    """The model used when none is named: ``STEER_DEFAULT_MODEL``, else the one saved
    with ``steer-llm models default NAME``, else the first provider whose key is set
    (OpenAI, Anthropic, xAI), else the local model."""
    return default_model_choice()[0]
