"""An incremental Server-Sent Events decoder (sans-I/O).

Feed it the raw bytes of a response in whatever pieces they arrive; it returns the
complete events. Lines end only at CR, LF or CRLF, as the SSE spec says (unlike
``httpx.Response.aiter_lines``, which also splits at U+2028, U+2029 and U+0085 and so
corrupts model text). Data stays as bytes until a codec parses it: a multi-byte UTF-8
character split across reads is never decoded half-way, and JSON parsers take bytes
directly, so the per-chunk path makes no str copies.

Bounded and linear: an incomplete line is kept as a list of the pieces that carried
it and joined once when its end arrives, so the cost per byte does not depend on the
length of a line; a line or an event larger than ``max_event_bytes`` (16 MiB by
default) raises :class:`~steer_llm_sdk.errors.InvalidResponseError` instead of
growing memory without bound.
"""

from __future__ import annotations

from itertools import repeat
from operator import itemgetter

from ..errors import InvalidResponseError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent"]

# An event is (event name or None, data bytes). A tuple, not an object: this is the
# per-chunk path and a tuple is the cheapest thing Python can build.
SSEEvent = tuple[str | None, bytes]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_LF = b"\n"
_CRLF = b"\r\n"
_VALUE = itemgetter(slice(6, None))  # a "data: " line's value


