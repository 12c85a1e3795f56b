"""Steer LLM SDK: one async client for many LLM providers, streaming the same on all.

from steer_llm_sdk import SteerLLMClient
client = SteerLLMClient()
async for chunk in client.stream("Tell me a story", model="gpt-4o-mini"):
    print(chunk, end="", flush=True)
"""

from ._version import __version__
from .client import SteerLLMClient
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConnectionError,
    ConnectTimeoutError,
    InvalidResponseError,
    JSONParseError,
    MaxStepsError,
    NotFoundError,
    OutputValidationError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    SteerError,
    StreamInterruptedError,
    TimeoutError,
    ToolArgumentsError,
    TotalTimeoutError,
)
from .models.response import StreamingResponse
from .models.streaming import (
    HIGH_THROUGHPUT_OPTIONS,
    JSON_MODE_OPTIONS,
    LOW_LATENCY_OPTIONS,
    StreamingOptions,
)
from .parts import (
    Finish,
    PartialOutput,
    ReasoningDelta,
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
    raise AttributeError(f"module 'steer_llm_sdk' has no attribute {name!r}")


__all__ = [
    "HIGH_THROUGHPUT_OPTIONS",
    "JSON_MODE_OPTIONS",
    "LOW_LATENCY_OPTIONS",
    "APIStatusError",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConfigurationError",
    "ConnectTimeoutError",
    "ConnectionError",
    "Finish",
    "InvalidResponseError",
    "JSONParseError",
    "MaxStepsError",
    "NotFoundError",
    "OutputValidationError",
    "OverloadedError",
    "PartialOutput",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadTimeoutError",
    "ReasoningDelta",
    "ServerError",
    "SteerError",
    "SteerLLM",
    "SteerLLMClient",
    "StreamInterruptedError",
    "StreamPart",
    "StreamingOptions",
    "StreamingResponse",
    "TextDelta",
    "TimeoutError",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallDelta",
    "ToolCallEnd",
    "ToolCallStart",
    "ToolResult",
    "TotalTimeoutError",
    "__version__",
]
