"""The wire protocols, one sans-I/O codec module each, behind one registry.

Adding a protocol is a module here plus an entry in :data:`PROTOCOLS`: each codec
class declares its own facts (how to build it for a provider, how its base URL is
written, whether a model can continue a prefix), so the client names no protocol.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from .anthropic import AnthropicCodec
from .openai_chat import OpenAIChatCodec
from .openai_responses import OpenAIResponsesCodec

__all__ = ["PROTOCOLS", "codec_class"]

PROTOCOLS: dict[str, Any] = {
    OpenAIChatCodec.protocol: OpenAIChatCodec,
    AnthropicCodec.protocol: AnthropicCodec,
    OpenAIResponsesCodec.protocol: OpenAIResponsesCodec,
}


def codec_class(protocol: str) -> Any:
    """The codec class of a protocol name, or a ConfigurationError listing them."""
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ConfigurationError(
            f"protocol {protocol!r} is not known; use one of {', '.join(sorted(PROTOCOLS))}"
        ) from None
