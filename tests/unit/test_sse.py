"""The SSE decoder: correct for any split of the bytes, line endings per the spec."""

from __future__ import annotations

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
