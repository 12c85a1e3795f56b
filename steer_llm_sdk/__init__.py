"""Steer LLM SDK: one async client for many LLM providers, streaming the same on all.

from steer_llm_sdk import SteerLLMClient
client = SteerLLMClient()
async for chunk in client.stream("Tell me a story", model="gpt-4o-mini"):
    print(chunk, end="", flush=True)
"""

from .client import SteerLLMClient
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
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
from .tools import Tool

__version__ = "0.3.0"

__all__ = [
    "HIGH_THROUGHPUT_OPTIONS",
    "JSON_MODE_OPTIONS",
    "LOW_LATENCY_OPTIONS",
    "APIStatusError",
    "AuthenticationError",
    "BadRequestError",
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
