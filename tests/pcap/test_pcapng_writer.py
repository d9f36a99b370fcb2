"""PcapngWriter: round trips, and pcap -> pcapng conversion that loses nothing."""

from __future__ import annotations

import io
import random
import struct

import pytest

from capdebug.errors import UsageError
from capdebug.pcap import (
    SECRETS_TYPE_TLS_KEYLOG,
    Interface,
    Packet,
    PcapngWriter,
    SecretsBlock,
    open_capture,
    write_pcap,
)

from . import builders as b


def test_round_trip_interfaces_packets_and_secrets() -> None:
    rng = random.Random(1)
    out = io.BytesIO()
    writer = PcapngWriter(out, shb_comment="made by a test")
    eth = Interface(1, 65535, name="eth0", description="host-a", options=((8, struct.pack("<Q", 10**10)),))
    sll = Interface(276, 0, tsoffset_s=1_000_000, tsresol_ns=1000)
    assert writer.add_interface(eth) == 0
    assert writer.add_interface(sll) == 1
    packets = [
        Packet(
            1_000_000 * 10**9 + rng.randrange(1 << 50),
            rng.randrange(2),
            rng.randbytes(rng.randrange(70)),
            rng.randrange(2000),
            rng.choice([None, 0, 1, 2, 0xFFFFFFFF]),
        )
        for _ in range(200)
    ]
    for pkt in packets[:100]:
        writer.write_packet(pkt, pkt.interface)
    writer.write_secrets(SECRETS_TYPE_TLS_KEYLOG, b"CLIENT_RANDOM 00 11\n")
    for pkt in packets[100:]:
        writer.write_packet(pkt, pkt.interface)
    writer.flush()
    raw = out.getvalue()
    assert raw[:4] == b"\x0a\x0d\x0d\x0a"
    assert len(raw) % 4 == 0
    with open_capture(io.BytesIO(raw)) as reader:
        items = list(reader)
        assert reader.warnings == []
        assert reader.interfaces == [
            Interface(1, 65535, tsresol_ns=1, name="eth0", description="host-a", options=eth.options),
            Interface(276, 0, tsresol_ns=1, tsoffset_s=1_000_000),
        ]
    [secrets] = [i for i in items if isinstance(i, SecretsBlock)]
    assert (secrets.data, secrets.packets_before) == (b"CLIENT_RANDOM 00 11\n", 100)
    assert [i for i in items if isinstance(i, Packet)] == packets


def test_secrets_are_padded() -> None:
    out = io.BytesIO()
    writer = PcapngWriter(out)
    start = len(out.getvalue())
    writer.write_secrets(0x544C534B, b"abcde")
    assert out.getvalue()[start:] == b.dsb("<", 0x544C534B, b"abcde")


def test_epb_layout_matches_the_spec() -> None:
    out = io.BytesIO()
    writer = PcapngWriter(out, user_appl="")
    writer.add_interface(Interface(1))
    start = len(out.getvalue())
    writer.write_packet(Packet((5 << 32) * 1 + 7, 0, b"xyz", 9, 3), 0)
    flags = b.options("<", (2, struct.pack("<I", 3)))
    assert out.getvalue()[start:] == b.epb("<", 0, (5 << 32) + 7, b"xyz", 9, flags)
    assert out.getvalue()[:start] == b.shb("<") + b.idb("<", 1, 262144, b.options("<", (9, b"\x09")))


def test_writer_rejects_bad_input() -> None:
    writer = PcapngWriter(io.BytesIO())
    with pytest.raises(UsageError, match="interface 0"):
        writer.write_packet(Packet(0, 0, b"", 0), 0)
    writer.add_interface(Interface(1, tsoffset_s=100))
    with pytest.raises(UsageError, match="timestamp"):
        writer.write_packet(Packet(99 * 10**9, 0, b"", 0), 0)


@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_to_pcapng_keeps_every_packet_exactly(nanosecond: bool) -> None:
    rng = random.Random(nanosecond)
    unit = 1 if nanosecond else 1000
    packets = [
        Packet(
            rng.randrange(1 << 32) * 10**9 + rng.randrange(10**9 // unit) * unit, 0, rng.randbytes(n), n + 3
        )
        for n in (rng.randrange(1600) for _ in range(300))
    ]
    pcap = io.BytesIO()
    write_pcap(pcap, packets, linktype=1, snaplen=1600, nanosecond=nanosecond)
    source = open_capture(io.BytesIO(pcap.getvalue()))
    out = io.BytesIO()
    writer = PcapngWriter(out)
    mapping = [writer.add_interface(iface) for iface in source.interfaces]
    for item in source:
        assert isinstance(item, Packet)
        writer.write_packet(item, mapping[item.interface])
    back = [p for p in open_capture(io.BytesIO(out.getvalue())) if isinstance(p, Packet)]
    assert [(p.ts_ns, p.data, p.orig_len) for p in back] == [(p.ts_ns, p.data, p.orig_len) for p in packets]
