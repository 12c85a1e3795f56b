"""The SSE decoder: correct for any split of the bytes, line endings per the spec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steer_llm_sdk.transport.sse import SSEDecoder

# Text that includes what breaks naive decoders: U+2028/2029/0085, emoji, CJK.
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
    max_size=40,
)
EVENTS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["message_start", "content_block_delta"])),
        st.lists(TEXT, min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=8,
)
NEWLINES = st.sampled_from(["\n", "\r", "\r\n"])


def encode(events: list[tuple[str | None, list[str]]], newline: str, comments: bool) -> bytes:
    out = []
    for name, lines in events:
        if comments:
            out.append(": keep-alive" + newline)
        if name:
            out.append(f"event: {name}{newline}")
        out.extend(f"data: {line}{newline}" for line in lines)
        out.append(newline)
    return "".join(out).encode()


def decode_all(body: bytes, cuts: list[int]) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    events = []
    start = 0
    for cut in [*sorted({c % (len(body) + 1) for c in cuts}), len(body)]:
        events.extend(decoder.feed(body[start:cut]))
        start = cut
    events.extend(decoder.close())
    return events


@settings(max_examples=300, deadline=None)
@given(EVENTS, NEWLINES, st.booleans(), st.lists(st.integers(min_value=0), max_size=12))
def test_any_split_gives_the_same_events(events, newline, comments, cuts) -> None:
    body = encode(events, newline, comments)
    expected = [(name, "\n".join(lines).encode()) for name, lines in events]
    assert decode_all(body, cuts) == expected


@settings(max_examples=100, deadline=None)
@given(EVENTS, NEWLINES)
def test_one_byte_at_a_time(events, newline) -> None:
    body = encode(events, newline, True)
    expected = [(name, "\n".join(lines).encode()) for name, lines in events]
    assert decode_all(body, list(range(len(body)))) == expected


def test_unicode_line_separators_are_not_line_ends() -> None:
    text = "a\u2028b\u2029c\u0085d"
    body = f"data: {text}\n\n".encode()
    [(_, data)] = SSEDecoder().feed(body)
    assert data.decode() == text


def test_multibyte_character_split_across_reads() -> None:
    body = 'data: {"t":"é漢🙂"}\n\n'.encode()
    decoder = SSEDecoder()
    events = []
    for i in range(len(body)):
        events.extend(decoder.feed(body[i : i + 1]))
    assert events == [(None, '{"t":"é漢🙂"}'.encode())]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n\r") == [(None, b"a")]
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [(None, b"b")]


def test_bom_comments_fields_and_no_space_after_colon() -> None:
    body = b"\xef\xbb\xbf: hi\nid: 7\nretry: 10\nevent:x\ndata:1\ndata\ndata:  2\n\n"
    decoder = SSEDecoder()
    assert decoder.feed(body[:2]) == []
    assert decoder.feed(body[2:]) == [("x", b"1\n\n 2")]


def test_event_without_data_is_not_dispatched_and_name_resets() -> None:
    assert SSEDecoder().feed(b"event: ping\n\ndata: x\n\n") == [(None, b"x")]


def test_close_keeps_complete_last_event_and_drops_a_cut_line() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: done\n")
    assert decoder.close() == [(None, b"done")]
    decoder = SSEDecoder()
    decoder.feed(b'data: {"cut')
    assert decoder.close() == []


def test_a_line_longer_than_the_cap_is_a_typed_error() -> None:
    import pytest

    from steer_llm_sdk.errors import InvalidResponseError

    decoder = SSEDecoder(max_event_bytes=1000)
    decoder.feed(b"data: " + b"x" * 600)
    with pytest.raises(InvalidResponseError, match="max_event_bytes=1000"):
        decoder.feed(b"x" * 600)


def test_an_event_of_many_lines_larger_than_the_cap_is_a_typed_error() -> None:
    import pytest

    from steer_llm_sdk.errors import InvalidResponseError

    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(InvalidResponseError, match="SSE event larger"):
        for _ in range(100):
            decoder.feed(b"data: 0123456789abcdef\n")


def test_a_long_line_in_many_pieces_decodes_whole_and_linearly() -> None:
    # Cost per byte independent of line length: 4 MiB in 1 KiB pieces would take
    # seconds with a quadratic buffer; here it is one join.
    decoder = SSEDecoder()
    payload = b"y" * (4 * 1024 * 1024)
    body = b"data: " + payload + b"\n\n"
    events = []
    for i in range(0, len(body), 1024):
        events.extend(decoder.feed(body[i : i + 1024]))
        assert decoder.pending_bytes <= len(body)
    assert events == [(None, payload)]
    assert decoder.pending_bytes == 0


def test_the_cap_can_be_lifted() -> None:
    decoder = SSEDecoder(max_event_bytes=None)
    body = b"data: " + b"z" * (20 * 1024 * 1024) + b"\n\n"
    assert decoder.feed(body) == [(None, body[6:-2])]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["data: a", "data: b", "data:c", "data", "event: e", "event:f", "id: 1", "", ": c"]
        ),
        max_size=12,
    ),
    st.lists(NEWLINES, min_size=1, max_size=12),
    st.lists(st.integers(min_value=0), max_size=8),
)
def test_mixed_line_ends_match_a_reference(lines, ends, cuts) -> None:
    """CRLF streams take a fast split; a lone CR or LF among them must still end a
    line exactly where the spec says, at any split of the bytes."""
    body = "".join(line + ends[i % len(ends)] for i, line in enumerate(lines)).encode()
    reference = SSEDecoder()
    want = reference.feed(body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")) + reference.close()
    assert decode_all(body, cuts) == want


def test_event_names_from_a_hostile_server_do_not_grow_memory() -> None:
    """Names are cached per decoder (the hot path skips decoding them), but only a few:
    a server sending a new name on every event gets each one right, in bounded memory."""
    decoder = SSEDecoder()
    body = b"".join(b"event: e%d\ndata: %d\n\n" % (i, i) for i in range(5000))
    events = decoder.feed(body)
    assert events == [(f"e{i}", str(i).encode()) for i in range(5000)]
    assert len(decoder._names) <= 64
    assert decoder.feed(b"event: \xff\xfe\ndata: x\n\n") == [("\ufffd\ufffd", b"x")]


def reference_events(body: bytes) -> list[tuple[str | None, bytes]]:
    """The SSE spec read literally, line by line (no fast path): the decoder must agree."""
    text = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    lines = text.split(b"\n")
    complete, cut = lines[:-1], lines[-1]
    events: list[tuple[str | None, bytes]] = []
    data: list[bytes] | None = None
    name: str | None = None
    for line in complete:
        if not line:
            if data is not None:
                events.append((name, b"\n".join(data)))
            data, name = None, None
            continue
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data = [*(data or []), value]
        elif field == b"event" and colon:  # (a bare "event" line is skipped: no name,
            name = value.decode("utf-8", "replace")  # the spec's default, like "event:")
    if data is not None and not cut:  # close(): a last event whose line ended
        events.append((name, b"\n".join(data)))
    return events


# Lines of real streams (they take the per-read fast path when every event of a read
# is one of the first kind) mixed with everything that must send a read line by line.
STREAM_LINES = st.lists(
    st.sampled_from(
        [
            'data: {"choices":[{"delta":{"content":"hi"}}]}',
            "data: [DONE]",
            "event: content_block_delta",
            "event: ping",
            "event:x",
            "data:no-space",
            "data",
            "data: second line",
            ": keep-alive",
            "id: 7",
            "",
            "",
            "",
        ]
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(
    STREAM_LINES,
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.lists(st.integers(min_value=0), max_size=6),
    st.booleans(),
)
def test_any_stream_matches_the_spec_read_line_by_line(lines, newline, cuts, stray) -> None:
    body = "".join(line + newline for line in lines).encode()
    if stray and body:  # a lone CR or LF inside a CRLF stream, somewhere
        at = cuts[0] % len(body) if cuts else len(body) // 2
        body = body[:at] + (b"\n" if newline == "\r\n" else b"\r") + body[at:]
    assert decode_all(body, cuts) == reference_events(body)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("named", [False, True])
def test_long_regular_streams_in_any_reads_match_the_spec(newline, named) -> None:
    """Hundreds of events per read (the per-read fast path), cut at every size from one
    byte up, with an odd event among them now and then."""
    events = []
    for i in range(600):
        name = "content_block_delta" if named else None
        line = f'data: {{"i":{i},"t":"w\u2028 {i}"}}'
        if i % 97 == 5:
            line += newline + "data: more"  # a second data line
        if i % 131 == 7:
            line = ": ping" + newline + line
        if i % 211 == 9:
            name = "ping"
        if i % 157 == 11 and named:  # one event of two names and two data lines
            line += newline + ": c" + newline + "event: ping" + newline + "data: 2"
        if i % 173 == 13:  # no data: not dispatched
            line = "id: 7"
        if i % 199 == 17:  # a lone LF ends a line, in a CRLF stream too
            line = line[:9] + "\n" + line[9:]
        events.append(((f"event: {name}" + newline) if name else "") + line + newline + newline)
    body = "".join(events).encode()
    want = reference_events(body)
    assert len(want) == 600 - 4
    for size in (1, 7, 64, 1000, 4096, 65536, len(body)):
        assert decode_all(body, list(range(size, len(body), size))) == want
