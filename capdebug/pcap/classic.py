"""Classic libpcap files: read and write.

Format (draft-ietf-opsawg-pcap, "PCAP Capture File Format"): a 24-byte file header, then
records of a 16-byte header (seconds, microseconds or nanoseconds, captured length, original
length) and the captured bytes. The magic number says both the byte order of the whole file and
the timestamp unit: ``0xA1B2C3D4`` microseconds, ``0xA1B23C4D`` nanoseconds (section 4).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Generator, Iterable
from typing import BinaryIO, Final

from ..errors import CaptureFormatError, UsageError
from ._reader import ANY_LINKTYPE, MAX_BLOCK, CaptureReader, truncation_warning
from .model import Interface, Packet, SecretsBlock

__all__ = [
    "MAGIC_NSEC",
    "MAGIC_USEC",
    "PcapReader",
    "PcapWriter",
    "pcap_magic",
    "write_pcap",
]

MAGIC_USEC: Final = 0xA1B2C3D4
MAGIC_NSEC: Final = 0xA1B23C4D

# The first four bytes of a file as they appear on disk -> (struct byte order, ns per unit).
_MAGICS: dict[bytes, tuple[str, int]] = {
    struct.pack("<I", MAGIC_USEC): ("<", 1000),
    struct.pack(">I", MAGIC_USEC): (">", 1000),
    struct.pack("<I", MAGIC_NSEC): ("<", 1),
    struct.pack(">I", MAGIC_NSEC): (">", 1),
}

_FILE_HEADER_LEN: Final = 24
_RECORD_HEADER_LEN: Final = 16
# A record longer than this is taken as corruption even when the snaplen says otherwise: libpcap
# refuses records above its per-link-type maximum (262144 for most link types) for the same reason.
_MIN_RECORD_LIMIT: Final = 1 << 20


def pcap_magic(head: bytes) -> tuple[str, int] | None:
    """(struct byte order, nanoseconds per timestamp unit) for a pcap magic, else None."""
    return _MAGICS.get(bytes(head[:4]))


class PcapReader(CaptureReader):
    """Reader for a classic pcap file; use :func:`capdebug.pcap.open_capture` to get one."""

    format = "pcap"

    def _start(self) -> None:
        source = self._src
        magic = pcap_magic(source.buf[source.pos : source.pos + 4])
        if magic is None:
            raise CaptureFormatError("not a pcap file: bad magic number", offset=source.offset)
        self._order, self._unit_ns = magic
        self._header_ok = False
        if not source.fill(_FILE_HEADER_LEN):
            self.warnings.append(
                f"capture file is truncated at byte offset {source.base + len(source.buf)}: "
                "the pcap file header is incomplete (was the capture stopped abruptly?)"
            )
            return
        # Section 4: magic, version major/minor, reserved1 (thiszone), reserved2 (sigfigs),
        # SnapLen, LinkType (FCS length in the top 4 bits, the link type in the low 16).
        _, major, _minor, _zone, _sigfigs, snaplen, linktype = struct.unpack_from(
            self._order + "IHHiIII", source.buf, source.pos
        )
        if major != 2:
            raise CaptureFormatError(f"unsupported pcap version {major} (only 2.x exists)", offset=4)
        source.pos += _FILE_HEADER_LEN
        self._header_ok = True
        self._snaplen = snaplen
        self.interfaces.append(
            Interface(linktype=linktype & 0xFFFF, snaplen=snaplen, tsresol_ns=self._unit_ns)
        )

    def _iter_items(self) -> Generator[Packet | SecretsBlock, None, None]:
        if not self._header_ok:
            return
        # The per-packet hot path of every capture read: names bound to locals, one unpack, one
        # test for the uncommon cases (the window needs refilling, or the length is corrupt).
        src = self._src
        unpack_from = struct.Struct(self._order + "IIII").unpack_from
        packet = Packet
        unit = self._unit_ns
        limit = min(MAX_BLOCK, max(_MIN_RECORD_LIMIT, 2 * self._snaplen))
        count = self.packets_read
        wanted = self._skip_linktype
        skip = self._skip if wanted in (self.interfaces[0].linktype, ANY_LINKTYPE) else None
        buf, pos = src.buf, src.pos
        end = len(buf)
        try:
            while True:
                if end - pos < _RECORD_HEADER_LEN:
                    src.pos = pos
                    if not src.fill(_RECORD_HEADER_LEN):
                        self._note_truncation("packet")
                        return
                    buf, pos = src.buf, src.pos
                    end = len(buf)
                ts_sec, ts_frac, incl_len, orig_len = unpack_from(buf, pos)
                start = pos + _RECORD_HEADER_LEN
                pos = start + incl_len
                if pos > end or incl_len > limit:
                    pos = start - _RECORD_HEADER_LEN
                    if incl_len > limit:
                        raise CaptureFormatError(
                            f"pcap record claims {incl_len} captured bytes (snaplen {self._snaplen}): "
                            "the file is corrupt or not a capture",
                            offset=src.base + pos,
                        )
                    src.pos = pos
                    if not src.fill(_RECORD_HEADER_LEN + incl_len):
                        self._note_truncation("packet")
                        return
                    buf, pos = src.buf, src.pos
                    end = len(buf)
                    start = pos + _RECORD_HEADER_LEN
                    pos = start + incl_len
                count += 1
                ts = ts_sec * 1_000_000_000 + ts_frac * unit
                if skip is not None and skip(buf, start, pos, count, ts):
                    continue
                self.packets_read = count
                yield packet(ts, 0, buf[start:pos], orig_len)
        finally:
            self.packets_read = count

    def _note_truncation(self, what: str) -> None:
        src = self._src
        left = src.available()
        if left:
            self.warnings.append(truncation_warning(src.base + len(src.buf), src.offset, what))


class PcapWriter:
    """Write a classic pcap file (little-endian) to a binary stream.

    ``nanosecond=True`` writes the nanosecond magic so that timestamps are kept exactly;
    otherwise they are truncated to microseconds.
    """

    def __init__(
        self,
        stream: BinaryIO,
        linktype: int,
        snaplen: int = 262144,
        *,
        nanosecond: bool = False,
    ) -> None:
        self._stream = stream
        self._nanosecond = nanosecond
        self._header = struct.Struct("<IIII")
        magic = MAGIC_NSEC if nanosecond else MAGIC_USEC
        stream.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write_packet(self, pkt: Packet) -> None:
        if pkt.ts_ns < 0:
            raise UsageError(f"cannot write a timestamp before 1970 to pcap: {pkt.ts_ns} ns")
        sec, frac = divmod(pkt.ts_ns, 1_000_000_000)
        if not self._nanosecond:
            frac //= 1000
        if sec > 0xFFFFFFFF:
            raise UsageError(f"timestamp {pkt.ts_ns} ns does not fit in a pcap record (year 2106)")
        self._stream.write(self._header.pack(sec, frac, len(pkt.data), pkt.orig_len))
        self._stream.write(pkt.data)

    def flush(self) -> None:
        self._stream.flush()


def write_pcap(
    target: str | os.PathLike[str] | BinaryIO,
    packets: Iterable[Packet],
    *,
    linktype: int,
    snaplen: int = 262144,
    nanosecond: bool = False,
) -> int:
    """Write ``packets`` as a pcap file to a path or stream; returns the number written."""
    if isinstance(target, (str, os.PathLike)):
        with open(target, "wb") as f:
            return write_pcap(f, packets, linktype=linktype, snaplen=snaplen, nanosecond=nanosecond)
    writer = PcapWriter(target, linktype, snaplen, nanosecond=nanosecond)
    count = 0
    for pkt in packets:
        writer.write_packet(pkt)
        count += 1
    writer.flush()
    return count
