"""Stream data to records: each direction's receive buffer, framed by ``wire.record``.

Data of a direction arrives as the reassembler hands it out (``feed_packet``, or straight from
the tracker's frame filter through :meth:`_Framing._deliver`). It is appended to the
direction's buffer and cut into records by :func:`cut_records` (the one wire framer,
``scan_records``); a header that cannot be TLS starts the resync search (``resync.py``). The
buffer compacts lazily, so reading short segments out of a long buffer is O(bytes read).

While the record at the front is incomplete, nothing is framed (``need`` counts down, O(1) per
segment); a bulk record that will be counted unread (``bulk.py``) has the rest of its bytes
dropped as they come (``skip``), and from then on the frame filter does not even copy them.
"""

from __future__ import annotations

from typing import Final

from ...net.fastpath import Deliver
from ...net.reassembly import GAP_LOST
from ...wire.constants import ContentType
from ...wire.record import SCAN_BAD_HEADER, scan_records
from ..events import GapEvent, Reason
from .order import MAX_HELD
from .session import ROLE_NAME, _Direction, _Session
from .sniff import _Sniffing

MAX_PENDING = MAX_HELD + 4096
"""Events piled up by data the frame filter delivered before it stops taking frames, so that
the next frame goes through feed_packet, which hands them out."""
MAX_LATER: Final = 1 << 18
"""Events waiting for a hole (order.py, "Frame order") before the frame filter gives way, so
that feed_packet sees the next frame and may end the wait (order.ORDER_WINDOW); below it they
need not: only frames that feed_packet sees fill or give up holes."""


def cut_records(buf: bytearray | bytes, off: int) -> tuple[list[tuple[int, int, int]], int, bool, int]:
    """The decoder's framing of ``buf[off:]``: ``(records, stop, bad, need)`` with the records
    of :func:`~capdebug.wire.record.scan_records`; ``bad`` when ``stop`` is a whole header
    that cannot be TLS (part of one waits for the rest, which decides the message said); else
    ``need`` is how many bytes the incomplete record at ``stop`` still lacks (0 while fewer than
    its 5 header bytes are there)."""
    records, stop, how = scan_records(buf, off)
    if how == SCAN_BAD_HEADER:
        return records, stop, True, 0
    have = len(buf) - stop
    if have < 5:
        return records, stop, False, 0
    return records, stop, False, 5 + ((buf[stop + 3] << 8) | buf[stop + 4]) - have


class _Framing(_Sniffing):
    """Receive buffers and record framing (a layer of :class:`Decoder`)."""

    _direct: bool

    def _data(self, session: _Session, net_dir: int, data: bytes, frame: int, ts: int) -> None:
        d = session.dirs[net_dir ^ 1 if session.flip else net_dir]
        if d.dead:
            return
        if d.skip:
            # Inside a bulk record that triage counts without reading: drop its bytes.
            n = min(d.skip, len(data))
            d.skip -= n
            if d.skip:
                return
            self._count_bulk(session, d, d.skip_length, frame, ts)
            data = data[n:]
            if not data:
                return
        d.buf += data
        if d.need:
            # The record at the front is still incomplete: framing can wait (O(1) per segment).
            if d.need > len(data):
                d.need -= len(data)
                return
            d.need = 0
        if not d.started:
            if not self._start(session, d, net_dir, frame, ts):
                return
            role = self._role(session, net_dir)
            d = session.dirs[role]
        if d.resync and not self._resync(session, d, frame, ts):
            return
        self._frame(session, d, frame, ts)

    def _gap(
        self,
        session: _Session,
        net_dir: int,
        size: int,
        frame: int,
        ts: int,
        reason: str = GAP_LOST,
        cut_frames: tuple[int, ...] = (),
    ) -> None:
        if session.prelude is not None:
            self._decide(session, None)  # a hole in the plaintext: its upgrade cannot be followed
        d = session.dirs[self._role(session, net_dir)]
        if d.dead:
            return
        cause = reason
        self._emit(session, GapEvent(session.number, frame, ts, ROLE_NAME[d.role], size, cause, cut_frames))
        gap_sink = self.options.gap_sink
        if gap_sink is not None and session.wanted:
            gap_sink(session.number, ROLE_NAME[d.role], size, frame, cause)
        # Bytes before the gap that never formed a whole record are lost with it.
        d.buf.clear()
        d.off = 0
        d.need = 0
        d.skip = 0
        d.scan_from = 0
        d.undecided = []
        d.hs_buf.clear()
        d.resync = True
        if d.encrypted:
            d.seq_unknown = True
        if not d.started:
            d.started = True

    def _frame(self, session: _Session, d: _Direction, frame: int, ts: int) -> None:
        buf = d.buf
        records, off, bad, need = cut_records(buf, d.off)
        if records:
            # Records are cut out through a view (one copy, not two); made only when one is
            # opened, as most records in triage are only counted.
            view: memoryview | None = None
            application_data = ContentType.application_data
            try:
                for ctype, at, length in records:
                    if (
                        ctype != application_data
                        or not d.encrypted
                        or not self._bulk(session, d, length, frame, ts)
                    ):
                        if view is None:
                            view = memoryview(buf)
                        self._record(session, d, ctype, bytes(view[at : at + 5 + length]), frame, ts)
            finally:
                if view is not None:
                    view.release()
        end = len(buf)
        if bad:
            ctype = buf[off]
            length = (buf[off + 3] << 8) | buf[off + 4]
            self._undecryptable(
                session,
                d,
                frame,
                ts,
                Reason.NOT_TLS,
                f"bytes at stream offset are not a TLS record (type {ctype}, length {length}); "
                "looking for the next record boundary",
            )
            d.off = off + 1
            d.resync = True
            if self._resync(session, d, frame, ts):
                self._frame(session, d, frame, ts)
            return
        if need:
            length = need + end - off - 5
            if (
                buf[off] == ContentType.application_data
                and d.encrypted
                and end - off > 5
                and self._is_bulk(session, d, length)
            ):
                d.skip = need
                d.skip_length = length
                off = end
                if not session.fast and self._direct:
                    self._skip_unread(session)
            else:
                d.need = need
        # Compact lazily: O(bytes read) overall, as h11's ReceiveBuffer.
        if off == end:
            buf.clear()
            d.off = 0
        elif off > 65536 and off * 2 > end:
            del buf[:off]
            d.off = 0
        else:
            d.off = off

    def _deliver(self, session: _Session) -> tuple[Deliver, Deliver]:
        """Where the frame filter hands each direction's data: as feed_packet would, then
        out of the filter's way whenever events pile up (so that they are handed out)."""

        def deliver(net_dir: int) -> Deliver:
            def take(data: bytes, frame: int, ts: int) -> bool:
                """True asks the filter to hold: events have piled up to be handed out."""
                self._data(session, net_dir, data, frame, ts)
                return len(self._out) + len(self._held) > MAX_PENDING or len(self._later) > MAX_LATER

            return take

        return deliver(0), deliver(1)

    def _skip_unread(self, session: _Session) -> None:
        """From the first record dropped unread on (its roles are settled: records are
        protected), the frame filter drops the middle of such records without copying them."""
        session.fast = True
        dirs = session.dirs
        flip = 1 if session.flip else 0
        self._tracker.fast_path().attach(session.conn, self._deliver(session), (dirs[flip], dirs[1 - flip]))
