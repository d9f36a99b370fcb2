"""TCP segments out of captured frames: link layer -> IP -> TCP header (RFC 9293 3.1).

:func:`decode_tcp` is the per-packet entry point of the capture decoder, so it is written for
speed: fixed-layout headers are read with precompiled :mod:`struct` unpackers straight from the
frame bytes, and the only objects created are the address and payload slices and the segment.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Final

from capdebug.net.defrag import Defragmenter
from capdebug.net.ip import (
    IPV4_ADDRS,
    IPV4_FIELDS,
    IPV4_HEADER_LEN,
    IPV6_ADDRS,
    IPV6_FIELDS,
    IPV6_HEADER_LEN,
    ipv4_tcp,
    ipv6_tcp,
)
from capdebug.net.link import (
    ETHERNET_HEADER_LEN,
    ETHERTYPE_AT,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    network_offset,
)
from capdebug.net.tunnel import MAX_TUNNEL_DEPTH, inner_packet
from capdebug.pcap.model import LinkType

__all__ = [
    "ACK",
    "CONTROL",
    "ETH_IPV4_TCP_AT",
    "ETH_IPV6_TCP_AT",
    "FIN",
    "RST",
    "SYN",
    "TCP_FIELDS",
    "TCP_HEADER_LEN",
    "TCP_PORTS",
    "TCP_REST",
    "TcpFlags",
    "TcpSegment",
    "decode_tcp",
    "format_endpoint",
]

# The control bits as plain ints, for the per-packet paths (enum arithmetic is slow there).
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10
CONTROL = FIN | SYN | RST
"""The bits that make a segment more than data and an acknowledgment."""

TCP_HEADER_LEN: Final = 20
"""A TCP header without options (RFC 9293 3.1)."""
TCP_PORTS: Final = "HH"
"""Source port, destination port: a struct format piece, as those of net/ip.py."""
TCP_REST: Final = "IIBB"
"""Sequence number, acknowledgment number, data offset (high nibble, in 32-bit words), control
bits: the fixed header's fields after the ports, up to the window."""
TCP_FIELDS: Final = TCP_PORTS + TCP_REST
_WINDOW: Final = "H"

#: Where the TCP header starts in an untagged Ethernet frame with IPv4 without options / IPv6
#: with TCP as the first next header.
ETH_IPV4_TCP_AT: Final = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN
ETH_IPV6_TCP_AT: Final = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN


class TcpFlags(enum.IntFlag):
    """TCP control bits (RFC 9293 3.1; ECE and CWR from RFC 3168 23.2)."""

    FIN = FIN
    SYN = SYN
    RST = RST
    PSH = 0x08
    ACK = ACK
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


# Not frozen: one is made per packet, and frozen construction costs three times as much.
@dataclass(slots=True, init=False)
class TcpSegment:
    """One TCP segment as captured."""

    src: bytes
    """Source address, 4 (IPv4) or 16 (IPv6) raw bytes."""
    sport: int
    """Source port."""
    dst: bytes
    """Destination address, 4 or 16 raw bytes."""
    dport: int
    """Destination port."""
    seq: int
    """Sequence number (32-bit, as on the wire)."""
    ack: int
    """Acknowledgment number (meaningful when ``flags`` has ACK)."""
    flags: int
    """Control bits, see :class:`TcpFlags` (a plain int: enum arithmetic is slow per packet)."""
    window: int
    """Window field, unscaled."""
    payload: bytes = field(repr=False)
    """Segment data that was captured."""
    truncated: bool = False
    """The capture holds less than the segment carried (snaplen, or a first IP fragment):
    ``payload`` is only its start."""

    # Written out (init=False), not generated: mypyc compiles it, and builds the object natively.
    def __init__(
        self,
        src: bytes,
        sport: int,
        dst: bytes,
        dport: int,
        seq: int,
        ack: int,
        flags: int,
        window: int,
        payload: bytes,
        truncated: bool = False,
    ) -> None:
        self.src = src
        self.sport = sport
        self.dst = dst
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload = payload
        self.truncated = truncated


_ETHERNET: Final = LinkType.ETHERNET
_MAY_FRAGMENT6: Final = frozenset((0, 43, 44, 60))
"""IPv6 next headers that are, or may precede, a Fragment header."""
_TCP_HEADER: Final = struct.Struct("!" + TCP_FIELDS + _WINDOW).unpack_from

# The fast paths read an untagged Ethernet frame's EtherType, the fixed IP header and the fixed
# TCP header in one unpack, at offset 12 (the EtherType). Anything they do not fully vouch for
# takes the general path, which gives the same answer for these frames, only slower.
# IPv4 (RFC 791 3.1) without options: version/IHL, total length, flags/fragment offset, protocol,
# source, destination; then the TCP header at 34 (RFC 9293 3.1).
_ETH_IPV4_TCP: Final = struct.Struct("!H" + IPV4_FIELDS + IPV4_ADDRS + TCP_FIELDS + _WINDOW)
_ETH_IPV4_TCP_LEN: Final = ETHERTYPE_AT + _ETH_IPV4_TCP.size  # 50 read; the whole TCP header ends at 54
_eth_ipv4_tcp: Final = _ETH_IPV4_TCP.unpack_from
# IPv6 (RFC 8200 3) with TCP as the first next header: version nibble (in the first byte),
# payload length, next header, source, destination; then the TCP header at 54.
_ETH_IPV6_TCP: Final = struct.Struct("!H" + IPV6_FIELDS + IPV6_ADDRS + TCP_FIELDS + _WINDOW)
_ETH_IPV6_TCP_LEN: Final = ETHERTYPE_AT + _ETH_IPV6_TCP.size  # 70 read; the whole TCP header ends at 74
_eth_ipv6_tcp: Final = _ETH_IPV6_TCP.unpack_from


