"""HTTP/2 followed across records: frames (RFC 9113 4.1) and header blocks, decoded with the
``hpack`` library (RFC 7541), to read each response's ``:status`` and each request's method
and path.

HPACK is stateful per direction: every header block (HEADERS, PUSH_PROMISE and their
CONTINUATION frames) changes the dynamic table the next ones refer to, so every one must be
decoded, in order. Triage opens only some records (``analysis/decode/bulk.py``); it asks
:meth:`H2Direction.wants` about each record it would count unread, and that says no only for
a record lying wholly inside a frame whose content does not matter (DATA, WINDOW_UPDATE...).
When a record is missed anyway (a TCP gap, a CBC record whose padding hides its length),
frames and header blocks are out of step: header blocks after it are reported as unreadable
("cannot tell"), never guessed. Control frames (GOAWAY, RST_STREAM, SETTINGS) in a later record
are read again once a record parses as whole frames from its first byte to its last.

Limits, stated: a TLS 1.3 record counted unread is taken for application data (its content
type is inside the protection); a NewSessionTicket sent in the middle of a long DATA frame
would shift the frames unnoticed (servers send tickets right after the handshake, and HTTP/2
forbids post-handshake authentication, RFC 8740). TLS 1.3 record padding would do the same;
the common stacks do not pad."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .http import PREFACE, AppFact, control_fact

if TYPE_CHECKING:
    import hpack

__all__ = ["H2Direction", "H2Watch"]

_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PUSH_PROMISE, _GOAWAY, _CONTINUATION = 0, 1, 3, 4, 5, 7, 9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20
_KEPT = frozenset((_HEADERS, _RST_STREAM, _SETTINGS, _PUSH_PROMISE, _GOAWAY, _CONTINUATION))
"""Frames whose content is read; the others are only counted through."""
_MAX_KEPT = 1 << 18
"""A kept frame larger than this (a huge header block or GOAWAY debug data) is not buffered:
the direction is given up as out of step."""


class H2Direction:
    """One direction of an HTTP/2 connection, fed record by record in stream order."""

    __slots__ = (
        "block",
        "block_push",
        "block_stream",
        "decoder",
        "flags",
        "framing",
        "ftype",
        "head",
        "left",
        "lost",
        "payload",
        "preface",
        "server",
        "stream",
    )

    def __init__(self, *, server: bool) -> None:
        self.server = server
        self.preface = not server
        """The client's connection preface (RFC 9113 3.4) is still to come."""
        self.head = bytearray()
        self.ftype = -1
        """The type of the frame whose payload is being read; -1 between frames."""
        self.flags = 0
        self.stream = 0
        self.left = 0
        """Payload bytes of the current frame still to come."""
        self.payload = bytearray()
        self.block: bytearray | None = None
        """A header block waiting for its CONTINUATION frames."""
        self.block_stream = 0
        self.block_push = False
        import hpack  # imported when HTTP/2 is seen: it costs every start otherwise (issue 19)

        decoder = hpack.Decoder()
        # A passive observer decodes what was sent: the receiver's SETTINGS_HEADER_TABLE_SIZE
        # is its business (RFC 7541 4.2), not a limit to enforce here.
        decoder.max_allowed_table_size = 1 << 24
        self.decoder: hpack.Decoder | None = decoder
        self.framing = True
        """Frame boundaries are known."""
        self.lost: str | None = None
        """Why header blocks cannot be read any more (the HPACK state was lost)."""

    def wants(self, length: int, exact: bool) -> bool:
        """Must a record of ``length`` content bytes be opened to keep frames and header
        blocks in step? Not when it lies wholly inside a frame whose content is not read."""
        if not self.framing:
            return False
        return not (exact and self.ftype >= 0 and self.ftype not in _KEPT and self.left >= length)

    def skip(self, length: int, exact: bool, why: str) -> None:
        """``length`` content bytes went by unread (a record counted unread, or a gap)."""
        if self.framing and exact and self.ftype >= 0 and self.ftype not in _KEPT and self.left >= length:
            self.left -= length
            if self.left == 0:
                self.ftype = -1
            return
        self._lose(why)

    def _lose(self, why: str) -> None:
        self.framing = False
        if self.decoder is not None:
            self.decoder = None
            self.lost = why
        self.head.clear()
        self.payload = bytearray()
        self.block = None
        self.ftype = -1
        self.preface = False

    def feed(self, data: bytes) -> list[AppFact]:
        """The facts of one opened record's content."""
        if not self.framing:
            return self._resync(data)
        out: list[AppFact] = []
        at, end = 0, len(data)
        if self.preface:
            self.preface = False
            if not data.startswith(PREFACE):
                self._lose("the client's first record was not the HTTP/2 connection preface")
                return out
            out.append(AppFact("preface", "HTTP/2 connection preface"))
            at = len(PREFACE)
        while at < end:
            if self.ftype < 0:
                need = 9 - len(self.head)
                self.head += data[at : at + need]
                at += need
                if len(self.head) < 9:
                    break
                if not self._start(out):
                    return out
                continue
            take = min(self.left, end - at)
            if self.ftype in _KEPT:
                self.payload += data[at : at + take]
            at += take
            self.left -= take
            if self.left == 0:
                self._end(out)
        return out

    def _start(self, out: list[AppFact]) -> bool:
        h = self.head
        length = int.from_bytes(h[0:3], "big")
        ftype = h[3]
        self.flags = h[4]
        self.stream = int.from_bytes(h[5:9], "big") & 0x7FFFFFFF
        h.clear()
        if self.block is not None and ftype != _CONTINUATION:
            self._lose(f"a header block was interrupted by a frame of type {ftype} (RFC 9113 6.10)")
            return False
        if ftype in _KEPT and length > _MAX_KEPT:
            self._lose(f"a frame of type {ftype} and {length} bytes was not followed")
            return False
        self.ftype, self.left = ftype, length
        self.payload = bytearray()
        if length == 0:
            self._end(out)
        return True

    def _end(self, out: list[AppFact]) -> None:
        ftype, flags, body = self.ftype, self.flags, bytes(self.payload)
        self.ftype = -1
        self.payload = bytearray()
        if ftype in (_HEADERS, _PUSH_PROMISE):
            at, pad = 0, 0
            if flags & _PADDED and body:
                pad, at = body[0], 1
            if ftype == _HEADERS and flags & _PRIORITY:
                at += 5
            elif ftype == _PUSH_PROMISE:
                at += 4
            if at + pad > len(body):
                self._lose("a malformed header frame")
                return
            self.block = bytearray(body[at : len(body) - pad])
            self.block_stream, self.block_push = self.stream, ftype == _PUSH_PROMISE
        elif ftype == _CONTINUATION:
            if self.block is None or self.stream != self.block_stream:
                self._lose("a CONTINUATION frame without its header block")
                return
            self.block += body
        else:
            fact = control_fact(ftype, flags, self.stream, body)
            if fact is not None:
                out.append(fact)
            return
        if flags & _END_HEADERS:
            block, self.block = bytes(self.block), None
            fact = self._headers(block)
            if fact is not None:
                out.append(fact)

    def _headers(self, block: bytes) -> AppFact | None:
        decoder = self.decoder
        stream = self.block_stream
        if decoder is None:
            return self._unknown(stream)
        import hpack

        try:
            fields = decoder.decode(block, raw=True)
        except hpack.HPACKError as e:
            self.decoder = None
            self.lost = f"a header block could not be decoded ({type(e).__name__})"
            return self._unknown(stream)
        if self.block_push:
            return None  # a promised request: decoded for the table's sake only
        found: dict[bytes, bytes] = {}
        for name, value in fields:
            if isinstance(name, bytes) and isinstance(value, bytes) and name.startswith(b":"):
                found.setdefault(name, value)
        if self.server:
            status = found.get(b":status")
            if status is None or not status.isdigit():
                return None  # trailers
            code = int(status)
            return AppFact("response", f"HTTP/2 {code} on stream {stream}", code)
        method = found.get(b":method", b"?").decode("ascii", "replace")
        path = found.get(b":path", b"").decode("ascii", "replace")[:200]
        return AppFact("request", f"{method} {path} on stream {stream}".replace("  ", " "))

    def _unknown(self, stream: int) -> AppFact | None:
        if self.block_push:
            return None
        kind = "response" if self.server else "request"
        return AppFact(kind, f"HTTP/2 {kind} on stream {stream} (cannot tell: {self.lost})", unreadable=True)

    def _resync(self, data: bytes) -> list[AppFact]:
        """Out of step: a record whose frames chain exactly from its first byte to its last
        starts at a frame boundary: read its control frames (its header blocks cannot be
        read) and take up framing again from its end. Any other record says nothing."""
        out: list[AppFact] = []
        at = 0
        while at + 9 <= len(data):
            length = int.from_bytes(data[at : at + 3], "big")
            ftype = data[at + 3]
            if at + 9 + length > len(data) or ftype > _CONTINUATION:
                return []
            stream = int.from_bytes(data[at + 5 : at + 9], "big") & 0x7FFFFFFF
            if ftype == _HEADERS:
                self.block_push = False
                fact = self._unknown(stream)
            else:
                fact = control_fact(ftype, data[at + 4], stream, data[at + 9 : at + 9 + length])
            if fact is not None:
                out.append(fact)
            at += 9 + length
        if at != len(data) or not at:
            return []
        self.framing = True  # the next record starts at a frame boundary
        return out


