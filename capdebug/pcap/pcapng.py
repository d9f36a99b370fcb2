"""pcapng files: read and write, including Decryption Secrets Blocks.

Format: draft-ietf-opsawg-pcapng ("PCAP Now Generic", cited below as "pcapng"). A file is a
sequence of blocks ``type, block_total_length, body, block_total_length`` (pcapng section 3.1).
Each Section Header Block starts a section with its own byte order (section 4.1); the Interface
Description Blocks of a section are numbered from 0 within that section (section 4.2), which the
reader maps onto one global ``interfaces`` list so that ``Packet.interface`` is unambiguous.

Timestamps are 64-bit counts of ``if_tsresol`` units (default 10^-6 s) plus ``if_tsoffset``
seconds (section 4.2); the reader converts them to integer nanoseconds. The writer always
declares nanosecond resolution, so converting a pcap (micro- or nanosecond) loses nothing.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from typing import BinaryIO, Final

from ..errors import CaptureFormatError, UsageError
from ._reader import ANY_LINKTYPE, MAX_BLOCK, CaptureReader, truncation_warning
from .model import Interface, Packet, SecretsBlock

__all__ = [
    "BLOCK_DSB",
    "BLOCK_EPB",
    "BLOCK_IDB",
    "BLOCK_ISB",
    "BLOCK_NRB",
    "BLOCK_OPB",
    "BLOCK_SHB",
    "BLOCK_SPB",
    "BYTE_ORDER_MAGIC",
    "PcapngReader",
    "PcapngWriter",
]

# Block types (pcapng section 11.1).
BLOCK_SHB: Final = 0x0A0D0D0A
BLOCK_IDB: Final = 0x00000001
BLOCK_OPB: Final = 0x00000002  # obsolete Packet Block (appendix A)
BLOCK_SPB: Final = 0x00000003
BLOCK_NRB: Final = 0x00000004
BLOCK_ISB: Final = 0x00000005
BLOCK_EPB: Final = 0x00000006
BLOCK_DSB: Final = 0x0000000A

BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
_BOM_LE: Final = struct.pack("<I", BYTE_ORDER_MAGIC)
_BOM_BE: Final = struct.pack(">I", BYTE_ORDER_MAGIC)

# Option codes (pcapng sections 3.5, 4.1, 4.2, 4.3, 4.6).
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
SHB_USERAPPL: Final = 4
IF_NAME: Final = 2
IF_DESCRIPTION: Final = 3
IF_SPEED: Final = 8
IF_TSRESOL: Final = 9
IF_TZONE: Final = 10
IF_TSOFFSET: Final = 14
IF_TXSPEED: Final = 16
IF_RXSPEED: Final = 17
EPB_FLAGS: Final = 2
ISB_IFDROP: Final = 5
ISB_OSDROP: Final = 7

# IDB options kept raw whose value is an integer in the section's byte order: the reader stores
# them little-endian so that ``Interface.options`` means the same whichever section it came from
# (the writer always writes little-endian sections).
_IDB_INT_OPTIONS: Final = {IF_SPEED: 8, IF_TZONE: 4, IF_TXSPEED: 8, IF_RXSPEED: 8}

_PACKET_BLOCKS: Final = (BLOCK_EPB, BLOCK_SPB, BLOCK_OPB)
_NS: Final = 1_000_000_000


class _Codec:
    """The structs of one byte order, built once per order rather than per block."""

    __slots__ = ("dsb", "epb", "hdr", "i64", "idb", "isb", "opb", "opt", "order", "u32", "u64")

    def __init__(self, order: str) -> None:
        self.order = order
        self.hdr = struct.Struct(order + "II")
        self.u32 = struct.Struct(order + "I")
        self.u64 = struct.Struct(order + "Q")
        self.i64 = struct.Struct(order + "q")
        self.opt = struct.Struct(order + "HH")
        self.epb = struct.Struct(order + "IIIII")  # interface_id, ts high, ts low, caplen, origlen
        self.opb = struct.Struct(order + "HHIIII")  # interface_id, drops_count, ts high/low, caplen, len
        self.idb = struct.Struct(order + "HHI")  # linktype, reserved, snaplen
        self.isb = struct.Struct(order + "III")  # interface_id, ts high, ts low
        self.dsb = struct.Struct(order + "II")  # secrets type, secrets length


_CODECS: Final = {"<": _Codec("<"), ">": _Codec(">")}


def _parse_options(buf: bytes, start: int, stop: int, codec: _Codec, base: int) -> list[tuple[int, bytes]]:
    """Options in ``buf[start:stop]`` (pcapng section 3.5), up to opt_endofopt."""
    out: list[tuple[int, bytes]] = []
    unpack = codec.opt.unpack_from
    p = start
    while p + 4 <= stop:
        code, length = unpack(buf, p)
        if code == OPT_ENDOFOPT:
            break
        vstart = p + 4
        vend = vstart + length
        if vend > stop:
            raise CaptureFormatError(
                f"pcapng option {code} of length {length} overruns its block", offset=base + p
            )
        out.append((code, buf[vstart:vend]))
        p = vstart + ((length + 3) & ~3)
    return out


class _LocalInterface:
    """What a packet block needs about the interface it names, precomputed at the IDB."""

    __slots__ = ("div", "index", "linktype", "mul", "offset_ns", "snaplen")

    def __init__(self, index: int, mul: int, div: int, offset_ns: int, snaplen: int, linktype: int) -> None:
        self.index = index
        self.linktype = linktype
        self.mul = mul
        self.div = div
        self.offset_ns = offset_ns
        self.snaplen = snaplen


def _tsresol(value: int) -> tuple[int, int, int]:
    """(mul, div, informational ns per unit) for an if_tsresol byte (pcapng section 4.2):
    ``ts_ns = raw * mul // div``. The top bit selects a power of two, else a power of ten."""
    exp = value & 0x7F
    if value & 0x80:
        units = 1 << exp
        return _NS, units, max(1, (_NS + units // 2) // units)
    if exp <= 9:
        mul = 10 ** (9 - exp)
        return mul, 1, mul
    return 1, 10 ** (exp - 9), 1


def _text(value: bytes) -> str:
    # Some writers include a NUL terminator although the format does not ask for one.
    return value.rstrip(b"\x00").decode("utf-8", errors="replace")


class PcapngReader(CaptureReader):
    """Reader for a pcapng file; use :func:`capdebug.pcap.open_capture` to get one."""

    format = "pcapng"

    def _start(self) -> None:
        self.sections = 0
        """Section Header Blocks read so far."""
        self.skipped_blocks: dict[int, int] = {}
        """Blocks skipped knowingly, by block type: NRB, custom and unknown blocks."""
        self._codec = _CODECS["<"]
        self._local: list[_LocalInterface] = []

    def _iter_items(self) -> Generator[Packet | SecretsBlock, None, None]:
        src = self._src
        buf, pos = src.buf, src.pos
        end = len(buf)
        codec = self._codec
        hdr = codec.hdr.unpack_from
        epb = codec.epb.unpack_from
        u32 = codec.u32.unpack_from
        local = self._local
        skip = self._skip
        skip_linktype = self._skip_linktype
        in_section = False
        while True:
            if end - pos < 12:
                # 12 bytes: the SHB needs its byte-order magic before its length can be read.
                src.pos = pos
                src.fill(12)
                buf, pos = src.buf, src.pos
                end = len(buf)
                if end - pos < 8 or (end - pos < 12 and buf[pos : pos + 4] == b"\x0a\x0d\x0d\x0a"):
                    if end > pos:
                        self.warnings.append(truncation_warning(src.base + end, src.base + pos, "block"))
                    return
            btype, blen = hdr(buf, pos)
            if btype == BLOCK_SHB:
                # The type reads the same in both byte orders; the byte-order magic decides how
                # to read everything else in the section, including this block's length.
                bom = buf[pos + 8 : pos + 12]
                if bom == _BOM_LE:
                    codec = _CODECS["<"]
                elif bom == _BOM_BE:
                    codec = _CODECS[">"]
                else:
                    raise CaptureFormatError(
                        f"pcapng section header has a bad byte-order magic {bom.hex(' ')}",
                        offset=src.base + pos + 8,
                    )
                self._codec = codec
                hdr = codec.hdr.unpack_from
                epb = codec.epb.unpack_from
                u32 = codec.u32.unpack_from
                btype, blen = hdr(buf, pos)
            elif not in_section:
                raise CaptureFormatError(
                    f"pcapng file does not start with a section header block (type 0x{btype:08X})",
                    offset=src.base + pos,
                )
            if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                raise CaptureFormatError(
                    f"pcapng block of type 0x{btype:08X} has an impossible length {blen}",
                    offset=src.base + pos + 4,
                )
            if end - pos < blen:
                src.pos = pos
                if not src.fill(blen):
                    what = "packet" if btype in _PACKET_BLOCKS else f"block (type 0x{btype:08X})"
                    buf, pos = src.buf, src.pos
                    self.warnings.append(truncation_warning(src.base + len(buf), src.base + pos, what))
                    return
                buf, pos = src.buf, src.pos
                end = len(buf)
            stop = pos + blen - 4
            if u32(buf, stop)[0] != blen:
                raise CaptureFormatError(
                    f"pcapng block of type 0x{btype:08X}: trailing length {u32(buf, stop)[0]} "
                    f"does not match the leading length {blen}",
                    offset=src.base + stop,
                )

            if btype == BLOCK_EPB:
                # Enhanced Packet Block (section 4.3), the hot path: inline.
                if blen < 32:
                    raise CaptureFormatError(f"pcapng EPB too short ({blen} bytes)", offset=src.base + pos)
                iface_id, ts_high, ts_low, caplen, orig_len = epb(buf, pos + 8)
                data_start = pos + 28
                data_stop = data_start + caplen
                if data_stop > stop:
                    raise CaptureFormatError(
                        f"pcapng EPB captured length {caplen} overruns its {blen}-byte block",
                        offset=src.base + pos + 20,
                    )
                if iface_id >= len(local):
                    raise self._no_interface(iface_id, src.base + pos + 8)
                li = local[iface_id]
                ts = ((ts_high << 32) | ts_low) * li.mul // li.div + li.offset_ns
                self.packets_read += 1
                if (
                    (li.linktype == skip_linktype or skip_linktype == ANY_LINKTYPE)
                    and skip is not None
                    and skip(buf, data_start, data_stop, self.packets_read, ts)
                ):
                    pos = stop + 4
                    continue
                flags = None
                opt_start = data_start + ((caplen + 3) & ~3)
                if opt_start < stop:
                    for code, value in _parse_options(buf, opt_start, stop, codec, src.base):
                        if code == EPB_FLAGS and len(value) == 4:
                            flags = u32(value)[0]
                yield Packet(
                    ts,
                    li.index,
                    buf[data_start:data_stop],
                    orig_len,
                    flags,
                )
            elif btype == BLOCK_SHB:
                self._read_shb(buf, pos, stop, codec, src.base)
                in_section = True
            elif btype == BLOCK_IDB:
                self._read_idb(buf, pos, stop, codec, src.base)
                if len(self.interfaces) > 1 and self._skip_one_interface:
                    # Several interfaces: the consumer must see every frame with its interface
                    # (the same packet may be on two of them), which this frame filter, told
                    # nothing of interfaces, would hide. Frames are then all yielded.
                    skip = self._skip = None
            elif btype == BLOCK_SPB:
                yield self._read_spb(buf, pos, stop, codec, src.base)
            elif btype == BLOCK_OPB:
                yield self._read_opb(buf, pos, stop, codec, src.base)
            elif btype == BLOCK_DSB:
                yield self._read_dsb(buf, pos, stop, codec, src.base)
            elif btype == BLOCK_ISB:
                self._read_isb(buf, pos, stop, codec, src.base)
            else:
                # NRB, systemd journal, custom (0x00000BAD, 0x40000BAD) and unknown blocks carry
                # nothing capdebug uses; the length framing lets us skip them safely.
                self.skipped_blocks[btype] = self.skipped_blocks.get(btype, 0) + 1
            pos = stop + 4

    def _no_interface(self, iface_id: int, offset: int) -> CaptureFormatError:
        return CaptureFormatError(
            f"pcapng packet names interface {iface_id} but its section has only "
            f"{len(self._local)} interface(s)",
            offset=offset,
        )

    def _read_shb(self, buf: bytes, pos: int, stop: int, codec: _Codec, base: int) -> None:
        # Section 4.1: byte-order magic, major, minor, section length (-1: not given), options.
        if stop - pos < 24:
            raise CaptureFormatError("pcapng section header block too short", offset=base + pos)
        major, minor = struct.unpack_from(codec.order + "HH", buf, pos + 12)
        if major != 1:
            raise CaptureFormatError(
                f"unsupported pcapng version {major}.{minor} (only 1.x exists)", offset=base + pos + 12
            )
        self.sections += 1
        self._local.clear()

    def _read_idb(self, buf: bytes, pos: int, stop: int, codec: _Codec, base: int) -> None:
        # Section 4.2: LinkType, reserved, SnapLen, options.
        if stop - pos < 16:
            raise CaptureFormatError("pcapng interface description block too short", offset=base + pos)
        linktype, _, snaplen = codec.idb.unpack_from(buf, pos + 8)
        name = description = None
        tsresol = 6  # microseconds unless if_tsresol says otherwise
        tsoffset = 0
        others: list[tuple[int, bytes]] = []
        for code, value in _parse_options(buf, pos + 16, stop, codec, base):
            if code == IF_NAME:
                name = _text(value)
            elif code == IF_DESCRIPTION:
                description = _text(value)
            elif code == IF_TSRESOL and len(value) >= 1:
                tsresol = value[0]
            elif code == IF_TSOFFSET and len(value) == 8:
                tsoffset = codec.i64.unpack_from(value)[0]
            elif code in _IDB_INT_OPTIONS and len(value) == _IDB_INT_OPTIONS[code] and codec.order == ">":
                others.append((code, value[::-1]))
            else:
                others.append((code, value))
        mul, div, ns_per_unit = _tsresol(tsresol)
        index = len(self.interfaces)
        self.interfaces.append(
            Interface(
                linktype=linktype,
                snaplen=snaplen,
                tsresol_ns=ns_per_unit,
                name=name,
                description=description,
                tsoffset_s=tsoffset,
                options=tuple(others),
            )
        )
        self._local.append(_LocalInterface(index, mul, div, tsoffset * _NS, snaplen, linktype))

    def _read_spb(self, buf: bytes, pos: int, stop: int, codec: _Codec, base: int) -> Packet:
        # Section 4.4: only the original length; the interface is the section's first and there
        # is no timestamp (reported as 0). The captured length is implied (section 4.4).
        if stop - pos < 12:
            raise CaptureFormatError("pcapng simple packet block too short", offset=base + pos)
        if not self._local:
            raise self._no_interface(0, base + pos)
        li = self._local[0]
        orig_len = codec.u32.unpack_from(buf, pos + 8)[0]
        caplen = min(orig_len, stop - (pos + 12))
        if li.snaplen:
            caplen = min(caplen, li.snaplen)
        self.packets_read += 1
        return Packet(0, li.index, buf[pos + 12 : pos + 12 + caplen], orig_len)

    def _read_opb(self, buf: bytes, pos: int, stop: int, codec: _Codec, base: int) -> Packet:
        # Appendix A (obsolete Packet Block): like an EPB with a 16-bit interface id and a drop
        # count; its pack_flags option has the meaning and code of epb_flags.
        if stop - pos < 28:
            raise CaptureFormatError("pcapng packet block too short", offset=base + pos)
        iface_id, _drops, ts_high, ts_low, caplen, orig_len = codec.opb.unpack_from(buf, pos + 8)
        data_start = pos + 28
        if data_start + caplen > stop:
            raise CaptureFormatError(
                f"pcapng packet block captured length {caplen} overruns its block", offset=base + pos + 20
            )
        if iface_id >= len(self._local):
            raise self._no_interface(iface_id, base + pos + 8)
        li = self._local[iface_id]
        flags = None
        for code, value in _parse_options(buf, data_start + ((caplen + 3) & ~3), stop, codec, base):
            if code == EPB_FLAGS and len(value) == 4:
                flags = codec.u32.unpack_from(value)[0]
        self.packets_read += 1
        return Packet(
            ((ts_high << 32) | ts_low) * li.mul // li.div + li.offset_ns,
            li.index,
            buf[data_start : data_start + caplen],
            orig_len,
            flags,
        )

    def _read_isb(self, buf: bytes, pos: int, stop: int, codec: _Codec, base: int) -> None:
        # Section 4.6: interface id, timestamp, options with the counters.
        if stop - pos < 20:
            raise CaptureFormatError("pcapng interface statistics block too short", offset=base + pos)
        iface_id = codec.u32.unpack_from(buf, pos + 8)[0]
        if iface_id >= len(self._local):
            raise self._no_interface(iface_id, base + pos + 8)
        drops = None
        for code, value in _parse_options(buf, pos + 20, stop, codec, base):
            if code in (ISB_IFDROP, ISB_OSDROP) and len(value) == 8:
                drops = (drops or 0) + codec.u64.unpack_from(value)[0]
        if drops is not None:
            self.interface_drops[self._local[iface_id].index] = drops

    def _read_dsb(self, buf: bytes, pos: int, stop: int, codec: _Codec, base: int) -> SecretsBlock:
        # Section 4.7: secrets type, secrets length, secrets data (padded), options.
        if stop - pos < 16:
            raise CaptureFormatError("pcapng decryption secrets block too short", offset=base + pos)
        secrets_type, length = codec.dsb.unpack_from(buf, pos + 8)
        if pos + 16 + length > stop:
            raise CaptureFormatError(
                f"pcapng decryption secrets length {length} overruns its block", offset=base + pos + 12
            )
        return SecretsBlock(
            secrets_type,
            buf[pos + 16 : pos + 16 + length],
            offset=base + pos,
            packets_before=self.packets_read,
        )


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) & 3)


