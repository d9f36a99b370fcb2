"""decode_tcp over every supported link type, IP options/extension headers, and bad input."""

from __future__ import annotations

import ipaddress
import random
import struct
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Packet, Raw

from capdebug.net import TcpFlags, TcpSegment, decode_tcp, format_endpoint
from capdebug.pcap.model import LinkType

SRC4, DST4 = "192.0.2.10", "198.51.100.7"
SRC6, DST6 = "2001:db8::10", "2001:db8:0:1::7"
PAYLOAD = b"\x16\x03\x01\x00\x05hello"


def tcp(payload: bytes = PAYLOAD, **kw: Any) -> Packet:
    fields: dict[str, Any] = {
        "sport": 50123,
        "dport": 443,
        "seq": 123456789,
        "ack": 987654321,
        "flags": "PA",
    }
    fields.update(kw)
    return TCP(**fields) / Raw(payload)


def eth(**kw: Any) -> Packet:
    # Explicit MACs: scapy would otherwise try to resolve them.
    return Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02", **kw)


def ip4(**kw: Any) -> Packet:
    return IP(src=SRC4, dst=DST4, **kw)


def ip6() -> Packet:
    return IPv6(src=SRC6, dst=DST6)


def check(seg: TcpSegment | None, src: str = SRC4, dst: str = DST4, payload: bytes = PAYLOAD) -> TcpSegment:
    assert seg is not None
    assert seg.src == ipaddress.ip_address(src).packed
    assert seg.dst == ipaddress.ip_address(dst).packed
    assert (seg.sport, seg.dport, seg.seq, seg.ack) == (50123, 443, 123456789, 987654321)
    assert seg.flags == TcpFlags.PSH | TcpFlags.ACK
    assert seg.payload == payload
    assert not seg.truncated
    return seg


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        pytest.param(LinkType.ETHERNET, eth() / ip4() / tcp(), id="ethernet"),
        pytest.param(LinkType.ETHERNET, eth() / Dot1Q(vlan=7) / ip4() / tcp(), id="802.1q"),
        pytest.param(LinkType.ETHERNET, eth() / Dot1AD(vlan=100) / Dot1Q(vlan=7) / ip4() / tcp(), id="qinq"),
        pytest.param(
            LinkType.ETHERNET,
            eth() / Dot1AD(vlan=1) / Dot1AD(vlan=2) / Dot1Q(vlan=3) / ip4() / tcp(),
            id="three-tags",
        ),
        pytest.param(LinkType.LINUX_SLL, CookedLinux() / ip4() / tcp(), id="sll"),
        pytest.param(LinkType.LINUX_SLL2, CookedLinuxV2() / ip4() / tcp(), id="sll2"),
        pytest.param(LinkType.RAW, ip4() / tcp(), id="raw"),
        pytest.param(LinkType.IPV4, ip4() / tcp(), id="ipv4-linktype"),
        pytest.param(LinkType.NULL, Loopback() / ip4() / tcp(), id="null-host-order"),
        pytest.param(LinkType.ETHERNET, eth() / ip4(options=b"\x01\x01\x01\x00") / tcp(), id="ip-options"),
    ],
)
def test_ipv4_link_types(linktype: int, frame: Packet) -> None:
    check(decode_tcp(linktype, bytes(frame)))


def test_null_and_loop_big_endian_family() -> None:
    packet = bytes(ip4() / tcp())
    check(decode_tcp(LinkType.NULL, struct.pack("!I", 2) + packet))
    check(decode_tcp(LinkType.LOOP, struct.pack("!I", 2) + packet))
    for family in (10, 24, 28, 30):  # AF_INET6 of Linux and the BSDs
        packet6 = bytes(ip6() / tcp())
        check(decode_tcp(LinkType.NULL, struct.pack("<I", family) + packet6), SRC6, DST6)
        check(decode_tcp(LinkType.NULL, struct.pack("!I", family) + packet6), SRC6, DST6)
        check(decode_tcp(LinkType.LOOP, struct.pack("!I", family) + packet6), SRC6, DST6)
    assert decode_tcp(LinkType.NULL, struct.pack("<I", 7) + packet) is None


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        pytest.param(LinkType.ETHERNET, eth() / ip6() / tcp(), id="ethernet"),
        pytest.param(LinkType.ETHERNET, eth() / Dot1Q(vlan=7) / ip6() / tcp(), id="802.1q"),
        pytest.param(LinkType.LINUX_SLL, CookedLinux() / ip6() / tcp(), id="sll"),
        pytest.param(LinkType.LINUX_SLL2, CookedLinuxV2() / ip6() / tcp(), id="sll2"),
        pytest.param(LinkType.RAW, ip6() / tcp(), id="raw"),
        pytest.param(LinkType.IPV6, ip6() / tcp(), id="ipv6-linktype"),
        pytest.param(LinkType.RAW, ip6() / IPv6ExtHdrHopByHop() / tcp(), id="hop-by-hop"),
        pytest.param(
            LinkType.RAW,
            ip6() / IPv6ExtHdrRouting(addresses=["2001:db8::99", "2001:db8::98"]) / tcp(),
            id="routing",
        ),
        pytest.param(LinkType.RAW, ip6() / IPv6ExtHdrDestOpt() / tcp(), id="dest-opts"),
        pytest.param(
            LinkType.RAW, ip6() / IPv6ExtHdrFragment(offset=0, m=0, id=5) / tcp(), id="atomic-fragment"
        ),
        pytest.param(LinkType.RAW, ip6() / AH(nh=6, payloadlen=4, icv=b"\x00" * 12) / tcp(), id="ah"),
        pytest.param(
            LinkType.RAW,
            ip6()
            / IPv6ExtHdrHopByHop()
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrRouting()
            / IPv6ExtHdrDestOpt()
            / tcp(),
            id="chain",
        ),
    ],
)
def test_ipv6(linktype: int, frame: Packet) -> None:
    check(decode_tcp(linktype, bytes(frame)), SRC6, DST6)


