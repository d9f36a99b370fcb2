"""Open a capture by its content: pcap or pcapng, optionally gzip-compressed.

The format is decided by the magic number, never by the file name: tcpdump writes pcap whatever
the extension, and a ``.pcap`` may well be pcapng. Gzip (``1f 8b``) is unwrapped transparently,
as Wireshark does, and byte offsets in messages then count uncompressed bytes.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import stat
import zlib
from collections.abc import Callable
from typing import BinaryIO

from ..errors import CaptureFormatError, UsageError
from ._reader import CaptureReader, ChunkSource
from .classic import PcapReader, pcap_magic
from .pcapng import PcapngReader

__all__ = ["CaptureReader", "open_capture"]

_GZIP_MAGIC = b"\x1f\x8b"
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
# Kuznetzov's patched libpcap: same layout with a longer record header.
_MODIFIED_PCAP = {b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34"}


def _read_up_to(read: Callable[[int], bytes], n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class _GzipStream:
    """Decompressed reads that turn gzip's exceptions into capdebug's.

    A gzip file cut short (tcpdump | gzip killed) raises EOFError at the end; that is the same
    situation as a truncated capture, so it ends the data with a warning instead. ``read1``
    makes at most one underlying read, so the data decompressed before the cut is not lost.
    """

    def __init__(self, raw: Callable[[int], bytes], warnings: list[str]) -> None:
        self._gz = gzip.GzipFile(fileobj=_Prefixed(raw), mode="rb")
        self._warnings = warnings
        self._pos = 0

    def read(self, n: int) -> bytes:
        try:
            data: bytes = self._gz.read1(n)
        except EOFError:
            self._warnings.append(
                f"gzip stream ends early after {self._pos} uncompressed bytes (truncated .gz file)"
            )
            return b""
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise CaptureFormatError(f"corrupt gzip data: {exc}", offset=self._pos) from exc
        self._pos += len(data)
        return data


class _Prefixed:
    """A minimal file object over a read function, for gzip.GzipFile."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read

    def read(self, n: int, /) -> bytes:
        return self._read(n)

    def seek(self, n: int, /) -> object:
        # Only needed to rewind, which a streaming reader never does.
        raise io.UnsupportedOperation("seek")


def _describe(head: bytes) -> str:
    if not head:
        return "not a pcap or pcapng file: the file is empty"
    shown = " ".join(f"{b:02x}" for b in head[:4])
    msg = f"not a pcap or pcapng file: starts with {shown}"
    if head[:4] in _MODIFIED_PCAP:
        return msg + " (modified/Kuznetzov pcap; convert it with `editcap -F pcap`)"
    if head.startswith((b"CLIENT_", b"SERVER_", b"# ", b"EXPORTER_", b"EARLY_")):
        return msg + " (this looks like a TLS key log file; pass it as the key log instead)"
    if len(head) < 4:
        return msg + f" (only {len(head)} bytes long)"
    return msg


def open_capture(source: str | os.PathLike[str] | BinaryIO) -> CaptureReader:
    """Open a pcap or pcapng capture (gzip-compressed or not) from a path or binary stream.

    Returns a :class:`CaptureReader`; iterate it for packets and secrets blocks. A stream
    passed in is read from its current position and is not closed by the reader.
    Raises :class:`~capdebug.errors.CaptureFormatError` when the content is not a capture and
    :class:`~capdebug.errors.UsageError` when the path cannot be opened.
    """
    close: Callable[[], None] | None = None
    if isinstance(source, (str, os.PathLike)):
        file_name = os.fspath(source)
        path: str | None = file_name
        try:
            f = open(file_name, "rb")  # the reader owns it: CaptureReader.close() closes it
        except OSError as exc:
            raise UsageError(f"cannot open capture {file_name}: {exc.strerror or exc}") from exc
        stream: BinaryIO = f
        close = f.close
    else:
        stream = source
        name = getattr(source, "name", None)
        path = name if isinstance(name, str) else None
    try:
        warnings: list[str] = []
        read: Callable[[int], bytes] = stream.read
        head = _read_up_to(read, 16)
        gunzipped = head[:2] == _GZIP_MAGIC
        if gunzipped:
            rest = read
            pending = [head]

            def raw(n: int) -> bytes:
                # The bytes already read to see the magic come first, then the stream.
                if not pending:
                    return rest(n)
                out, left = pending[0][:n], pending[0][n:]
                if left:
                    pending[0] = left
                else:
                    pending.clear()
                return out

            read = _GzipStream(raw, warnings).read
            head = _read_up_to(read, 16)
        # A regular file we opened is read by offset (no copy of each chunk to keep the unread
        # tail); a path can also name a pipe (/dev/stdin, <(zcat ...)), which cannot seek.
        pread = None
        if close is not None and not gunzipped and stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            pread = functools.partial(os.pread, f.fileno())
        src = ChunkSource(read, head, pread=pread)
        reader: CaptureReader
        if head[:4] == _PCAPNG_MAGIC:
            reader = PcapngReader(src, path=path, close=close, warnings=warnings)
        elif pcap_magic(head) is not None:
            reader = PcapReader(src, path=path, close=close, warnings=warnings)
        else:
            message = _describe(head)
            if gunzipped:
                message = message.replace("file:", "file after gunzip:", 1)
                message += "".join(f"; {w}" for w in warnings)
            raise CaptureFormatError(message, offset=0)
    except BaseException:
        if close is not None:
            close()
        raise
    return reader
