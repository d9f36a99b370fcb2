"""TCP health verdicts: what the network and the TCP stacks did to a connection, from its
``tcp_health`` event (net/health.py) and its SYN/RST facts.

``by`` names who did it: "client" or "server" for an endpoint, "path" for the network between
them (loss, a black hole, a middlebox forging a RST), None when it cannot be told.
"""

from __future__ import annotations

from ...net.health import DirectionHealth
from .catalog import Verdict
from .model import NAMES, Conn

__all__ = ["HEAVY_LOSS_RATE", "tcp_verdicts"]

HEAVY_LOSS_RATE = 0.02
"""Retransmitted bytes over bytes sent above which the path is called lossy."""
_HEAVY_LOSS_MIN = 5
"""Retransmissions needed before a rate means anything."""
_FULL_SIZE = 1000
"""A stuck segment at least this large, while the peer still answers, points at the path MTU."""
_SLOW_ZERO_WINDOW_NS = 1_000_000_000


def _ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms:.1f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def _bounds_verdicts(c: Conn) -> list[Verdict]:
    """What the capture's bytes or the decoder's bounds did to the connection: copies of the
    same stream bytes that differ, a connection dropped from the full table."""
    out: list[Verdict] = []
    o = c.overlap
    if o is not None:
        more = f" ({c.overlaps} such segments)" if c.overlaps > 1 else ""
        out.append(
            Verdict(
                "overlap_conflict",
                "error",
                "path",
                o.frame,
                f"the {o.from_}'s segment in frame {o.frame} repeats {o.size} stream bytes from offset "
                f"{o.offset} with {o.differ} of them different{more}: the copy that arrived first was "
                "used and this one dropped; one of them was injected on the path or rewritten by a "
                "middlebox, so what was decoded may not be what the peer received",
                "medium",
            )
        )
    e = c.evicted
    if e is not None:
        what = "it had carried data" if e.carried_data else "it was half-open (no data yet)"
        bound = (
            f"{e.limit} connections without data (an eighth of --max-connections)"
            if e.bound == "half_open"
            else f"{e.limit} open connections (--max-connections)"
        )
        out.append(
            Verdict(
                "connection_table_full",
                "warning",
                None,
                e.frame,
                f"dropped from the connection table at frame {e.frame}: the limit of {bound} was "
                f"reached and {what}; its later segments, if any, start a new connection",
            )
        )
    return out


def tcp_verdicts(c: Conn) -> list[Verdict]:
    """The TCP verdicts of one connection (empty when TCP had nothing to say)."""
    out: list[Verdict] = []
    client, server = c.sides
    h = c.health
    if client.syn is not None and server.syn is None and server.rst is not None and not c.tls_seen:
        out.append(
            Verdict(
                "connection_refused",
                "error",
                "server",
                server.rst[0],
                f"connection refused: {c.server} answered the SYN with RST (nothing listens on that "
                "port, or a firewall rejects)",
            )
        )
    out += _bounds_verdicts(c)
    if h is None:
        return out
    sides = (h.client, h.server)
    connect = f"; connect time {_ms(h.connect_ns)}" if h.connect_ns is not None else ""
    if h.client.syns and server.syn is None and server.rst is None and not c.tls_seen and c.evicted is None:
        span = h.client.last_ts_ns - (h.client.first_syn_ts_ns or h.client.last_ts_ns)
        out.append(
            Verdict(
                "syn_unanswered",
                "error",
                "server",
                h.client.last_frame,
                f"{h.client.syns} SYN(s) to {c.server} over {_ms(span)} and no answer: connect "
                "timeout (the host is down or unreachable, or a firewall drops the SYNs)",
            )
        )
    elif h.client.syns > 1 and h.connect_ns is not None:
        out.append(
            Verdict(
                "syn_retries",
                "warning",
                None,
                c.first_frame,
                f"the client sent {h.client.syns} SYNs before the SYN+ACK{connect}: SYNs or SYN+ACKs "
                "were lost (each retry waits 1 s, then 2 s, ...)",
            )
        )
    for i, s in enumerate(sides):
        if s.rst_ttl_off:
            ttls = ", ".join(str(t) for t in sorted(set(s.ttls)))
            ip_id = ""
            if s.rst_ip_id is not None and s.ip_ids:
                ip_id = f"; IP ID {s.rst_ip_id} (its other packets: {', '.join(map(str, s.ip_ids))})"
            out.append(
                Verdict(
                    "injected_rst",
                    "error",
                    "path",
                    s.rst_frame,
                    f"a RST claiming to come from the {NAMES[i]} has TTL {s.rst_ttl} while the "
                    f"{NAMES[i]}'s other packets have TTL {ttls}{ip_id}: probably forged by a "
                    "middlebox (firewall, IPS, load balancer) between the endpoints, not sent by the "
                    f"{NAMES[i]}",
                    "medium",
                )
            )
    for i, s in enumerate(sides):
        out.extend(_loss_verdicts(c, i, s, sides[1 - i]))
        if s.zero_windows:
            severity = "warning" if s.zero_window_ns >= _SLOW_ZERO_WINDOW_NS else "info"
            out.append(
                Verdict(
                    "zero_window",
                    severity,
                    NAMES[i],
                    s.first_zero_window,
                    f"the {NAMES[i]} advertised a zero window {s.zero_windows} time(s), for "
                    f"{_ms(s.zero_window_ns)} in all: its application stopped reading",
                )
            )
    return out