def test_tcp_options_and_flags() -> None:
    frame = ip4() / tcp(
        b"", flags="S", options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7), ("NOP", None)]
    )
    seg = decode_tcp(LinkType.RAW, bytes(frame))
    assert seg is not None
    assert seg.flags == TcpFlags.SYN
    assert seg.payload == b""
    seg = decode_tcp(LinkType.RAW, bytes(ip4() / tcp(b"x", flags="FAUEC", window=1234)))
    assert seg is not None
    assert seg.flags == TcpFlags.FIN | TcpFlags.ACK | TcpFlags.URG | TcpFlags.ECE | TcpFlags.CWR
    assert (seg.window, seg.payload) == (1234, b"x")


def test_ethernet_padding_is_not_payload() -> None:
    frame = bytes(eth() / ip4() / tcp(b"")) + b"\x00" * 6  # padded to the 60-byte minimum
    seg = decode_tcp(LinkType.ETHERNET, frame)
    assert seg is not None
    assert seg.payload == b""
    frame6 = bytes(eth() / ip6() / tcp(b"ab")) + b"\xff" * 10
    seg = decode_tcp(LinkType.ETHERNET, frame6)
    assert seg is not None
    assert seg.payload == b"ab"


def test_snaplen_truncation() -> None:
    for frame in (bytes(eth() / ip4() / tcp()), bytes(eth() / ip6() / tcp())):
        seg = decode_tcp(LinkType.ETHERNET, frame[:-4])
        assert seg is not None
        assert seg.truncated
        assert seg.payload == PAYLOAD[:-4]
        # Cut inside the TCP header: nothing usable.
        header_end = len(frame) - len(PAYLOAD)
        assert decode_tcp(LinkType.ETHERNET, frame[: header_end - 1]) is None


def test_fragments() -> None:
    first = bytes(ip4(flags="MF", frag=0) / tcp())
    seg = decode_tcp(LinkType.RAW, first)
    assert seg is not None
    assert seg.truncated  # only the start of the segment
    assert decode_tcp(LinkType.RAW, bytes(ip4(frag=10) / tcp())) is None
    assert decode_tcp(LinkType.RAW, bytes(ip6() / IPv6ExtHdrFragment(offset=3, id=1) / tcp())) is None
    seg = decode_tcp(LinkType.RAW, bytes(ip6() / IPv6ExtHdrFragment(offset=0, m=1, id=1) / tcp()))
    assert seg is not None
    assert seg.truncated


def test_not_tcp() -> None:
    assert decode_tcp(LinkType.ETHERNET, bytes(eth() / ip4() / UDP() / Raw(b"x"))) is None
    assert decode_tcp(LinkType.RAW, bytes(ip6() / UDP())) is None
    assert decode_tcp(LinkType.ETHERNET, bytes(eth(type=0x0806) / Raw(b"\x00" * 28))) is None
    assert decode_tcp(12345, bytes(ip4() / tcp())) is None
    assert decode_tcp(LinkType.RAW, b"") is None


def test_malformed_headers_return_none() -> None:
    good = bytearray(bytes(ip4() / tcp()))
    bad_ihl = bytearray(good)
    bad_ihl[0] = 0x44  # IHL 4 < 5
    assert decode_tcp(LinkType.RAW, bytes(bad_ihl)) is None
    bad_total = bytearray(good)
    bad_total[2:4] = (10).to_bytes(2)  # total length shorter than the header
    assert decode_tcp(LinkType.RAW, bytes(bad_total)) is None
    bad_offset = bytearray(good)
    bad_offset[20 + 12] = 0x40  # TCP data offset 4 words < 5
    assert decode_tcp(LinkType.RAW, bytes(bad_offset)) is None
    long_offset = bytearray(good)
    long_offset[20 + 12] = 0xF0  # 60-byte header runs past the packet
    assert decode_tcp(LinkType.RAW, bytes(long_offset)) is None


def test_random_bytes_never_raise() -> None:
    rng = random.Random(1)
    samples = [bytes(eth() / Dot1Q() / ip6() / IPv6ExtHdrHopByHop() / tcp()), bytes(eth() / ip4() / tcp())]
    linktypes = [0, 1, 101, 108, 113, 228, 229, 276]
    for _ in range(5000):
        base = bytearray(rng.choice(samples))
        for _ in range(rng.randrange(1, 6)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        data = bytes(base[: rng.randrange(len(base) + 1)])
        seg = decode_tcp(rng.choice(linktypes), data)
        assert seg is None or isinstance(seg, TcpSegment)


def test_format_endpoint() -> None:
    assert format_endpoint(bytes([192, 0, 2, 1]), 443) == "192.0.2.1:443"
    assert format_endpoint(ipaddress.IPv6Address("2001:db8:0:0:0:0:0:1").packed, 8443) == "[2001:db8::1]:8443"
    assert format_endpoint(bytes(15) + b"\x01", 1) == "[::1]:1"
