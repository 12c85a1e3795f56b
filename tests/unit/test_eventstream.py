"""The AWS event stream decoder: frames, typed headers, CRCs, caps, any read split;
checked against botocore's own parser on the same bytes."""

from __future__ import annotations

import random
import struct
import time
import zlib

import pytest

from steer_llm_sdk.errors import InvalidResponseError
from steer_llm_sdk.testing._bedrock import event_frame, exception_frame, frame
from steer_llm_sdk.transport.eventstream import EventStreamDecoder

ALL_TYPES = {
    ":message-type": "event",
    ":event-type": "contentBlockDelta",
    "yes": True,
    "no": False,
    "byte": (2, -7),
    "short": (3, -300),
    "int": (4, 70_000),
    "long": (5, -(2**40)),
    "bytes": b"\x00\xff raw",
    "when": (8, 1_733_500_000_123),
    "uuid": (9, bytes(range(16))),
    "unicode": "héllo ✓",
}


def _stream() -> bytes:
    frames = [frame(ALL_TYPES, b'{"x": 1}')]
    for i in range(50):
        frames.append(event_frame("contentBlockDelta", b'{"delta":{"text":"w%d "}}' % i))
    frames.append(frame({":message-type": "event", ":event-type": "empty"}, b""))
    frames.append(exception_frame("throttlingException", "slow down"))
    return b"".join(frames)


def _decode(data: bytes, cuts: list[int]) -> list:
    decoder = EventStreamDecoder()
    out = []
    start = 0
    for cut in [*cuts, len(data)]:
        out += decoder.feed(data[start:cut])
        start = cut
    assert decoder.pending_bytes == 0
    return out


def test_every_header_type_and_payload_agrees_with_botocore():
    eventstream = pytest.importorskip("botocore.eventstream")
    data = _stream()
    buffer = eventstream.EventStreamBuffer()
    buffer.add_data(data)
    theirs = [(m.headers, m.payload) for m in buffer]
    ours = [(m.headers, m.payload) for m in _decode(data, [])]
    assert ours == theirs
    assert ours[0][0]["when"] == 1_733_500_000_123
    assert ours[0][0]["unicode"] == "héllo ✓"
    assert len(ours) == 53


@pytest.mark.parametrize("step", [1, 2, 7, 13, 64, 4096])
def test_any_read_split_gives_the_same_messages(step):
    data = _stream()
    whole = _decode(data, [])
    assert _decode(data, list(range(step, len(data), step))) == whole


def test_random_splits():
    data = _stream()
    whole = _decode(data, [])
    rng = random.Random(7)
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, len(data)), 20))
        assert _decode(data, cuts) == whole


def test_events_names_exceptions_and_errors():
    decoder = EventStreamDecoder()
    error = frame(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"},
        b"",
    )
    pairs = decoder.events(
        event_frame("messageStop", b"{}") + exception_frame("validationException", "no") + error
    )
    assert pairs[0] == ("messageStop", b"{}")
    assert pairs[1][0] == "exception:validationException"
    assert pairs[2] == ("error:InternalFailure", b"boom")


def _flip(data: bytearray, index: int) -> bytes:
    data[index] ^= 0x01
    return bytes(data)


def test_a_bad_prelude_crc_is_refused():
    data = bytearray(event_frame("x", b"{}"))
    with pytest.raises(InvalidResponseError, match="prelude CRC"):
        EventStreamDecoder().feed(_flip(data, 9))
    # a corrupted length is caught by the prelude CRC, not trusted
    with pytest.raises(InvalidResponseError, match="prelude CRC"):
        EventStreamDecoder().feed(_flip(bytearray(event_frame("x", b"{}")), 2))


def test_a_bad_message_crc_is_refused_even_byte_at_a_time():
    data = _flip(bytearray(event_frame("x", b'{"text":"hello"}')), -8)  # in the payload
    decoder = EventStreamDecoder()
    with pytest.raises(InvalidResponseError, match="message CRC"):
        for i in range(len(data)):
            decoder.feed(data[i : i + 1])


def test_an_over_cap_frame_is_refused_at_its_prelude():
    big = event_frame("x", b"a" * 5000)
    decoder = EventStreamDecoder(max_event_bytes=4096)
    with pytest.raises(InvalidResponseError, match="max_event_bytes=4096"):
        decoder.feed(big[:12])  # the prelude alone says it is too big
    assert EventStreamDecoder(max_event_bytes=None).feed(big)[0].payload == b"a" * 5000


def test_impossible_lengths_and_headers():
    def prelude(total: int, hlen: int) -> bytes:
        head = struct.pack("!II", total, hlen)
        return head + struct.pack("!I", zlib.crc32(head))

    with pytest.raises(InvalidResponseError, match="declares"):
        EventStreamDecoder().feed(prelude(8, 0))
    with pytest.raises(InvalidResponseError, match="declares"):
        EventStreamDecoder().feed(prelude(20, 10))
    # a header whose value type is unknown
    head = b"\x01a\x0e"
    body = prelude(12 + len(head) + 4, len(head)) + head
    with pytest.raises(InvalidResponseError, match="unknown value type"):
        EventStreamDecoder().feed(body + struct.pack("!I", zlib.crc32(body)))
    # a string header running past the headers
    head = b"\x01a\x07\x00\x09ab"
    body = prelude(12 + len(head) + 4, len(head)) + head
    with pytest.raises(InvalidResponseError, match="runs past"):
        EventStreamDecoder().feed(body + struct.pack("!I", zlib.crc32(body)))
    dup = frame({"a": "1"}, b"")
    dup_head = dup[12:-4] * 2
    body = prelude(12 + len(dup_head) + 4, len(dup_head)) + dup_head
    with pytest.raises(InvalidResponseError, match="twice"):
        EventStreamDecoder().feed(body + struct.pack("!I", zlib.crc32(body)))


def test_a_cut_frame_stays_pending():
    data = event_frame("a", b"{}") + event_frame("b", b"{}")
    decoder = EventStreamDecoder()
    assert len(decoder.feed(data[:-3])) == 1
    assert decoder.pending_bytes == len(data) // 2 - 3
    assert decoder.close() == []


def _cost(frame_size: int, step: int) -> float:
    data = event_frame("x", b"a" * frame_size) * max(1, (1 << 20) // frame_size)
    decoder = EventStreamDecoder(max_event_bytes=None)
    start = time.perf_counter()
    for i in range(0, len(data), step):
        decoder.feed(data[i : i + step])
    return (time.perf_counter() - start) / len(data)


def test_cost_per_byte_does_not_grow_with_frame_size():
    # 1 MiB in 4 KiB reads: small frames vs one frame of 1 MiB (quadratic buffering
    # would make the big frame hundreds of times slower per byte).
    small = min(_cost(1 << 10, 4096) for _ in range(3))
    big = min(_cost(1 << 20, 4096) for _ in range(3))
    assert big < small * 3
