"""Packets the snaplen cut short, and which gaps they explain.

A segment cut by the snaplen leaves a hole in its stream right after the bytes that were
captured. The reassembler cannot tell that hole from any other: it gives it up as a gap only
later, when a segment beyond it or an acknowledgment past it arrives (usually the next frame
of that side), so the frame being fed when the gap comes out is, most of the time, not the one
that was cut. Deciding the cause from "is the current frame cut?" therefore called snaplen holes
"lost" (and intact frames "snaplen").

Instead each cut is remembered by its sequence range ``[end of the captured payload, + bytes
not captured)``, the bytes missing being ``orig_len - caplen`` of the frame (the snaplen only
ever drops the end of a frame). When a gap comes out, its own range is worked out from the
stream position before the batch of net events that carries it; a gap made only of cut ranges
has the cause ``snaplen`` and names the frames that were cut. A gap that also holds bytes no
frame carried keeps the cause the decoder found for it (the capture or the network lost part of
it). A cut hole filled later (a retransmission with other segment boundaries) just expires.

Only connections with a pending cut pay for this, so the per-frame cost elsewhere is one
truth test of an empty dict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ...net.flow import Connection, StreamData, StreamGap

__all__ = ["CutTracker", "GapOrigin"]

_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_SYN = 0x02


@dataclass(frozen=True, slots=True)
class GapOrigin:
    """What made one gap: the frames the snaplen cut whose missing bytes it is made of."""

    frames: tuple[int, ...]


class _Cut:
    __slots__ = ("end", "frame", "start")

    def __init__(self, start: int, end: int, frame: int) -> None:
        self.start = start
        self.end = end
        self.frame = frame


def _after(a: int, b: int) -> int:
    """``a - b`` in 32-bit sequence space (RFC 9293 section 3.4), as a signed distance."""
    return ((a - b + _HALF) & _MASK) - _HALF


class CutTracker:
    """Cut segments per connection and direction, matched against the gaps they cause."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[Connection, list[list[_Cut]]]] = {}
        """conn id -> (connection, cuts per network direction): truthy when any cut waits
        (the decoder's per-frame test, an attribute rather than a method call)."""
        self._origins: dict[int, GapOrigin] = {}
        """id(StreamGap) -> origin, for the gaps of the batch being handled."""

    def record(
        self, conn: Connection, direction: int, seq: int, flags: int, captured: int, missing: int, frame: int
    ) -> None:
        """A segment of ``conn`` sent by ``direction`` at ``seq`` whose payload was captured for
        ``captured`` bytes and cut short by ``missing`` bytes."""
        if missing <= 0:
            return
        start = (seq + (1 if flags & _SYN else 0) + captured) & _MASK
        entry = self.pending.get(conn.id)
        if entry is None:
            entry = self.pending[conn.id] = (conn, [[], []])
        entry[1][direction].append(_Cut(start, (start + missing) & _MASK, frame))

    def marks(self, conn: Connection | None) -> dict[int, list[int | None]] | None:
        """Stream positions before a batch of net events: of ``conn``, or of every connection
        with a pending cut (None: end of capture, all of them); None when nothing is pending."""
        if not self.pending:
            return None
        if conn is not None:
            if conn.id not in self.pending:
                return None
            return {conn.id: [s.next_seq for s in conn.streams]}
        return {cid: [s.next_seq for s in c.streams] for cid, (c, _) in self.pending.items()}

    def classify(self, marks: dict[int, list[int | None]], events: Iterable[object]) -> None:
        """Walk one batch of net events in order, following each stream's position from
        ``marks``, and note the origin of every gap made only of cut bytes."""
        self._origins.clear()
        for ev in events:
            if type(ev) is StreamData:
                pos = marks.get(ev.conn.id)
                if pos is not None and pos[ev.direction] is not None:
                    pos[ev.direction] = (pos[ev.direction] + len(ev.data)) & _MASK  # type: ignore[operator]
            elif type(ev) is StreamGap:
                pos = marks.get(ev.conn.id)
                d = int(ev.direction)
                if pos is None or pos[d] is None:
                    continue
                start: int = pos[d]  # type: ignore[assignment]
                pos[d] = (start + ev.size) & _MASK
                frames = self._cover(ev.conn.id, d, start, ev.size)
                if frames:
                    self._origins[id(ev)] = GapOrigin(frames)

    def _cover(self, conn_id: int, d: int, start: int, size: int) -> tuple[int, ...]:
        entry = self.pending.get(conn_id)
        if entry is None:
            return ()
        cuts = entry[1][d]
        end = (start + size) & _MASK
        frames: list[int] = []
        at = start  # bytes of the gap before ``at`` are explained by a cut
        keep: list[_Cut] = []
        for cut in cuts:
            if _after(cut.end, start) <= 0:
                continue  # wholly before this gap: filled, or already reported
            if _after(cut.start, end) >= 0:
                keep.append(cut)  # beyond it: a later gap's
                continue
            if _after(cut.start, at) <= 0 < _after(cut.end, at):
                at = cut.end
            frames.append(cut.frame)
            if _after(cut.end, end) > 0:
                keep.append(cut)
        if keep:
            entry[1][d] = keep
        else:
            entry[1][d] = []
            if not entry[1][1 - d]:
                del self.pending[conn_id]
        if frames and _after(at, end) >= 0:
            return tuple(frames)
        return ()

    def origin(self, gap: StreamGap) -> GapOrigin | None:
        """The origin :meth:`classify` found for ``gap`` (None: not made of cut bytes only)."""
        return self._origins.pop(id(gap), None) if self._origins else None

    def forget(self, conn_id: int) -> None:
        self.pending.pop(conn_id, None)
