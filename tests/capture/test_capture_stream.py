"""The incremental pcap parser: any chunking, both byte orders and units, cuts mid-record."""

from __future__ import annotations

import io
import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from capdebug.capture.stream import PcapStreamParser
from capdebug.errors import CaptureFormatError
from capdebug.pcap.classic import PcapWriter
from capdebug.pcap.model import LinkType, Packet


def _pcap(packets: list[Packet], *, nanosecond: bool) -> bytes:
    buf = io.BytesIO()
    w = PcapWriter(buf, LinkType.ETHERNET, nanosecond=nanosecond)
    for p in packets:
        w.write_packet(p)
    w.flush()
    return buf.getvalue()


def _packets(n: int, seed: int) -> list[Packet]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        data = rnd.randbytes(rnd.randrange(0, 1600))
        out.append(
            Packet(1_700_000_000_000_000_000 + i * 1_234_000, 0, data, len(data) + rnd.randrange(0, 3))
        )
    return out


@pytest.mark.parametrize("nanosecond", [False, True])
def test_one_byte_at_a_time(nanosecond: bool) -> None:
    pkts = _packets(20, 1)
    raw = _pcap(pkts, nanosecond=nanosecond)
    parser = PcapStreamParser(name="lo", description="h")
    got: list[Packet] = []
    for i in range(len(raw)):
        got += parser.feed(raw[i : i + 1])
    assert got == pkts
    assert parser.pending == 0
    assert parser.interface is not None and parser.interface.linktype == LinkType.ETHERNET
    assert parser.interface.description == "h"


@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=50), st.integers(0, 10))
def test_any_chunking_and_cut(sizes: list[int], seed: int) -> None:
    pkts = _packets(15, seed)
    raw = _pcap(pkts, nanosecond=False)
    cut = min(sum(sizes), len(raw))
    parser = PcapStreamParser()
    got: list[Packet] = []
    pos = 0
    for size in sizes:
        if pos >= cut:
            break
        got += parser.feed(raw[pos : min(pos + size, cut)])
        pos = min(pos + size, cut)
    # Exactly the packets whose last byte arrived; the rest is pending.
    complete = 0
    off = 24
    for p in pkts:
        off += 16 + len(p.data)
        if off <= cut:
            complete += 1
    assert got == pkts[:complete]


def test_big_endian_stream() -> None:
    body = b"\x01\x02\x03"
    raw = (
        struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 113) + struct.pack(">IIII", 5, 7, 3, 9) + body
    )
    parser = PcapStreamParser()
    (pkt,) = parser.feed(raw)
    assert (pkt.ts_ns, pkt.data, pkt.orig_len) == (5_000_007_000, body, 9)
    assert parser.interface is not None and parser.interface.linktype == LinkType.LINUX_SLL


def test_not_pcap() -> None:
    with pytest.raises(CaptureFormatError):
        PcapStreamParser().feed(b"tcpdump: syntax error\n" + b"\x00" * 30)


def test_corrupt_length() -> None:
    raw = _pcap([], nanosecond=False) + struct.pack("<IIII", 0, 0, 1 << 30, 1 << 30)
    with pytest.raises(CaptureFormatError):
        PcapStreamParser().feed(raw)
