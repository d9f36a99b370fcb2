"""TcpTracker: roles, connection lifetime, port reuse, frame attribution and event order."""

from __future__ import annotations

from collections.abc import Sequence

from capdebug.net import (
    ConnectionClosed,
    ConnectionStarted,
    Direction,
    FlowEvent,
    StreamData,
    StreamGap,
    TcpFlag,
    TcpFlags,
    TcpSegment,
    TcpTracker,
)

SYN, FIN, RST, ACK, PSH = (
    int(f) for f in (TcpFlags.SYN, TcpFlags.FIN, TcpFlags.RST, TcpFlags.ACK, TcpFlags.PSH)
)
C = (bytes([10, 0, 0, 1]), 40000)
S = (bytes([10, 0, 0, 2]), 443)
Endpoint = tuple[bytes, int]


def seg(frm: Endpoint, to: Endpoint, seq: int, ack: int, flags: int, payload: bytes = b"") -> TcpSegment:
    return TcpSegment(frm[0], frm[1], to[0], to[1], seq, ack, flags, 65535, payload)


class Capture:
    """Feeds segments as consecutive frames and records every event with the frame it came from."""

    def __init__(self) -> None:
        self.tracker = TcpTracker()
        self.frame = 0
        self.events: list[tuple[int, FlowEvent]] = []

    def __call__(self, *segments: TcpSegment) -> list[FlowEvent]:
        got: list[FlowEvent] = []
        for s in segments:
            self.frame += 1
            got += self.tracker.feed(self.frame, self.frame * 10, s)
        self.events += [(self.frame, e) for e in got]
        return got

    def flush(self) -> list[FlowEvent]:
        got = self.tracker.flush()
        self.events += [(0, e) for e in got]
        return got


