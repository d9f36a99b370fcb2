"""Per-direction TCP stream reassembly: segments in capture order -> bytes in stream order.

Theory of operation
===================

A :class:`StreamReassembler` follows one direction of one connection. It is fed that direction's
segments in capture order (:meth:`~StreamReassembler.feed`), the other direction's acknowledgment
numbers (:meth:`~StreamReassembler.ack`), and finally :meth:`~StreamReassembler.flush` at the end
of the capture. Each call returns what it *releases*, in stream order: :class:`Data`,
:class:`Gap` and :class:`Flag` items. Nothing is released twice and nothing is released out of
order.

Positions. Sequence numbers are 32-bit and wrap (RFC 9293 3.4). The reassembler keeps positions
as unbounded integers: every incoming number is unwrapped to the value nearest to the next
expected position (within 2**31 either way), so comparisons are plain integer comparisons and a
stream may be longer than 4 GiB. The first segment seen sets the origin: a SYN at ISN makes the
first data byte ISN+1 (the SYN consumes one number); without a SYN the stream starts at the
first sequence number seen, and whatever came before it is never reported.

What is released at once. Bytes at the next expected position go out immediately, so in-order
data is never accumulated here. Bytes before that position are old: retransmissions, the
1-byte keep-alive at next-1 and the 0-byte keep-alive are dropped, and a segment that overlaps
the position contributes only its new tail (a partial retransmission). A zero-window probe
carries the next byte, so it is released like any data; its later retransmission is then old.

What is buffered. A segment beginning beyond the next position leaves a hole. It is kept until
the hole fills, as non-overlapping chunks sorted by position. Where a segment overlaps bytes
already buffered, the bytes that arrived first win (as most stacks and Wireshark do), so a
chunk, once buffered, never changes. When the hole fills, the filling segment and all chunks
now contiguous with it are released together. Buffered chunks are the only memory that grows.

How gaps are decided. The capture can miss a segment that the peer did receive; it is never
retransmitted, so waiting would stall the stream forever. A hole before buffered data (or before
a FIN already seen) is given up as a :class:`Gap` of exactly the missing size when either

* the other direction acknowledged bytes inside the hole: the receiver has them, so they were
  sent and will not come again (only the acknowledged part is skipped); or
* more than ``max_buffered`` bytes are waiting behind it (16 MiB by default): the bound on
  this direction's memory. The hole is then given up although its bytes may still come (a
  retransmission after a long reordering), and the gap says so (reason ``"out_of_order"``).

A retransmission that fills a hole before either happens releases everything in order: a
capture reordered by the network loses nothing.

Copies that differ. A retransmission should carry the same bytes as the first copy. When the
bytes it repeats are still at hand (buffered behind a hole, or the last bytes released: one
reference per direction, kept by every path including the fast path) they are compared, and a
difference is released as an :class:`Overlap` item, before the segment's new bytes: the first
copy stays the one used (it may already have been passed on), and the report says so. Such a
conflict is the mark of an injected segment that raced the real one, or of a middlebox that
rewrites retransmissions. A 1-byte keep-alive probe (its octet is garbage) is never compared.

After a gap the now-contiguous chunks are released as usual. :meth:`~StreamReassembler.flush`
gives up every remaining hole the same way.

Flags. SYN is reported when first seen (a retransmitted SYN is not). FIN consumes one sequence
number and is reported once, when it is in order, that is after every byte before it; data
beyond a FIN is ignored. RST is reported at once: the reassembler first releases what it
holds (holes become gaps), then the RST, and ignores everything after.

Frames. Items released by a call carry that call's frame and timestamp: the frame that brought
the last byte in, or completed the stream up to it (a retransmission filling a hole). Where a
hole is given up instead (acknowledged, past the limit, an RST, the end of the capture), the gap
carries the frame of the first segment beyond it (where the hole is, as Wireshark's "previous
segment not captured") and the buffered chunks after it the frames they arrived in: those bytes
never waited for the hole's. Such items carry frames earlier than the call's;
:attr:`~StreamReassembler.holding` says a direction may still release some.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "GAP_LOST",
    "GAP_OUT_OF_ORDER",
    "Data",
    "Flag",
    "Gap",
    "Overlap",
    "Released",
    "StreamReassembler",
]

#: Bytes a direction may hold behind a hole before the hole is given up as a gap.
DEFAULT_MAX_BUFFERED: Final = 16 << 20

#: :attr:`Gap.reason` values.
GAP_LOST: Final = "lost"
"""Not in the capture: the receiver acknowledged them, or the stream ended (RST, end of capture)."""
GAP_OUT_OF_ORDER: Final = "out_of_order"
"""Given up while more than ``max_buffered`` bytes waited behind the hole."""

_FIN: Final = 0x01
_SYN: Final = 0x02
_RST: Final = 0x04
_CONTROL = _FIN | _SYN | _RST
_MASK: Final = 0xFFFFFFFF
_HALF: Final = 0x80000000


# Not frozen (hot path: frozen construction costs three times as much); treat as immutable.
@dataclass(slots=True, init=False)
class Data:
    """Stream bytes, in order, that follow whatever was released before."""

    data: bytes = field(repr=False)
    frame: int
    """Frame that completed these bytes (see the module docstring)."""
    ts_ns: int

    # Written out (init=False), not generated: mypyc compiles it, and builds the object natively.
    def __init__(self, data: bytes, frame: int, ts_ns: int) -> None:
        self.data = data
        self.frame = frame
        self.ts_ns = ts_ns


@dataclass(slots=True)
class Gap:
    """``size`` stream bytes that the capture does not have."""

    size: int
    frame: int
    ts_ns: int
    reason: str = GAP_LOST
    """:data:`GAP_LOST` or :data:`GAP_OUT_OF_ORDER`."""


@dataclass(slots=True)
class Flag:
    """A control flag, reported once: ``"SYN"``, ``"FIN"`` (when in order) or ``"RST"``."""

    flag: str
    frame: int
    ts_ns: int


@dataclass(slots=True)
class Overlap:
    """A segment carried again bytes of the stream already seen (released, or buffered behind a
    hole) but with different content. The copy that arrived first was kept: released bytes
    cannot be taken back, and a buffered chunk never changes (module docstring); this one's
    differing bytes were dropped. Two copies of one stream byte that differ are not a loss but
    a sign of injection (an on-path box racing the real sender) or of a broken middlebox."""

    offset: int
    """Stream offset (from the first byte after the SYN, or the first byte seen) of the first
    byte that differs."""
    size: int
    """Bytes of this segment compared with the first copy."""
    differ: int
    """Bytes among them that differ."""
    frame: int
    """Frame of the later copy, whose differing bytes were dropped."""
    ts_ns: int


Released = Data | Gap | Flag | Overlap

_NOTHING: tuple[Released, ...] = ()
_SHARED_EMPTY: list[Any] = []
_KEEP_ALIVE: Final = 1
"""A 1-byte segment ending at the next position is a keep-alive probe whose octet is garbage
(RFC 9293 3.8.4): never compared."""


class StreamReassembler:
    """Reassembles one direction of a TCP connection; see the module docstring."""

    __slots__ = (
        "_acked",
        "_buffered",
        "_chunks",
        "_ends",
        "_fin",
        "_fin_frame",
        "_fin_ts",
        "_first",
        "_frames",
        "_next",
        "_starts",
        "_tail",
        "_tss",
        "fin_done",
        "isn",
        "max_buffered",
        "rst",
    )

    def __init__(self, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        self.max_buffered = max_buffered
        self.isn: int | None = None
        """Initial sequence number, once a SYN was seen."""
        self.fin_done = False
        """The FIN was reported (it and everything before it are released)."""
        self.rst = False
        """An RST was reported; the stream is over."""
        self._next: int | None = None  # unwrapped position of the next byte to release
        self._acked = -1  # highest unwrapped acknowledgment from the peer
        self._fin: int | None = None  # unwrapped position of the FIN, once seen
        self._fin_frame = 0
        self._fin_ts = 0
        self._first = 0  # unwrapped position of the first byte (after the SYN), once started
        self._tail = b""
        """The bytes released last, ending at ``_next`` (empty when unknown: after a gap, a
        FIN, or bytes the fast path moved past unread): a retransmission overlapping them is
        compared with them (:class:`Overlap`). One reference, no copy."""
        # Buffered chunks beyond a hole: sorted, non-overlapping, parallel lists. Until the
        # first hole they are one shared empty list (never mutated: _put makes the stream's own
        # lists): a connection that never reorders, and the many that never carry data (a SYN
        # flood), pay nothing for them.
        self._starts: list[int] = _SHARED_EMPTY
        self._ends: list[int] = _SHARED_EMPTY
        self._chunks: list[bytes] = _SHARED_EMPTY
        self._frames: list[int] = _SHARED_EMPTY
        self._tss: list[int] = _SHARED_EMPTY
        self._buffered = 0

    # -- queries -------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """A segment of this direction was seen, so positions are defined."""
        return self._next is not None

    @property
    def carried_data(self) -> bool:
        """Bytes of this direction were seen (released, or buffered behind a hole)."""
        nxt = self._next
        if nxt is None:
            return False
        return nxt - self._first > (1 if self.fin_done else 0) or bool(self._starts)

    @property
    def next_seq(self) -> int | None:
        """Sequence number (32-bit, as on the wire) of the next byte to release, once started:
        bytes before it were seen (TCP health calls a segment ending there a retransmission)."""
        return None if self._next is None else self._next & _MASK

    @property
    def buffered(self) -> int:
        """Bytes held behind a hole."""
        return self._buffered

    @property
    def holding(self) -> bool:
        """Bytes or a FIN wait behind a hole: what they release later carries the frames they
        arrived in (see "Frames" in the module docstring)."""
        return bool(self._starts) or (self._fin is not None and not self.fin_done and not self.rst)

    @property
    def held_since(self) -> int | None:
        """The earliest frame of what waits behind a hole (None: nothing): O(chunks held)."""
        if not self.holding:
            return None
        frames = self._frames
        if self._fin is not None and not self.fin_done:
            return min(self._fin_frame, *frames) if frames else self._fin_frame
        return min(frames)

    def _unwrap(self, seq: int) -> int:
        nxt = self._next
        assert nxt is not None
        return nxt + ((seq - nxt + _HALF) & _MASK) - _HALF

    # -- input ---------------------------------------------------------------------------------

    def feed(
        self, seq: int, payload: bytes, flags: int, frame: int, ts_ns: int, truncated: bool = False
    ) -> Sequence[Released]:
        """Take one segment of this direction; return what it releases.

        ``truncated`` says ``payload`` is only the start of the segment (snaplen): the rest is a
        hole like any other, and a FIN on it is ignored because its position is unknown.
        """
        nxt = self._next
        if nxt is not None and not flags & _CONTROL:
            # Fast path: plain data or a bare ACK on a started stream.
            if not payload:
                return _NOTHING
            u = nxt + ((seq - nxt + _HALF) & _MASK) - _HALF  # self._unwrap(seq), inlined
            if u == nxt and self._fin is None and not self._starts and not self.rst:
                self._next = nxt + len(payload)
                self._tail = payload
                return [Data(payload, frame, ts_ns)]
        return self._feed(seq, payload, flags, frame, ts_ns, truncated)

    def take_plain(
        self, seq: int, size: int, peer: StreamReassembler, ack: int | None, data: bytes = b""
    ) -> bool:
        """The fast paths' step for a plain segment (no control bit) of this direction: ``size``
        bytes at sequence number ``seq``, carrying acknowledgment number ``ack`` for ``peer``
        (the other direction), None without the ACK bit.

        When the segment needs neither :meth:`feed` nor ``peer.``:meth:`ack`, take it and return
        True: this stream has started; the data (if any) are exactly the next bytes in order and
        nothing is held here (no chunk behind a hole, no FIN seen, no RST), so the position moves
        past them and the caller releases them itself, as :meth:`feed` would have as one
        :class:`Data`; and ``ack`` is not beyond ``peer``'s next position, so :meth:`ack` could
        release nothing (and the acknowledgment it would record can never matter: a hole only
        ever opens at or beyond that position). Otherwise change nothing and return False.
        ``data``: the bytes the caller releases (empty when it moves past them unread), kept
        to compare a retransmission of them with (:class:`Overlap`)."""
        nxt = self._next
        if nxt is None:
            return False
        if ack is not None:
            pnxt = peer._next
            if pnxt is not None and 0 < (ack - pnxt) & _MASK < _HALF:
                return False
        if size:
            if (seq - nxt) & _MASK or self._fin is not None or self._starts or self.rst:
                return False
            self._next = nxt + size
            self._tail = data
        return True

    def _feed(
        self, seq: int, payload: bytes, flags: int, frame: int, ts_ns: int, truncated: bool
    ) -> Sequence[Released]:
        if self.rst:
            return _NOTHING
        if flags & _RST:
            out = self._release_all(None, 0)
            out.append(Flag("RST", frame, ts_ns))
            self.rst = True
            return out
        out = []
        if flags & _SYN:
            if self._next is None:
                self.isn = seq
                out.append(Flag("SYN", frame, ts_ns))
            # The SYN occupies one sequence number; data on a SYN (TCP Fast Open) follows it.
            seq = (seq + 1) & _MASK
        if self._next is None:
            self._next = self._first = seq
        nxt = self._next
        u = self._unwrap(seq)
        end = u + len(payload)
        if flags & _FIN and self._fin is None and not truncated:
            self._set_fin(end, frame, ts_ns)
        fin = self._fin
        if fin is not None and end > fin:
            end = fin
        if u < nxt and self._tail and not (end == nxt and end - u == _KEEP_ALIVE):
            self._compare(u, min(end, nxt), payload, nxt - len(self._tail), self._tail, out, frame, ts_ns)
        if end > nxt:
            starts = self._starts
            if u <= nxt and (not starts or end <= starts[0]):
                out.append(
                    Data(
                        payload if u == nxt and end - u == len(payload) else payload[nxt - u : end - u],
                        frame,
                        ts_ns,
                    )
                )
                self._next = end
                if starts:
                    self._drain(out, frame, ts_ns)
            else:
                if starts and end > starts[0] and u < self._ends[-1]:
                    self._compare_buffered(u, end, payload, out, frame, ts_ns)
                self._insert(u, end, payload, frame, ts_ns)
                self._drain(out, frame, ts_ns)
            self._give_up_holes(out, frame, ts_ns)
        self._check_fin(out, frame, ts_ns)
        if out:
            self._set_tail(out)
            return out
        return _NOTHING

    def ack(self, ack: int, frame: int, ts_ns: int) -> Sequence[Released]:
        """Take an acknowledgment number sent by the *other* direction; return what it releases."""
        nxt = self._next
        if nxt is None or self.rst:
            return _NOTHING
        a = nxt + ((ack - nxt + _HALF) & _MASK) - _HALF
        if a <= self._acked:
            return _NOTHING
        self._acked = a
        if a <= nxt or (not self._starts and self._fin is None):
            return _NOTHING
        out: list[Released] = []
        self._give_up_holes(out, frame, ts_ns)
        self._check_fin(out, frame, ts_ns)
        self._set_tail(out)
        return out

    def abort(self, frame: int, ts_ns: int) -> list[Released]:
        """End the stream now (the connection was reset at ``frame``): release everything held,
        with gaps for the holes, each carrying the frame it arrived in. Later input is ignored."""
        if self.rst:
            return []
        out = self._release_all(None, 0)
        self.rst = True
        return out

    def flush(self) -> list[Released]:
        """End of capture: release everything held, with gaps for the holes (module docstring)."""
        if self.rst:
            return []
        return self._release_all(None, 0)

    # -- internals -----------------------------------------------------------------------------

    def _set_tail(self, out: list[Released]) -> None:
        """After releasing ``out``: the last bytes released, if they end at the next position."""
        for item in reversed(out):
            if type(item) is Data:
                self._tail = item.data
                return
            if type(item) is not Overlap:
                self._tail = b""  # a gap or a flag moved the position past them
                return

    def _compare(
        self,
        u: int,
        end: int,
        payload: bytes,
        at: int,
        first: bytes,
        out: list[Released],
        frame: int,
        ts_ns: int,
    ) -> None:
        """Compare the bytes ``[u, end)`` of ``payload`` (which starts at ``u``) with the copy
        that arrived first, ``first`` (which starts at ``at``), where they overlap; report an
        :class:`Overlap` when they differ. Slow path only: retransmissions and reordering."""
        lo, hi = max(u, at), min(end, at + len(first))
        if lo >= hi:
            return
        mine = payload[lo - u : hi - u]
        theirs = first[lo - at : hi - at]
        if mine == theirs:
            return
        differ = [i for i in range(hi - lo) if mine[i] != theirs[i]]
        out.append(Overlap(lo + differ[0] - self._first, hi - lo, len(differ), frame, ts_ns))

    def _set_fin(self, fin: int, frame: int, ts_ns: int) -> None:
        self._fin = fin
        self._fin_frame = frame
        self._fin_ts = ts_ns
        # Bytes beyond the FIN are not part of the stream; drop any already buffered.
        starts = self._starts
        if starts and self._ends[-1] > fin:
            i = bisect_right(starts, fin - 1)  # chunks [0, i) start before the FIN
            for j in range(i, len(starts)):
                self._buffered -= self._ends[j] - starts[j]
            del starts[i:], self._ends[i:], self._chunks[i:], self._frames[i:], self._tss[i:]
            if i and self._ends[-1] > fin:
                k = i - 1
                cut = self._ends[k] - fin
                self._buffered -= cut
                self._chunks[k] = self._chunks[k][: fin - starts[k]]
                self._ends[k] = fin

    def _compare_buffered(
        self, u: int, end: int, payload: bytes, out: list[Released], frame: int, ts_ns: int
    ) -> None:
        """Compare a segment with the chunks buffered where it overlaps them (one report per
        segment at most)."""
        starts, chunks = self._starts, self._chunks
        i = max(bisect_right(starts, u) - 1, 0)
        before = len(out)
        while i < len(starts) and starts[i] < end and len(out) == before:
            self._compare(u, end, payload, starts[i], chunks[i], out, frame, ts_ns)
            i += 1

    def _put(self, i: int, start: int, end: int, chunk: bytes, frame: int, ts_ns: int) -> None:
        if self._starts is _SHARED_EMPTY:
            self._starts, self._ends, self._chunks, self._frames, self._tss = [], [], [], [], []
        self._starts.insert(i, start)
        self._ends.insert(i, end)
        self._chunks.insert(i, chunk)
        self._frames.insert(i, frame)
        self._tss.insert(i, ts_ns)
        self._buffered += end - start

    def _insert(self, u: int, end: int, payload: bytes, frame: int, ts_ns: int) -> None:
        """Buffer the bytes ``[u, end)`` of ``payload`` (which starts at ``u``) that are neither
        released nor already buffered: earlier arrivals win."""
        origin = u
        nxt = self._next
        assert nxt is not None
        if u < nxt:
            u = nxt
        starts, ends = self._starts, self._ends
        if not starts or u >= ends[-1]:
            # Common case: the next segment after those already waiting.
            whole = u == origin and end - origin == len(payload)
            self._put(
                len(starts), u, end, payload if whole else payload[u - origin : end - origin], frame, ts_ns
            )
            return
        i = bisect_right(starts, u) - 1
        if i >= 0 and ends[i] > u:
            u = ends[i]
        i += 1
        while u < end:
            if i < len(starts) and starts[i] < end:
                s = starts[i]
                if s > u:
                    self._put(i, u, s, payload[u - origin : s - origin], frame, ts_ns)
                    i += 1
                if ends[i] > u:
                    u = ends[i]
                i += 1
            else:
                self._put(i, u, end, payload[u - origin : end - origin], frame, ts_ns)
                break

    def _drain(self, out: list[Released], frame: int | None, ts_ns: int) -> None:
        """Release the buffered chunks that are now contiguous with the next position.
        ``frame=None`` keeps each chunk's own frame (flush)."""
        starts = self._starts
        nxt = self._next
        assert nxt is not None
        n = len(starts)
        i = 0
        freed = 0
        while i < n and starts[i] <= nxt:
            s = starts[i]
            e = self._ends[i]
            freed += e - s
            if e > nxt:
                chunk = self._chunks[i]
                if s < nxt:
                    chunk = chunk[nxt - s :]
                if frame is None:
                    out.append(Data(chunk, self._frames[i], self._tss[i]))
                else:
                    out.append(Data(chunk, frame, ts_ns))
                nxt = e
            i += 1
        if i:
            del starts[:i], self._ends[:i], self._chunks[:i], self._frames[:i], self._tss[:i]
            self._buffered -= freed
        self._next = nxt

    def _give_up_holes(self, out: list[Released], frame: int, ts_ns: int) -> None:
        """Turn holes that will never fill into gaps (module docstring, "How gaps are decided")."""
        while True:
            nxt = self._next
            assert nxt is not None
            if self._starts:
                limit = self._starts[0]
            elif self._fin is not None and self._fin > nxt:
                limit = self._fin
            else:
                return
            if self._acked > nxt:
                limit = min(limit, self._acked)
                reason = GAP_LOST
            elif self._buffered <= self.max_buffered:
                return
            else:
                reason = GAP_OUT_OF_ORDER
            # The gap, and the bytes after it (which never needed the hole's), carry the frames
            # they arrived in: the hole is where the first segment beyond it was captured.
            f, t = (self._frames[0], self._tss[0]) if self._starts else (self._fin_frame, self._fin_ts)
            out.append(Gap(limit - nxt, f, t, reason))
            self._next = limit
            self._drain(out, None, 0)

    def _check_fin(self, out: list[Released], frame: int, ts_ns: int) -> None:
        if self._fin is not None and self._next == self._fin and not self.fin_done:
            self.fin_done = True
            self._next = self._fin + 1
            out.append(Flag("FIN", frame, ts_ns))

    def _release_all(self, frame: int | None, ts_ns: int) -> list[Released]:
        """Give up every hole, release all buffered bytes and a FIN already seen."""
        out: list[Released] = []
        nxt = self._next
        if nxt is None:
            return out
        while self._starts:
            s = self._starts[0]
            if s > nxt:
                if frame is None:
                    out.append(Gap(s - nxt, self._frames[0], self._tss[0]))
                else:
                    out.append(Gap(s - nxt, frame, ts_ns))
                self._next = s
            self._drain(out, frame, ts_ns)
            nxt = self._next
            assert nxt is not None
        fin = self._fin
        if fin is not None and not self.fin_done:
            f, t = (self._fin_frame, self._fin_ts) if frame is None else (frame, ts_ns)
            if fin > nxt:
                out.append(Gap(fin - nxt, f, t))
                self._next = fin
            self._check_fin(out, f, t)
        return out
