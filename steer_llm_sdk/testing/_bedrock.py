"""The emulator's AWS Bedrock runtime: Converse and Invoke streams in event-stream frames.

Standard library only (no botocore, no SDK): frames are built by :func:`frame`, and
each request's SigV4 signature is computed again here from the test credentials the
emulator was given (:func:`check_sigv4`); a Bedrock API key is a bearer token.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

__all__ = ["event_frame", "exception_frame", "frame"]


def _header(name: str, value: Any) -> bytes:
    raw = name.encode()
    out = bytes([len(raw)]) + raw
    if value is True:
        return out + b"\x00"
    if value is False:
        return out + b"\x01"
    if isinstance(value, tuple):  # (type, value): the integer types, timestamp, uuid
        kind, inner = value
        fmt = {2: "!b", 3: "!h", 4: "!i", 5: "!q", 8: "!q"}.get(kind)
        if fmt is not None:
            return out + bytes([kind]) + struct.pack(fmt, inner)
        return out + b"\x09" + bytes(inner)  # uuid: 16 bytes
    data = value if isinstance(value, bytes) else str(value).encode()
    kind = 6 if isinstance(value, bytes) else 7
    return out + bytes([kind]) + struct.pack("!H", len(data)) + data


def frame(headers: dict[str, Any], payload: bytes) -> bytes:
    """One event-stream message: prelude, headers, payload and both CRC32s. A header
    value is a str, bytes, a bool, or ``(type, value)`` for the integer types (2-5),
    a timestamp (8, ms) or a UUID (9, 16 bytes)."""
    head = b"".join(_header(name, value) for name, value in headers.items())
    total = 12 + len(head) + len(payload) + 4
    prelude = struct.pack("!II", total, len(head))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    body = prelude + head + payload
    return body + struct.pack("!I", zlib.crc32(body))


def event_frame(event_type: str, payload: bytes) -> bytes:
    """An ``event`` message of a JSON payload."""
    return frame(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        payload,
    )


def exception_frame(exception_type: str, message: str) -> bytes:
    """An ``exception`` message, as Bedrock sends one mid-stream."""
    import json

    return frame(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": message}).encode(),
    )
