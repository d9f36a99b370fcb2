"""pcapng reader against files built field by field (builders.py), in both byte orders."""

from __future__ import annotations

import io
import struct

import pytest

from capdebug.errors import CaptureFormatError
from capdebug.pcap import Packet, SecretsBlock, open_capture
from capdebug.pcap.pcapng import PcapngReader

from . import builders as b


def _read(raw: bytes) -> tuple[list[Packet | SecretsBlock], PcapngReader]:
    reader = open_capture(io.BytesIO(raw))
    assert isinstance(reader, PcapngReader)
    return list(reader), reader


def test_big_endian_section() -> None:
    o = ">"
    raw = (
        b.shb(o, b.options(o, (4, b"hand-made")))
        + b.idb(
            o,
            linktype=276,
            snaplen=9000,
            opts=b.options(o, (2, b"any"), (3, b"host-a"), (9, b"\x09"), (8, struct.pack(">Q", 10**9))),
        )
        + b.epb(o, 0, 1_700_000_000_123_456_789, b"\x01\x02\x03", 60, b.options(o, (2, struct.pack(">I", 1))))
        + b.epb(o, 0, 1_700_000_001_000_000_000, b"\xaa" * 8)
    )
    assert raw[8:12] == bytes.fromhex("1a2b3c4d")  # really big-endian
    items, reader = _read(raw)
    assert reader.format == "pcapng"
    [iface] = reader.interfaces
    assert (iface.linktype, iface.snaplen, iface.name, iface.description) == (276, 9000, "any", "host-a")
    assert iface.tsresol_ns == 1
    # if_speed is an integer option: kept raw but little-endian whatever the section's order.
    assert iface.options == ((8, struct.pack("<Q", 10**9)),)
    assert items == [
        Packet(1_700_000_000_123_456_789, 0, b"\x01\x02\x03", 60, 1),
        Packet(1_700_000_001_000_000_000, 0, b"\xaa" * 8, 8, None),
    ]
    assert reader.warnings == []


def test_two_sections_with_different_byte_orders() -> None:
    le, be = "<", ">"
    raw = (
        b.shb(le)
        + b.idb(le, 1, opts=b.options(le, (2, b"eth0")))
        + b.idb(le, 113, opts=b.options(le, (2, b"any")))
        + b.epb(le, 1, 1_000_001, b"first")
        + b.shb(be)
        + b.idb(be, 101, opts=b.options(be, (2, b"tun0"), (9, b"\x09")))
        + b.epb(be, 0, 2_000_000_000, b"second")
        + b.shb(le)
        + b.idb(le, 1)
        + b.epb(le, 0, 3, b"third")
    )
    items, reader = _read(raw)
    assert [i.name for i in reader.interfaces] == ["eth0", "any", "tun0", None]
    assert [(p.interface, p.data, p.ts_ns) for p in items if isinstance(p, Packet)] == [
        (1, b"first", 1_000_001_000),
        (2, b"second", 2_000_000_000),
        (3, b"third", 3_000),
    ]
    assert reader.sections == 3


def test_interface_index_is_per_section() -> None:
    o = "<"
    # The second section has one interface: interface 1 names nothing there any more.
    raw = b.shb(o) + b.idb(o) + b.idb(o) + b.shb(o) + b.idb(o) + b.epb(o, 1, 0, b"x")
    with pytest.raises(CaptureFormatError, match="interface 1") as info:
        _read(raw)
    assert info.value.offset == len(raw) - len(b.epb(o, 1, 0, b"x")) + 8


@pytest.mark.parametrize(
    ("tsresol", "raw_ts", "expect_ns", "ns_per_unit"),
    [
        (None, 1_700_000_000_123_456, 1_700_000_000_123_456_000, 1000),  # default 10^-6
        (b"\x06", 1_700_000_000_123_456, 1_700_000_000_123_456_000, 1000),
        (b"\x09", 1_700_000_000_123_456_789, 1_700_000_000_123_456_789, 1),
        (b"\x03", 1_700_000_000_123, 1_700_000_000_123_000_000, 1_000_000),
        (b"\x8a", (1_700_000_000 << 10) + 512, 1_700_000_000_500_000_000, 976_563),  # 2^-10
        (b"\x0c", 1_700_000_123_456_789_123, 1_700_000_123_456_789, 1),  # picoseconds
    ],
)
def test_if_tsresol(tsresol: bytes | None, raw_ts: int, expect_ns: int, ns_per_unit: int) -> None:
    o = "<"
    opts = b.options(o, (9, tsresol)) if tsresol is not None else b""
    raw = b.shb(o) + b.idb(o, opts=opts) + b.epb(o, 0, raw_ts & ((1 << 64) - 1), b"p")
    items, reader = _read(raw)
    assert [p.ts_ns for p in items if isinstance(p, Packet)] == [expect_ns]
    assert reader.interfaces[0].tsresol_ns == ns_per_unit


@pytest.mark.parametrize("order", ["<", ">"])
def test_if_tsoffset(order: str) -> None:
    opts = b.options(order, (14, struct.pack(order + "q", 1_600_000_000)))
    raw = b.shb(order) + b.idb(order, opts=opts) + b.epb(order, 0, 2_500_000, b"p")
    items, reader = _read(raw)
    assert [p.ts_ns for p in items if isinstance(p, Packet)] == [1_600_000_002_500_000_000]
    assert reader.interfaces[0].tsoffset_s == 1_600_000_000


