"""Incremental (push) parser for the classic pcap stream tcpdump writes with ``-w -``.

capdebug.pcap's readers pull from a stream and block until a record is complete; the runner
multiplexes several pipes with a selector and must never block on one of them, so it pushes
whatever bytes arrived into :class:`PcapStreamParser` and takes back the packets they complete.

Format (draft-ietf-opsawg-pcap section 4/5): a 24-byte file header whose magic gives the byte
order and the timestamp unit, then records of a 16-byte header (ts seconds, ts fraction,
captured length, original length) and the captured bytes. A record is handed out only when all
its bytes are there, so a stream cut anywhere yields exactly the complete packets before the cut.
"""

from __future__ import annotations

import struct

from ..errors import CaptureFormatError
from ..pcap.classic import pcap_magic
from ..pcap.model import Interface, Packet

__all__ = ["PcapStreamParser"]

_FILE_HEADER = 24
_RECORD_HEADER = 16
# No link type tcpdump writes allows records this large; a bigger length is a corrupt stream,
# not a reason to buffer without bound.
_MAX_RECORD = 1 << 24
# Compact the receive buffer only once this much has been consumed, so that each byte is moved
# O(1) times however the stream is chunked (h11 ReceiveBuffer's rule).
_COMPACT_AT = 1 << 20


class PcapStreamParser:
    """Feed bytes with :meth:`feed`; get the packets they complete."""

    __slots__ = ("_buf", "_pos", "_rec", "_unit_ns", "bytes_in", "description", "interface", "name")

    def __init__(self, *, name: str | None = None, description: str | None = None) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._rec: struct.Struct | None = None
        self._unit_ns = 1000
        self.interface: Interface | None = None
        """Known once the file header has arrived."""
        self.bytes_in = 0
        self.name = name
        self.description = description

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete record (lost if the stream ends)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[Packet]:
        self.bytes_in += len(data)
        buf = self._buf
        if self._pos >= _COMPACT_AT:
            del buf[: self._pos]
            self._pos = 0
        buf += data
        if self._rec is None and not self._read_header():
            return []
        rec = self._rec
        assert rec is not None
        unit = self._unit_ns
        out: list[Packet] = []
        pos = self._pos
        end = len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= _RECORD_HEADER:
                sec, frac, caplen, orig_len = rec.unpack_from(view, pos)
                if caplen > _MAX_RECORD:
                    raise CaptureFormatError(
                        f"tcpdump output is corrupt: record of {caplen} bytes", offset=self._offset(pos)
                    )
                stop = pos + _RECORD_HEADER + caplen
                if stop > end:
                    break
                out.append(
                    Packet(sec * 1_000_000_000 + frac * unit, 0, bytes(view[pos + 16 : stop]), orig_len)
                )
                pos = stop
        finally:
            view.release()
        self._pos = pos
        return out

    def _offset(self, pos: int) -> int:
        return self.bytes_in - (len(self._buf) - pos)

    def _read_header(self) -> bool:
        buf = self._buf
        available = len(buf) - self._pos
        if available < 4:
            return False
        found = pcap_magic(bytes(buf[self._pos : self._pos + 4]))
        if found is None:
            raise CaptureFormatError("tcpdump output is not a pcap stream (bad magic)", offset=0)
        if available < _FILE_HEADER:
            return False
        order, self._unit_ns = found
        snaplen, linktype = struct.unpack_from(order + "II", buf, self._pos + 16)
        # The top bits of the link type field carry the FCS length (section 4); the type is the low 16.
        self.interface = Interface(
            linktype=linktype & 0xFFFF,
            snaplen=snaplen,
            tsresol_ns=self._unit_ns,
            name=self.name,
            description=self.description,
        )
        self._rec = struct.Struct(order + "IIII")
        self._pos += _FILE_HEADER
        return True
