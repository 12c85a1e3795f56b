"""Steer LLM SDK: one async client for many LLM providers, streaming the same on all.

from steer_llm_sdk import SteerLLMClient
client = SteerLLMClient()
async for chunk in client.stream("Tell me a story", model="gpt-4o-mini"):
    print(chunk, end="", flush=True)
"""

from . import errors
from ._version import __version__
from .cache import ResponseCache
from .client import SteerLLMClient
from .errors import *  # noqa: F403  (every error class)
from .files import File
from .models.streaming import (
    HIGH_THROUGHPUT_OPTIONS,
    JSON_MODE_OPTIONS,
    LOW_LATENCY_OPTIONS,
    StreamingOptions,
)
from .results import (
    AudioDelta,
    FileOutput,
    Finish,
    PartialOutput,
    ReasoningDelta,
    Restart,
    RouteAttempt,
    StreamingResponse,
    StreamPart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEnd,
    ToolCallStart,
    ToolResult,
)
from .streaming.handle import AsyncStream
from .tools import Tool


def __getattr__(name: str) -> object:
    # SteerLLM (the sync client) brings asyncio and a thread: imported on first use,
    # so `import steer_llm_sdk` stays as cheap as before.
    if name == "SteerLLM":
        from .sync import SteerLLM

        return SteerLLM
    if name in ("Route", "Balance", "Cooldown"):  # routes (README, "Routes")
        from . import routing

        return getattr(routing, name)
    raise AttributeError(f"module 'steer_llm_sdk' has no attribute {name!r}")


__all__ = [
    "HIGH_THROUGHPUT_OPTIONS",
    "JSON_MODE_OPTIONS",
    "LOW_LATENCY_OPTIONS",
    "AsyncStream",
    "AudioDelta",
    "Balance",  # noqa: F405 (given by __getattr__)
    "Cooldown",  # noqa: F405 (given by __getattr__)
    "File",
    "FileOutput",
    "Finish",
    "PartialOutput",
    "ReasoningDelta",
    "ResponseCache",
    "Restart",
    "Route",  # noqa: F405 (given by __getattr__)
    "RouteAttempt",
    "SteerLLM",  # noqa: F405 (given by __getattr__)
    "SteerLLMClient",
    "StreamPart",
    "StreamingOptions",
    "StreamingResponse",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolResult",
    "__version__",
]
# Every error class, from the one list of them (errors.__all__); redact stays there.
__all__ += errors.__all__
__all__.remove("redact")
