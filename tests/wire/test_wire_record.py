"""Record framing, stream sniffing, SSLv2 ClientHello and TLSInnerPlaintext."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capdebug._buffer import Buffer
from capdebug.errors import DecodeError, NeedData
from capdebug.wire import record as r
from capdebug.wire.constants import ContentType

from . import rfc8448_vectors as v

records = st.tuples(st.integers(20, 25), st.sampled_from([0x0300, 0x0301, 0x0303]), st.binary(max_size=300))


def encode(recs: list[tuple[int, int, bytes]]) -> bytes:
    buf = Buffer()
    for ct, version, payload in recs:
        r.push_record_header(buf, r.RecordHeader(ct, version, len(payload)))
        buf.push_bytes(payload)
    return buf.data()


def test_golden_records() -> None:
    ch_record = b"\x16\x03\x01" + len(v.CLIENT_HELLO).to_bytes(2, "big") + v.CLIENT_HELLO
    stream = ch_record + v.SERVER_FLIGHT_RECORD_HEADER + bytes(0x2A2)
    frames, consumed = r.frame_records(stream)
    assert frames == [(22, 0, 196), (23, 201, 0x2A2)]
    assert consumed == len(stream)
    frames, consumed = r.frame_records(stream[:-1])
    assert frames == [(22, 0, 196)] and consumed == 201
    assert r.pull_record_header(Buffer(stream)) == r.RecordHeader(22, 0x0301, 196)


def test_offset_and_memoryview() -> None:
    stream = b"junk" + encode([(23, 0x0303, b"abc"), (21, 0x0303, b"\x01\x00")])
    frames, consumed = r.frame_records(memoryview(stream), 4)
    assert frames == [(23, 4, 3), (21, 12, 2)]
    assert consumed == len(stream) - 4


@pytest.mark.parametrize(
    "header",
    [
        b"\x19\x03\x03\x00\x01",  # 25 tls12_cid is allowed...
    ],
)
def test_tls12_cid_allowed(header: bytes) -> None:
    assert r.frame_records(header + b"x")[0] == [(25, 0, 1)]


@pytest.mark.parametrize(
    "bad",
    [
        b"\x13",  # content type 19, caught from the first byte
        b"\x1a\x03\x03\x00\x00",  # 26
        b"\x17\x02",  # major 2, caught from the second byte
        b"GET / HTTP/1.1\r\n",
        b"\x17\x03\x03\x48\x01",  # 2^14 + 2048 + 1
    ],
)
def test_not_tls_is_decode_error(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        r.frame_records(bad)
    with pytest.raises(DecodeError):
        r.pull_record_header(Buffer(bad + bytes(5)))


def test_largest_tls12_record_is_accepted() -> None:
    n = r.MAX_CIPHERTEXT_LENGTH
    assert r.frame_records(b"\x17\x03\x03" + n.to_bytes(2, "big") + bytes(n))[0] == [(23, 0, n)]


@settings(max_examples=200, deadline=None)
@given(st.lists(records, max_size=6), st.integers(1, 9))
def test_frame_records_in_pieces(recs: list[tuple[int, int, bytes]], step: int) -> None:
    stream = encode(recs)
    expected = [(ct, None, len(p)) for ct, _, p in recs]
    got: list[tuple[int, int, int]] = []
    pending = bytearray()
    base = 0
    for i in range(0, len(stream), step):
        pending += stream[i : i + step]
        frames, used = r.frame_records(pending)
        got.extend((ct, base + off, n) for ct, off, n in frames)
        del pending[:used]
        base += used
    assert [(ct, None, n) for ct, _, n in got] == expected
    assert r.frame_records(stream) == (got, len(stream))
    assert not pending


def test_frame_records_one_byte_at_a_time_with_offset() -> None:
    # The decoder's way: keep one growing buffer and pass the offset of unconsumed data.
    stream = encode([(22, 0x0301, v.CLIENT_HELLO), (20, 0x0303, b"\x01"), (23, 0x0303, bytes(40))])
    buf = bytearray()
    offset = 0
    got = []
    for b in stream:
        buf.append(b)
        frames, used = r.frame_records(buf, offset)
        got.extend(frames)
        offset += used
    assert got == r.frame_records(stream)[0]
    assert offset == len(stream)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_frame_or_decode_error(data: bytes) -> None:
    try:
        frames, consumed = r.frame_records(data)
    except DecodeError:
        return
    pos = 0
    for ct, off, n in frames:
        assert off == pos and 20 <= ct <= 25
        pos = off + 5 + n
    assert consumed == pos <= len(data)


def test_looks_like_tls() -> None:
    ch_record = b"\x16\x03\x01" + len(v.CLIENT_HELLO).to_bytes(2, "big") + v.CLIENT_HELLO
    assert r.looks_like_tls(ch_record)
    assert r.looks_like_tls(ch_record[:3])
    sslv2 = _sslv2_bytes()
    assert r.looks_like_tls(sslv2)
    others = (b"GET / HTTP/1.1", b"SSH-2.0", b"\x16\x03\x05\x00\x10", b"\x16\x03\x01\x00\x00", b"\x16")
    for other in others:
        assert not r.looks_like_tls(other)
    assert not r.looks_like_tls(b"\x17\x03\x03\x00\x10")  # application data is not a first flight


def _sslv2_bytes() -> bytes:
    # The layout of RFC 5246 appendix E.2, written out field by field.
    specs = bytes.fromhex("00002f0000350000ff")
    challenge = bytes(range(16))
    body = b"\x01\x03\x01" + (9).to_bytes(2, "big") + (0).to_bytes(2, "big") + (16).to_bytes(2, "big")
    body += specs + challenge
    return (0x8000 | len(body)).to_bytes(2, "big") + body


def test_sslv2_client_hello() -> None:
    data = _sslv2_bytes()
    hello = r.parse_sslv2_client_hello(data + b"trailing")
    assert hello.version == 0x0301
    assert hello.cipher_specs == (0x2F, 0x35, 0xFF)
    assert hello.session_id == b"" and hello.challenge == bytes(range(16))
    assert hello.length == len(data)
    buf = Buffer()
    r.push_sslv2_client_hello(buf, hello)
    assert buf.data() == data
    for cut in range(len(data)):
        with pytest.raises(NeedData):
            r.parse_sslv2_client_hello(data[:cut])
    bad = bytearray(data)
    bad[2] = 2  # msg_type
    with pytest.raises(DecodeError):
        r.parse_sslv2_client_hello(bytes(bad))
    bad = bytearray(data)
    bad[6] = 10  # cipher_spec_length no longer adds up
    with pytest.raises(DecodeError) as info:
        r.parse_sslv2_client_hello(bytes(bad))
    assert not isinstance(info.value, NeedData)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_sslv2_random_bytes(data: bytes) -> None:
    try:
        hello = r.parse_sslv2_client_hello(data)
    except DecodeError:
        return
    buf = Buffer()
    r.push_sslv2_client_hello(buf, hello)
    assert buf.data() == data[: hello.length]


@given(st.integers(1, 255), st.binary(max_size=50), st.integers(0, 300))
def test_inner_plaintext_round_trip(content_type: int, content: bytes, padding: int) -> None:
    built = r.build_inner_plaintext(content_type, content, padding)
    assert len(built) == len(content) + 1 + padding
    assert r.split_inner_plaintext(built) == (content_type, content)


def test_inner_plaintext_edge_cases() -> None:
    # Trailing zeros of the content itself are indistinguishable from padding only if they
    # come after the type byte; the type byte is the last non-zero byte.
    assert r.split_inner_plaintext(b"ab\x00\x00\x16\x00\x00") == (ContentType.handshake, b"ab\x00\x00")
    assert r.split_inner_plaintext(memoryview(b"\x15")) == (21, b"")
    for all_zero in (b"", b"\x00", bytes(100)):
        with pytest.raises(DecodeError):
            r.split_inner_plaintext(all_zero)
    with pytest.raises(ValueError):
        r.build_inner_plaintext(0, b"x", 0)
