"""Port reuse after a SYN collision: the SYN-SENT exchange does not end the connection attempt.

The exact sequence a NAT reusing ports produces (RFC 9293 3.10.7.3, RFC 5961 4): the old
connection closes; the client's new SYN (ISN X) meets the server's TIME-WAIT socket, which
answers with a stray ACK from the old sequence space; the client answers that with a RST
(``<SEQ=SEG.ACK><CTL=RST>``), stays in SYN-SENT and retransmits the SYN with the same ISN X;
the handshake and the session follow. The whole session must be one connection.
"""

from __future__ import annotations

from tests.net.test_net_flow import ACK, FIN, PSH, RST, SYN, C, Capture, S, describe, handshake, seg

OLD_C, OLD_S = 1000, 5000  # ISNs of the old connection
X, Y = 0x9000_0000, 0x3000_0000  # ISNs of the new one


def old_connection(cap: Capture) -> None:
    handshake(cap, OLD_C, OLD_S)
    cap(
        seg(C, S, OLD_C + 1, OLD_S + 1, PSH | ACK, b"hi"),
        seg(C, S, OLD_C + 3, OLD_S + 1, FIN | ACK),
        seg(S, C, OLD_S + 1, OLD_C + 4, FIN | ACK),
        seg(C, S, OLD_C + 4, OLD_S + 2, ACK),
    )


def test_syn_collision_then_retransmitted_syn_is_one_connection() -> None:
    cap = Capture()
    old_connection(cap)
    got = cap(
        seg(C, S, X, 0, SYN),
        seg(S, C, OLD_S + 2, OLD_C + 4, ACK),  # TIME-WAIT's challenge ACK
        seg(C, S, OLD_C + 4, 0, RST),  # <SEQ=SEG.ACK><CTL=RST>: stays in SYN-SENT
        seg(C, S, X, 0, SYN),  # the SYN again, same ISN
        seg(S, C, Y, X + 1, SYN | ACK),
        seg(C, S, X + 1, Y + 1, ACK),
        seg(C, S, X + 1, Y + 1, PSH | ACK, b"client hello"),
        seg(S, C, Y + 1, X + 13, PSH | ACK, b"server hello"),
        seg(C, S, X + 13, Y + 13, RST | ACK),
    )
    assert describe(got) == [
        ("start", 2),
        ("SYN", 2, "CLIENT", 8),
        ("SYN", 2, "SERVER", 12),
        ("data", 2, "CLIENT", b"client hello", 14),
        ("data", 2, "SERVER", b"server hello", 15),
        ("RST", 2, "CLIENT", 16),
        ("closed", 2),
    ]


def test_stray_ack_does_not_start_the_servers_direction() -> None:
    # Without the client's RST (a firewall ate it): the stray's sequence number must not become
    # the origin of the server's stream, or the SYN+ACK would open a 2 GiB hole.
    cap = Capture()
    old_connection(cap)
    got = cap(
        seg(C, S, X, 0, SYN),
        seg(S, C, OLD_S + 2, OLD_C + 4, ACK),
        seg(S, C, Y, X + 1, SYN | ACK),
        seg(C, S, X + 1, Y + 1, PSH | ACK, b"abc"),
        seg(S, C, Y + 1, X + 4, PSH | ACK, b"def"),
    )
    assert [d for d in describe(got) if d[0] in ("data", "gap")] == [
        ("data", 2, "CLIENT", b"abc", 11),
        ("data", 2, "SERVER", b"def", 12),
    ]


def test_rst_answering_nothing_still_ends_the_attempt() -> None:
    cap = Capture()
    got = cap(seg(C, S, X, 0, SYN), seg(C, S, X + 1, 0, RST))
    assert describe(got) == [("start", 1), ("SYN", 1, "CLIENT", 1), ("RST", 1, "CLIENT", 2), ("closed", 1)]


def test_refusal_is_acceptable_and_ends_the_attempt() -> None:
    cap = Capture()
    got = cap(seg(C, S, X, 0, SYN), seg(S, C, 0, X + 1, RST | ACK))
    assert describe(got)[-2:] == [("RST", 1, "SERVER", 2), ("closed", 1)]


def test_lost_syn_ack_still_takes_the_servers_data() -> None:
    # The capture lost the SYN+ACK: the server's segments acknowledge the SYN (and data), so
    # they are answers, not strays.
    cap = Capture()
    got = cap(
        seg(C, S, X, 0, SYN),
        seg(C, S, X + 1, Y + 1, PSH | ACK, b"hello"),
        seg(S, C, Y + 1, X + 6, PSH | ACK, b"world"),
    )
    assert ("data", 1, "SERVER", b"world", 3) in describe(got)


def test_old_fin_after_reuse_is_not_a_connection() -> None:
    # Unchanged rule: after the end, the final ACK and retransmissions start nothing.
    cap = Capture()
    old_connection(cap)
    assert cap(seg(S, C, OLD_S + 1, OLD_C + 4, FIN | ACK)) == []


def test_reused_port_whose_syn_the_capture_lost_is_a_new_connection() -> None:
    # The capture lost the new connection's SYN and SYN+ACK: its first segment is data with
    # sequence numbers far from the old connection's, so it is not "after the end".
    cap = Capture()
    old_connection(cap)
    got = cap(
        seg(C, S, X + 1, Y + 1, PSH | ACK, b"client hello"),
        seg(S, C, Y + 1, X + 13, PSH | ACK, b"server hello"),
    )
    assert describe(got) == [
        ("start", 2),
        ("data", 2, "CLIENT", b"client hello", 8),
        ("data", 2, "SERVER", b"server hello", 9),
    ]


def test_late_retransmission_after_close_is_still_dropped() -> None:
    cap = Capture()
    old_connection(cap)
    assert cap(seg(C, S, OLD_C + 1, OLD_S + 2, PSH | ACK, b"hi"), seg(S, C, OLD_S + 2, OLD_C + 4, ACK)) == []
