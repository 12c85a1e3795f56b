"""Public data types: options, responses. No I/O."""

from .response import StreamingResponse
from .streaming import (
    HIGH_THROUGHPUT_OPTIONS,
    JSON_MODE_OPTIONS,
    LOW_LATENCY_OPTIONS,
    StreamingOptions,
)

__all__ = [
    "HIGH_THROUGHPUT_OPTIONS",
    "JSON_MODE_OPTIONS",
    "LOW_LATENCY_OPTIONS",
    "StreamingOptions",
    "StreamingResponse",
]
