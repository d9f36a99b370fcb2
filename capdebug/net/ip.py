"""IPv4 and IPv6 headers: find the TCP header and where the IP payload ends.

Both functions return ``(src, dst, tcp_offset, end, truncated)`` for a packet that carries TCP
(or the first fragment of one), and ``None`` for anything else: another protocol, a non-first
fragment, a malformed or cut-short header. They never raise on bad input.

``end`` is where the IP payload ends inside the captured bytes. It comes from the IP length
field, so Ethernet padding after a short packet is not mistaken for TCP payload; when the snaplen
cut the packet before that point, ``end`` is the captured length and ``truncated`` is true.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "IPPROTO_TCP",
    "IPV4_ADDRS",
    "IPV4_FIELDS",
    "IPV4_HEADER_LEN",
    "IPV6_ADDRS",
    "IPV6_FIELDS",
    "IPV6_HEADER_LEN",
    "ipv4_tcp",
    "ipv6_tcp",
]

IPPROTO_TCP: Final = 6

# The fixed headers, as pieces of struct formats (network order, no prefix) that the per-frame
# fast paths (net/tcp.py decode_tcp, net/fastpath.py) put together with the link and TCP headers
# into one unpack: the one description of these layouts. Each piece covers its bytes exactly.
IPV4_HEADER_LEN: Final = 20
"""An IPv4 header without options (RFC 791 3.1)."""
IPV4_FIELDS: Final = "BxHxxHxB"
"""Version/IHL, (TOS), total length, (identification), flags/fragment offset, (TTL), protocol."""
IPV4_ADDRS: Final = "xx4s4s"
"""(Header checksum), source, destination: the rest of the fixed header."""
IPV6_HEADER_LEN: Final = 40
"""The fixed IPv6 header (RFC 8200 3)."""
IPV6_FIELDS: Final = "B3xHB"
"""The byte with the version nibble, (class and flow label), payload length, next header."""
IPV6_ADDRS: Final = "x16s16s"
"""(Hop limit), source, destination: the rest of the fixed header."""

# IPv6 extension headers walked on the way to TCP (RFC 8200 4.1).
_HOP_BY_HOP: Final = 0
_ROUTING: Final = 43
_FRAGMENT: Final = 44
_AH: Final = 51
_DEST_OPTS: Final = 60

_IPV4_FIXED: Final = struct.Struct("!" + IPV4_FIELDS).unpack_from
_IPV6_FIXED: Final = struct.Struct("!" + IPV6_FIELDS).unpack_from
_u16: Final = struct.Struct("!H").unpack_from

IpTcp = tuple[bytes, bytes, int, int, bool]
"""``(src, dst, tcp_offset, end, truncated)``."""


def ipv4_tcp(data: bytes, off: int) -> IpTcp | None:
    """Locate TCP inside the IPv4 packet at ``data[off:]`` (RFC 791 3.1)."""
    n = len(data)
    if off + IPV4_HEADER_LEN > n:
        return None
    ver_ihl, total_length, frag, proto = _IPV4_FIXED(data, off)
    header_len = (ver_ihl & 0x0F) << 2
    if ver_ihl >> 4 != 4 or header_len < IPV4_HEADER_LEN or total_length < header_len or proto != IPPROTO_TCP:
        return None
    # A non-first fragment has no TCP header; capdebug does not reassemble IP fragments.
    if frag & 0x1FFF:
        return None
    tcp_off = off + header_len
    end = off + total_length
    # A first fragment (More Fragments set) holds only the start of the segment: report what is
    # there as truncated, so the reassembler sees a hole rather than a short segment.
    truncated = bool(frag & 0x2000)
    if end > n:
        end = n
        truncated = True
    if tcp_off > end:
        return None
    return data[off + 12 : off + 16], data[off + 16 : off + 20], tcp_off, end, truncated


def ipv6_tcp(data: bytes, off: int) -> IpTcp | None:
    """Locate TCP inside the IPv6 packet at ``data[off:]``, across extension headers (RFC 8200)."""
    n = len(data)
    if off + IPV6_HEADER_LEN > n:
        return None
    version, payload_length, next_header = _IPV6_FIXED(data, off)
    if version >> 4 != 6:
        return None
    p = off + IPV6_HEADER_LEN
    # Payload length 0 with a Hop-by-Hop header is a jumbogram (RFC 2675): use what was captured.
    end = p + payload_length if payload_length or next_header != _HOP_BY_HOP else n
    truncated = False
    if end > n:
        end = n
        truncated = True
    while next_header != IPPROTO_TCP:
        if p + 8 > end:
            return None
        if next_header == _HOP_BY_HOP or next_header == _ROUTING or next_header == _DEST_OPTS:
            length = (data[p + 1] + 1) << 3  # in 8-octet units, not counting the first 8 (RFC 8200 4.3)
        elif next_header == _FRAGMENT:
            (offset_flags,) = _u16(data, p + 2)
            if offset_flags & 0xFFF8:  # non-first fragment (RFC 8200 4.5)
                return None
            if offset_flags & 1:  # first fragment of several: only the start of the segment
                truncated = True
            length = 8
        elif next_header == _AH:
            length = (data[p + 1] + 2) << 2  # in 4-octet units, minus 2 (RFC 4302 2.2)
        else:  # another upper layer, ESP, or No Next Header (59)
            return None
        next_header = data[p]
        p += length
    if p > end:
        return None
    return data[off + 8 : off + 24], data[off + 24 : off + 40], p, end, truncated
