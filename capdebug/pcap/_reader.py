"""Streaming machinery shared by the pcap and pcapng readers.

A capture can be gigabytes, so a reader never loads the file: :class:`ChunkSource` keeps one
``bytes`` window of about :data:`CHUNK_SIZE` bytes and the readers walk it with
``struct.unpack_from`` at an integer position. Only the packet bytes handed out are copied (one
slice per packet, which ``Packet.data`` needs anyway). When a record straddles the end of the
window, the short tail is carried into the next window: each byte of the file is copied into a
window once, so reading is O(file size) with memory bounded by the chunk size (or by the largest
block, which the readers cap at :data:`MAX_BLOCK`).

The window is ``bytes`` rather than a ``memoryview``: ``struct.unpack_from`` reads both without
copying, and slicing ``bytes`` yields the ``bytes`` a ``Packet`` stores in one step.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from types import TracebackType
from typing import Final

from .model import Interface, Packet, SecretsBlock

__all__ = ["CHUNK_SIZE", "MAX_BLOCK", "CaptureReader", "ChunkSource", "FrameFilter", "truncation_warning"]

FrameFilter = Callable[[bytes, int, int, int, int], bool]
"""``predicate(window, start, stop, frame, ts_ns)``: the captured frame ``window[start:stop]``,
its number (1-based) and timestamp; True means the consumer has taken it in already and the
reader moves on without yielding it."""

ANY_LINKTYPE: Final = -2
"""``_skip_linktype`` when the frame filter applies to every interface."""

#: Bytes requested from the underlying stream per refill.
CHUNK_SIZE = 1 << 20

#: Largest record or block a reader accepts; beyond this a length field is taken as corrupt
#: rather than as a reason to allocate hundreds of megabytes.
MAX_BLOCK: Final = 256 << 20


class ChunkSource:
    """A sliding window over a byte stream.

    ``buf[pos:]`` are the unread bytes in memory; ``base`` is the stream offset of ``buf[0]``,
    so ``base + pos`` is the byte offset that error messages name.
    """

    __slots__ = ("_pread", "_read", "base", "buf", "eof", "pos")

    def __init__(
        self,
        read: Callable[[int], bytes],
        initial: bytes = b"",
        *,
        pread: Callable[[int, int], bytes] | None = None,
    ) -> None:
        self._read = read
        self._pread = pread
        """``pread(n, offset)``, when the stream is a plain file (``os.pread``): a refill then
        reads the window from the first unread byte on, instead of joining the unread tail
        to a new chunk (which would copy every chunk once more)."""
        self.buf = initial
        self.pos = 0
        self.base = 0
        self.eof = False

    @property
    def offset(self) -> int:
        """Stream offset of the next unread byte."""
        return self.base + self.pos

    def available(self) -> int:
        return len(self.buf) - self.pos

    def fill(self, need: int) -> bool:
        """Make at least ``need`` unread bytes available; False if the stream ends first.

        The caller must have stored its position in ``pos`` and must reload ``buf`` and ``pos``
        afterwards (the window is replaced).
        """
        have = len(self.buf) - self.pos
        if have >= need:
            return True
        if self.eof:
            return False
        if self._pread is not None:
            return self._fill_at(need)
        parts = [self.buf[self.pos :]] if have else []
        self.base += self.pos
        want = max(need - have, CHUNK_SIZE)
        got = 0
        # Raw streams, pipes and gzip's read1 may return less than asked: keep reading until the
        # record fits, so a short read is never mistaken for a truncated file.
        while have + got < need:
            chunk = self._read(want - got if want > got else CHUNK_SIZE)
            if not chunk:
                self.eof = True
                break
            parts.append(chunk)
            got += len(chunk)
        self.buf = b"".join(parts)
        self.pos = 0
        return len(self.buf) >= need

    def _fill_at(self, need: int) -> bool:
        assert self._pread is not None
        offset = self.base + self.pos
        want = max(need, CHUNK_SIZE)
        chunk = self._pread(want, offset)
        if len(chunk) < need:
            parts = [chunk]
            got = len(chunk)
            while got < need:
                more = self._pread(want - got, offset + got)
                if not more:
                    self.eof = True
                    break
                parts.append(more)
                got += len(more)
            chunk = b"".join(parts)
        self.base = offset
        self.buf = chunk
        self.pos = 0
        return len(chunk) >= need


def truncation_warning(end: int, start: int, what: str) -> str:
    """The warning for a capture that stops inside its last record or block."""
    return (
        f"capture file is truncated at byte offset {end}: the last {what} (starting at byte offset "
        f"{start}) is incomplete (was the capture stopped abruptly?)"
    )


class CaptureReader:
    """An open capture file: iterate it for :class:`Packet` and :class:`SecretsBlock` items.

    Items come in file order and are read lazily, so memory stays constant whatever the file
    size. A reader can be iterated once. Problems that do not stop reading (a truncated last
    packet, a truncated gzip stream) are appended to ``warnings``; malformed structure raises
    :class:`~capdebug.errors.CaptureFormatError` naming the byte offset.
    """

    format: str
    """``"pcap"`` or ``"pcapng"``."""

    def __init__(
        self,
        source: ChunkSource,
        *,
        path: str | None = None,
        close: Callable[[], None] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self._src = source
        self._close = close
        self.path = path
        """The file name when opened from a path (or a stream with a ``name``), else None."""
        self.interfaces: list[Interface] = []
        """Capture interfaces, growing as pcapng IDBs are read; ``Packet.interface`` indexes it."""
        self.warnings: list[str] = warnings if warnings is not None else []
        """Human-readable problems met so far that did not stop reading."""
        self.packets_read = 0
        """Packets read so far (yielded, or taken by the frame filter): the frame number of
        the last packet yielded."""
        self.interface_drops: dict[int, int] = {}
        """Packets dropped per interface (sum of the latest ``isb_ifdrop`` and ``isb_osdrop``)."""
        self._skip_linktype = -1
        self._skip: FrameFilter | None = None
        self._skip_one_interface = False
        self._start()
        self._items = self._iter_items()

    def _start(self) -> None:
        """Format-specific setup, run once at open: a pcap file header is read here so that a
        bad version fails at open time rather than at the first packet."""

    def _iter_items(self) -> Generator[Packet | SecretsBlock, None, None]:
        raise NotImplementedError

    def skip_frames(
        self, linktype: int | None, predicate: FrameFilter | None, *, one_interface: bool = False
    ) -> None:
        """Offer every frame of an interface of ``linktype`` (None: of any) to ``predicate`` before a
        :class:`Packet` is made for it; frames it accepts are not yielded (they still count in
        :attr:`packets_read`, so frame numbers stay those of the file). This is how a consumer
        that needs nothing from most frames (e.g. bulk data it only counts) reads a capture at
        the speed of its own test rather than of packet objects. Call it before iterating;
        a ``predicate`` of None removes the filter. ``one_interface``: the predicate is only
        valid while the file has one interface (it is told nothing of interfaces, and a
        consumer matching copies of a packet across interfaces must see every frame with its
        own, net/twins.py); a pcapng file's second IDB then turns the filter off."""
        self._skip_one_interface = one_interface
        if predicate is None:
            self._skip_linktype = -1
        else:
            self._skip_linktype = ANY_LINKTYPE if linktype is None else linktype
        self._skip = predicate

    def __iter__(self) -> Iterator[Packet | SecretsBlock]:
        return self._items

    def __next__(self) -> Packet | SecretsBlock:
        return next(self._items)

    def close(self) -> None:
        """Stop reading and close the file if this reader opened it (idempotent)."""
        self._items.close()
        close, self._close = self._close, None
        if close is not None:
            close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.format} path={self.path!r} packets_read={self.packets_read}>"
