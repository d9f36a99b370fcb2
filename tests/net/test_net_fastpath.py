"""The per-packet fast paths give the same answers as the general code they short-cut.

* ``decode_tcp`` reads untagged Ethernet + IPv4/IPv6 + TCP with one unpack; on damaged and
  truncated variants of such frames it must agree with the general link -> IP -> TCP walk.
* ``TcpTracker.feed`` inlines in-order data and skips acknowledgments that release nothing; on
  random segment orders it must release exactly what two :class:`StreamReassembler` fed every
  segment and every acknowledgment release.
* The frame filter of :mod:`capdebug.net.fastpath` takes plain frames inside the reader; with
  it, a consumer must get exactly what :meth:`TcpTracker.feed` alone gives it.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from capdebug.net import (
    ConnectionClosed,
    ConnectionStarted,
    Data,
    Flag,
    Gap,
    StreamData,
    StreamGap,
    StreamReassembler,
    TcpFlag,
    TcpFlags,
    TcpSegment,
    TcpTracker,
    decode_tcp,
)
from capdebug.net.fastpath import share_of
from capdebug.net.reassembly import Released
from capdebug.net.tcp import _decode_tcp
from capdebug.pcap.model import LinkType

SYN, FIN, ACK, PSH, RST = (
    int(f) for f in (TcpFlags.SYN, TcpFlags.FIN, TcpFlags.ACK, TcpFlags.PSH, TcpFlags.RST)
)
MAC = bytes.fromhex("020000000001020000000002")


def tcp_header(seq: int, ack: int, flags: int, options: bytes = b"") -> bytes:
    offset = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", 50123, 443, seq, ack, offset << 4, flags, 65535, 0, 0) + options


def eth_ipv4(tcp: bytes, payload: bytes) -> bytes:
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 7, 0x4000, 64, 6, 0, bytes([192, 0, 2, 1]), bytes(4))
    return MAC + b"\x08\x00" + ip + tcp + payload


def eth_ipv6(tcp: bytes, payload: bytes) -> bytes:
    src = bytes(15) + b"\x01"
    ip = struct.pack("!IHBB16s16s", 0x60000000, len(tcp) + len(payload), 6, 64, src, bytes(16))
    return MAC + b"\x86\xdd" + ip + tcp + payload


@settings(max_examples=400, deadline=None)
@given(
    ipv6=st.booleans(),
    options=st.sampled_from([b"", b"\x01\x01\x01\x01", bytes(12)]),
    payload=st.binary(max_size=40),
    padding=st.sampled_from([b"", bytes(6)]),  # Ethernet pads short frames to 60 bytes
    edits=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=3),
    cut=st.one_of(st.none(), st.integers(0, 120)),
)
def test_decode_fast_path_agrees_with_general_path(
    ipv6: bool,
    options: bytes,
    payload: bytes,
    padding: bytes,
    edits: list[tuple[int, int]],
    cut: int | None,
) -> None:
    tcp = tcp_header(0x01020304, 0xFFFFFFF0, PSH | ACK, options)
    frame = bytearray((eth_ipv6 if ipv6 else eth_ipv4)(tcp, payload) + padding)
    for at, value in edits:
        if at < len(frame):
            frame[at] = value
    data = bytes(frame if cut is None else frame[:cut])
    assert decode_tcp(LinkType.ETHERNET, data) == _decode_tcp(LinkType.ETHERNET, data)


def test_decode_fast_path_fields() -> None:
    # Exact values, so that agreement with the general path is not agreement on a wrong answer.
    for build, addr_len in ((eth_ipv4, 4), (eth_ipv6, 16)):
        tcp = tcp_header(0x01020304, 0xFFFFFFF0, PSH | ACK, b"\x01\x01\x01\x01")
        seg = decode_tcp(LinkType.ETHERNET, build(tcp, b"hello") + bytes(3))
        assert seg is not None
        assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window) == (
            50123,
            443,
            0x01020304,
            0xFFFFFFF0,
            PSH | ACK,
            65535,
        )
        assert seg.payload == b"hello" and not seg.truncated  # the padding is not payload
        assert len(seg.src) == addr_len and seg.src[-1] == 1 and seg.dst == bytes(addr_len)


C = (bytes([10, 0, 0, 1]), 40000)
S = (bytes([10, 0, 0, 2]), 443)
CISN, SISN = 0xFFFFFF00, 0x7FFFFFF0  # the client wraps around 2**32 within a few hundred bytes


def released(items: Sequence[Released]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for r in items:
        if isinstance(r, Data):
            out.append(("data", r.data, r.frame))
        elif isinstance(r, Gap):
            out.append(("gap", r.size, r.frame))
        else:
            assert isinstance(r, Flag)
            out.append((r.flag, r.frame))
    return out


# One step: (sender 0 client / 1 server, start offset, length, ack offset into the peer's stream,
# ACK set, FIN set).
steps = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.integers(0, 300),
        st.integers(0, 60),
        st.integers(-20, 320),
        st.booleans(),
        st.integers(0, 9),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(steps=steps, max_buffered=st.sampled_from([40, 1 << 20]))
def test_tracker_fast_path_agrees_with_reassemblers(
    steps: list[tuple[int, int, int, int, bool, int]], max_buffered: int
) -> None:
    tracker = TcpTracker(max_buffered=max_buffered)
    ref = [StreamReassembler(max_buffered), StreamReassembler(max_buffered)]
    ends = (C, S)
    isns = (CISN, SISN)
    content = [bytes((7 * i + d) & 0xFF for i in range(400)) for d in (0, 1)]
    got: list[tuple[object, ...]] = []
    want: list[tuple[object, ...]] = []
    closed = False
    frame = 0

    def send(d: int, seq: int, ack: int, flags: int, payload: bytes) -> None:
        nonlocal closed
        nonlocal frame
        frame += 1
        seq &= 0xFFFFFFFF
        ack &= 0xFFFFFFFF
        segment = TcpSegment(*ends[d], *ends[1 - d], seq, ack, flags, 65535, payload)
        for ev in tracker.feed(frame, frame, segment):
            if isinstance(ev, StreamData):
                got.append((int(ev.direction), "data", ev.data, ev.frame))
            elif isinstance(ev, StreamGap):
                got.append((int(ev.direction), "gap", ev.size, ev.frame))
            elif isinstance(ev, TcpFlag):
                got.append((int(ev.direction), ev.flag, ev.frame))
            elif isinstance(ev, ConnectionClosed):
                closed = True
            else:
                assert isinstance(ev, ConnectionStarted)
        # The reference follows until the tracker closes the connection (the caller stops then).
        want.extend((d, *r) for r in released(ref[d].feed(seq, payload, flags, frame, frame)))
        if flags & ACK:
            want.extend((1 - d, *r) for r in released(ref[1 - d].ack(ack, frame, frame)))

    send(0, CISN, 0, SYN, b"")
    send(1, SISN, CISN + 1, SYN | ACK, b"")
    for d, start, length, ack_at, has_ack, fin in steps:
        payload = content[d][start : start + length]
        flags = (ACK if has_ack else 0) | (FIN if fin == 0 else 0) | (PSH if payload else 0)
        send(d, isns[d] + 1 + start, isns[1 - d] + 1 + ack_at, flags, payload)
        if closed:
            break
    assert got == want


def test_gap_and_close_on_the_fast_path() -> None:
    # On the in-order fast path of feed, and when an ACK releases a gap in the peer's stream,
    # events name the sender as guessed from the first segment.
    tracker = TcpTracker()
    a = TcpSegment(*S, *C, 90000, 7000, PSH | ACK, 65535, b"server bytes")
    (started, first) = tracker.feed(1, 1, a)
    assert isinstance(started, ConnectionStarted) and isinstance(first, StreamData)
    conn = started.conn
    assert conn.client == S and int(first.direction) == 0 and conn.open
    (data,) = tracker.feed(2, 2, TcpSegment(*C, *S, 7000, 90012, PSH | ACK, 65535, b"hello"))
    assert isinstance(data, StreamData) and int(data.direction) == 1 and data.data == b"hello"
    # S's bytes 90012..90020 are lost, 90020.. buffered, then C acknowledges past the hole.
    assert not tracker.feed(3, 3, TcpSegment(*S, *C, 90020, 7005, PSH | ACK, 65535, b"later"))
    got = tracker.feed(4, 4, TcpSegment(*C, *S, 7005, 90025, PSH | ACK, 65535, b"!"))
    assert [(type(e).__name__, int(e.direction)) for e in got if isinstance(e, (StreamData, StreamGap))] == [
        ("StreamData", 1),
        ("StreamGap", 0),
        ("StreamData", 0),
    ]
    assert tracker.open_connections == 1
    got = tracker.feed(5, 5, TcpSegment(*S, *C, 90000, 0, int(TcpFlags.RST), 65535, b""))
    assert isinstance(got[-1], ConnectionClosed) and tracker.open_connections == 0 and not conn.open


def test_connection_from_an_endpoint_to_itself() -> None:
    # One 4-tuple for both directions: every segment counts as the client's, as before.
    tracker = TcpTracker()
    got = list(tracker.feed(1, 1, TcpSegment(*C, *C, 100, 0, SYN, 65535, b"")))
    got += tracker.feed(2, 2, TcpSegment(*C, *C, 101, 101, PSH | ACK, 65535, b"abc"))
    assert [type(e).__name__ for e in got] == ["ConnectionStarted", "TcpFlag", "StreamData"]
    assert all(int(e.direction) == 0 for e in got if isinstance(e, (StreamData, TcpFlag)))
    flushed = tracker.flush()
    assert isinstance(flushed[-1], ConnectionClosed) and tracker.open_connections == 0


def eth_frame(ipv6: bool, src: tuple[bytes, int], dst: tuple[bytes, int], seq: int, ack: int, flags: int,
              payload: bytes, options: bytes = b"") -> bytes:  # fmt: skip
    offset = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, offset << 4, flags, 65535, 0, 0) + options
    if ipv6:
        ip = struct.pack("!IHBB16s16s", 0x60000000, len(tcp) + len(payload), 6, 64, src[0], dst[0])
        return MAC + b"\x86\xdd" + ip + tcp + payload
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 7, 0x4000, 64, 6, 0, src[0], dst[0])
    return MAC + b"\x08\x00" + ip + tcp + payload


class Consumer:
    """What the decoder does with one direction's bytes, reduced to the fast path's contract:
    drop the first ``skip`` bytes unread, record the rest with their frame."""

    def __init__(self, d: int, log: list[tuple[object, ...]], holds: list[bool]) -> None:
        self.d = d
        self.skip = 0
        self.log = log
        self.holds = holds

    def take(self, data: bytes, frame: int) -> None:
        n = min(self.skip, len(data))
        self.skip -= n
        if data[n:]:
            self.log.append((self.d, "data", data[n:], frame))

    def deliver(self, data: bytes, frame: int, ts_ns: int) -> bool:
        self.take(data, frame)
        return self.holds.pop() if self.holds else False


@settings(max_examples=150, deadline=None)
@given(
    steps=steps,
    ipv6=st.booleans(),
    options=st.lists(st.booleans(), min_size=60, max_size=60),
    counters_at=st.integers(0, 60),
    skips=st.tuples(st.integers(0, 400), st.integers(0, 400)),
    holds=st.lists(st.booleans(), max_size=30),
    share=st.sampled_from([None, 0, 1]),
)
def test_frame_filter_agrees_with_feed(
    steps: list[tuple[int, int, int, int, bool, int]],
    ipv6: bool,
    options: list[bool],
    counters_at: int,
    skips: tuple[int, int],
    holds: list[bool],
    share: int | None,
) -> None:
    """Frames offered to the fast path first (the rest through decode_tcp and feed) give the
    consumer exactly what feed alone gives it: same bytes, same frames, same gaps and flags,
    whatever the skip counters, the consumer's requests to give way and the partition."""
    addr = (bytes(15) + b"\x01", bytes(15) + b"\x02") if ipv6 else (C[0], S[0])
    ends = ((addr[0], C[1]), (addr[1], S[1]))
    isns = (CISN, SISN)
    content = [bytes((7 * i + d) & 0xFF for i in range(400)) for d in (0, 1)]
    partition = None if share is None else (share, 2)
    frames: list[bytes] = []

    def add(d: int, seq: int, ack: int, flags: int, payload: bytes, opts: bool = False) -> None:
        frames.append(
            eth_frame(
                ipv6,
                ends[d],
                ends[1 - d],
                seq & 0xFFFFFFFF,
                ack & 0xFFFFFFFF,
                flags,
                payload,
                b"\x01\x01\x08\x0a" + bytes(8) if opts else b"",
            )
        )

    add(0, CISN, 0, SYN, b"")
    add(1, SISN, CISN + 1, SYN | ACK, b"")
    for i, (d, start, length, ack_at, has_ack, fin) in enumerate(steps):
        payload = content[d][start : start + length]
        flags = (ACK if has_ack else 0) | (FIN if fin == 0 else 0) | (PSH if payload else 0)
        add(d, isns[d] + 1 + start, isns[1 - d] + 1 + ack_at, flags, payload, options[i])

    def run(filtered: bool) -> tuple[list[tuple[object, ...]], int]:
        tracker = TcpTracker(partition=partition)
        log: list[tuple[object, ...]] = []
        consumers = (Consumer(0, log, list(holds)), Consumer(1, log, list(holds)))
        fast = tracker.fast_path()
        take = fast.frame_filter()
        conn = None
        taken = 0
        for frame, data in enumerate(frames, 1):
            if filtered and take(data, 0, len(data), frame, frame):
                taken += 1
            else:
                seg = decode_tcp(LinkType.ETHERNET, data)
                assert seg is not None
                for ev in tracker.feed(frame, frame, seg):
                    if isinstance(ev, ConnectionStarted):
                        conn = ev.conn
                        fast.attach(conn, (consumers[0].deliver, consumers[1].deliver))
                    elif isinstance(ev, StreamData):
                        consumers[ev.direction].take(ev.data, ev.frame)
                    elif isinstance(ev, StreamGap):
                        log.append((int(ev.direction), "gap", ev.size, ev.frame))
                    elif isinstance(ev, TcpFlag):
                        log.append((int(ev.direction), ev.flag, ev.frame))
                    else:
                        assert isinstance(ev, ConnectionClosed)
                        log.append(("closed", frame))
            if frame == counters_at + 2 and conn is not None:
                consumers[0].skip, consumers[1].skip = skips
                fast.attach(conn, (consumers[0].deliver, consumers[1].deliver), consumers)
        for ev in tracker.flush():
            if isinstance(ev, StreamData):
                consumers[ev.direction].take(ev.data, ev.frame)
            elif isinstance(ev, StreamGap):
                log.append((int(ev.direction), "gap", ev.size, ev.frame))
            elif isinstance(ev, TcpFlag):
                log.append((int(ev.direction), ev.flag, ev.frame))
        return [*log, ("skip", consumers[0].skip, consumers[1].skip)], taken

    want, _ = run(False)
    got, _ = run(True)
    assert got == want
    if partition is None or share_of(C[1], S[1], 2) == share:
        assert want[0] == (0, "SYN", 1)
    else:  # another share's connection: as if not captured, both ways
        assert want == [("skip", 0, 0)]


