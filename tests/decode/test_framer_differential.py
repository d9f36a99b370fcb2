"""Differential test: the decoder's record framing is ``wire.record.scan_records``, and it cuts
every stream exactly as the decoder's own inline loop did before it was replaced.

``_reference_decoder_frame_loop`` below is a copy of the framing part of that loop
(``Decoder._frame`` in ``analysis/decode.py`` before issue 10: its header checks, its limit
``_MAX_RECORD`` = 2^14 + 2048, its "wait for 5 bytes" rule), kept here as the reference so that
this test stays meaningful after the loop is gone. Both sides are fed the same byte streams:
every fixture's TCP streams whole, cut at random points and fed one byte at a time, and
hypothesis-generated garbage, truncations and mutations. After each feed they must agree on
the records cut, where they stopped, whether they stopped at a header that cannot be TLS, and
how many bytes the incomplete record at the front still needs.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capdebug.analysis.decode.framing import cut_records
from capdebug.net import StreamData, TcpTracker, decode_tcp
from capdebug.pcap.model import Packet
from capdebug.pcap.open import open_capture

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

_REFERENCE_MAX_RECORD = (1 << 14) + 2048

Cut = tuple[list[tuple[int, int, int]], int, bool, int]
"""(records as (content type, header offset, length), stop offset, bad header at stop, need)."""


def _reference_decoder_frame_loop(buf: bytes | bytearray, off: int) -> Cut:
    """The pre-issue-10 decoder loop (framing only; record processing and bulk skipping are
    decisions taken per record after the cut, not part of the framing)."""
    end = len(buf)
    records: list[tuple[int, int, int]] = []
    while end - off >= 5:
        ctype = buf[off]
        length = (buf[off + 3] << 8) | buf[off + 4]
        if ctype < 20 or ctype > 25 or buf[off + 1] != 3 or length > _REFERENCE_MAX_RECORD:
            return records, off, True, 0
        if end - off < 5 + length:
            return records, off, False, 5 + length - (end - off)
        records.append((ctype, off, length))
        off += 5 + length
    return records, off, False, 0


def _new(buf: bytes | bytearray, off: int) -> Cut:
    records, stop, bad, need = cut_records(buf, off)
    return list(records), stop, bad, need


def _feed(stream: bytes, cuts: list[int]) -> None:
    """Feed ``stream`` in pieces ending at ``cuts`` (sorted) to both, as the decoder does: a
    growing buffer, framed from where the last call stopped; a bad header is stepped over by
    one byte (the decoder then resynchronises: the same for both sides)."""
    buf = bytearray()
    off = 0
    prev = 0
    for at in [*cuts, len(stream)]:
        buf += stream[prev:at]
        prev = at
        while True:
            want = _reference_decoder_frame_loop(buf, off)
            got = _new(buf, off)
            assert got == want, (off, len(buf))
            off = want[1]
            if not want[2]:
                break
            off += 1


def _streams() -> list[bytes]:
    out: dict[tuple[int, int], bytearray] = {}
    for path in sorted(FIXTURES.glob("*.pcap")):
        tracker = TcpTracker()
        with open_capture(path) as reader:
            for frame, item in enumerate(reader, 1):
                if not isinstance(item, Packet):
                    continue
                seg = decode_tcp(reader.interfaces[item.interface].linktype, item.data)
                if seg is None:
                    continue
                for ev in tracker.feed(frame, item.ts_ns, seg):
                    if isinstance(ev, StreamData):
                        key = (hash(path), hash((ev.conn.id, int(ev.direction))))
                        out.setdefault(key, bytearray()).extend(ev.data)
    return [bytes(s) for s in out.values() if s]


_STREAMS = _streams()


def test_fixture_streams_exist() -> None:
    assert len(_STREAMS) > 40
    assert sum(map(len, _STREAMS)) > 1_000_000


@pytest.mark.parametrize("index", range(len(_STREAMS)))
def test_fixture_stream_whole_and_in_random_cuts(index: int) -> None:
    stream = _STREAMS[index]
    _feed(stream, [])
    rng = random.Random(index)
    cuts = sorted(rng.sample(range(1, len(stream)), min(40, len(stream) - 1))) if len(stream) > 1 else []
    _feed(stream, cuts)


@pytest.mark.parametrize("index", range(len(_STREAMS)))
def test_fixture_stream_start_one_byte_at_a_time(index: int) -> None:
    stream = _STREAMS[index][:6000]
    _feed(stream, list(range(1, len(stream))))


_HEADERISH = st.builds(
    lambda t, major, minor, n, body: bytes((t, major, minor)) + n.to_bytes(2, "big") + body,
    st.integers(17, 27),
    st.sampled_from([3, 3, 3, 2, 0]),
    st.integers(0, 5),
    st.sampled_from([0, 1, 7, 100, (1 << 14) + 2048, (1 << 14) + 2049, 0xFFFF]),
    st.binary(max_size=64),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.one_of(_HEADERISH, st.binary(max_size=40)), max_size=12),
    st.lists(st.integers(0, 2000), max_size=10),
    st.integers(0, 10),
)
def test_garbage_and_truncations(parts: list[bytes], cuts: list[int], start: int) -> None:
    stream = b"".join(parts)
    _feed(stream, sorted({c for c in cuts if 0 < c < len(stream)}))
    # The same from an offset inside the buffer, and truncated.
    for n in (len(stream), len(stream) // 2, max(len(stream) - 1, 0)):
        assert _new(stream[:n], min(start, n)) == _reference_decoder_frame_loop(stream[:n], min(start, n))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_mutated_fixture_streams(data: st.DataObject) -> None:
    stream = bytearray(data.draw(st.sampled_from(_STREAMS))[:4000])
    for _ in range(data.draw(st.integers(0, 4))):
        if stream:
            stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    n = data.draw(st.integers(0, len(stream)))
    cuts = data.draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=8))
    _feed(bytes(stream[:n]), sorted({c for c in cuts if 0 < c < n}))
