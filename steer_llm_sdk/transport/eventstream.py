"""An incremental AWS event stream decoder (sans-I/O), as Bedrock streams its answers.

``application/vnd.amazon.eventstream`` is a sequence of binary frames: a 12-byte
prelude (total length, headers length, both big-endian uint32, and the CRC32 of those
8 bytes), typed headers (``:message-type``, ``:event-type``, ``:exception-type``,
``:content-type`` ...), the payload, and the CRC32 of everything before it.

Feed the bytes in whatever pieces they arrive; :meth:`EventStreamDecoder.feed`
returns the complete messages. Both CRCs are checked, a frame larger than
``max_event_bytes`` is refused as soon as its prelude arrives, and the cost per byte
does not depend on the frame size or on how the bytes are cut: the pieces of an
incomplete frame are joined once, when its length (read from its prelude) has
arrived, and a read shorter than what the frame still needs returns at once.
"""

from __future__ import annotations

from struct import Struct, unpack_from
from typing import Any, NamedTuple
from zlib import crc32

from ..errors import InvalidResponseError
from .sse import DEFAULT_MAX_EVENT_BYTES

__all__ = ["EventMessage", "EventStreamDecoder"]

_PRELUDE = 12  # total length, headers length, prelude CRC
_MIN_FRAME = 16  # a prelude and the message CRC
_unpack_prelude = Struct("!III").unpack_from
_unpack_crc = Struct("!I").unpack_from


class EventMessage(NamedTuple):
    """One frame: its headers (name → value) and its payload bytes."""

    headers: dict[str, Any]
    payload: bytes


def _bad(message: str) -> InvalidResponseError:
    return InvalidResponseError(f"the response is not a valid AWS event stream: {message}")


def _headers(view: memoryview, start: int, end: int) -> dict[str, Any]:
    """The typed headers of one frame (values as botocore gives them: bools, ints,
    bytes, str; a timestamp as milliseconds, a UUID as its 16 bytes)."""
    headers: dict[str, Any] = {}
    i = start
    try:
        while i < end:
            size = view[i]
            name = bytes(view[i + 1 : i + 1 + size]).decode()
            i += 1 + size
            kind = view[i]
            i += 1
            value: Any
            if kind == 7 or kind == 6:  # string, byte array: a 2-byte length
                (length,) = unpack_from("!H", view, i)
                raw = bytes(view[i + 2 : i + 2 + length])
                if len(raw) != length:
                    raise IndexError
                value = raw.decode() if kind == 7 else raw
                i += 2 + length
            elif kind == 0 or kind == 1:
                value = kind == 0
            elif kind == 2:
                (value,) = unpack_from("!b", view, i)
                i += 1
            elif kind == 3:
                (value,) = unpack_from("!h", view, i)
                i += 2
            elif kind == 4:
                (value,) = unpack_from("!i", view, i)
                i += 4
            elif kind == 5 or kind == 8:  # int64, timestamp (ms since the epoch)
                (value,) = unpack_from("!q", view, i)
                i += 8
            elif kind == 9:
                value = bytes(view[i : i + 16])
                if len(value) != 16:
                    raise IndexError
                i += 16
            else:
                raise _bad(f"header {name!r} has an unknown value type {kind}")
            if name in headers:
                raise _bad(f"header {name!r} appears twice in one frame")
            headers[name] = value
    except (IndexError, ValueError) as exc:  # struct.error is a ValueError
        raise _bad(f"a header runs past its frame's headers ({type(exc).__name__})") from None
    if i != end:
        raise _bad("the headers overrun their declared length")
    return headers


