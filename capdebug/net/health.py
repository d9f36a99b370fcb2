"""TCP health per connection: retransmissions, stalls, zero windows, SYN retries, the TTL and IP ID
profile of each sender (to spot a RST a middlebox injected).

Theory of operation
===================

A :class:`HealthObserver` follows one connection. It sees only the segments that leave the fast
path (:mod:`capdebug.net.fastpath`): SYN, FIN, RST, retransmissions, holes, out-of-order data,
zero-window acknowledgments, and whatever the tracker's own inline path takes. That is enough
to *notice* trouble; to *measure* it the caller takes the connection off the fast path as soon
as :meth:`HealthObserver.observe` returns True (the first retransmission or zero window), so
that from then on every segment, bare ACKs included, comes here. Healthy connections cost
nothing per frame; troubled ones are decoded by the general path, which is equally correct.

What is measured, per sending direction (:class:`DirectionHealth`):

* retransmissions: a data segment that ends at or before the highest sequence number that
  direction sent before (RFC 9293 3.10.7.4; a segment that only overlaps counts its old part).
  Their time cost is, for each retransmitted segment, from its first transmission seen here to
  the acknowledgment that covers it (or the end of the connection): a lower bound, as the
  original of the first retransmission usually took the fast path.
* retransmission timeouts: a retransmission that follows the previous transmission of the same
  segment, or the connection's previous segment once it is watched, by at least
  :data:`RTO_MIN_NS` (Linux's minimum RTO; RFC 6298 2.4 recommends 1 s): the sender waited, so
  the connection stalled.
* SYN retries and the connect time (first SYN to SYN+ACK).
* zero windows: an acknowledgment advertising a window of 0 (RFC 9293 3.8.6.1): its sender
  stopped reading.
* the IP TTL (IPv6 hop limit) and IP ID of the first packets of each direction, and of its RST:
  a RST whose TTL differs from every other packet of its sender did not come from that host
  (a middlebox forging it is at another distance from the capture point).

Sequence numbers wrap (RFC 9293 3.4): comparisons are modulo 2**32 within half the space.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from capdebug.net.ip import ip_ttl_id
from capdebug.net.tcp import ACK, FIN, RST, SYN

__all__ = [
    "FULL_SIZE_MIN",
    "RTO_MIN_NS",
    "ConnectionHealth",
    "DirectionHealth",
    "HealthObserver",
    "StuckSegment",
]

RTO_MIN_NS = 200_000_000
"""A wait this long before a retransmission is a retransmission timeout (Linux TCP_RTO_MIN)."""
FULL_SIZE_MIN = 1000
"""Segments at least this large (and as large as the direction's largest) count as full-size
for the MTU black-hole rule; a path MTU below ~1000 bytes is rare outside tunnels."""
_PROFILE = 8
"""Packets per direction whose TTL and IP ID make the sender's profile."""
_TRACKED = 512
"""Retransmitted segments followed at once per direction (memory bound)."""
_MASK = 0xFFFFFFFF
_HALF = 0x80000000


def _after(a: int, b: int) -> bool:
    """``a`` is later than ``b`` in sequence space."""
    return 0 < (a - b) & _MASK < _HALF


@dataclass(frozen=True, slots=True)
class StuckSegment:
    """The segment a direction retransmitted most and never saw acknowledged."""

    seq_offset: int
    """Its position in the stream (bytes after the ISN; the raw number when no SYN was seen)."""
    size: int
    transmissions: int
    first_frame: int
    first_ts_ns: int
    last_ts_ns: int


@dataclass(frozen=True, slots=True)
class DirectionHealth:
    """What one sending direction did (typed facts; rendered by the analysis layer)."""

    packets: int
    """Segments seen by the observer (not every segment: see the module docstring)."""
    bytes_sent: int
    """Stream bytes by sequence numbers (highest end minus the first, retransmissions once)."""
    retransmissions: int
    retransmitted_bytes: int
    retransmission_ns: int
    """Lower bound of the time retransmitted segments took to be acknowledged."""
    first_retransmission: int | None
    """Frame of the first retransmission."""
    rto_stalls: int
    rto_stall_ns: int
    max_segment: int
    syns: int
    first_syn_ts_ns: int | None
    zero_windows: int
    first_zero_window: int | None
    zero_window_ns: int
    """Time the window stayed at 0 (to the reopening, or the last segment seen)."""
    stuck: StuckSegment | None
    last_frame: int
    last_ts_ns: int
    ttls: tuple[int, ...]
    """TTL (hop limit) of the first packets, other than RSTs."""
    ip_ids: tuple[int, ...]
    """IPv4 IDs of the same packets (empty for IPv6)."""
    rst_frame: int | None
    rst_ttl: int | None
    rst_ip_id: int | None
    acked_by_peer: int
    """Bytes of this direction the peer acknowledged (by its highest cumulative ACK)."""

    @property
    def rst_ttl_off(self) -> bool:
        """The RST's TTL fits none of this sender's other packets."""
        return self.rst_ttl is not None and bool(self.ttls) and self.rst_ttl not in self.ttls


@dataclass(frozen=True, slots=True)
class ConnectionHealth:
    """Both directions, indexed as the tracker's :class:`~capdebug.net.flow.Direction`."""

    sides: tuple[DirectionHealth, DirectionHealth]
    connect_ns: int | None
    """First SYN to the SYN+ACK."""
    synack_frame: int | None

    @property
    def notable(self) -> bool:
        """Anything worth a verdict (else no event is emitted for it)."""
        c, s = self.sides
        return bool(
            c.retransmissions
            or s.retransmissions
            or c.syns > 1
            or s.syns > 1
            or c.zero_windows
            or s.zero_windows
            or c.rst_ttl_off
            or s.rst_ttl_off
            or (c.syns and self.synack_frame is None and s.rst_frame is None)
        )


@dataclass(slots=True)
class _Dir:
    isn: int | None = None
    start: int | None = None
    high: int | None = None
    acked: int | None = None
    packets: int = 0
    retransmissions: int = 0
    retransmitted_bytes: int = 0
    retransmission_ns: int = 0
    first_retransmission: int | None = None
    rto_stalls: int = 0
    rto_stall_ns: int = 0
    max_segment: int = 0
    syns: int = 0
    first_syn_ts: int | None = None
    zero_windows: int = 0
    first_zero_window: int | None = None
    zero_since: int | None = None
    zero_window_ns: int = 0
    last_frame: int = 0
    last_ts: int = 0
    ttls: list[int] = field(default_factory=list)
    ip_ids: list[int] = field(default_factory=list)
    rst_frame: int | None = None
    rst_ttl: int | None = None
    rst_ip_id: int | None = None
    # Retransmitted segments not yet acknowledged: seq -> [end, first_frame, first_ts, last_ts, count].
    tx: dict[int, list[int]] = field(default_factory=dict)
    worst: StuckSegment | None = None


class HealthObserver:
    """One connection's health (see the module docstring)."""

    __slots__ = ("_dirs", "_synack_frame", "_synack_ts", "_watched", "last_ts")

    def __init__(self) -> None:
        self._dirs = (_Dir(), _Dir())
        self._synack_frame: int | None = None
        self._synack_ts: int | None = None
        self._watched = False
        self.last_ts = 0
        """Timestamp of the last segment seen, either way."""

    def observe(
        self,
        d: int,
        frame: int,
        ts_ns: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        size: int,
        linktype: int,
        data: bytes,
    ) -> bool:
        """Take one segment sent by direction ``d`` (``size`` payload bytes); ``data`` is the
        captured frame, read only for the TTL/IP ID samples. True the first time the
        connection needs watching (the caller then takes it off the fast path)."""
        me, peer = self._dirs[d], self._dirs[1 - d]
        previous_ts = self.last_ts
        self.last_ts = ts_ns
        me.packets += 1
        me.last_frame = frame
        me.last_ts = ts_ns
        trouble = False
        if flags & RST:
            if me.rst_frame is None:
                sample = ip_ttl_id(linktype, data)
                me.rst_frame = frame
                if sample is not None:
                    me.rst_ttl, me.rst_ip_id = sample
        elif len(me.ttls) < _PROFILE:
            sample = ip_ttl_id(linktype, data)
            if sample is not None:
                me.ttls.append(sample[0])
                if sample[1] is not None:
                    me.ip_ids.append(sample[1])
        if flags & SYN:
            me.syns += 1
            if me.first_syn_ts is None:
                me.first_syn_ts = ts_ns
            if me.isn is None:
                me.isn = seq
                me.start = me.high = (seq + 1) & _MASK
            if flags & ACK and self._synack_frame is None:
                self._synack_frame, self._synack_ts = frame, ts_ns
        elif size:
            end = (seq + size) & _MASK
            if size > me.max_segment:
                me.max_segment = size
            if me.high is None:
                me.start, me.high = seq, end
            elif not _after(end, me.high):
                trouble = self._retransmitted(me, seq, end, size, frame, ts_ns, previous_ts)
            elif _after(me.high, seq):
                # Overlaps the highest byte sent: its old part was sent before.
                old = (me.high - seq) & _MASK
                trouble = self._retransmitted(me, seq, me.high, old, frame, ts_ns, previous_ts)
                me.high = end
            else:
                me.high = end
        if flags & ACK and not flags & SYN:
            if peer.acked is None or _after(ack, peer.acked):
                peer.acked = ack
                if peer.tx:
                    self._acked(peer, ack, ts_ns)
            if window == 0 and not flags & (RST | FIN):
                me.zero_windows += 1
                if me.zero_since is None:
                    me.zero_since = ts_ns
                if me.first_zero_window is None:
                    me.first_zero_window = frame
                    trouble = True
            elif me.zero_since is not None:
                me.zero_window_ns += ts_ns - me.zero_since
                me.zero_since = None
        if trouble and not self._watched:
            self._watched = True
            return True
        return False

    def _retransmitted(
        self, me: _Dir, seq: int, end: int, size: int, frame: int, ts: int, previous_ts: int
    ) -> bool:
        me.retransmissions += 1
        me.retransmitted_bytes += size
        if me.first_retransmission is None:
            me.first_retransmission = frame
        entry = me.tx.get(seq)
        if entry is not None:
            wait = ts - entry[3]
            entry[3] = ts
            entry[4] += 1
        else:
            # Its original took the fast path (unseen) unless the connection is watched, when
            # the previous segment either way bounds the wait from below.
            wait = ts - previous_ts if self._watched and previous_ts else 0
            if len(me.tx) >= _TRACKED:
                del me.tx[next(iter(me.tx))]
            entry = me.tx[seq] = [end, frame, ts, ts, 1]
        if wait >= RTO_MIN_NS:
            me.rto_stalls += 1
            me.rto_stall_ns += wait
        self._note_worst(me, seq, entry)
        return True

    def _note_worst(self, me: _Dir, seq: int, entry: list[int]) -> None:
        worst = me.worst
        if worst is None or entry[4] >= worst.transmissions:
            base = me.isn + 1 if me.isn is not None else 0
            me.worst = StuckSegment(
                (seq - base) & _MASK, (entry[0] - seq) & _MASK, entry[4], entry[1], entry[2], entry[3]
            )

    @staticmethod
    def _acked(me: _Dir, ack: int, ts: int) -> None:
        done = [seq for seq, entry in me.tx.items() if not _after(entry[0], ack)]
        for seq in done:
            entry = me.tx.pop(seq)
            me.retransmission_ns += ts - entry[2]

    def summary(self) -> ConnectionHealth:
        """The facts so far (at the connection's end)."""
        sides = []
        for me in self._dirs:
            cost = me.retransmission_ns + sum(me.last_ts - e[2] for e in me.tx.values())
            zero_ns = me.zero_window_ns + (me.last_ts - me.zero_since if me.zero_since is not None else 0)
            stuck = me.worst
            if stuck is not None:
                base = me.isn + 1 if me.isn is not None else 0
                if me.acked is not None and not _after(
                    (base + stuck.seq_offset + stuck.size) & _MASK, me.acked
                ):
                    stuck = None  # acknowledged in the end
            sent = (me.high - me.start) & _MASK if me.high is not None and me.start is not None else 0
            acked = 0
            if me.acked is not None and me.start is not None:
                gone = (me.acked - me.start) & _MASK
                acked = gone if gone < _HALF else 0
            sides.append(
                DirectionHealth(
                    me.packets,
                    sent,
                    me.retransmissions,
                    me.retransmitted_bytes,
                    cost,
                    me.first_retransmission,
                    me.rto_stalls,
                    me.rto_stall_ns,
                    me.max_segment,
                    me.syns,
                    me.first_syn_ts,
                    me.zero_windows,
                    me.first_zero_window,
                    zero_ns,
                    stuck,
                    me.last_frame,
                    me.last_ts,
                    tuple(me.ttls),
                    tuple(me.ip_ids),
                    me.rst_frame,
                    me.rst_ttl,
                    me.rst_ip_id,
                    acked,
                )
            )
        client_syn = self._dirs[0].first_syn_ts
        connect = (
            self._synack_ts - client_syn if self._synack_ts is not None and client_syn is not None else None
        )
        return ConnectionHealth((sides[0], sides[1]), connect, self._synack_frame)

    def acked_beyond_hole(self, d: int) -> bool:
        """Did the receiver acknowledge every byte direction ``d`` sent (so a hole in it is the
        capture's loss)? Used for holes given up without an ACK in the same frame."""
        me = self._dirs[d]
        return me.acked is not None and me.high is not None and not _after(me.high, me.acked)

    def retransmitted(self, d: int) -> bool:
        """Direction ``d`` retransmitted data the receiver had not acknowledged."""
        return bool(self._dirs[d].tx)
