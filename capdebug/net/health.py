"""TCP health per connection: retransmissions, stalls, zero windows, SYN retries, the TTL and IP ID
profile of each sender (to spot a RST a middlebox injected).

Theory of operation
===================

A :class:`HealthObserver` follows one connection. Its facts must not depend on whether the
frame filter (:mod:`capdebug.net.fastpath`) took a frame, so it acts only on segments that
always leave the fast path: SYN, FIN, RST, retransmissions (judged against the reassembler's
position, which is the same either way), zero-window acknowledgments; and, while the
connection is *watched*, on every segment. :meth:`HealthObserver.observe` returns
:data:`WATCH` at the first retransmission or zero window: the caller then takes the connection
off the fast path, so that every segment, bare ACKs included, comes here and the trouble can be
measured; and :data:`RELEASE` once every retransmission is acknowledged and no window is
closed. Healthy connections cost nothing per frame; troubled ones are decoded by the general
path, which is equally correct.

What is measured, per sending direction (:class:`DirectionHealth`):

* retransmissions: a data segment ending at or before the reassembler's next position (bytes
  seen before; one that only overlaps counts its old part), or filling a hole (its first copy
  was lost before the capture point).
  Their time cost is, for each retransmitted segment, from its first transmission seen here to
  the acknowledgment that covers it (or the end of the connection): a lower bound, as the
  original of the first retransmission usually took the fast path.
  A segment filling a hole whose IPv4 ID comes before the newest one seen beyond the hole
  (Linux numbers each connection's packets in sequence; a retransmission gets a new one) and
  at most :data:`_REORDER_IDS` before the first was sent before a segment that arrived earlier:
  the original, reordered on the path, not a retransmission; so is a copy arriving after a
  retransmission with an IPv4 ID up to :data:`_LATE_IDS` older than it. (A sender with random
  IDs may have a retransmission taken for reordering, at worst a few times in a hundred.)
  A retransmission the receiver reports as a duplicate with a D-SACK (RFC 2883 4: the first
  SACK block below the cumulative ACK, or inside the second block) was spurious: the original
  had arrived. It is taken back out of the count, bytes and time cost (not out of the RTO
  stalls: the sender did wait). To see the D-SACK, which comes within about a round trip of
  the ACK that covered the original, a connection stays watched once its retransmissions are
  acknowledged, for four times the longest retransmission-to-ACK time just seen (a round trip
  or more), between :data:`_LINGER_MIN_NS` and :data:`_LINGER_NS`: every frame watched leaves
  the fast path, and on a fast link 200 ms is tens of thousands of frames.
* retransmission timeouts: a retransmission that follows the previous transmission of the same
  segment, or the connection's previous segment once it is watched, by at least
  :data:`RTO_MIN_NS` (Linux's minimum RTO; RFC 6298 2.4 recommends 1 s): the sender waited, so
  the connection stalled.
* SYN retries and the connect time (first SYN to SYN+ACK).
* zero windows: an acknowledgment advertising a window of 0 (RFC 9293 3.8.6.1): its sender
  stopped reading.
* the IP TTL (IPv6 hop limit) and IP ID of each direction's SYN and FIN, and of its RST: a RST
  whose TTL differs from every other packet sampled of its sender did not come from that host
  (a middlebox forging it is at another distance from the capture point).

Sequence numbers wrap (RFC 9293 3.4): comparisons are modulo 2**32 within half the space.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from capdebug.net.ip import ipv4_tcp, ipv6_tcp
from capdebug.net.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6, network_offset
from capdebug.net.tcp import ACK, FIN, RST, SYN
from capdebug.net.tunnel import ip_ttl_id

__all__ = [
    "RELEASE",
    "RTO_MIN_NS",
    "WATCH",
    "ConnectionHealth",
    "DirectionHealth",
    "HealthObserver",
    "StuckSegment",
]

WATCH: Final = 1
"""From :meth:`HealthObserver.observe`: trouble began, send every frame of it here."""
RELEASE: Final = -1
"""From :meth:`HealthObserver.observe`: recovered, the fast path may take it again."""
RTO_MIN_NS: Final = 200_000_000
"""A wait this long before a retransmission is a retransmission timeout (Linux TCP_RTO_MIN)."""
_PROFILE: Final = 4
"""SYN/FIN packets per direction whose TTL and IP ID make the sender's profile."""
_TRACKED: Final = 512
"""Retransmitted segments followed at once per direction (memory bound)."""
_MASK: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000
_REORDER_IDS: Final = 256
"""A hole filler up to this many IPv4 IDs before the hole's opener was sent before it."""
_LATE_IDS: Final = 4096
"""A copy of a retransmitted segment up to this many IPv4 IDs older is its original, late."""
_LINGER_NS: Final = RTO_MIN_NS
"""The longest a connection stays watched after a retransmission is acknowledged, for its
D-SACK (which comes about a round trip after the retransmission, at the sender)."""
_LINGER_MIN_NS: Final = 5_000_000
"""The shortest such wait (a round trip on a fast link is microseconds; a scheduler's is not)."""
_SACK: Final = 5  # TCP option kind (RFC 2018 3)
_two_blocks: Final = struct.Struct("!IIII").unpack_from
_one_block: Final = struct.Struct("!II").unpack_from