class EventStreamDecoder:
    """Turns a byte stream into :class:`EventMessage` frames; :meth:`events` gives
    them as ``(name, payload)`` pairs for a codec, like the SSE decoder's.

    A read that holds whole frames is parsed in place; the bytes of an incomplete
    frame are kept as a list of pieces and joined once the frame's length (known from
    its prelude) has arrived. A frame's headers are parsed once per distinct header
    block (a stream repeats the same few): later frames cost a dict lookup.
    """

    __slots__ = ("_headers", "_max", "_names", "_need", "_pending", "_pending_len")

    def __init__(self, max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending: list[bytes] = []  # pieces of an incomplete frame
        self._pending_len = 0
        self._need = _PRELUDE  # bytes the incomplete frame needs in all
        self._max = max_event_bytes
        self._headers: dict[bytes, dict[str, Any]] = {}  # header block → parsed
        self._names: dict[bytes, str | None] = {}  # header block → events() name

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an incomplete frame."""
        return self._pending_len

    def feed(self, data: bytes) -> list[EventMessage]:
        """The frames these bytes complete (each CRC-checked)."""
        out: list[Any] = []
        self._split(data, out, False)
        return out

    def events(self, data: bytes) -> list[tuple[str | None, bytes]]:
        """The frames as ``(name, payload)``: an event's ``:event-type``;
        ``exception:<:exception-type>`` for an exception frame; ``error:<:error-code>``
        with the ``:error-message`` as payload for an error frame."""
        out: list[Any] = []
        self._split(data, out, True)
        return out

    def close(self) -> list[tuple[str | None, bytes]]:
        """End of stream: an incomplete frame is dropped (the codec sees the stream
        as truncated)."""
        return []

    def _split(self, data: bytes, out: list[Any], pairs: bool) -> None:
        if self._pending:
            self._pending.append(data)
            self._pending_len += len(data)
            if self._pending_len < self._need:
                return
            data = b"".join(self._pending)
            self._pending = []
            self._pending_len = 0
        size = len(data)
        view = memoryview(data)
        names = self._names
        limit = self._max
        check = crc32
        prelude = _unpack_prelude
        append = out.append
        pos = 0
        while size - pos >= _PRELUDE:
            total, hlen, crc = prelude(data, pos)
            if check(view[pos : pos + 8]) != crc:
                raise _bad("the prelude CRC does not match (corrupt or not an event stream)")
            if total < _MIN_FRAME or hlen > total - _MIN_FRAME:
                raise _bad(f"a frame declares {total} bytes with {hlen} bytes of headers")
            if limit is not None and total > limit:
                raise _bad(f"a frame of {total} bytes is larger than max_event_bytes={limit}")
            if size - pos < total:
                self._need = total
                break
            end = pos + total - 4
            if check(view[pos + 8 : end], crc) != _unpack_crc(data, end)[0]:
                raise _bad("a frame's message CRC does not match (corrupt data)")
            start = pos + 12
            head = start + hlen
            block = data[start:head]
            pos += total
            if pairs:
                name = names.get(block)
                if name is not None:
                    append((name, data[head:end]))
                else:
                    append(self._pair(block, data[head:end]))
            else:
                append(EventMessage(dict(self._parsed(block)), data[head:end]))
        else:
            self._need = _PRELUDE
        if pos < size:
            self._pending = [data[pos:]]
            self._pending_len = size - pos

    def _parsed(self, block: bytes) -> dict[str, Any]:
        headers = self._headers.get(block)
        if headers is None:
            headers = _headers(memoryview(block), 0, len(block))
            if len(self._headers) < 64:
                self._headers[block] = headers
        return headers

    def _pair(self, block: bytes, payload: bytes) -> tuple[str | None, bytes]:
        name, payload = _pair(EventMessage(self._parsed(block), payload))
        if name is not None and not name.startswith("error:") and len(self._names) < 64:
            self._names[block] = name
        return name, payload


def _pair(message: EventMessage) -> tuple[str | None, bytes]:
    headers, payload = message
    kind = headers.get(":message-type", "event")
    if kind == "event":
        return headers.get(":event-type"), payload
    if kind == "exception":
        return f"exception:{headers.get(':exception-type')}", payload
    message_text = str(headers.get(":error-message", ""))
    return f"error:{headers.get(':error-code')}", message_text.encode()
