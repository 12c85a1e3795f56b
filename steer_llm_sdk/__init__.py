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
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ReadTimeoutError,
    ServerError,
    SteerError,
    StreamInterruptedError,
    TimeoutError,
    TotalTimeoutError,
)
from .models.response import StreamingResponse
from .models.streaming import (
    HIGH_THROUGHPUT_OPTIONS,
    JSON_MODE_OPTIONS,
    LOW_LATENCY_OPTIONS,
    StreamingOptions,
)

__version__ = "0.3.0"


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
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConnectTimeoutError",
    "ConnectionError",
    "InvalidResponseError",
    "JSONParseError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "ReadTimeoutError",
    "ServerError",
    "SteerError",
    "SteerLLM",
    "SteerLLMClient",
    "StreamInterruptedError",
    "StreamingOptions",
    "StreamingResponse",
    "TimeoutError",
    "TotalTimeoutError",
    "__version__",
]
