"""TCP connections: group segments by 4-tuple, assign client/server roles, and reassemble.

:class:`TcpTracker` takes decoded segments in capture order and returns :data:`FlowEvent` values:
a connection starts, stream bytes (or gaps) arrive in each direction, SYN/FIN/RST are seen, and
a connection closes. The byte-level rules live in :mod:`capdebug.net.reassembly`.

Roles. The client is the sender of the SYN (or the receiver of a SYN+ACK when only that was
captured). Without either, the sender of the first segment seen is a guess
(``roles_from_syn=False``) that the analysis layer may revise for itself (a ClientHello going
the other way); events keep naming directions by this guess.

Lifetime. A connection leaves the table, and its memory is freed, when both FINs were reported
in order, when either side sent an RST, or at :meth:`TcpTracker.flush`; each way emits
:class:`ConnectionClosed` once. The 4-tuple is then remembered for ``max_closed`` frames (a
table of tombstones) so that the final ACK, late retransmissions and the peer's answer to an RST
do not start a bogus connection: a segment is "after the end" when its sequence number lies in
the numbers its direction used. Of those, the first RST after both FINs is still reported (a
:class:`TcpFlag` of the closed connection, after its :class:`ConnectionClosed`).
A new SYN with another initial sequence number on that 4-tuple
(port reuse) does start a new connection, with a new id, and so does a segment outside those
numbers (a reused port whose SYN the capture lost); a new SYN on a 4-tuple still open closes
the old connection first.

SYN-SENT. Until the SYN's receiver answers, a segment from it that does not acknowledge the SYN
(the challenge ACK of a TIME-WAIT socket meeting a reused port) is ignored, and the RST with
which the SYN's sender answers it does not end the attempt: that sender stays in SYN-SENT and
retransmits the same SYN (RFC 9293 3.10.7.3; see :meth:`TcpTracker._syn_sent`).

Bounded state. The table holds at most ``max_connections`` open connections
(:data:`DEFAULT_MAX_CONNECTIONS`, 65,536), and of them at most ``max_half_open`` that have not
carried data (an eighth of the limit, :data:`HALF_OPEN_SHARE`: 8,192 by default), as a kernel
keeps its SYN queue apart from its established connections. A connection costs little until it
carries data (its reassemblers allocate nothing before a hole), but a SYN flood opens them by the
hundred thousand and never closes them, and whoever follows the connections (the decoder) keeps
a few kilobytes for each. When a new connection finds the table full, or as many connections
without data as ``max_half_open``, the oldest connection that never carried data is pushed out
(a half-open attempt: nothing of it is lost but the chance to see its answer), or, when every
connection of a full table carried data, the one that was found so first: its
held bytes are released (holes as gaps), it closes with :attr:`Connection.evicted` set (the
consumer says so), and no tombstone is kept, so that a later segment of it starts a new
connection, under a new id, rather than being ignored. :attr:`TcpTracker.evicted` counts them.

Fast path. :meth:`TcpTracker.fast_path` gives the tracker's :class:`~capdebug.net.fastpath.FastPath`,
which takes plain frames inside the capture reader instead of :meth:`TcpTracker.feed`, with the
same result (see :mod:`capdebug.net.fastpath`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Final

from capdebug.net.fastpath import FastPath, share_of
from capdebug.net.flow_events import (
    ConnectionClosed,
    ConnectionStarted,
    FlowEvent,
    StreamData,
    StreamGap,
    StreamOverlap,
    TcpFlag,
)
from capdebug.net.reassembly import (
    DEFAULT_MAX_BUFFERED,
    Data,
    Gap,
    Overlap,
    Released,
    StreamReassembler,
)
from capdebug.net.tcp import ACK as _ACK
from capdebug.net.tcp import CONTROL as _CONTROL
from capdebug.net.tcp import RST as _RST
from capdebug.net.tcp import SYN as _SYN
from capdebug.net.tcp import TcpSegment, format_endpoint

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "Connection",
    "ConnectionClosed",
    "ConnectionStarted",
    "Direction",
    "Endpoint",
    "FlowEvent",
    "StreamData",
    "StreamGap",
    "StreamOverlap",
    "TcpFlag",
    "TcpTracker",
    "share_of",
]

_MASK: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000

DEFAULT_MAX_CONNECTIONS: Final = 1 << 16
"""Connections the tracker holds open at once (:attr:`TcpTracker.max_connections`)."""
HALF_OPEN_SHARE: Final = 8
"""Of :attr:`TcpTracker.max_connections`, at most one in this many may be connections that have
not carried data (:attr:`TcpTracker.max_half_open`)."""
_SYN_SENT_SLACK: Final = 1 << 16
"""How far beyond what the capture shows of the SYN's sender an acknowledgment from its peer
may go and still count as an answer (segments the capture lost); a stray acknowledgment, from
an unrelated sequence space, falls there with a chance of 2**-16."""

Endpoint = tuple[bytes, int]
"""``(address bytes, port)``."""


class Direction(enum.IntEnum):
    """Who sent the bytes or flag an event is about."""

    CLIENT = 0
    SERVER = 1


_DIRECTIONS: Final = (Direction.CLIENT, Direction.SERVER)


class Connection:
    """One TCP connection. Mutable: the tracker updates it."""

    __slots__ = (
        "client",
        "evicted",
        "first_frame",
        "id",
        "open",
        "roles_from_syn",
        "server",
        "stray_ack",
        "streams",
    )

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
        self.open = False
        """The tracker holds it (from its first segment until :class:`ConnectionClosed`)."""
        self.stray_ack: int | None = None
        """While in SYN-SENT: the acknowledgment number of the last segment from the SYN's
        receiver that did not acknowledge the SYN (ignored; see :meth:`TcpTracker._syn_sent`)."""
        self.evicted: tuple[int, int, int] | None = None
        """``(frame, ts_ns, limit)`` of the segment whose new connection pushed this one out of
        the table, when that is how it closed; ``limit`` is the bound that was reached:
        :attr:`TcpTracker.max_connections`, or :attr:`TcpTracker.max_half_open` when it is
        the smaller one (a half-open connection pushed out by too many half-open ones)."""

    @property
    def client_str(self) -> str:
        return format_endpoint(*self.client)

    @property
    def server_str(self) -> str:
        return format_endpoint(*self.server)

    def stream(self, direction: Direction) -> StreamReassembler:
        """Reassembly state of the bytes sent by ``direction``."""
        return self.streams[direction]

    def __repr__(self) -> str:
        return f"Connection(id={self.id}, client={self.client_str}, server={self.server_str})"


class _Side:
    """What the tracker's table holds for one direction of a connection: everything the per-packet
    fast path needs, one dictionary lookup away (no key normalisation, no direction test)."""

    __slots__ = ("conn", "direction", "peer", "stream")

    def __init__(self, conn: Connection, direction: Direction) -> None:
        self.conn = conn
        self.direction = direction
        """Who sends on this side."""
        self.stream = conn.streams[direction]
        """Reassembly of the bytes this side sends."""
        self.peer = conn.streams[1 - direction]
        """Reassembly of the other side's bytes, which this side's ACKs acknowledge."""


_Key = tuple[bytes, int, bytes, int]
_NOTHING: tuple[FlowEvent, ...] = ()


def _canonical(src: bytes, sport: int, dst: bytes, dport: int) -> _Key:
    """The 4-tuple of a connection whichever way a segment goes (the key of closed connections)."""
    if sport < dport or (sport == dport and src <= dst):
        return (src, sport, dst, dport)
    return (dst, dport, src, sport)


_Span = tuple[int, int] | None
_Tomb = tuple[int | None, int, Endpoint, tuple[_Span, _Span]]
_LATE_WINDOW: Final = 1 << 24
"""Without a SYN: how far before the end of a closed stream a segment still counts as late."""
_LATE_AHEAD: Final = 1 << 20
"""How far beyond it: segments sent after some the capture lost (an RST's peer still sending).
A new connection's random ISN falls in either window with a chance of 2**-8 or 2**-12."""


def _span(stream: StreamReassembler) -> _Span:
    """The sequence numbers a closed stream used, ``(first, length)``: from its SYN (or, without
    one, from :data:`_LATE_WINDOW` before its end) to one past its end."""
    nxt = stream._next
    if nxt is None:
        return None
    end = (stream._ends[-1] if stream._starts and stream._ends[-1] > nxt else nxt) + 1
    if stream.isn is not None:
        return stream.isn, (end - stream.isn) & _MASK
    return (end - _LATE_WINDOW) & _MASK, _LATE_WINDOW


def _late(tomb: _Tomb, seg: TcpSegment) -> bool:
    """A segment (not a bare SYN) on a closed 4-tuple belongs to the old connection: its sequence
    number lies in the numbers its direction used (or that direction never started)."""
    client = tomb[2]
    span = tomb[3][0 if seg.sport == client[1] and seg.src == client[0] else 1]
    return span is None or (seg.seq - span[0]) & _MASK <= span[1] + _LATE_AHEAD


def _wrap(out: list[FlowEvent], conn: Connection, d: int, released: Sequence[Released]) -> None:
    direction = _DIRECTIONS[d]
    for r in released:
        if isinstance(r, Data):
            out.append(StreamData(conn, direction, r.data, r.frame, r.ts_ns))
        elif isinstance(r, Gap):
            out.append(StreamGap(conn, direction, r.size, r.frame, r.ts_ns, r.reason))
        elif isinstance(r, Overlap):
            out.append(StreamOverlap(conn, direction, r.offset, r.size, r.differ, r.frame, r.ts_ns))
        else:
            out.append(TcpFlag(conn, direction, r.flag, r.frame, r.ts_ns))


class TcpTracker:
    """Follow every TCP connection of a capture; see the module docstring."""

    __slots__ = (
        "_busy",
        "_closed",
        "_fast",
        "_finished",
        "_fresh",
        "_last_id",
        "_open",
        "_table",
        "evicted",
        "evicted_with_data",
        "first_frames",
        "max_buffered",
        "max_closed",
        "max_connections",
        "max_half_open",
        "partition",
    )

    def __init__(
        self,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        max_closed: int = 1 << 17,
        *,
        partition: tuple[int, int] | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
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
        """For how many frames a closed 4-tuple is remembered (and at most
        ``max_connections`` of them at once)."""
        self.max_connections = max(1, max_connections)
        """Connections held open at once; a new one beyond it pushes one out (module
        docstring, "Bounded state")."""
        self.max_half_open = max(1, self.max_connections // HALF_OPEN_SHARE)
        """Of those, connections that have not carried data; a new one beyond it pushes the
        oldest of them out."""
        self.evicted = 0
        """Connections pushed out of the full table so far."""
        self.evicted_with_data = 0
        """Of those, the ones that had carried data (not only half-open attempts)."""
        # Open connections by id, in order of first appearance: those not yet seen to carry
        # data, and those found carrying data (moved there when an eviction looks at them).
        self._fresh: dict[int, Connection] = {}
        self._busy: dict[int, Connection] = {}
        # Both directions of every open connection: (src, sport, dst, dport) as sent -> its side.
        self._table: dict[_Key, _Side] = {}
        # closed 4-tuple -> (client ISN, frame, client endpoint, spans of its two directions)
        self._closed: dict[_Key, _Tomb] = {}
        # closed 4-tuple -> its connection, while remembered, when both FINs closed it: an RST
        # after them (a socket closed with unread data, a peer's late segment) is reported.
        self._finished: dict[_Key, Connection] = {}
        self._fast: FastPath | None = None
        self._last_id = 0
        self._open = 0

    @property
    def open_connections(self) -> int:
        """Connections currently held in memory."""
        return self._open

    def lookup(self, src: bytes, sport: int, dst: bytes, dport: int) -> tuple[Connection, int] | None:
        """The open connection a segment sent so belongs to, and its sending direction."""
        side = self._table.get((src, sport, dst, dport))
        return None if side is None else (side.conn, int(side.direction))

    def fast_path(self) -> FastPath:
        """This tracker's fast path (made at the first call; see :mod:`capdebug.net.fastpath`)."""
        if self._fast is None:
            self._fast = FastPath(self.partition)
        return self._fast

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
            # It inlines StreamReassembler.take_plain (a method call per segment
            # costs more than the rest of this branch): keep it in step with them. Everything
            # else takes _process.
            mine = side.stream
            nxt = mine._next
            if nxt is not None:
                payload = seg.payload
                if payload:
                    if (seg.seq - nxt) & _MASK or mine._fin is not None or mine._starts or mine.rst:
                        return self._process(side.conn, side.direction, frame, ts_ns, seg, None)
                    mine._next = nxt + len(payload)
                    mine._tail = payload
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
        if (streams[d]._next is None and streams[1 - d].isn is not None) or conn.stray_ack is not None:
            if self._syn_sent(conn, d, seg):
                return _NOTHING if out is None else out
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

    def _syn_sent(self, conn: Connection, d: int, seg: TcpSegment) -> bool:
        """Whether a segment belongs to the SYN-SENT exchange that the tracker ignores, with the
        SYN of the other direction seen but no answer of this one yet (or with a stray segment
        already ignored). Two kinds (RFC 9293 3.10.7.3, formerly RFC 793 3.4 "Reset Generation"):

        * From the SYN's receiver, anything but a SYN whose ACK does not acknowledge the SYN:
          an unacceptable ACK, typically the challenge ACK of a socket in TIME-WAIT on the same
          4-tuple (RFC 5961 4) answering a SYN that reuses the port. The SYN's sender drops it
          (a RST without an acceptable ACK too) and stays in SYN-SENT; so does the tracker,
          which must not take the stray's sequence number as the start of that direction.
        * From the SYN's sender, the RST answering it: ``<SEQ=SEG.ACK><CTL=RST>``, sent
          *without leaving SYN-SENT*; the sender retransmits the same SYN (same ISN) and the
          connection goes on. Ending it there, as any other RST does, loses the whole session
          that follows (a NAT reusing ports makes this common).

        A RST from the SYN's sender that answers no stray segment still ends the connection.
        """
        flags = seg.flags
        mine, peer = conn.streams[d], conn.streams[1 - d]
        if mine._next is None and not flags & _SYN and peer.isn is not None:
            # The SYN's receiver, before its SYN+ACK: acceptable only if it acknowledges the SYN
            # and nothing beyond what its sender can have sent (RFC 9293 3.10.7.3: SND.UNA <
            # SEG.ACK =< SND.NXT), with room for segments of the sender the capture lost.
            if flags & _ACK:
                pnxt = peer._next
                assert pnxt is not None
                top = ((peer._ends[-1] if peer._starts else pnxt) - peer.isn) & _MASK
                if (seg.ack - peer.isn - 1) & _MASK <= top + _SYN_SENT_SLACK:
                    conn.stray_ack = None
                    return False
                if not flags & _RST:
                    conn.stray_ack = seg.ack
            return True
        stray = conn.stray_ack
        if stray is None:
            return False
        if peer._next is not None and mine._next is not None:
            conn.stray_ack = None  # out of SYN-SENT
            return False
        return bool(flags & _RST) and mine.isn is not None and seg.seq == stray

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
            if pure_syn:
                if tomb[0] == seg.seq:
                    return _NOTHING  # a retransmission of the old SYN
            elif _late(tomb, seg):
                # After the end: final ACK, retransmission, answer to an RST; an RST after both
                # FINs is the connection's last word, reported once.
                if flags & _RST and (old := self._finished.pop(key, None)) is not None:
                    d = 0 if old.client[1] == seg.sport and old.client[0] == seg.src else 1
                    return (TcpFlag(old, _DIRECTIONS[d], "RST", frame, ts_ns),)
                return _NOTHING
            # Else a new connection on the 4-tuple (port reuse), even one whose SYN the
            # capture lost: its sequence numbers are not the old connection's.
            del self._closed[key]
            self._finished.pop(key, None)
        if flags & _RST:
            # An RST alone says nothing worth a connection (e.g. the answer to a port scan).
            return out
        if self._open >= self.max_connections:
            self._evict(out, frame, ts_ns, self.max_connections)
        elif len(self._fresh) >= self.max_half_open:
            self._evict(out, frame, ts_ns, self.max_half_open)
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
        conn.open = True
        self._open += 1
        self._fresh[conn.id] = conn
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
        if self._fast is not None:
            self._fast.detach(conn)
        conn.open = False
        self._open -= 1
        if self._fresh.pop(conn.id, None) is None:
            self._busy.pop(conn.id, None)
        if conn.evicted is not None:
            # No tombstone: a later segment of it starts a new connection, which says more than
            # ignoring it would (its SYN+ACK, its data), and it may be pushed out in turn.
            out.append(ConnectionClosed(conn))
            return
        key = _canonical(client[0], client[1], server[0], server[1])
        closed = self._closed
        # Remembered for max_closed frames: a rule on the connection's own frames (a count of
        # other closes would make a share of the capture remember differently), and a bound on
        # memory too, as a frame closes at most two connections.
        closed.pop(key, None)
        closed[key] = (conn.streams[0].isn, frame, client, (_span(conn.streams[0]), _span(conn.streams[1])))
        finished = self._finished
        finished.pop(key, None)
        if conn.streams[0].fin_done and conn.streams[1].fin_done:
            finished[key] = conn
        while frame - next(iter(closed.values()))[1] > self.max_closed or len(closed) > self.max_connections:
            gone = next(iter(closed))
            del closed[gone]
            finished.pop(gone, None)
        out.append(ConnectionClosed(conn))

    def _evict(self, out: list[FlowEvent], frame: int, ts_ns: int, limit: int) -> None:
        """The table is full, or holds ``max_half_open`` connections that may not have carried
        data (``limit`` says which), and ``frame`` starts a connection: push one out (module
        docstring, "Bounded state"). Amortised O(1): a connection is moved from ``_fresh`` to
        ``_busy`` once, when an eviction finds that it carried data."""
        fresh = self._fresh
        victim: Connection | None = None
        while fresh:
            conn = fresh[next(iter(fresh))]
            if not (conn.streams[0].carried_data or conn.streams[1].carried_data):
                victim = conn
                break
            del fresh[conn.id]
            self._busy[conn.id] = conn
        if victim is None or (limit < self.max_connections and len(fresh) < limit):
            # Fewer connections without data than the half-open limit, once those that carried
            # data are set apart: room enough, unless the table itself is full.
            if self._open < self.max_connections:
                return
            limit = self.max_connections
            victim = self._busy[next(iter(self._busy))]
            self.evicted_with_data += 1
        self.evicted += 1
        for d, stream in enumerate(victim.streams):
            _wrap(out, victim, d, stream.flush())
        victim.evicted = (frame, ts_ns, limit)
        self._close(victim, out, frame)

    def flush(self) -> list[FlowEvent]:
        """End of capture: release what every connection still holds and close them all."""
        out: list[FlowEvent] = []
        # dict.fromkeys: each connection once, in order of first appearance.
        for conn in list(dict.fromkeys(side.conn for side in self._table.values())):
            for d, stream in enumerate(conn.streams):
                _wrap(out, conn, d, stream.flush())
            self._close(conn, out, -1)
        return out