def test_frame_filter_takes_plain_frames_and_gives_way_when_asked() -> None:
    """Exact counts, so that agreement is not agreement on taking nothing: in-order data and
    bare ACKs are taken; a frame is declined after the consumer asked to give way, once."""
    tracker = TcpTracker()
    fast = tracker.fast_path()
    take = fast.frame_filter()
    log: list[tuple[object, ...]] = []
    holds = [False, True]  # popped from the end: the first delivery asks to give way
    consumers = (Consumer(0, log, holds), Consumer(1, log, []))
    syn = eth_frame(False, C, S, 100, 0, SYN, b"")
    (started, _) = tracker.feed(1, 1, decode_tcp(LinkType.ETHERNET, syn))  # type: ignore[arg-type]
    assert isinstance(started, ConnectionStarted)
    fast.attach(started.conn, (consumers[0].deliver, consumers[1].deliver))
    assert not take(syn, 0, len(syn), 1, 1)  # control bits: never taken
    synack = eth_frame(False, S, C, 500, 101, SYN | ACK, b"")
    tracker.feed(2, 2, decode_tcp(LinkType.ETHERNET, synack))  # type: ignore[arg-type]
    frames = [
        eth_frame(False, C, S, 101, 501, ACK, b""),
        eth_frame(False, C, S, 101, 501, PSH | ACK, b"abc"),
        eth_frame(False, C, S, 104, 501, PSH | ACK, b"def"),  # declined: the consumer asked
        eth_frame(False, C, S, 104, 501, PSH | ACK, b"def"),  # taken again afterwards
        eth_frame(False, C, S, 120, 501, PSH | ACK, b"later"),  # a hole: feed's business
    ]
    assert [take(f, 0, len(f), i, i) for i, f in enumerate(frames, 3)] == [True, True, False, True, False]
    assert log == [(0, "data", b"abc", 4), (0, "data", b"def", 6)]
    # The frame filter's entries leave with the connection.
    rst = eth_frame(False, S, C, 501, 107, RST | ACK, b"")
    tracker.feed(9, 9, decode_tcp(LinkType.ETHERNET, rst))  # type: ignore[arg-type]
    late = eth_frame(False, C, S, 107, 501, PSH | ACK, b"ghi")
    assert not take(late, 0, len(late), 10, 10)


def test_frame_filter_on_a_connection_from_an_endpoint_to_itself() -> None:
    # One 4-tuple for both directions: the filter counts its data as the client's, as feed does.
    tracker = TcpTracker()
    fast = tracker.fast_path()
    take = fast.frame_filter()
    log: list[tuple[object, ...]] = []
    consumers = (Consumer(0, log, []), Consumer(1, log, []))
    syn = decode_tcp(LinkType.ETHERNET, eth_frame(False, C, C, 100, 0, SYN, b""))
    assert syn is not None
    (started, _) = tracker.feed(1, 1, syn)
    assert isinstance(started, ConnectionStarted)
    fast.attach(started.conn, (consumers[0].deliver, consumers[1].deliver))
    data = eth_frame(False, C, C, 101, 101, PSH | ACK, b"abc")
    assert take(data, 0, len(data), 2, 2)
    assert log == [(0, "data", b"abc", 2)]
