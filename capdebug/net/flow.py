"""TCP connections: group segments by 4-tuple, assign client/server roles, and reassemble.

:class:`TcpTracker` takes decoded segments in capture order and returns :data:`FlowEvent` values:
a connection starts, stream bytes (or gaps) arrive in each direction, SYN/FIN/RST are seen, and
a connection closes. The byte-level rules live in :mod:`capdebug.net.reassembly`.

Roles. The client is the sender of the SYN (or the receiver of a SYN+ACK when only that was
captured). Without either, the sender of the first segment seen is a guess
(``roles_from_syn=False``); the analysis layer may call :meth:`Connection.swap_roles` when it
knows better (a ClientHello going the other way). Events name the direction by *sender*, as it
was when the event was made.

Lifetime. A connection leaves the table, and its memory is freed, when both FINs were reported
in order, when either side sent an RST, or at :meth:`TcpTracker.flush`; each way emits
:class:`ConnectionClosed` once. The 4-tuple is then remembered for ``max_closed`` frames (a
table of tombstones) so that the final ACK, late retransmissions and the peer's answer to an RST
do not start a bogus connection. A new SYN with another initial sequence number on that
4-tuple (port reuse) does start a new connection, with a new id; so does one on a 4-tuple still
open, which closes the old connection first.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from capdebug.net.reassembly import DEFAULT_MAX_BUFFERED, Data, Gap, Released, StreamReassembler
from capdebug.net.tcp import TcpSegment, format_endpoint
from capdebug.pcap import FrameFilter

__all__ = [
    "Connection",
    "ConnectionClosed",
    "ConnectionStarted",
    "Deliver",
    "Direction",
    "FlowEvent",
    "SkipCounter",
    "StreamData",
    "StreamGap",
    "TcpFlag",
    "TcpTracker",
    "share_of",
]

_FIN = 0x01
_SYN = 0x02
_RST = 0x04
_ACK = 0x10
_CONTROL = _FIN | _SYN | _RST
_MASK = 0xFFFFFFFF
_HALF = 0x80000000

Endpoint = tuple[bytes, int]
"""``(address bytes, port)``."""


class Direction(enum.IntEnum):
    """Who sent the bytes or flag an event is about."""

    CLIENT = 0
    SERVER = 1


_DIRECTIONS = (Direction.CLIENT, Direction.SERVER)


class Connection:
    """One TCP connection. Mutable: the tracker updates it, the analysis may swap its roles."""

    __slots__ = ("_sides", "client", "first_frame", "id", "roles_from_syn", "server", "streams")

    def __init__(
        self,
        conn_id: int,
        client: Endpoint,
        server: Endpoint,
        first_frame: int,
        roles_from_syn: bool,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> None:
        self.id = conn_id
        """1-based, in order of first appearance in the capture."""
        self.client = client
        self.server = server
        self.first_frame = first_frame
        """Frame (1-based) of the first segment seen."""
        self.roles_from_syn = roles_from_syn
        """The roles come from a SYN or SYN+ACK, not from a guess."""
        self.streams = [StreamReassembler(max_buffered), StreamReassembler(max_buffered)]
        """Reassembly state per sending side, indexed by :class:`Direction`."""
        self._sides: tuple[_Side, ...] = ()  # the tracker's table entries, kept in step by swap_roles

    @property
    def client_str(self) -> str:
        return format_endpoint(*self.client)

    @property
    def server_str(self) -> str:
        return format_endpoint(*self.server)

    def stream(self, direction: Direction) -> StreamReassembler:
        """Reassembly state of the bytes sent by ``direction``."""
        return self.streams[direction]

    def swap_roles(self) -> None:
        """Exchange client and server: later events name directions the other way round."""
        self.client, self.server = self.server, self.client
        self.streams.reverse()
        for side in self._sides:
            side.direction = _DIRECTIONS[1 - side.direction]

    def __repr__(self) -> str:
        return f"Connection(id={self.id}, client={self.client_str}, server={self.server_str})"


class _Side:
    """What the tracker's table holds for one direction of a connection: everything the per-packet
    fast path needs, one dictionary lookup away (no key normalisation, no direction test)."""

    __slots__ = ("conn", "direction", "peer", "stream")

    def __init__(self, conn: Connection, direction: Direction) -> None:
        self.conn = conn
        self.direction = direction
        """Who sends on this side (:meth:`Connection.swap_roles` flips it)."""
        self.stream = conn.streams[direction]
        """Reassembly of the bytes this side sends (the same object whatever the roles)."""
        self.peer = conn.streams[1 - direction]
        """Reassembly of the other side's bytes, which this side's ACKs acknowledge."""


# Not frozen (hot path: frozen construction costs three times as much); treat as immutable.
@dataclass(slots=True)
class ConnectionStarted:
    """The first segment of a connection was seen."""

    conn: Connection


@dataclass(slots=True)
class StreamData:
    """In-order stream bytes sent by ``direction``."""

    conn: Connection
    direction: Direction
    data: bytes
    frame: int
    """Frame that completed these bytes (the frame in which the last of them arrived)."""
    ts_ns: int


@dataclass(slots=True)
class StreamGap:
    """``size`` stream bytes sent by ``direction`` are missing from the capture."""

    conn: Connection
    direction: Direction
    size: int
    frame: int
    ts_ns: int


@dataclass(slots=True)
class TcpFlag:
    """``"SYN"``, ``"FIN"`` or ``"RST"`` sent by ``direction``, reported once each."""

    conn: Connection
    direction: Direction
    flag: str
    frame: int
    ts_ns: int


@dataclass(slots=True)
class ConnectionClosed:
    """The connection left the tracker (both FINs, an RST, or the end of the capture)."""

    conn: Connection


FlowEvent = ConnectionStarted | StreamData | StreamGap | TcpFlag | ConnectionClosed

_Key = tuple[bytes, int, bytes, int]
_NOTHING: tuple[FlowEvent, ...] = ()


class SkipCounter(Protocol):
    """A consumer's count of the next in-order bytes of one direction it will drop unread."""

    skip: int


