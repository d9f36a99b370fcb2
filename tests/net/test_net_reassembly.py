"""StreamReassembler: order, duplication, overlap, wraparound, keep-alives, gaps, FIN and RST."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from capdebug.net import Data, Flag, Gap, StreamReassembler, TcpFlags
from capdebug.net.reassembly import Overlap, Released

SYN, FIN, RST, ACK = int(TcpFlags.SYN), int(TcpFlags.FIN), int(TcpFlags.RST), int(TcpFlags.ACK)
MASK = 0xFFFFFFFF

Segment = tuple[int, bytes, int]  # (seq, payload, flags)


def segments(isn: int, data: bytes, sizes: Iterable[int], fin: bool = True) -> list[Segment]:
    """SYN at ``isn``, ``data`` cut into ``sizes``-byte segments, then (optionally) a FIN."""
    out: list[Segment] = [(isn, b"", SYN)]
    pos = 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(((isn + 1 + pos) & MASK, data[pos : pos + size], ACK))
        pos += size
    if pos < len(data):
        out.append(((isn + 1 + pos) & MASK, data[pos:], ACK))
    if fin:
        out.append(((isn + 1 + len(data)) & MASK, b"", FIN | ACK))
    return out


def run(r: StreamReassembler, segs: Sequence[Segment], flush: bool = True) -> list[tuple[int, Released]]:
    """Feed ``segs`` as frames 1..n; return ``(frame fed, item)`` for everything released."""
    out: list[tuple[int, Released]] = []
    for frame, (seq, payload, flags) in enumerate(segs, 1):
        out.extend((frame, item) for item in r.feed(seq, payload, flags, frame, frame * 1000))
    if flush:
        out.extend((0, item) for item in r.flush())
    return out


def stream_of(items: Iterable[tuple[int, Released]]) -> bytes:
    return b"".join(item.data for _, item in items if isinstance(item, Data))


def flags_of(items: Iterable[tuple[int, Released]]) -> list[str]:
    return [item.flag for _, item in items if isinstance(item, Flag)]


def gaps_of(items: Iterable[tuple[int, Released]]) -> list[int]:
    return [item.size for _, item in items if isinstance(item, Gap)]


DATA = bytes(random.Random(7).randrange(256) for _ in range(3000))


def test_in_order() -> None:
    out = run(StreamReassembler(), segments(1000, DATA, [100] * 30))
    assert stream_of(out) == DATA
    assert flags_of(out) == ["SYN", "FIN"]
    assert gaps_of(out) == []


def test_one_byte_at_a_time_and_reverse() -> None:
    segs = segments(5, DATA[:400], [1] * 400)
    r = StreamReassembler()
    out = run(r, segs, flush=False)
    assert stream_of(out) == DATA[:400]
    # Every byte is released in the frame that carried it.
    assert all(item.frame == frame for frame, item in out)
    rev = [segs[0], *reversed(segs[1:])]
    r = StreamReassembler()
    out = run(r, rev, flush=False)
    assert stream_of(out) == DATA[:400]
    assert flags_of(out) == ["SYN", "FIN"]
    # Nothing comes out until the first data byte arrives, in the last frame.
    assert {frame for frame, item in out if isinstance(item, Data)} == {len(rev)}
    assert r.buffered == 0


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=1, max_size=30),
    isn=st.integers(0, MASK),
    seed=st.integers(0, 2**32),
    dups=st.integers(0, 10),
)
def test_any_order_and_duplication(sizes: list[int], isn: int, seed: int, dups: int) -> None:
    rng = random.Random(seed)
    data = DATA[: sum(sizes)]
    segs = segments(isn, data, sizes)
    body = segs[1:] + [rng.choice(segs[1:]) for _ in range(dups)]
    rng.shuffle(body)
    out = run(StreamReassembler(), [segs[0], *body])
    assert stream_of(out) == data
    assert gaps_of(out) == []
    assert flags_of(out) == ["SYN", "FIN"]


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=3, max_size=30),
    isn=st.integers(0, MASK),
    seed=st.integers(0, 2**32),
)
def test_dropped_segment_is_a_gap_of_its_size(sizes: list[int], isn: int, seed: int) -> None:
    rng = random.Random(seed)
    data = DATA[: sum(sizes)]
    segs = segments(isn, data, sizes)
    lost_index = rng.randrange(1, len(segs) - 1)  # a data segment
    lost_seq, lost, _ = segs[lost_index]
    body = segs[1:lost_index] + segs[lost_index + 1 :]
    rng.shuffle(body)
    out = run(StreamReassembler(), [segs[0], *body])
    offset = (lost_seq - isn - 1) & MASK
    assert gaps_of(out) == [len(lost)]
    assert stream_of(out) == data[:offset] + data[offset + len(lost) :]
    assert flags_of(out) == ["SYN", "FIN"]
    # The gap sits exactly where the lost bytes were.
    before = 0
    for _, item in out:
        if isinstance(item, Gap):
            break
        if isinstance(item, Data):
            before += len(item.data)
    assert before == offset


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.tuples(st.integers(0, 199), st.integers(1, 60)), min_size=1, max_size=25),
    seed=st.integers(0, 2**32),
)
def test_overlapping_first_arrival_wins(pieces: list[tuple[int, int]], seed: int) -> None:
    """Each piece carries bytes tagged by arrival; the output keeps the first arrival of each byte."""
    rng = random.Random(seed)
    isn = rng.randrange(2**32)
    n = 200
    r = StreamReassembler()
    r.feed(isn, b"", SYN, 1, 0)
    first: list[int | None] = [None] * n
    out: list[Released] = []
    for k, (start, length) in enumerate(pieces):
        end = min(n, start + length)
        for i in range(start, end):
            if first[i] is None:
                first[i] = k
        out += r.feed((isn + 1 + start) & MASK, bytes([k]) * (end - start), ACK, k + 2, 0)
    # Cover everything so the whole range comes out.
    out += r.feed((isn + 1) & MASK, bytes([255]) * n, ACK, 999, 0)
    expected = bytes(255 if f is None else f for f in first)
    assert b"".join(i.data for i in out if isinstance(i, Data)) == expected
    assert r.buffered == 0


def test_partial_retransmission_and_overlap_in_order() -> None:
    r = StreamReassembler()
    r.feed(99, b"", SYN, 1, 0)
    out = list(r.feed(100, b"abcdef", ACK, 2, 0))
    out += r.feed(103, b"DEFghi", ACK, 3, 0)  # overlaps the released part: only "ghi" is new
    out += r.feed(100, b"ABCDEFGHIjkl", ACK, 4, 0)  # only "jkl" is new
    assert b"".join(i.data for i in out if isinstance(i, Data)) == b"abcdefghijkl"
    assert [i.frame for i in out if isinstance(i, Data)] == [2, 3, 4]
    # The repeated bytes differ from the first copy (kept): each such segment says so, compared
    # with the last bytes released before it.
    overlaps = [(i.offset, i.size, i.differ, i.frame) for i in out if isinstance(i, Overlap)]
    assert overlaps == [(3, 3, 3, 3), (6, 3, 3, 4)]


def test_wraparound() -> None:
    isn = MASK - 10
    data = DATA[:100]
    segs = segments(isn, data, [7] * 15)
    assert any(seq < 100 for seq, _, _ in segs[1:])  # really wraps
    out = run(StreamReassembler(), [segs[0], *reversed(segs[1:])])
    assert stream_of(out) == data
    assert flags_of(out) == ["SYN", "FIN"]


def test_keepalives_and_zero_window_probe() -> None:
    r = StreamReassembler()
    out = list(r.feed(0, b"", SYN, 1, 0))
    out += r.feed(1, b"hello", ACK, 2, 0)
    out += r.feed(5, b"o", ACK, 3, 0)  # keep-alive: 1 byte at next-1, old data
    out += r.feed(6, b"", ACK, 4, 0)  # 0-byte keep-alive / bare ACK
    out += r.feed(6, b"!", ACK, 5, 0)  # zero-window probe: the next byte
    out += r.feed(6, b"!rest", ACK, 6, 0)  # its retransmission once the window opens
    assert b"".join(i.data for i in out if isinstance(i, Data)) == b"hello!rest"
    assert [i.frame for i in out if isinstance(i, Data)] == [2, 5, 6]


def test_syn_retransmission_reported_once() -> None:
    r = StreamReassembler()
    out = list(r.feed(500, b"", SYN, 1, 0)) + list(r.feed(500, b"", SYN, 2, 0))
    out += r.feed(501, b"x", ACK, 3, 0)
    assert [type(i) for i in out] == [Flag, Data]
    assert r.isn == 500


def test_fin_after_data_out_of_order() -> None:
    r = StreamReassembler()
    out = list(r.feed(0, b"", SYN, 1, 0))
    out += r.feed(11, b"", FIN | ACK, 2, 0)  # FIN before the last data
    out += r.feed(11, b"", FIN | ACK, 3, 0)  # its retransmission
    out += r.feed(6, b"world", ACK, 4, 0)
    assert not r.fin_done
    out += r.feed(1, b"hello", ACK, 5, 0)  # fills the hole: data, then FIN, in frame 5
    assert [(type(i).__name__, i.frame) for i in out] == [("Flag", 1), ("Data", 5), ("Data", 5), ("Flag", 5)]
    assert isinstance(out[-1], Flag)
    assert out[-1].flag == "FIN"
    assert r.fin_done
    assert not r.feed(11, b"", FIN | ACK, 6, 0)
    assert not r.feed(12, b"late", ACK, 7, 0)  # beyond the FIN: not stream data
    assert r.flush() == []


def test_fin_with_data_and_data_beyond_fin_dropped() -> None:
    r = StreamReassembler()
    r.feed(0, b"", SYN, 1, 0)
    r.feed(10, b"XYZ", ACK, 2, 0)  # buffered, but later found to lie beyond the FIN
    out = list(r.feed(1, b"abc", FIN | ACK, 3, 0))
    assert [(type(i).__name__) for i in out] == ["Data", "Flag"]
    assert r.buffered == 0


def test_rst_reported_immediately() -> None:
    r = StreamReassembler()
    r.feed(0, b"", SYN, 1, 0)
    r.feed(1, b"abc", ACK, 2, 0)
    r.feed(10, b"tail", ACK, 3, 0)  # behind a hole of 6 bytes
    out = r.feed(4, b"", RST, 4, 0)
    # The gap and the tail carry the frame the tail arrived in; the RST its own.
    assert [(type(i).__name__, i.frame) for i in out] == [("Gap", 3), ("Data", 3), ("Flag", 4)]
    assert isinstance(out[0], Gap)
    assert out[0].size == 6
    assert not r.feed(10, b"more", ACK, 5, 0)
    assert not r.feed(4, b"", RST, 6, 0)
    assert r.flush() == []


def test_peer_ack_past_hole_gives_gap() -> None:
    r = StreamReassembler()
    r.feed(0, b"", SYN, 1, 0)
    r.feed(1, b"abc", ACK, 2, 0)
    assert not r.feed(14, b"later", ACK, 3, 0)  # hole [4, 14)
    assert not r.ack(4, 4, 0)  # acks nothing new beyond the hole
    out = r.ack(10, 5, 0)  # peer got bytes 4..9 that the capture lost
    # Given up at frame 5, the gap says where the hole is: before the segment of frame 3.
    assert [(type(i).__name__, i.frame) for i in out] == [("Gap", 3)]
    assert isinstance(out[0], Gap)
    assert out[0].size == 6
    out = r.ack(19, 6, 0)
    assert [type(i).__name__ for i in out] == ["Gap", "Data"]
    assert isinstance(out[0], Gap)
    assert out[0].size == 4


def test_ack_seen_before_hole_makes_later_data_gap_at_once() -> None:
    r = StreamReassembler()
    r.feed(0, b"", SYN, 1, 0)
    r.feed(1, b"abc", ACK, 2, 0)
    r.ack(8, 3, 0)  # the peer has bytes up to 7 that the capture missed
    out = r.feed(8, b"next", ACK, 4, 0)
    assert [type(i).__name__ for i in out] == ["Gap", "Data"]
    assert isinstance(out[0], Gap)
    assert out[0].size == 4


def test_ack_before_data_in_capture_is_harmless() -> None:
    """An ACK captured before the data it acknowledges (merged captures) must not invent a gap."""
    r = StreamReassembler()
    r.feed(0, b"", SYN, 1, 0)
    r.ack(6, 2, 0)
    out = r.feed(1, b"hello", ACK, 3, 0)
    assert [type(i).__name__ for i in out] == ["Data"]


def test_buffer_bound_gives_gap() -> None:
    r = StreamReassembler(max_buffered=1000)
    r.feed(0, b"", SYN, 1, 0)
    out: list[Released] = []
    for k in range(12):
        out += r.feed(101 + 100 * k, bytes([k]) * 100, ACK, k + 2, 0)  # bytes 1..100 lost
    assert r.buffered <= 1000
    assert [i.size for i in out if isinstance(i, Gap)] == [100]
    assert b"".join(i.data for i in out if isinstance(i, Data)) == b"".join(
        bytes([k]) * 100 for k in range(12)
    )


def test_flush_releases_gap_and_buffered_with_own_frames() -> None:
    r = StreamReassembler()
    r.feed(0, b"", SYN, 1, 0)
    r.feed(1, b"ab", ACK, 2, 20)
    r.feed(5, b"ef", ACK, 3, 30)
    r.feed(9, b"ij", FIN | ACK, 4, 40)
    out = r.flush()
    assert [(type(i).__name__, i.frame) for i in out] == [
        ("Gap", 3),
        ("Data", 3),
        ("Gap", 4),
        ("Data", 4),
        ("Flag", 4),
    ]
    assert [i.size for i in out if isinstance(i, Gap)] == [2, 2]
    assert r.flush() == []


def test_mid_stream_start() -> None:
    r = StreamReassembler()
    out = list(r.feed(777_000, b"middle", ACK, 1, 0))
    out += r.feed(776_990, b"0123456789middle", ACK, 2, 0)  # older bytes: not reported
    out += r.feed(777_006, b"-end", ACK, 3, 0)
    assert b"".join(i.data for i in out if isinstance(i, Data)) == b"middle-end"
    assert r.isn is None


def test_bare_ack_starts_stream() -> None:
    r = StreamReassembler()
    assert not r.feed(42, b"", ACK, 1, 0)
    assert r.started
    out = r.feed(42, b"x", ACK, 2, 0)
    assert [i.data for i in out if isinstance(i, Data)] == [b"x"]