def _after(a: int, b: int) -> bool:
    """``a`` is later than ``b`` in sequence space."""
    return 0 < (a - b) & _MASK < _HALF


@dataclass(frozen=True, slots=True)
class StuckSegment:
    """The segment a direction retransmitted most and never saw acknowledged."""

    seq: int
    """Its sequence number, as on the wire."""
    size: int
    transmissions: int
    """Retransmissions seen (the original usually took the fast path)."""
    first_frame: int
    first_ts_ns: int
    last_ts_ns: int


@dataclass(frozen=True, slots=True)
class DirectionHealth:
    """What one sending direction did (typed facts; rendered by the analysis layer)."""

    retransmissions: int
    retransmitted_bytes: int
    retransmission_ns: int
    """Lower bound of the time retransmitted segments took to be acknowledged (or to the end)."""
    first_retransmission: int | None
    """Frame of the first retransmission."""
    rto_stalls: int
    rto_stall_ns: int
    syns: int
    first_syn_ts_ns: int | None
    zero_windows: int
    first_zero_window: int | None
    zero_window_ns: int
    """Time the window stayed at 0 (to the reopening, or the last segment seen)."""
    stuck: StuckSegment | None
    last_frame: int
    """The last segment observed (every one while watched; see the module docstring)."""
    last_ts_ns: int
    ttls: tuple[int, ...]
    """TTL (hop limit) of its SYN and FIN."""
    ip_ids: tuple[int, ...]
    """IPv4 IDs of the same packets (empty for IPv6)."""
    rst_frame: int | None
    rst_ttl: int | None
    rst_ip_id: int | None
    into_zero_window: int = 0
    """Retransmissions sent while the receiver's window was closed (its last ACK advertised 0):
    a full receive buffer drops data too, so these point at the reader, not the path."""

    @property
    def rst_ttl_off(self) -> bool:
        """The RST's TTL fits none of this sender's other packets sampled."""
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
            or c.zero_windows
            or s.zero_windows
            or c.rst_ttl_off
            or s.rst_ttl_off
            or (c.syns and self.synack_frame is None and s.rst_frame is None)
        )


@dataclass(slots=True)
class _Dir:
    retransmissions: int = 0
    retransmitted_bytes: int = 0
    retransmission_ns: int = 0
    first_retransmission: int | None = None
    rto_stalls: int = 0
    rto_stall_ns: int = 0
    syns: int = 0
    first_syn_ts: int | None = None
    zero_windows: int = 0
    first_zero_window: int | None = None
    zero_since: int | None = None
    zero_window_ns: int = 0
    last_frame: int = 0
    last_ts: int = 0
    # Tuples and None until used: a connection's observer costs little until it has trouble
    # (a SYN flood makes hundreds of thousands of them).
    ttls: tuple[int, ...] = ()
    ip_ids: tuple[int, ...] = ()
    rst_frame: int | None = None
    rst_ttl: int | None = None
    rst_ip_id: int | None = None
    into_zero_window: int = 0
    # Retransmitted segments not yet acknowledged:
    # seq -> [end, first_frame, first_ts, last_ts, count, IPv4 ID of the first or -1].
    tx: dict[int, list[int]] | None = None
    # Acknowledged ones a D-SACK may still call spurious: seq -> [end, cost_ns, count].
    acked: dict[int, list[int]] | None = None
    hole_ip_ids: tuple[int, int] | None = None  # first and newest IPv4 IDs beyond the hole