class _NoSkip:
    __slots__ = ("skip",)

    def __init__(self) -> None:
        self.skip = 0


Deliver = Callable[[bytes, int, int], None]
"""``deliver(data, frame, ts_ns)``: in-order stream bytes of one direction, as a
:class:`StreamData` would carry them."""


# What frame_filter reads of an untagged Ethernet frame, from the EtherType (offset 12) to the
# TCP flags: the fixed IPv4 header (RFC 791 3.1: version/IHL, total length, flags/fragment
# offset, protocol; the addresses are skipped, they are sliced as the lookup key) and the TCP
# ports, sequence, acknowledgment, data offset and flags (RFC 9293 3.1).
_FILTER_V4 = struct.Struct("!HBxHxxHxB10xHHIIBB").unpack_from
# The same for IPv6 (RFC 8200 3) with TCP as the first next header: version nibble, payload
# length, next header.
_FILTER_V6 = struct.Struct("!HB3xHB33xHHIIBB").unpack_from
_Direct = tuple["StreamReassembler", "StreamReassembler", SkipCounter, Deliver]


def share_of(sport: int, dport: int, shares: int) -> int:
    """Which of ``shares`` shares a connection between these two ports belongs to: the same
    whichever way a segment goes, and spread by a multiplicative hash because port numbers are
    not random (Linux hands out even ephemeral ports to connect(), so a sum or a parity would
    put every connection to one server port in the same share). frame_filter inlines it."""
    return (((sport ^ dport) * 0x9E3779B1 & 0xFFFFFFFF) >> 16) % shares


def _raw_key(src: Endpoint, dst: Endpoint) -> bytes:
    """A direction's addresses and ports as they lie in an IP+TCP header: source and destination
    address, then source and destination port (contiguous when there are no IP options)."""
    return src[0] + dst[0] + src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big")


def _canonical(src: bytes, sport: int, dst: bytes, dport: int) -> _Key:
    """The 4-tuple of a connection whichever way a segment goes (the key of closed connections)."""
    if sport < dport or (sport == dport and src <= dst):
        return (src, sport, dst, dport)
    return (dst, dport, src, sport)


def _wrap(out: list[FlowEvent], conn: Connection, d: int, released: Sequence[Released]) -> None:
    direction = _DIRECTIONS[d]
    for r in released:
        if isinstance(r, Data):
            out.append(StreamData(conn, direction, r.data, r.frame, r.ts_ns))
        elif isinstance(r, Gap):
            out.append(StreamGap(conn, direction, r.size, r.frame, r.ts_ns))
        else:
            out.append(TcpFlag(conn, direction, r.flag, r.frame, r.ts_ns))