def _options(opts: list[bytes]) -> bytes:
    # opt_endofopt only when there are options: an empty option list is simply absent.
    return b"".join(opts) + struct.pack("<HH", OPT_ENDOFOPT, 0) if opts else b""


class PcapngWriter:
    """Write a pcapng file (one little-endian section) to a binary stream.

    The Section Header Block is written at once; interfaces, packets and secrets follow in the
    order they are added. Every interface is declared with nanosecond ``if_tsresol`` so that
    ``Packet.ts_ns`` is written exactly.
    """

    def __init__(
        self, stream: BinaryIO, *, shb_comment: str | None = None, user_appl: str = "capdebug"
    ) -> None:
        self._stream = stream
        self._offsets_ns: list[int] = []
        self._epb = struct.Struct("<IIIIIII")
        opts = []
        if shb_comment is not None:
            opts.append(_option(OPT_COMMENT, shb_comment.encode()))
        if user_appl:
            opts.append(_option(SHB_USERAPPL, user_appl.encode()))
        # Section length -1: unknown, the writer streams (pcapng section 4.1).
        self._block(BLOCK_SHB, struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(opts))

    def _block(self, btype: int, body: bytes) -> None:
        blen = 12 + len(body)
        self._stream.write(struct.pack("<II", btype, blen) + body + struct.pack("<I", blen))

    def add_interface(self, iface: Interface) -> int:
        """Write an IDB for ``iface``; returns its index for :meth:`write_packet`."""
        opts = []
        if iface.name is not None:
            opts.append(_option(IF_NAME, iface.name.encode()))
        if iface.description is not None:
            opts.append(_option(IF_DESCRIPTION, iface.description.encode()))
        opts.append(_option(IF_TSRESOL, b"\x09"))
        if iface.tsoffset_s:
            opts.append(_option(IF_TSOFFSET, struct.pack("<q", iface.tsoffset_s)))
        for code, value in iface.options:
            if code not in (OPT_ENDOFOPT, IF_NAME, IF_DESCRIPTION, IF_TSRESOL, IF_TSOFFSET):
                opts.append(_option(code, value))
        self._block(BLOCK_IDB, struct.pack("<HHI", iface.linktype, 0, iface.snaplen) + _options(opts))
        self._offsets_ns.append(iface.tsoffset_s * _NS)
        return len(self._offsets_ns) - 1

    def write_packet(self, pkt: Packet, interface: int) -> None:
        """Write ``pkt`` as an EPB on output interface ``interface`` (from :meth:`add_interface`)."""
        if not 0 <= interface < len(self._offsets_ns):
            raise UsageError(f"interface {interface} was not added to this pcapng writer")
        raw = pkt.ts_ns - self._offsets_ns[interface]
        if not 0 <= raw < 1 << 64:
            raise UsageError(f"timestamp {pkt.ts_ns} ns cannot be written on interface {interface}")
        data = pkt.data
        caplen = len(data)
        pad = -caplen & 3
        opts = b"" if pkt.flags is None else struct.pack("<HHIHH", EPB_FLAGS, 4, pkt.flags, 0, 0)
        blen = 32 + caplen + pad + len(opts)
        write = self._stream.write
        write(self._epb.pack(BLOCK_EPB, blen, interface, raw >> 32, raw & 0xFFFFFFFF, caplen, pkt.orig_len))
        write(data)
        write(b"\x00" * pad + opts + struct.pack("<I", blen))

    def write_secrets(self, secrets_type: int, data: bytes) -> None:
        """Write a Decryption Secrets Block (pcapng section 4.7), e.g. an NSS key log."""
        self._block(
            BLOCK_DSB, struct.pack("<II", secrets_type, len(data)) + data + b"\x00" * (-len(data) & 3)
        )

    def flush(self) -> None:
        self._stream.flush()
