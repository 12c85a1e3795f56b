"""Test helpers for users of the SDK: an emulator of the providers' wire protocols.

    from steer_llm_sdk.testing import Emulator, Reply, Fault

It stands alone (stdlib only) and imports nothing else from the SDK.
"""

from ._wire import Fault, RecordedRequest, Reply, count_tokens
from .emulator import Emulator, EmulatorThread, Outage, RateLimitStats

__all__ = [
    "Emulator",
    "EmulatorThread",
    "Fault",
    "Outage",
    "RateLimitStats",
    "RecordedRequest",
    "Reply",
    "count_tokens",
]