class TcpTracker:
    """Follow every TCP connection of a capture; see the module docstring."""

    __slots__ = (
        "_closed",
        "_direct",
        "_last_id",
        "_open",
        "_table",
        "first_frames",
        "hold",
        "max_buffered",
        "max_closed",
        "partition",
    )

    def __init__(
        self,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_closed: int = 1 << 17,
        *,
        partition: tuple[int, int] | None = None,
    ) -> None:
        self.partition = partition
        """``(k, n)``: follow only the connections whose ports fall in share ``k`` of ``n``
        (:func:`share_of`), as if the others were not in the capture (one share of the work when
        ``n`` processes read the same capture). Every segment of a connection carries the same
        two ports, so a connection is never split between shares."""
        self.first_frames: list[int] = []
        """With a partition: the first frame of each connection followed (connection ``i``
        started in ``first_frames[i - 1]``), to number them as one tracker would have."""
        self.max_buffered = max_buffered
        """Per direction: bytes held behind a hole before it becomes a gap."""
        self.max_closed = max_closed
        """For how many frames a closed 4-tuple is remembered."""
        # Both directions of every open connection: (src, sport, dst, dport) as sent -> its side.
        self._table: dict[_Key, _Side] = {}
        self._closed: dict[_Key, tuple[int | None, int]] = {}  # closed 4-tuple -> (client ISN, frame)
        # Directions whose frames frame_filter may take: raw key -> (its stream, the peer's
        # stream, the consumer's skip counter for its bytes, where its data goes).
        self._direct: dict[bytes, _Direct] = {}
        self.hold = False
        """While True, :meth:`frame_filter` delivers nothing: frames with data for the consumer go
        through :meth:`feed` (e.g. so that the consumer hands out the events it has piled up)."""
        self._last_id = 0
        self._open = 0

    @property
    def open_connections(self) -> int:
        """Connections currently held in memory."""
        return self._open

    def deliver_direct(
        self,
        conn: Connection,
        deliver: tuple[Deliver, Deliver],
        counters: tuple[SkipCounter, SkipCounter] | None = None,
    ) -> None:
        """Let :meth:`frame_filter` take the plain frames of ``conn``: in-order data goes
        straight to ``deliver[d]`` (``d`` the sending :class:`Direction`) instead of a
        :class:`StreamData` from :meth:`feed`, and bare ACKs that release nothing are dropped,
        as :meth:`feed` would. ``counters[d].skip``, when given, is how many of the next in-order
        bytes sent by ``d`` the consumer drops unread: segments wholly inside them are not
        delivered at all and the filter lowers the count instead (the consumer keeps it
        otherwise). Calling it again replaces the entries; they leave with the connection."""
        if conn._sides:
            streams = conn.streams
            c0, c1 = counters if counters is not None else (_NoSkip(), _NoSkip())
            self._direct[_raw_key(conn.client, conn.server)] = (streams[0], streams[1], c0, deliver[0])
            self._direct[_raw_key(conn.server, conn.client)] = (streams[1], streams[0], c1, deliver[1])

    def frame_filter(self) -> FrameFilter:
        """A predicate for :meth:`capdebug.pcap.CaptureReader.skip_frames` (Ethernet frames).

        ``take(window, start, stop, frame, ts_ns)`` is True when it has dealt with the frame
        ``window[start:stop]`` itself: a segment of a connection given to
        :meth:`deliver_direct` with no control flag, in order, and acknowledging nothing beyond
        what the other side has released. It updates the stream state exactly as :meth:`feed`
        would and hands the data to the consumer. Anything else (IP options, VLAN tags,
        fragments, truncation, SYN/FIN/RST, holes, retransmissions) is left to :meth:`feed`,
        and so is every frame with data to deliver while :attr:`hold` is set. With a
        :attr:`partition`, the plain frames of other shares' connections are taken and dropped.

        The point is speed: a frame taken here costs two unpacks and a dictionary lookup, where
        :meth:`feed` needs a packet, a segment and an event object."""
        get = self._direct.get
        v4 = _FILTER_V4
        v6 = _FILTER_V6
        tracker = self
        share, shares = self.partition or (0, 1)

        def take(buf: bytes, start: int, stop: int, frame: int, ts_ns: int) -> bool:
            n = stop - start
            if n < 54:
                return False
            ethertype, ver, length, frag, proto, sport, dport, seq, ack, offset_byte, flags = v4(
                buf, start + 12
            )
            if ethertype == 0x0800:
                if ver != 0x45 or proto != 6 or frag & 0x3FFF:
                    return False
                if shares > 1 and (((sport ^ dport) * 0x9E3779B1 & 0xFFFFFFFF) >> 16) % shares != share:
                    return True  # another share's connection: as if not captured
                if flags & _CONTROL:
                    return False
                entry = get(buf[start + 26 : start + 38])
                end = 14 + length  # the IPv4 total length counts its header
                size = end - 34 - ((offset_byte >> 4) << 2)
            elif ethertype == 0x86DD and n >= 74:
                ethertype, ver, length, proto, sport, dport, seq, ack, offset_byte, flags = v6(
                    buf, start + 12
                )
                if ver >> 4 != 6 or proto != 6:
                    return False
                if shares > 1 and (((sport ^ dport) * 0x9E3779B1 & 0xFFFFFFFF) >> 16) % shares != share:
                    return True
                if flags & _CONTROL:
                    return False
                entry = get(buf[start + 22 : start + 58])
                end = 54 + length  # the IPv6 payload length does not
                size = end - 54 - ((offset_byte >> 4) << 2)
            else:
                return False
            if entry is None or end > n or size < 0 or offset_byte < 0x50:
                return False
            mine, peer, counter, deliver = entry
            nxt = mine._next
            if nxt is None:
                return False
            if flags & _ACK:
                pnxt = peer._next
                if pnxt is not None and 0 < (ack - pnxt) & _MASK < _HALF:
                    return False
            if size:
                if (seq - nxt) & _MASK or mine._fin is not None or mine._starts or mine.rst:
                    return False
                skip = counter.skip
                if skip > size:
                    counter.skip = skip - size
                elif tracker.hold:
                    return False
                else:
                    mine._next = nxt + size
                    deliver(buf[start + end - size : start + end], frame, ts_ns)
                    return True
                mine._next = nxt + size
            return True

        return take

    def feed(self, frame: int, ts_ns: int, seg: TcpSegment) -> Sequence[FlowEvent]:
        """Take the segment captured in ``frame`` (1-based) at ``ts_ns``; return its events."""
        side = self._table.get((seg.src, seg.sport, seg.dst, seg.dport))
        if side is None:
            part = self.partition
            if part is not None and share_of(seg.sport, seg.dport, part[1]) != part[0]:
                return _NOTHING
            return self._feed_slow(None, frame, ts_ns, seg)
        flags = seg.flags
        if not flags & _CONTROL:
            # Fast path: in-order data or a bare ACK on a started stream, the bulk of any capture.
            # It inlines StreamReassembler.take_in_order and skips StreamReassembler.ack when the
            # acknowledgment is not beyond the other side's next position, where ack() would
            # release nothing (and the acknowledgment it would record can never matter: a hole
            # only ever opens at or beyond that position). Everything else takes _process.
            mine = side.stream
            nxt = mine._next
            if nxt is not None:
                payload = seg.payload
                if payload:
                    if (seg.seq - nxt) & _MASK or mine._fin is not None or mine._starts or mine.rst:
                        return self._process(side.conn, side.direction, frame, ts_ns, seg, None)
                    mine._next = nxt + len(payload)
                    data = StreamData(side.conn, side.direction, payload, frame, ts_ns)
                    if flags & _ACK:
                        peer = side.peer
                        pnxt = peer._next
                        if pnxt is not None and 0 < (seg.ack - pnxt) & _MASK < _HALF:
                            acked = peer.ack(seg.ack, frame, ts_ns)
                            if acked:
                                conn = side.conn
                                out: list[FlowEvent] = [data]
                                _wrap(out, conn, 1 - side.direction, acked)
                                if mine.fin_done and peer.fin_done:
                                    self._close(conn, out, frame)
                                return out
                    return (data,)
                if not flags & _ACK:
                    return _NOTHING
                pnxt = side.peer._next
                if pnxt is None or not 0 < (seg.ack - pnxt) & _MASK < _HALF:
                    return _NOTHING
        elif flags & (_SYN | _ACK) == _SYN:
            return self._feed_slow(side.conn, frame, ts_ns, seg)
        return self._process(side.conn, side.direction, frame, ts_ns, seg, None)

    def _process(
        self, conn: Connection, d: int, frame: int, ts_ns: int, seg: TcpSegment, out: list[FlowEvent] | None
    ) -> Sequence[FlowEvent]:
        flags = seg.flags
        streams = conn.streams
        if flags & _RST:
            return self._reset(conn, d, frame, ts_ns, out)
        released = streams[d].feed(seg.seq, seg.payload, flags, frame, ts_ns, seg.truncated)
        acked = streams[1 - d].ack(seg.ack, frame, ts_ns) if flags & _ACK else ()
        if not released and not acked:
            return _NOTHING if out is None else out
        if out is None:
            out = []
        if released:
            _wrap(out, conn, d, released)
        if acked:
            _wrap(out, conn, 1 - d, acked)
        if streams[0].fin_done and streams[1].fin_done:
            self._close(conn, out, frame)
        return out

    def _feed_slow(
        self, conn: Connection | None, frame: int, ts_ns: int, seg: TcpSegment
    ) -> Sequence[FlowEvent]:
        """A segment of an unknown 4-tuple, or a bare SYN (maybe a new connection on the same one)."""
        key = _canonical(seg.src, seg.sport, seg.dst, seg.dport)
        flags = seg.flags
        pure_syn = flags & (_SYN | _ACK) == _SYN
        out: list[FlowEvent] = []
        if conn is not None:
            client = conn.client
            d = 0 if client[1] == seg.sport and client[0] == seg.src else 1
            stream = conn.streams[d]
            if not stream.started or stream.isn == seg.seq:
                # The first segment of this direction, or a retransmitted SYN.
                return self._process(conn, d, frame, ts_ns, seg, None)
            # Another ISN on an open 4-tuple: the old connection is over (port reuse).
            for i, s in enumerate(conn.streams):
                _wrap(out, conn, i, s.flush())
            self._close(conn, out, frame)
        elif (tomb := self._closed.get(key)) is not None and frame - tomb[1] <= self.max_closed:
            if not pure_syn or tomb[0] == seg.seq:
                return _NOTHING  # after the end: final ACK, retransmission, answer to an RST
            del self._closed[key]
        if flags & _RST:
            # An RST alone says nothing worth a connection (e.g. the answer to a port scan).
            return out
        sender = (seg.src, seg.sport)
        receiver = (seg.dst, seg.dport)
        self._last_id += 1
        if self.partition is not None:
            self.first_frames.append(frame)
        if pure_syn or not flags & _SYN:
            conn = Connection(self._last_id, sender, receiver, frame, pure_syn, self.max_buffered)
            d = 0
        else:  # SYN+ACK: the sender is the server
            conn = Connection(self._last_id, receiver, sender, frame, True, self.max_buffered)
            d = 1
        self._register(conn)
        out.append(ConnectionStarted(conn))
        return self._process(conn, d, frame, ts_ns, seg, out)

    def _reset(
        self, conn: Connection, d: int, frame: int, ts_ns: int, out: list[FlowEvent] | None
    ) -> list[FlowEvent]:
        if out is None:
            out = []
        # What either side still holds is released first: the RST ends both streams.
        _wrap(out, conn, d, conn.streams[d].abort(frame, ts_ns))
        _wrap(out, conn, 1 - d, conn.streams[1 - d].abort(frame, ts_ns))
        out.append(TcpFlag(conn, _DIRECTIONS[d], "RST", frame, ts_ns))
        self._close(conn, out, frame)
        return out

    def _register(self, conn: Connection) -> None:
        client, server = conn.client, conn.server
        sides = (_Side(conn, Direction.CLIENT), _Side(conn, Direction.SERVER))
        conn._sides = sides
        self._open += 1
        table = self._table
        # Server first: a connection from an endpoint to itself has one key, and the client's
        # side must win it (the sender of such a segment counts as the client).
        table[(server[0], server[1], client[0], client[1])] = sides[1]
        table[(client[0], client[1], server[0], server[1])] = sides[0]

    def _close(self, conn: Connection, out: list[FlowEvent], frame: int) -> None:
        client, server = conn.client, conn.server
        table = self._table
        table.pop((server[0], server[1], client[0], client[1]), None)
        table.pop((client[0], client[1], server[0], server[1]), None)
        if self._direct:
            self._direct.pop(_raw_key(client, server), None)
            self._direct.pop(_raw_key(server, client), None)
        conn._sides = ()
        self._open -= 1
        key = _canonical(client[0], client[1], server[0], server[1])
        closed = self._closed
        # Remembered for max_closed frames: a rule on the connection's own frames (a count of
        # other closes would make a share of the capture remember differently), and a bound on
        # memory too, as a frame closes at most two connections.
        closed.pop(key, None)
        closed[key] = (conn.streams[0].isn, frame)
        while frame - next(iter(closed.values()))[1] > self.max_closed:
            del closed[next(iter(closed))]
        out.append(ConnectionClosed(conn))

    def flush(self) -> list[FlowEvent]:
        """End of capture: release what every connection still holds and close them all."""
        out: list[FlowEvent] = []
        # dict.fromkeys: each connection once, in order of first appearance.
        for conn in list(dict.fromkeys(side.conn for side in self._table.values())):
            for d, stream in enumerate(conn.streams):
                _wrap(out, conn, d, stream.flush())
            self._close(conn, out, -1)
        return out