class HealthObserver:
    """One connection's health (see the module docstring)."""

    __slots__ = ("_dirs", "_linger", "_synack_ts", "_watch_ts", "_watched", "synack_frame")

    def __init__(self) -> None:
        self._dirs = (_Dir(), _Dir())
        self.synack_frame: int | None = None
        self._synack_ts: int | None = None
        self._watched = False
        self._watch_ts: int | None = None  # the previous segment seen while watched
        self._linger = 0

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
        nxt: int | None,
        holes: bool,
        linktype: int,
        data: bytes,
    ) -> int:
        """Take one segment sent by direction ``d`` with ``size`` payload bytes, before the
        reassembler of that direction took it (``nxt``: its next position, ``holes``: it holds
        data beyond a hole). ``data`` is the captured frame, read only for TTL/IP ID samples.
        :data:`WATCH` when the connection starts needing every frame (the caller takes it off
        the fast path), :data:`RELEASE` when it recovered (the caller may give it back), else 0."""
        control = flags & (SYN | FIN | RST)
        end = (seq + size) & _MASK
        old = 0
        if size and nxt is not None:
            if not _after(end, nxt):
                old = size  # every byte seen before
            elif _after(nxt, seq):
                old = (nxt - seq) & _MASK  # a partial retransmission
            elif seq == nxt and holes:
                old = size  # fills a hole: its first copy was lost before the capture point
                if self._dirs[d].hole_ip_ids is not None and self._sent_before(d, linktype, data):
                    old = 0  # ... or it is that first copy, reordered (module docstring)
            elif _after(seq, nxt):
                self._beyond_hole(d, holes, linktype, data)
        zero = window == 0 and flags & ACK and not control
        watched = self._watched
        if not (watched or control or old or zero):
            return 0  # a frame the fast path may take: nothing to see (module docstring)
        me, peer = self._dirs[d], self._dirs[1 - d]
        me.last_frame = frame
        me.last_ts = ts_ns
        trouble = False
        if flags & RST:
            if me.rst_frame is None:
                me.rst_frame = frame
                sample = ip_ttl_id(linktype, data)
                if sample is not None:
                    me.rst_ttl, me.rst_ip_id = sample
        elif control and len(me.ttls) < _PROFILE:
            sample = ip_ttl_id(linktype, data)
            if sample is not None:
                me.ttls += (sample[0],)
                if sample[1] is not None:
                    me.ip_ids += (sample[1],)
        if flags & SYN:
            me.syns += 1
            if me.first_syn_ts is None:
                me.first_syn_ts = ts_ns
            if flags & ACK and self.synack_frame is None:
                self.synack_frame, self._synack_ts = frame, ts_ns
        elif old:
            sample = ip_ttl_id(linktype, data)
            ip_id = -1 if sample is None or sample[1] is None else sample[1]
            entry = me.tx.get(seq) if me.tx else None
            if entry is None or entry[5] < 0 or ip_id < 0 or not 0 < (entry[5] - ip_id) & 0xFFFF <= _LATE_IDS:
                trouble = True
                self._retransmitted(me, seq, (seq + old) & _MASK, old, frame, ts_ns, ip_id)
                if peer.zero_since is not None:
                    me.into_zero_window += 1
            # else: the original, arriving after its retransmission (module docstring)
        if flags & ACK and not flags & SYN and (watched or trouble):
            if peer.tx or peer.acked:
                dsack = _dsack(linktype, data, ack)
                if dsack is not None:
                    self._spurious(peer, *dsack)
            if peer.tx and (cost := self._acked(peer, ack, ts_ns)) >= 0:
                self._linger = ts_ns + min(_LINGER_NS, max(_LINGER_MIN_NS, 4 * cost))
            if me.zero_since is not None and not zero:
                me.zero_window_ns += ts_ns - me.zero_since
                me.zero_since = None
        if zero:
            me.zero_windows += 1
            if me.zero_since is None:
                me.zero_since = ts_ns
            if me.first_zero_window is None:
                me.first_zero_window = frame
            trouble = True
        if trouble and not watched:
            self._watched = True
            self._watch_ts = ts_ns
            return WATCH
        if watched:
            self._watch_ts = ts_ns
            if not (me.tx or peer.tx) and me.zero_since is None is peer.zero_since:
                # Recovered: every retransmission acknowledged, no window closed.
                if ts_ns < self._linger:
                    return 0  # ... but a D-SACK may still come (module docstring)
                me.acked = peer.acked = None
                self._watched = False
                self._watch_ts = None
                return RELEASE
        return 0

    def _retransmitted(
        self, me: _Dir, seq: int, end: int, size: int, frame: int, ts: int, ip_id: int
    ) -> None:
        me.retransmissions += 1
        me.retransmitted_bytes += size
        if me.first_retransmission is None:
            me.first_retransmission = frame
        tx = me.tx
        if tx is None:
            tx = me.tx = {}
        entry = tx.get(seq)
        if entry is not None:
            wait = ts - entry[3]
            entry[3] = ts
            entry[4] += 1
        else:
            # Its original took the fast path (unseen) unless the connection was watched, when
            # the previous segment either way bounds the wait from below.
            wait = ts - self._watch_ts if self._watch_ts is not None else 0
            if len(tx) >= _TRACKED:
                del tx[next(iter(tx))]
            tx[seq] = [end, frame, ts, ts, 1, ip_id]
        if wait >= RTO_MIN_NS:
            me.rto_stalls += 1
            me.rto_stall_ns += wait

    @staticmethod
    def _acked(me: _Dir, ack: int, ts: int) -> int:
        """Retransmissions of ``me`` covered by ``ack``: their cost is known. The longest cost
        (from the first copy seen to this ACK), or -1 when none was covered."""
        tx = me.tx
        if tx is None:
            return -1
        done = [seq for seq, entry in tx.items() if not _after(entry[0], ack)]
        if done and me.acked is None:
            me.acked = {}
        longest = -1
        for seq in done:
            entry = tx.pop(seq)
            cost = ts - entry[2]
            me.retransmission_ns += cost
            longest = max(longest, cost)
            if me.acked is not None and len(me.acked) < _TRACKED:
                me.acked[seq] = [entry[0], cost, entry[4]]
        return longest

    @staticmethod
    def _spurious(me: _Dir, left: int, right: int) -> None:
        """The receiver got ``[left, right)`` twice (a D-SACK): one retransmission of ``me``
        inside it was not needed; take it back out of the count, bytes and cost."""
        for table in (me.tx, me.acked):
            if not table:
                continue
            for seq, entry in table.items():
                if _after(left, seq) or _after(entry[0], right):
                    continue
                me.retransmissions -= 1
                me.retransmitted_bytes -= (entry[0] - seq) & _MASK
                if table is me.tx:
                    entry[4] -= 1
                    if entry[4] == 0:
                        del table[seq]  # none needed: no cost
                else:
                    entry[2] -= 1
                    if entry[2] == 0:
                        me.retransmission_ns -= entry[1]
                        del table[seq]
                return

    def _beyond_hole(self, d: int, holes: bool, linktype: int, data: bytes) -> None:
        """A segment of ``d`` beyond a hole (the first one opens it): follow the IPv4 IDs."""
        sample = ip_ttl_id(linktype, data)
        ip_id = sample[1] if sample is not None else None
        me = self._dirs[d]
        if ip_id is None or not holes or me.hole_ip_ids is None:
            me.hole_ip_ids = None if ip_id is None else (ip_id, ip_id)
        elif 0 < (ip_id - me.hole_ip_ids[1]) & 0xFFFF < 0x8000:
            me.hole_ip_ids = (me.hole_ip_ids[0], ip_id)

    def _sent_before(self, d: int, linktype: int, data: bytes) -> bool:
        """The segment in ``data`` has an IPv4 ID before the newest one seen beyond the hole it
        fills, and at most :data:`_REORDER_IDS` before the first."""
        sample = ip_ttl_id(linktype, data)
        ids = self._dirs[d].hole_ip_ids
        if sample is None or sample[1] is None or ids is None:
            return False
        low = (ids[0] - _REORDER_IDS) & 0xFFFF
        return (sample[1] - low) & 0xFFFF < (ids[1] - low) & 0xFFFF < 0x8000

    def retransmitted(self, d: int) -> bool:
        """Direction ``d`` retransmitted data its receiver has not acknowledged (yet)."""
        return bool(self._dirs[d].tx)

    def quiet(self) -> bool:
        """Nothing happened that :attr:`ConnectionHealth.notable` could report (a cheap test
        before :meth:`summary`, for the thousands of connections without trouble). Errs on
        the side of not quiet: any RST sends the connection to the full summary."""
        c, s = self._dirs
        return not (
            c.retransmissions
            or s.retransmissions
            or c.zero_windows
            or s.zero_windows
            or c.syns > 1
            or c.rst_frame is not None
            or s.rst_frame is not None
            or (c.syns and self.synack_frame is None)
        )

    def summary(self) -> ConnectionHealth:
        """The facts so far (at the connection's end)."""
        end_ts = max(self._dirs[0].last_ts, self._dirs[1].last_ts)
        sides = []
        for me in self._dirs:
            tx = me.tx or {}
            cost = me.retransmission_ns + sum(end_ts - e[2] for e in tx.values())
            zero_ns = me.zero_window_ns + (end_ts - me.zero_since if me.zero_since is not None else 0)
            stuck = None
            if tx:
                seq, e = max(tx.items(), key=lambda item: item[1][4])
                stuck = StuckSegment(seq, (e[0] - seq) & _MASK, e[4], e[1], e[2], e[3])
            sides.append(
                DirectionHealth(
                    me.retransmissions,
                    me.retransmitted_bytes,
                    cost,
                    me.first_retransmission,
                    me.rto_stalls,
                    me.rto_stall_ns,
                    me.syns,
                    me.first_syn_ts,
                    me.zero_windows,
                    me.first_zero_window,
                    zero_ns,
                    stuck,
                    me.last_frame,
                    me.last_ts,
                    me.ttls,
                    me.ip_ids,
                    me.rst_frame,
                    me.rst_ttl,
                    me.rst_ip_id,
                    me.into_zero_window,
                )
            )
        client_syn = self._dirs[0].first_syn_ts
        connect = (
            self._synack_ts - client_syn if self._synack_ts is not None and client_syn is not None else None
        )
        return ConnectionHealth((sides[0], sides[1]), connect, self.synack_frame)