def decode_tcp(
    linktype: int, data: bytes, defrag: Defragmenter | None = None, ts_ns: int = 0
) -> TcpSegment | None:
    """Decode the TCP segment in a captured frame of link type ``linktype`` (a ``LINKTYPE_``).

    Returns ``None`` for frames that do not carry TCP, and frames whose headers are malformed
    or cut short before the end of the TCP header. IP fragments go to ``defrag`` (captured at
    ``ts_ns``): the fragment that completes a datagram gives its segment, the others None;
    without one, a first fragment gives a truncated segment and the others None. Never raises.
    """
    if linktype == _ETHERNET:
        n = len(data)
        if n >= _ETH_IPV4_TCP_LEN:
            # Untagged Ethernet + IPv4 without options + TCP, unfragmented and not cut by the
            # snaplen: the bulk of most captures, decoded with one unpack and one payload slice.
            (ethertype, ver_ihl, total_length, frag, proto, src, dst,
             sport, dport, seq, ack, offset_byte, flags, window) = _eth_ipv4_tcp(data, 12)  # fmt: skip
            if ethertype == 0x0800 and ver_ihl == 0x45 and proto == 6 and not frag & 0x3FFF:
                end = 14 + total_length
                # Data Offset counts 32-bit words and includes the options (RFC 9293 3.1).
                p = 34 + ((offset_byte >> 4) << 2)
                if 54 <= p <= end <= n:
                    return TcpSegment(src, sport, dst, dport, seq, ack, flags, window, data[p:end])
            elif ethertype == 0x86DD and n >= _ETH_IPV6_TCP_LEN:
                (ethertype, ver, payload_length, next_header, src, dst,
                 sport, dport, seq, ack, offset_byte, flags, window) = _eth_ipv6_tcp(data, 12)  # fmt: skip
                if next_header == 6 and ver >> 4 == 6:
                    end = 54 + payload_length
                    p = 54 + ((offset_byte >> 4) << 2)
                    if 74 <= p <= end <= n:
                        return TcpSegment(src, sport, dst, dport, seq, ack, flags, window, data[p:end])
    return _decode_tcp(linktype, data, defrag, ts_ns)


def _decode_tcp(
    linktype: int, data: bytes, defrag: Defragmenter | None = None, ts_ns: int = 0
) -> TcpSegment | None:
    """The general path of :func:`decode_tcp`: any link type, VLAN tags, MPLS, PPPoE, IP
    options, IPv6 extension headers, tunnels (net/tunnel.py), fragments, truncation."""
    ethertype, off = network_offset(linktype, data)
    for _ in range(MAX_TUNNEL_DEPTH + 1):
        if defrag is not None and off + 8 <= len(data):
            # A fragment: IPv4 with More Fragments or an offset (RFC 791 3.1); IPv6 with a
            # Fragment header, possibly after other extension headers (RFC 8200 4.1).
            if (
                (data[off + 6] & 0x3F or data[off + 7])
                if ethertype == ETHERTYPE_IPV4
                else data[off + 6] in _MAY_FRAGMENT6
            ):
                whole = defrag.take(data, ethertype, off, ts_ns)
                if whole is None:
                    return None  # a fragment of a datagram still incomplete
                data, off = whole
        if ethertype == ETHERTYPE_IPV4:
            located = ipv4_tcp(data, off)
        elif ethertype == ETHERTYPE_IPV6:
            located = ipv6_tcp(data, off)
        else:
            return None
        if located is not None:
            break
        # Not TCP: TCP may be inside a tunnel (VXLAN, GRE, ...; net/tunnel.py).
        inner = inner_packet(data, ethertype, off)
        if inner is None:
            return None
        ethertype, off = inner
    else:
        return None
    src, dst, t, end, truncated = located
    if t + 20 > end:
        return None
    sport, dport, seq, ack, offset_byte, flags, window = _TCP_HEADER(data, t)
    # Data Offset counts 32-bit words and includes the options (RFC 9293 3.1).
    p = t + ((offset_byte >> 4) << 2)
    if p < t + 20 or p > end:
        return None
    return TcpSegment(src, sport, dst, dport, seq, ack, flags, window, data[p:end], truncated)


def format_endpoint(addr: bytes, port: int) -> str:
    """``"192.0.2.1:443"`` or ``"[2001:db8::1]:443"`` (RFC 5952 text form, as in URLs)."""
    return f"{_address_text(addr)}:{port}"


@functools.lru_cache(maxsize=4096)
def _address_text(addr: bytes) -> str:
    # Cached: a capture names the same few hosts in thousands of connections, and the
    # ipaddress module's formatting is slow.
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    return f"[{ipaddress.IPv6Address(addr)}]"
