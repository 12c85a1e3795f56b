"""An incremental Server-Sent Events decoder (sans-I/O).

Feed it the raw bytes of a response in whatever pieces they arrive; it returns the
complete events. Lines end only at CR, LF or CRLF, as the SSE spec says (unlike
``httpx.Response.aiter_lines``, which also splits at U+2028, U+2029 and U+0085 and so
corrupts model text). Data stays as bytes until a codec parses it: a multi-byte UTF-8
character split across reads is never decoded half-way, and JSON parsers take bytes
directly, so the per-chunk path makes no str copies.
"""

from __future__ import annotations

__all__ = ["SSEDecoder", "SSEEvent"]

# An event is (event name or None, data bytes). A tuple, not an object: this is the
# per-chunk path and a tuple is the cheapest thing Python can build.
SSEEvent = tuple[str | None, bytes]

_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Turns a byte stream into ``(event, data)`` pairs.

    ``id:`` and ``retry:`` fields are ignored (no LLM provider resumes by event id),
    comment lines (``:``) are skipped. An event with no ``data:`` field is not
    dispatched, as the spec says.
    """

    __slots__ = ("_buf", "_data", "_event", "_last_cr", "_started")

    def __init__(self) -> None:
        self._buf = b""  # an incomplete line carried to the next feed
        self._data: list[bytes] = []  # data lines of the event being built
        self._event: str | None = None
        self._last_cr = False  # the previous feed ended with CR: a leading LF is its pair
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk`` and return the events it completes (often none or one)."""
        if not self._started:
            chunk = self._buf + chunk
            self._buf = b""
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._buf = chunk  # maybe the first bytes of a BOM: wait for more
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if b"\r" in chunk or self._last_cr:
            if self._last_cr and chunk[:1] == b"\n":
                chunk = chunk[1:]
            self._last_cr = chunk[-1:] == b"\r"
            text = self._buf + chunk
            # CRLF everywhere (Gemini): split there directly, which costs less than
            # replacing CRLF first; any lone CR or LF left takes the general way.
            lines = text.split(b"\r\n")
            rest = b"".join(lines)
            if b"\r" in rest or b"\n" in rest:
                lines = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        elif b"\n" not in chunk:
            self._buf += chunk
            return []
        else:
            lines = (self._buf + chunk).split(b"\n")
        self._buf = lines.pop()
        events: list[SSEEvent] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    data = self._data = []
                self._event = None
            elif line.startswith(b"data:"):
                # One leading space after the colon is not part of the value.
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] == 0x3A:  # ":" comment, e.g. OpenRouter's keep-alives
                continue
            elif line.startswith(b"event:"):
                value = line[7:] if line[6:7] == b" " else line[6:]
                self._event = value.decode("utf-8", "replace")
            elif line == b"data":
                data.append(b"")
            # Other fields (id, retry, unknown ones) are ignored.
        return events

    def close(self) -> list[SSEEvent]:
        """End of stream: return a last event whose final line was complete.

        The spec drops an event that was not followed by a blank line; we keep it when
        its last line did end, because some servers omit the final blank line. A line
        cut off mid-way is dropped: the codec then sees the stream as truncated.
        """
        events: list[SSEEvent] = []
        if self._data and not self._buf:
            events.append((self._event, b"\n".join(self._data)))
        self._data = []
        self._event = None
        self._buf = b""
        return events

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an incomplete line (for diagnostics of truncated streams)."""
        return len(self._buf)
