"""The wire protocols, one sans-I/O codec module each, behind one typed registry.

Adding a protocol is a module here plus a line in :data:`PROTOCOLS`: each codec
class (a :class:`~steer_llm_sdk.providers.codec.CodecBase`) declares its own facts,
so the client names no protocol. A protocol's module is imported on first use, not
by ``import steer_llm_sdk``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .codec import CodecBase

__all__ = ["PROTOCOLS", "codec_class"]

# protocol name → (module in this package, codec class name)
PROTOCOLS: dict[str, tuple[str, str]] = {
    "openai-chat": ("openai_chat", "OpenAIChatCodec"),
    "anthropic-messages": ("anthropic", "AnthropicCodec"),
    "openai-responses": ("openai_responses", "OpenAIResponsesCodec"),
    "gemini": ("gemini", "GeminiCodec"),
    "bedrock-converse": ("bedrock", "BedrockConverseCodec"),
    "bedrock-invoke": ("bedrock", "BedrockInvokeCodec"),
}


def codec_class(protocol: str) -> type[CodecBase]:
    """The codec class of a protocol name (its module imported on first use), or a
    ConfigurationError listing the protocols."""
    cls = _LOADED.get(protocol)
    if cls is not None:
        return cls
    try:
        module, name = PROTOCOLS[protocol]
    except KeyError:
        raise ConfigurationError(
            f"protocol {protocol!r} is not known; use one of {', '.join(sorted(PROTOCOLS))}"
        ) from None
    cls = _LOADED[protocol] = getattr(import_module(f"{__name__}.{module}"), name)
    return cls


_LOADED: dict[str, type[CodecBase]] = {}