_UNDECIDED_OPENED = 8
"""Server records opened while it is not yet known whether the connection is HTTP/2 (the
client's first record decides it): a server may send its SETTINGS before it reads the preface."""


_UNDECIDED: tuple[H2Direction, H2Direction] = ()  # type: ignore[assignment]
""":attr:`H2Watch.dirs` before the connection is known to be HTTP/2 (never read then)."""


class H2Watch:
    """One connection, as the decoder opens its records: HTTP/2 or not (decided by the client's
    first record: the connection preface), and then each direction's frames.

    ``slots`` are the consumer's per-record holders (a one-element list filled with the
    record's facts), so that facts computed when the record is opened reach the record's
    event, which the decoder delivers later."""

    __slots__ = ("dirs", "h2", "pending")

    def __init__(self) -> None:
        self.h2: bool | None = None
        self.dirs: tuple[H2Direction, H2Direction] = _UNDECIDED
        """Made when the preface is seen (an HPACK decoder costs ~10 us: not for every
        connection)."""
        self.pending: list[tuple[bytes | None, int, bool, list[list[AppFact] | None]]] = []
        """The server's records before the decision: (content or None when unread, length,
        exact, slot)."""

    def record(self, server: bool, data: bytes, slot: list[list[AppFact] | None]) -> None:
        if self.h2 is None:
            if server:
                self.pending.append((data, len(data), True, slot))
                return
            self.h2 = data.startswith(PREFACE)
            pending, self.pending = self.pending, []
            if self.h2:
                self.dirs = (H2Direction(server=False), H2Direction(server=True))
                slot[0] = self.dirs[0].feed(data)
                for content, length, exact, held in pending:
                    if content is None:
                        self.dirs[1].skip(length, exact, "a record was not opened")
                    else:
                        held[0] = self.dirs[1].feed(content)
            return
        if self.h2:
            slot[0] = self.dirs[server].feed(data)

    def wants(self, server: bool, length: int, exact: bool) -> bool:
        """Open this record (else it is counted unread, and :meth:`unread` is told)?"""
        if self.h2 is None:
            if server and len(self.pending) < _UNDECIDED_OPENED:
                return True
            self.unread(server, length, exact, "a record was not opened before HTTP/2 was recognised")
            return False
        if not self.h2:
            return False
        want = self.dirs[server].wants(length, exact)
        if not want:
            self.dirs[server].skip(length, exact, "a record was not opened")
        return want

    def unread(self, server: bool, length: int, exact: bool, why: str) -> None:
        """Content the watch will not see: a record counted unread, or a gap (length 0)."""
        if self.h2 is None:
            if server:
                self.pending.append((None, length, exact, [None]))
            else:
                self.h2 = False  # the client's first bytes were never seen: cannot tell
                self.pending = []
            return
        if self.h2:
            self.dirs[server].skip(length, exact, why)

    def lost(self) -> tuple[str | None, str | None]:
        """Why each direction's header blocks could not be read (client, server)."""
        return self.dirs[0].lost, self.dirs[1].lost
