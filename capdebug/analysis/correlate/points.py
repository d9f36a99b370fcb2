"""One capture point: its TLS connections (legs) with the TCP facts correlation needs.

The decoder says which TCP connections carry TLS and what happened on them (handshake,
alerts, closes). Correlating two points also needs what the decoder does not keep: every
segment's sequence number, flags, bytes, IP length and TTL, retransmissions included, because
"sent at A, never arrived at B" is a statement about copies of segments. :func:`tcp_segments`
is that small pass over the capture's packets; :func:`build_point` joins both into legs.

Pure: packets and events in, plain data out.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ...net.defrag import Defragmenter
from ...net.link import ETHERTYPE_IPV4, network_offset
from ...net.tcp import TcpFlags, decode_tcp, format_endpoint
from ...pcap.model import Packet
from ...wire.handshake import ClientHello
from ..events import AlertEvent, AppDataEvent, ConnectionEvent, DecodeEvent, HandshakeEvent
from ..messages import server_name

__all__ = ["CapturePoint", "Leg", "Segment", "build_point", "tcp_segments"]

_SYN, _FIN, _RST, _ACK = int(TcpFlags.SYN), int(TcpFlags.FIN), int(TcpFlags.RST), int(TcpFlags.ACK)
_IPV4_LEN = struct.Struct("!H").unpack_from


@dataclass(slots=True)
class Segment:
    """One captured TCP segment (a copy: retransmissions are separate segments)."""

    frame: int
    ts_ns: int
    src: str
    """"ip:port" of the sender."""
    dst: str
    seq: int
    ack: int
    flags: int
    payload: bytes = field(repr=False)
    ip_length: int
    """Length of the IP packet on the wire (headers included), from the IP header."""
    ttl: int | None
    """IPv4 TTL or IPv6 hop limit (a middlebox forging a segment rarely copies the sender's)."""
    rel: int = 0
    """Sequence number relative to the sender's stream start in this leg (set by the leg)."""
    rel_ack: int | None = None
    """Acknowledgment number relative to the peer's stream start (None without ACK, or when
    the peer's start is unknown)."""


@dataclass(slots=True)
class Leg:
    """One TLS connection as seen at one capture point."""

    point: int
    """Index of the capture point."""
    conn: int
    """Connection number at that point (as ``capdebug decrypt`` numbers them)."""
    client: str
    server: str
    first_frame: int
    roles_from: str = "syn"
    """How the decoder told client from server: "syn", "client_hello" or "guess"."""
    start_ns: int = 0
    end_ns: int = 0
    client_random: bytes | None = None
    sni: str | None = None
    events: list[DecodeEvent] = field(default_factory=list)
    sent: dict[str, list[Segment]] = field(default_factory=lambda: {"client": [], "server": []})
    """Segments by the role that sent them, in capture order."""
    isn: dict[str, int | None] = field(default_factory=lambda: {"client": None, "server": None})
    """The sender's initial sequence number, when its SYN was captured."""

    def app_bytes(self, role: str) -> int:
        """Application-data bytes sent by ``role`` (record lengths as the decoder reports them)."""
        return sum(ev.length for ev in self.events if isinstance(ev, AppDataEvent) and ev.from_ == role)

    def swap_roles(self) -> None:
        """Client and server the other way round: a leg whose roles the decoder guessed (no
        SYN, no ClientHello), matched to a leg that knows them."""
        other = {"client": "server", "server": "client"}
        self.client, self.server = self.server, self.client
        self.sent = {"client": self.sent["server"], "server": self.sent["client"]}
        self.isn = {"client": self.isn["server"], "server": self.isn["client"]}
        swapped: list[DecodeEvent] = []
        for ev in self.events:
            who = getattr(ev, "from_", None)
            # Every event with a sender has ``from_``; replace() keeps its type and other fields.
            swapped.append(dataclasses.replace(ev, from_=other[who]) if who in other else ev)  # type: ignore[type-var]
        self.events = swapped
        self.roles_from = "matched"

    def alerts(self, role: str) -> list[AlertEvent]:
        return [ev for ev in self.events if isinstance(ev, AlertEvent) and ev.from_ == role]


@dataclass(slots=True)
class CapturePoint:
    """Everything correlation knows about one capture file."""

    name: str
    legs: list[Leg]
    first_ns: int
    last_ns: int
    frames: int


def _ttl(linktype: int, data: bytes) -> tuple[int | None, int]:
    """(TTL or hop limit, IP length) of a frame; (None, 0) when it is not IP."""
    ethertype, off = network_offset(linktype, data)
    if off < 0 or off + 20 > len(data):
        return None, 0
    if ethertype == ETHERTYPE_IPV4:
        # RFC 791 3.1: total length at 2, TTL at 8.
        return data[off + 8], _IPV4_LEN(data, off + 2)[0]
    if off + 40 > len(data):
        return None, 0
    # RFC 8200 3: payload length at 4 (40-byte header not counted), hop limit at 7.
    return data[off + 7], 40 + _IPV4_LEN(data, off + 4)[0]


def tcp_segments(packets: Iterable[tuple[int, Packet, int]]) -> list[Segment]:
    """Every TCP segment of ``(frame number, packet, link type)`` items, in capture order."""
    out: list[Segment] = []
    names: dict[tuple[bytes, int], str] = {}
    defrag = Defragmenter()
    for frame, pkt, linktype in packets:
        seg = decode_tcp(linktype, pkt.data, defrag, pkt.ts_ns)
        if seg is None:
            continue
        ttl, ip_length = _ttl(linktype, pkt.data)
        src = names.get((seg.src, seg.sport))
        if src is None:
            src = names[(seg.src, seg.sport)] = format_endpoint(seg.src, seg.sport)
        dst = names.get((seg.dst, seg.dport))
        if dst is None:
            dst = names[(seg.dst, seg.dport)] = format_endpoint(seg.dst, seg.dport)
        out.append(
            Segment(frame, pkt.ts_ns, src, dst, seg.seq, seg.ack, seg.flags, seg.payload, ip_length, ttl)
        )
    return out


def build_point(
    index: int, name: str, events: Sequence[DecodeEvent], segments: Sequence[Segment], frames: int
) -> CapturePoint:
    """Join the decoder's TLS connections with the segments that belong to each.

    A pair of endpoints can carry several connections in turn (port reuse): each owns the
    segments from its first frame until the next one's, as the decoder numbered them.
    """
    legs: dict[int, Leg] = {}
    for ev in events:
        if isinstance(ev, ConnectionEvent):
            legs[ev.conn] = Leg(index, ev.conn, ev.client, ev.server, ev.first_frame, ev.roles_from)
        leg = legs.get(ev.conn)
        if leg is None:
            continue
        leg.events.append(ev)
        if (
            isinstance(ev, HandshakeEvent)
            and isinstance(ev.message, ClientHello)
            and leg.client_random is None
        ):
            leg.client_random = ev.message.random
            leg.sni = server_name(ev.message)
    owners: dict[tuple[str, str], list[Leg]] = {}
    for leg in legs.values():
        owners.setdefault(_pair(leg.client, leg.server), []).append(leg)
    for group in owners.values():
        group.sort(key=lambda lg: lg.first_frame)
    for seg in segments:
        owned = owners.get(_pair(seg.src, seg.dst))
        if not owned:
            continue
        owner = None
        for leg in owned:
            if leg.first_frame <= seg.frame:
                owner = leg
        if owner is None:
            continue
        role = "client" if seg.src == owner.client else "server"
        owner.sent[role].append(seg)
    first_ns = segments[0].ts_ns if segments else 0
    last_ns = max((s.ts_ns for s in segments), default=0)
    for leg in legs.values():
        _relative(leg)
    return CapturePoint(name, list(legs.values()), first_ns, last_ns, frames)


def _relative(leg: Leg) -> None:
    """Sequence numbers relative to each sender's stream start (its SYN's ISN + 1, else the
    lowest sequence number seen), unwrapped across 2**32 from the first segment."""
    times = [s.ts_ns for segs in leg.sent.values() for s in segs]
    leg.start_ns = min(times, default=0)
    leg.end_ns = max(times, default=0)
    bases: dict[str, int] = {}
    for role, segs in leg.sent.items():
        if not segs:
            continue
        syn = next((s for s in segs if s.flags & _SYN), None)
        if syn is not None:
            leg.isn[role] = syn.seq
            base = (syn.seq + 1) & 0xFFFFFFFF
        else:
            first = segs[0].seq
            base = min(first + _diff(s.seq, first) for s in segs) & 0xFFFFFFFF
        bases[role] = base
        for s in segs:
            # A SYN occupies the sequence number before the data (RFC 9293 3.4).
            s.rel = _diff(s.seq, base)
    for role, segs in leg.sent.items():
        peer = bases.get("server" if role == "client" else "client")
        if peer is None:
            continue
        for s in segs:
            if s.flags & _ACK:
                s.rel_ack = _diff(s.ack, peer)


def _diff(a: int, b: int) -> int:
    """``a - b`` in 32-bit sequence space, as a signed distance (RFC 9293 3.4)."""
    d = (a - b) & 0xFFFFFFFF
    return d - (1 << 32) if d >= 1 << 31 else d


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def flag_names(flags: int) -> str:
    return "+".join(n for n, bit in (("SYN", _SYN), ("FIN", _FIN), ("RST", _RST)) if flags & bit)