def _loss_verdicts(c: Conn, i: int, s: DirectionHealth, peer: DirectionHealth) -> list[Verdict]:
    out: list[Verdict] = []
    if not s.retransmissions:
        return out
    me, other = NAMES[i], NAMES[1 - i]
    # Retransmissions into a closed window: the receiver was alive and answering, and what it
    # did not acknowledge meanwhile its full receive buffer dropped (seen on loopback when a
    # reader stops: the sender's segments are dropped and resent). That is the reader, not the
    # path, when most of them were so.
    full = s.into_zero_window * 2 > s.retransmissions
    why = (
        f"; {s.into_zero_window} of them while the {other} advertised a zero window: data sent "
        "into a full receive buffer is dropped and resent, so most likely the reader, not the network"
        if full
        else ""
    )
    out.append(
        Verdict(
            "retransmissions",
            "info",
            me,
            s.first_retransmission,
            f"the {me} retransmitted {s.retransmissions} segment(s) ({s.retransmitted_bytes} bytes), "
            f"costing at least {_ms(s.retransmission_ns)} until acknowledged{why}",
        )
    )
    if s.rto_stalls:
        out.append(
            Verdict(
                "rto_stall",
                "warning",
                other if full else "path",
                s.first_retransmission,
                f"{s.rto_stalls} retransmission timeout(s) of the {me}: the connection stalled "
                f"{_ms(s.rto_stall_ns)} waiting for acknowledgments{why}",
                "medium",
            )
        )
    sent = c.sides[i].app_bytes
    if (
        not full
        and s.retransmissions >= _HEAVY_LOSS_MIN
        and sent
        and s.retransmitted_bytes >= HEAVY_LOSS_RATE * sent
    ):
        rate = 100 * s.retransmitted_bytes / sent
        out.append(
            Verdict(
                "heavy_loss",
                "info",
                "path",
                s.first_retransmission,
                f"{me} -> {other}: {s.retransmissions} retransmissions, {s.retransmitted_bytes} of "
                f"{sent} bytes ({rate:.1f}%), {s.rto_stalls} RTO stall(s)",
            )
        )
    stuck = s.stuck
    if stuck is None or stuck.transmissions < 2:
        return out
    peer_answered = peer.last_ts_ns > stuck.first_ts_ns
    if peer_answered and stuck.size >= _FULL_SIZE:
        where = ""
        if me == "server" and c.certificate is None and c.server_hello is None and c.client_hello is not None:
            where = " The handshake stalled at the server's first flight (ServerHello, certificate)."
        elif me == "server" and c.certificate is None and c.client_hello is not None and c.version == 0x0304:
            where = " The handshake stalled at the server's certificate flight."
        out.append(
            Verdict(
                "mtu_blackhole",
                "error",
                "path",
                stuck.first_frame,
                f"a {stuck.size}-byte segment of the {me} was retransmitted {stuck.transmissions} "
                f"time(s) and never acknowledged while the {other} kept answering: an MTU/MSS black "
                "hole (a link with a smaller MTU drops full-size packets and its ICMP 'fragmentation "
                f"needed' does not come back); clamp the MSS or fix ICMP filtering.{where}",
                "medium",
            )
        )
    elif not peer_answered:
        end = "then a RST" if (c.sides[i].rst or c.sides[1 - i].rst) else "then nothing"
        out.append(
            Verdict(
                "unresponsive_peer",
                "error",
                other,
                stuck.first_frame,
                f"the {me} retransmitted {stuck.transmissions} time(s) over "
                f"{_ms(stuck.last_ts_ns - stuck.first_ts_ns)} with no answer from the {other}, "
                f"{end}: the {other} (or the path to it) went away",
                "medium",
            )
        )
    return out
