"""Capture files built field by field with struct, independently of capdebug's writers.

The tests read these with capdebug's readers, so a mistake shared by reader and writer cannot
hide: the layouts here follow draft-ietf-opsawg-pcap and draft-ietf-opsawg-pcapng directly.
``order`` is a struct byte order, ``"<"`` or ``">"``.
"""

from __future__ import annotations

import struct

SHB = 0x0A0D0D0A
IDB = 1
OPB = 2
SPB = 3
NRB = 4
ISB = 5
EPB = 6
DSB = 0x0A
TLSK = 0x544C534B


def pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def options(order: str, *pairs: tuple[int, bytes]) -> bytes:
    if not pairs:
        return b""
    return b"".join(option(order, c, v) for c, v in pairs) + struct.pack(order + "HH", 0, 0)


def block(order: str, btype: int, body: bytes) -> bytes:
    body = pad4(body)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def shb(order: str, opts: bytes = b"") -> bytes:
    return block(order, SHB, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


def idb(order: str, linktype: int = 1, snaplen: int = 65535, opts: bytes = b"") -> bytes:
    return block(order, IDB, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(
    order: str, iface: int, ts: int, data: bytes, orig_len: int | None = None, opts: bytes = b""
) -> bytes:
    head = struct.pack(
        order + "IIIII",
        iface,
        ts >> 32,
        ts & 0xFFFFFFFF,
        len(data),
        len(data) if orig_len is None else orig_len,
    )
    return block(order, EPB, head + pad4(data) + opts)


def spb(order: str, orig_len: int, data: bytes) -> bytes:
    return block(order, SPB, struct.pack(order + "I", orig_len) + pad4(data))


def opb(order: str, iface: int, ts: int, data: bytes, orig_len: int, opts: bytes = b"") -> bytes:
    head = struct.pack(order + "HHIIII", iface, 0, ts >> 32, ts & 0xFFFFFFFF, len(data), orig_len)
    return block(order, OPB, head + pad4(data) + opts)


def nrb(order: str) -> bytes:
    # One IPv4 record (type 1): 127.0.0.1 -> "localhost", then nrb_record_end.
    rec = pad4(bytes([127, 0, 0, 1]) + b"localhost\x00")
    body = struct.pack(order + "HH", 1, 4 + len(b"localhost\x00")) + rec + struct.pack(order + "HH", 0, 0)
    return block(order, NRB, body)


def isb(order: str, iface: int, ts: int, opts: bytes = b"") -> bytes:
    return block(order, ISB, struct.pack(order + "III", iface, ts >> 32, ts & 0xFFFFFFFF) + opts)


def dsb(order: str, secrets_type: int, data: bytes) -> bytes:
    return block(order, DSB, struct.pack(order + "II", secrets_type, len(data)) + pad4(data))


def pcap_file(
    order: str,
    records: list[tuple[int, int, bytes, int]],
    *,
    nanosecond: bool = False,
    snaplen: int = 65535,
    linktype: int = 1,
) -> bytes:
    """A classic pcap file; each record is (seconds, fraction, data, orig_len)."""
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, orig_len in records:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), orig_len) + data)
    return b"".join(out)