class SSEDecoder:
    """Turns a byte stream into ``(event, data)`` pairs.

    ``id:`` and ``retry:`` fields are ignored (no LLM provider resumes by event id),
    comment lines (``:``) are skipped. An event with no ``data:`` field is not
    dispatched, as the spec says. ``max_event_bytes`` caps one line and the data of
    one event (None: no cap).
    """

    __slots__ = (
        "_data",
        "_data_len",
        "_event",
        "_last_cr",
        "_max",
        "_names",
        "_pending",
        "_pending_len",
        "_started",
    )

    def __init__(self, max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending: list[bytes] = []  # pieces of an incomplete line
        self._pending_len = 0
        # The data of the event being built: None, its one line, or a list of lines.
        self._data: bytes | list[bytes] | None = None
        self._data_len = 0
        self._event: str | None = None
        self._last_cr = False  # the previous feed ended with CR: a leading LF is its pair
        self._started = False
        self._names: dict[bytes, str] = {}
        self._max = max_event_bytes if max_event_bytes else 1 << 62

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Decode ``chunk`` and return the events it completes (often none or one)."""
        if not self._started:
            chunk = self._joined(chunk)
            if len(chunk) < 3 and _BOM.startswith(chunk):
                if chunk:
                    self._pending = [chunk]  # maybe the first bytes of a BOM: wait for more
                    self._pending_len = len(chunk)
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if b"\r" in chunk or self._last_cr:
            if self._last_cr and chunk[:1] == b"\n":
                chunk = chunk[1:]
            self._last_cr = chunk[-1:] == b"\r"
            if not self._last_cr:
                # CRLF streams (Gemini's) are split at CRLF, unless a lone CR or LF is
                # left in a line: no rewrite of the read.
                events = self._text(chunk, _CRLF)
                if events is not None:
                    return events
            chunk = chunk.replace(b"\r\n", b"\n")
            if b"\r" in chunk:  # a lone CR ends a line too
                chunk = chunk.replace(b"\r", b"\n")
        if b"\n" not in chunk:
            if chunk:
                self._pending.append(chunk)
                self._pending_len += len(chunk)
                if self._pending_len > self._max:
                    self._too_big("line")
            return []
        return self._text(chunk, _LF) or []

    def _text(self, chunk: bytes, sep: bytes) -> list[SSEEvent] | None:
        """The events that ``chunk`` (a read whose line ends are all ``sep``) completes;
        None, with nothing changed, if ``sep`` is CRLF and a line holds a lone CR or LF.

        Only the text up to the first blank line is joined to the pending line. What
        lies between the first and the last blank line is whole events: they take
        :meth:`_regular` when every one is one ``data:`` line (after one ``event:``
        line, or none), a few C-level passes per read instead of Python work per line;
        the rest goes line by line.
        """
        blank = sep + sep
        first = chunk.find(blank)
        middle = b""
        tail: list[bytes] = []
        if first < 0:
            lines = chunk.split(sep)
        else:
            start = first + len(blank)
            last = chunk.rfind(blank) + len(blank)
            lines = chunk[:start].split(sep)
            middle = chunk[start:last]
            tail = chunk[last:].split(sep)
        if self._pending:
            lines[0] = b"".join([*self._pending, lines[0]])
        if tail:
            lines.pop()  # empty: the head ends with a blank line
            end = tail.pop()
        else:
            end = lines.pop()
        regular = None
        if middle:
            regular = self._regular(middle, sep) if len(middle) <= self._max else None
            if regular is None:
                body = middle.split(sep)
                body.pop()  # empty: the middle ends with a blank line
                lines += body
        if sep is _CRLF:  # no CR or LF may be left in a line
            check = b"".join(lines) + b"".join(tail) + end
            if b"\r" in check or b"\n" in check:
                return None
        self._pending = [end] if end else []
        self._pending_len = len(end)
        if self._pending_len > self._max:
            self._too_big("line")
        events: list[SSEEvent] = []
        self._lines(lines, events)
        if regular:
            events += regular
        if tail:
            self._lines(tail, events)
        return events

    def _regular(self, middle: bytes, sep: bytes) -> list[SSEEvent] | None:
        """The events of ``middle`` (whole events: it begins after a blank line and ends
        with one) when each is ``data: X``, or ``event: N`` + ``data: X``; else None.
        Checked per read: no line end left inside a value, the blank lines where they
        must be, every data line's prefix (the least and the greatest line share it
        only if all do), every event line's name."""
        if middle[:6] == b"data: ":
            datas = middle[6 : -2 * len(sep)].split(sep + sep + b"data: ")
            check = b"".join(datas)
            if b"\n" in check or b"\r" in check:
                return None
            return list(zip(repeat(None), datas))
        lines = middle.split(sep)
        lines.pop()  # empty: the middle ends with a line end
        if len(lines) % 3 or any(lines[2::3]):
            return None
        if sep is _CRLF:
            check = b"".join(lines)
            if b"\n" in check or b"\r" in check:
                return None
        datas = lines[1::3]
        if min(datas)[:6] != b"data: " or max(datas)[:6] != b"data: ":
            return None
        heads = lines[0::3]
        known = self._names.get
        low = min(heads)
        if low == max(heads):  # one name throughout (Anthropic's, Responses' text deltas)
            name = known(low)
            if name is None:
                if not low.startswith(b"event:"):
                    return None
                name = self._name(low)
            return list(zip(repeat(name), map(_VALUE, datas)))
        names: list[str | None] = list(map(known, heads))
        if None in names:  # a name first seen here, or not an event: line at all
            for head in set(heads):
                if known(head) is None:
                    if not head.startswith(b"event:"):
                        return None
                    self._name(head)
            names = list(map(known, heads))
            if None in names:  # more than 64 names in this stream: one by one
                names = [known(head) or self._name(head) for head in heads]
        return list(zip(names, map(_VALUE, datas), strict=True))

    def _lines(self, lines: list[bytes], events: list[SSEEvent]) -> None:
        """Complete lines, one by one (the general path), appended to ``events``."""
        data = self._data
        size = self._data_len
        event = self._event
        names = self._names
        cap = self._max
        for line in lines:
            if not line:
                if data is not None:
                    events.append((event, data if type(data) is bytes else _join(data)))
                    data = None
                event = None
            elif line.startswith(b"data: "):
                if data is None:
                    data = line[6:]
                    size = len(data)
                else:
                    data, size = _more(data, line[6:], size)
                if size > cap:
                    self._data_len = size
                    self._too_big("event")
            elif (name := names.get(line)) is not None:  # an event: line seen before
                event = name
            elif line.startswith(b"event:"):
                event = self._name(line)
            elif line.startswith(b"data:") or line == b"data":  # no space after the colon
                value = line[5:]
                if data is None:
                    data = value
                    size = len(value)
                else:
                    data, size = _more(data, value, size)
                if size > cap:
                    self._data_len = size
                    self._too_big("event")
            # Comments (":", e.g. OpenRouter's keep-alives) and other fields (id, retry,
            # unknown ones) are ignored.
        self._data = data
        self._data_len = size
        self._event = event

    def _joined(self, chunk: bytes) -> bytes:
        """``chunk`` after the pieces of the incomplete line held so far (joined once,
        when its end is known: linear in the line's length)."""
        if not self._pending:
            return chunk
        self._pending.append(chunk)
        chunk = b"".join(self._pending)
        self._pending = []
        self._pending_len = 0
        return chunk

    def _name(self, line: bytes) -> str:
        """An ``event:`` line's name; the first 64 distinct lines are remembered, so
        the hot path does not decode the same name on every event."""
        value = line[7:] if line[6:7] == b" " else line[6:]
        name = value.decode("utf-8", "replace")
        if len(self._names) < 64:
            self._names[line] = name
        return name

    def _too_big(self, what: str) -> None:
        cap = self._max
        self._pending = []
        self._pending_len = 0
        self._data = None
        self._data_len = 0
        raise InvalidResponseError(
            f"the server sent an SSE {what} larger than max_event_bytes={cap} bytes "
            f"({_mib(cap)}); raise StreamingOptions.max_event_bytes if this is expected"
        )

    def close(self) -> list[SSEEvent]:
        """End of stream: return a last event whose final line was complete.

        The spec drops an event that was not followed by a blank line; we keep it when
        its last line did end, because some servers omit the final blank line. A line
        cut off mid-way is dropped: the codec then sees the stream as truncated.
        """
        events: list[SSEEvent] = []
        data = self._data
        if data is not None and not self._pending:
            events.append((self._event, data if type(data) is bytes else _join(data)))
        self._data = None
        self._data_len = 0
        self._event = None
        self._pending = []
        self._pending_len = 0
        return events

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an incomplete line (for diagnostics of truncated streams)."""
        return self._pending_len


def _more(data: bytes | list[bytes], value: bytes, size: int) -> tuple[list[bytes], int]:
    """A second or later data line of one event (rare: LLM APIs send one per event)."""
    lines = [data] if isinstance(data, bytes) else data
    lines.append(value)
    return lines, size + len(value) + 1


def _join(data: bytes | list[bytes]) -> bytes:
    return b"\n".join(data) if isinstance(data, list) else data


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"
