"""Finding a record boundary again after a gap or a corrupt record.

The search runs on top of the wire framer (``wire.record.scan_records``): an offset is a
boundary when two plausible records in a row parse there (or one reaches exactly the end of
the data). Candidates are found by the regular expression engine, so that looking for a
boundary in random ciphertext costs a scan in C, not a Python step per byte.
"""

from __future__ import annotations

import itertools
import re
from typing import Final

from ...wire.constants import ContentType
from ...wire.record import MAX_CIPHERTEXT_LENGTH, MIN_CONTENT_TYPE
from ..events import Reason
from .bulk import _Bulk
from .session import _Direction, _Session

RESYNC_WINDOW: Final = 65_536
"""How far to look for a record boundary after a gap before giving up on a direction."""
_MAX_PLAUSIBLE_TYPE: Final = ContentType.heartbeat
"""A header the framer accepts may carry tls12_cid (25), but RFC 9146 is for DTLS: a 25 in a
TLS stream is no evidence of a boundary, so the search takes only 20..24."""
_HEADER_START: Final = re.compile(rb"[%c-%c]\x03[\x00-\x04]" % (MIN_CONTENT_TYPE, _MAX_PLAUSIBLE_TYPE))
"""What plausible_header accepts of a record header's first three bytes (content type,
version major, minor)."""


def plausible_header(buf: bytearray | bytes, at: int) -> int:
    """Length of the record whose header is at ``at`` if it looks like one, else -1."""
    ctype = buf[at]
    if ctype < MIN_CONTENT_TYPE or ctype > _MAX_PLAUSIBLE_TYPE or buf[at + 1] != 3 or buf[at + 2] > 4:
        return -1
    length = (buf[at + 3] << 8) | buf[at + 4]
    if length == 0 or length > MAX_CIPHERTEXT_LENGTH:
        return -1
    return length


def boundary_at(buf: bytearray, at: int, end: int) -> int:
    """Is ``at`` a record boundary: 1 yes (two records in a row parse, or one reaches exactly
    the end of the data), -1 no, 0 cannot tell yet (a plausible record not complete yet)."""
    length = plausible_header(buf, at)
    if length < 0:
        return -1
    nxt = at + 5 + length
    if nxt == end:
        return 1
    if nxt + 5 <= end:
        return 1 if plausible_header(buf, nxt) >= 0 else -1
    return 0


def find_boundary(buf: bytearray, start: int) -> int | None:
    """The first offset from ``start`` where two records in a row parse (or one record
    reaching exactly the end of the data). None when the data cannot tell yet."""
    end = len(buf)
    stop = min(end - 5, start + RESYNC_WINDOW) + 3
    for found in _HEADER_START.finditer(buf, start, stop):
        if boundary_at(buf, found.start(), end) > 0:
            return found.start()
    return None


class _Resync(_Bulk):
    """Resynchronising a direction (a layer of :class:`Decoder`)."""

    def _resync(self, session: _Session, d: _Direction, frame: int, ts: int) -> bool:
        """Find the next record boundary after a gap or a corrupt record (as find_boundary),
        as data arrives: each call looks again only at the offsets the data could not yet
        decide (plausible headers of incomplete records: rare) and at the new bytes, so the
        search is linear in the data however long it waits."""
        buf = d.buf
        end = len(buf)
        limit = min(end - 5, d.off + RESYNC_WINDOW)
        # Header starts cannot overlap (a start's 2nd and 3rd bytes are not a content type),
        # so non-overlapping matches are all of them.
        candidates = itertools.chain(
            (pos for pos in d.undecided if pos >= d.off),
            (m.start() for m in _HEADER_START.finditer(buf, max(d.off, d.scan_from), limit + 3)),
        )
        at: int | None = None
        undecided: list[int] = []
        for pos in candidates:
            verdict = boundary_at(buf, pos, end)
            if verdict > 0:
                at = pos
                break
            if verdict == 0:
                undecided.append(pos)
        d.undecided = undecided
        if at is None:
            d.scan_from = limit + 1
            if len(d.buf) - d.off > RESYNC_WINDOW:
                self._undecryptable(
                    session,
                    d,
                    frame,
                    ts,
                    Reason.NOT_TLS,
                    "no TLS record boundary found after a gap or corrupt record; "
                    "the rest of this direction is not decoded",
                )
                d.dead = True
            return False
        d.off = at
        d.resync = False
        d.scan_from = 0
        d.undecided = []
        return True