@pytest.mark.parametrize("order", ["<", ">"])
def test_spb_opb_nrb_isb_and_unknown_blocks(order: str) -> None:
    o = order
    drops = b.options(o, (5, struct.pack(o + "Q", 3)), (7, struct.pack(o + "Q", 4)))
    raw = (
        b.shb(o)
        + b.nrb(o)
        + b.idb(o, snaplen=4)
        + b.spb(o, 10, b"0123456789")  # snaplen 4 limits the captured bytes
        + b.idb(o, snaplen=0)
        + b.spb(o, 3, b"abc")  # the padding is not packet data
        + b.block(o, 0x12345678, b"unknown stuff")
        + b.block(o, 0x00000BAD, struct.pack(o + "I", 32473) + b"custom")
        + b.opb(o, 1, 5, b"old", 300, b.options(o, (2, struct.pack(o + "I", 2))))
        + b.isb(o, 0, 9, b.options(o, (5, struct.pack(o + "Q", 1))))
        + b.isb(o, 1, 9, drops)
        + b.isb(o, 1, 10)  # no counters: the earlier figure stays
        + b.epb(o, 1, 7, b"last")
    )
    items, reader = _read(raw)
    assert items == [
        Packet(0, 0, b"0123", 10),
        Packet(0, 0, b"abc", 3),
        Packet(5000, 1, b"old", 300, 2),
        Packet(7000, 1, b"last", 4),
    ]
    assert reader.interface_drops == {0: 1, 1: 7}
    assert reader.skipped_blocks == {b.NRB: 1, 0x12345678: 1, 0x00000BAD: 1}
    assert reader.warnings == []
    assert reader.packets_read == 4


def test_dsb_offset_and_packets_before() -> None:
    o = "<"
    head = b.shb(o) + b.idb(o) + b.epb(o, 0, 1, b"a") + b.epb(o, 0, 2, b"b")
    keys = b"CLIENT_RANDOM " + b"11" * 32 + b" " + b"22" * 48 + b"\n"
    raw = head + b.dsb(o, b.TLSK, keys) + b.epb(o, 0, 3, b"c") + b.dsb(o, 0x57474B4C, b"wg")
    items, _ = _read(raw)
    secrets = [i for i in items if isinstance(i, SecretsBlock)]
    assert [(s.secrets_type, s.data, s.offset, s.packets_before) for s in secrets] == [
        (b.TLSK, keys, len(head), 2),
        (0x57474B4C, b"wg", len(head) + len(b.dsb(o, b.TLSK, keys)) + len(b.epb(o, 0, 3, b"c")), 3),
    ]
    assert [type(i).__name__ for i in items] == ["Packet", "Packet", "SecretsBlock", "Packet", "SecretsBlock"]


def _corrupt(raw: bytes, at: int, value: bytes) -> bytes:
    return raw[:at] + value + raw[at + len(value) :]


_O = "<"
_GOOD = b.shb(_O) + b.idb(_O) + b.epb(_O, 0, 1, b"abcdef")
_EPB_AT = len(b.shb(_O) + b.idb(_O))


@pytest.mark.parametrize(
    ("raw", "match", "offset"),
    [
        (_corrupt(_GOOD, _EPB_AT + 4, struct.pack("<I", 8)), "impossible length 8", _EPB_AT + 4),
        (_corrupt(_GOOD, _EPB_AT + 4, struct.pack("<I", 46)), "impossible length 46", _EPB_AT + 4),
        (_corrupt(_GOOD, _EPB_AT + 4, struct.pack("<I", 300 << 20)), "impossible length", _EPB_AT + 4),
        (_corrupt(_GOOD, len(_GOOD) - 4, struct.pack("<I", 44)), "trailing length 44", len(_GOOD) - 4),
        (_corrupt(_GOOD, 8, b"\x01\x02\x03\x04"), "byte-order magic 01 02 03 04", 8),
        (_corrupt(_GOOD, _EPB_AT + 20, struct.pack("<I", 999)), "captured length 999", _EPB_AT + 20),
        (_corrupt(_GOOD, 12, struct.pack("<H", 2)), "version 2", 12),
        (_GOOD + b.block(_O, b.DSB, b""), "secrets block too short", len(_GOOD)),
        (_GOOD + b.block(_O, b.EPB, b"\x00" * 16), "EPB too short", len(_GOOD)),
        (b.shb(_O) + b.idb(_O, opts=struct.pack("<HH", 2, 200) + b"x" * 4), "overruns", len(b.shb(_O)) + 16),
    ],
)
def test_malformed_blocks_name_the_offset(raw: bytes, match: str, offset: int) -> None:
    with pytest.raises(CaptureFormatError, match=match) as info:
        _read(raw)
    assert info.value.offset == offset
    assert f"byte offset {offset}" in str(info.value)


def test_first_block_must_be_a_section_header() -> None:
    # open_capture checks the magic; a reader fed a stream that lost its SHB still refuses.
    from capdebug.pcap._reader import ChunkSource

    reader = PcapngReader(ChunkSource(io.BytesIO(b.idb(_O)).read))
    with pytest.raises(CaptureFormatError, match="does not start with a section header"):
        list(reader)
