"""Test helpers for users of the SDK: an emulator of the providers' wire protocols.

    from steer_llm_sdk.testing import Emulator, Reply, Fault

It stands alone (stdlib only) and imports nothing else from the SDK.
"""

from .emulator import (
    Emulator,
    EmulatorThread,
    Fault,
    RateLimitStats,
    RecordedRequest,
    Reply,
    count_tokens,
)

__all__ = [
    "Emulator",
    "EmulatorThread",
    "Fault",
    "RateLimitStats",
    "RecordedRequest",
    "Reply",
    "count_tokens",
]