def describe(events: Sequence[FlowEvent]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for e in events:
        if isinstance(e, ConnectionStarted):
            out.append(("start", e.conn.id))
        elif isinstance(e, ConnectionClosed):
            out.append(("closed", e.conn.id))
        elif isinstance(e, StreamData):
            out.append(("data", e.conn.id, e.direction.name, e.data, e.frame))
        elif isinstance(e, StreamGap):
            out.append(("gap", e.conn.id, e.direction.name, e.size, e.frame))
        else:
            out.append((e.flag, e.conn.id, e.direction.name, e.frame))
    return out


def handshake(cap: Capture, cisn: int = 1000, sisn: int = 5000, c: Endpoint = C) -> None:
    cap(seg(c, S, cisn, 0, SYN), seg(S, c, sisn, cisn + 1, SYN | ACK), seg(c, S, cisn + 1, sisn + 1, ACK))


def test_full_connection_roles_from_syn() -> None:
    cap = Capture()
    handshake(cap)
    cap(
        seg(C, S, 1001, 5001, PSH | ACK, b"hello"),
        seg(S, C, 5001, 1006, PSH | ACK, b"world!"),
        seg(C, S, 1006, 5007, FIN | ACK),
        seg(S, C, 5007, 1007, FIN | ACK),
    )
    assert cap.tracker.open_connections == 0
    assert not cap(seg(C, S, 1007, 5008, ACK))  # the final ACK starts nothing
    assert describe([e for _, e in cap.events]) == [
        ("start", 1),
        ("SYN", 1, "CLIENT", 1),
        ("SYN", 1, "SERVER", 2),
        ("data", 1, "CLIENT", b"hello", 4),
        ("data", 1, "SERVER", b"world!", 5),
        ("FIN", 1, "CLIENT", 6),
        ("FIN", 1, "SERVER", 7),
        ("closed", 1),
    ]
    conn = cap.events[0][1].conn
    assert (conn.client, conn.server, conn.first_frame, conn.roles_from_syn) == (C, S, 1, True)
    assert (conn.client_str, conn.server_str) == ("10.0.0.1:40000", "10.0.0.2:443")
    assert cap.tracker.open_connections == 0
    assert cap.flush() == []


def test_syn_ack_first_gives_roles() -> None:
    cap = Capture()
    got = cap(seg(S, C, 5000, 1001, SYN | ACK))
    conn = got[0].conn
    assert (conn.client, conn.server, conn.roles_from_syn) == (C, S, True)
    assert describe(got) == [("start", 1), ("SYN", 1, "SERVER", 1)]


def test_syn_retransmission_reported_once() -> None:
    cap = Capture()
    got = cap(seg(C, S, 1000, 0, SYN), seg(C, S, 1000, 0, SYN), seg(S, C, 5000, 1001, SYN | ACK))
    got += cap(seg(S, C, 5000, 1001, SYN | ACK), seg(C, S, 1001, 5001, ACK))
    assert describe(got) == [("start", 1), ("SYN", 1, "CLIENT", 1), ("SYN", 1, "SERVER", 3)]


def test_mid_stream_start_guesses_roles() -> None:
    cap = Capture()
    # The capture starts in the middle: the server speaks first, so it is guessed as the client.
    got = cap(
        seg(S, C, 90000, 7000, PSH | ACK, b"server bytes"), seg(C, S, 7000, 90012, PSH | ACK, b"client")
    )
    conn = got[0].conn
    assert (conn.client, conn.roles_from_syn, conn.first_frame) == (S, False, 1)
    assert describe(got)[1:] == [
        ("data", 1, "CLIENT", b"server bytes", 1),
        ("data", 1, "SERVER", b"client", 2),
    ]
    got = cap(seg(C, S, 7006, 90012, PSH | ACK, b" more"), seg(S, C, 90012, 7011, PSH | ACK, b" reply"))
    assert describe(got) == [("data", 1, "SERVER", b" more", 3), ("data", 1, "CLIENT", b" reply", 4)]
    # An old retransmission is still old.
    assert not cap(seg(C, S, 7000, 90012, PSH | ACK, b"client"))


def test_port_reuse_after_close_is_a_new_connection() -> None:
    cap = Capture()
    handshake(cap)
    cap(seg(C, S, 1001, 5001, FIN | ACK), seg(S, C, 5001, 1002, FIN | ACK), seg(C, S, 1002, 5002, ACK))
    assert not cap(seg(C, S, 1000, 0, SYN))  # a stray retransmission of the old SYN
    got = cap(
        seg(C, S, 777, 0, SYN), seg(S, C, 888, 778, SYN | ACK), seg(C, S, 778, 889, PSH | ACK, b"again")
    )
    assert describe(got) == [
        ("start", 2),
        ("SYN", 2, "CLIENT", 8),
        ("SYN", 2, "SERVER", 9),
        ("data", 2, "CLIENT", b"again", 10),
    ]
    assert got[0].conn.first_frame == 8


def test_port_reuse_on_open_tuple_closes_old() -> None:
    cap = Capture()
    handshake(cap)
    cap(seg(C, S, 1001, 5001, PSH | ACK, b"abc"), seg(C, S, 1010, 5001, PSH | ACK, b"zz"))  # hole of 6
    got = cap(seg(C, S, 424242, 0, SYN))
    assert describe(got) == [
        ("gap", 1, "CLIENT", 6, 5),
        ("data", 1, "CLIENT", b"zz", 5),
        ("closed", 1),
        ("start", 2),
        ("SYN", 2, "CLIENT", 6),
    ]
    assert cap.tracker.open_connections == 1


def test_frame_attribution_and_order_within_frame() -> None:
    cap = Capture()
    handshake(cap)
    got = cap(
        seg(C, S, 1004, 5001, PSH | ACK, b"def"),  # frame 4: out of order
        seg(C, S, 1007, 5001, FIN | ACK, b"ghi"),  # frame 5: FIN, still after the hole
        seg(C, S, 1001, 5001, PSH | ACK, b"abc"),  # frame 6: completes everything
    )
    assert describe(got) == [
        ("data", 1, "CLIENT", b"abc", 6),
        ("data", 1, "CLIENT", b"def", 6),
        ("data", 1, "CLIENT", b"ghi", 6),
        ("FIN", 1, "CLIENT", 6),
    ]
    assert cap.tracker.open_connections == 1


def test_rst_closes_and_frees() -> None:
    cap = Capture()
    handshake(cap)
    cap(seg(S, C, 5001, 1001, PSH | ACK, b"hi"), seg(S, C, 5010, 1001, PSH | ACK, b"later"))
    got = cap(seg(C, S, 1001, 0, RST))
    assert describe(got) == [
        # The gap and the data beyond it carry the frame they arrived in (issue 14).
        ("gap", 1, "SERVER", 7, 5),
        ("data", 1, "SERVER", b"later", 5),
        ("RST", 1, "CLIENT", 6),
        ("closed", 1),
    ]
    assert cap.tracker.open_connections == 0
    assert not cap(seg(S, C, 5015, 1001, PSH | ACK, b"in flight"), seg(S, C, 5015, 0, RST))
    assert cap.flush() == []


def test_lost_segment_acked_by_peer_is_a_gap() -> None:
    cap = Capture()
    handshake(cap)
    cap(seg(C, S, 1001, 5001, PSH | ACK, b"one"))
    assert not cap(seg(C, S, 1008, 5001, PSH | ACK, b"three"))  # 1004..1007 was not captured
    got = cap(seg(S, C, 5001, 1013, ACK))  # but the server received it
    # Released by frame 6, they carry frame 5: where the hole is, where "three" arrived.
    assert describe(got) == [("gap", 1, "CLIENT", 4, 5), ("data", 1, "CLIENT", b"three", 5)]


def test_flush_releases_and_closes_everything() -> None:
    cap = Capture()
    handshake(cap)
    handshake(cap, 2000, 6000, c=(C[0], 40001))
    cap(seg(C, S, 1001, 5001, PSH | ACK, b"a"), seg(C, S, 1003, 5001, PSH | ACK, b"c"))
    got = cap.flush()
    assert describe(got) == [
        ("gap", 1, "CLIENT", 1, 8),
        ("data", 1, "CLIENT", b"c", 8),
        ("closed", 1),
        ("closed", 2),
    ]
    assert cap.tracker.open_connections == 0


def test_many_connections_memory_released() -> None:
    cap = Capture()
    started = closed = 0
    for i in range(2000):
        c = (C[0], 10000 + i)
        handshake(cap, 100 * i, 50 * i, c=c)
        cap(seg(c, S, 100 * i + 1, 50 * i + 1, FIN | ACK), seg(S, c, 50 * i + 1, 100 * i + 2, FIN | ACK))
    for _, e in cap.events:
        started += isinstance(e, ConnectionStarted)
        closed += isinstance(e, ConnectionClosed)
    assert started == closed == 2000
    assert cap.tracker.open_connections == 0
    ids = [e.conn.id for _, e in cap.events if isinstance(e, ConnectionStarted)]
    assert ids == list(range(1, 2001))


def test_ipv6_endpoints_and_direction_values() -> None:
    a = (bytes(15) + b"\x01", 5555)
    b = (bytes.fromhex("20010db8000000000000000000000001"), 443)
    cap = Capture()
    got = cap(seg(a, b, 1, 0, SYN))
    conn = got[0].conn
    assert (conn.client_str, conn.server_str) == ("[::1]:5555", "[2001:db8::1]:443")
    flag = got[1]
    assert isinstance(flag, TcpFlag)
    assert flag.direction is Direction.CLIENT
    assert conn.stream(Direction.CLIENT).isn == 1