def _dsack(linktype: int, data: bytes, ack: int) -> tuple[int, int] | None:
    """The D-SACK block of the ACK in ``data``, if it has one (RFC 2883 4): its first SACK block
    lies below the cumulative ``ack`` or inside its second block. Never raises."""
    ethertype, off = network_offset(linktype, data)
    located = ipv4_tcp(data, off) if ethertype == ETHERTYPE_IPV4 else None
    if ethertype == ETHERTYPE_IPV6:
        located = ipv6_tcp(data, off)
    if located is None:
        return None
    t, end = located[2], located[3]
    if t + 20 > end:
        return None
    p, stop = t + 20, min(t + ((data[t + 12] >> 4) << 2), end)
    while p < stop:  # the options (RFC 9293 3.2): kind, length, value
        kind = data[p]
        if kind == 0:
            return None
        if kind == 1:
            p += 1
            continue
        if p + 2 > stop or data[p + 1] < 2:
            return None
        size = data[p + 1]
        if kind == _SACK and 10 <= size and p + size <= stop:
            left, right = _one_block(data, p + 2)
            if not _after(right, ack):
                return left, right
            if size >= 18:
                _, _, left2, right2 = _two_blocks(data, p + 2)
                if not _after(left2, left) and not _after(right, right2):
                    return left, right
            return None
        p += size
    return None
