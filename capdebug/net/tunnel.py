"""Tunnels: the packet inside an IP packet that encapsulates another.

Captures from cloud networks and switches often hold the traffic of interest inside a tunnel:
AWS VPC Traffic Mirroring sends VXLAN, a Gateway Load Balancer Geneve, a switch's SPAN session
ERSPAN over GRE, a mobile core GTP-U, a VPN or a router IP-in-IP or GRE. :func:`inner_packet`
peels one such layer off, on the same frame bytes (an offset, no copy): the caller looks for TCP
in what it returns, and peels again when that is a tunnel too (:data:`MAX_TUNNEL_DEPTH`).

Recognised, by IP protocol or UDP destination port (the IANA assignments):

- IP-in-IP (protocol 4, RFC 2003) and IPv6-in-IP (41, RFC 4213);
- GRE (47; RFC 2784, with RFC 2890's key and sequence number) carrying IPv4, IPv6, Ethernet
  (Transparent Ethernet Bridging, 0x6558), or ERSPAN type I/II (0x88BE) and type III (0x22EB);
- VXLAN (UDP 4789, RFC 7348; also 8472, the Linux kernel's default), VXLAN-GPE (4790),
  Geneve (6081, RFC 8926), GTP-U (2152, 3GPP TS 29.281) carrying IP.

Never raises: a header that does not fit, or a protocol not listed, gives ``None``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from capdebug.net.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    NOT_IP,
    ethernet_network,
    ip_by_version,
    network_offset,
)

__all__ = ["MAX_TUNNEL_DEPTH", "inner_packet", "ip_layers", "ip_payload", "ip_ttl_id"]

MAX_TUNNEL_DEPTH = 4
"""Tunnels peeled at most, one inside another (a bound on the work a crafted frame can cause)."""

_IPIP, _IPV6_IN_IP, _UDP, _GRE = 4, 41, 17, 47
_HOP_BY_HOP, _ROUTING, _FRAGMENT, _AH, _DEST_OPTS = 0, 43, 44, 51, 60
_ETHERNET_BRIDGING = 0x6558  # GRE/Geneve protocol type: an Ethernet frame follows
_ERSPAN_2 = 0x88BE  # ERSPAN type I (no header, GRE without sequence number) or II (8-byte header)
_ERSPAN_3 = 0x22EB  # ERSPAN type III (12-byte header, 8 more with the O flag)
_VXLAN_PORTS = frozenset((4789, 8472))
_VXLAN_GPE = 4790
_GENEVE = 6081
_GTP_U = 2152
_GPE_NEXT = {1: ETHERTYPE_IPV4, 2: ETHERTYPE_IPV6, 3: _ETHERNET_BRIDGING}
"""VXLAN-GPE's next protocol field (draft-ietf-nvo3-vxlan-gpe 3.3) as a protocol type."""

_u16 = struct.Struct("!H").unpack_from
_IPV4_FIXED = struct.Struct("!BxHxxHxB").unpack_from  # version/IHL, total length, flags/offset, protocol
_IPV6_FIXED = struct.Struct("!B3xHB").unpack_from  # version, payload length, next header

Located = tuple[int, int]
"""``(ethertype, offset)`` of a network header in the frame."""


def ip_payload(data: bytes, ethertype: int, off: int) -> tuple[int, int, int] | None:
    """``(protocol, offset, end)`` of the upper layer of the IP packet at ``off``, across IPv6
    extension headers; None for a non-first fragment or a header that does not fit."""
    n = len(data)
    if ethertype == ETHERTYPE_IPV4:
        if off + 20 > n:
            return None
        ver_ihl, total_length, frag, proto = _IPV4_FIXED(data, off)
        header_len = (ver_ihl & 0x0F) << 2
        if ver_ihl >> 4 != 4 or header_len < 20 or frag & 0x1FFF:
            return None
        return proto, off + header_len, min(n, off + max(total_length, header_len))
    if ethertype != ETHERTYPE_IPV6 or off + 40 > n:
        return None
    version, payload_length, proto = _IPV6_FIXED(data, off)
    if version >> 4 != 6:
        return None
    p = off + 40
    end = min(n, p + payload_length) if payload_length else n
    while proto in (_HOP_BY_HOP, _ROUTING, _DEST_OPTS, _FRAGMENT, _AH):
        if p + 8 > end:
            return None
        if proto == _FRAGMENT:
            if _u16(data, p + 2)[0] & 0xFFF8:
                return None  # a non-first fragment: no upper-layer header here
            length = 8
        elif proto == _AH:
            length = (data[p + 1] + 2) << 2
        else:
            length = (data[p + 1] + 1) << 3
        proto = data[p]
        p += length
    return (proto, p, end) if p <= end else None


def ip_layers(linktype: int, data: bytes) -> Iterator[Located]:
    """Each IP header of a captured frame, outermost first: the link's, then each tunnel's
    (at most :data:`MAX_TUNNEL_DEPTH` inside it); nothing for a frame that carries no IP."""
    located = network_offset(linktype, data)
    if located == NOT_IP:
        return
    for _ in range(MAX_TUNNEL_DEPTH + 1):
        yield located
        inner = inner_packet(data, *located)
        if inner is None:
            return
        located = inner


def ip_ttl_id(linktype: int, data: bytes) -> tuple[int, int | None] | None:
    """``(ttl, ip_id)`` of the innermost IP packet in a captured frame (the TCP segment's,
    whoever tunnelled it): the IPv4 TTL and Identification (RFC 791 3.1), or the IPv6 hop limit
    and None (RFC 8200 3: no ID outside fragments). Read only for the few packets the TCP
    health observer samples, never per frame. Never raises."""
    layers = list(ip_layers(linktype, data))
    if not layers:
        return None
    ethertype, off = layers[-1]
    if ethertype == ETHERTYPE_IPV4 and off + 20 <= len(data):
        return data[off + 8], _u16(data, off + 4)[0]
    if ethertype == ETHERTYPE_IPV6 and off + 40 <= len(data):
        return data[off + 7], None
    return None


def inner_packet(data: bytes, ethertype: int, off: int) -> Located | None:
    """The network header encapsulated by the IP packet at ``data[off:]`` (``ethertype`` says
    IPv4 or IPv6), when that packet is one of the tunnels of the module docstring; else None."""
    found = ip_payload(data, ethertype, off)
    if found is None:
        return None
    proto, p, end = found
    if proto == _IPIP:
        return ETHERTYPE_IPV4, p
    if proto == _IPV6_IN_IP:
        return ETHERTYPE_IPV6, p
    if proto == _GRE:
        return _gre(data, p, end)
    if proto == _UDP and p + 8 <= end:
        return _udp(data, p + 8, end, _u16(data, p + 2)[0], _u16(data, p)[0])
    return None


def _gre(data: bytes, p: int, end: int) -> Located | None:
    """GRE (RFC 2784 2.1; RFC 2890 2: key and sequence number present by their flags)."""
    if p + 4 > end:
        return None
    flags, protocol = _u16(data, p)[0], _u16(data, p + 2)[0]
    if flags & 0x4007:
        return None  # RFC 1701 routing, or a GRE version other than 0 (PPTP's enhanced GRE)
    body = p + 4 + 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + bool(flags & 0x1000))
    if protocol == ETHERTYPE_IPV4 or protocol == ETHERTYPE_IPV6:
        return protocol, body
    if protocol == _ETHERNET_BRIDGING:
        return ethernet_network(data, body)
    if protocol == _ERSPAN_2:
        # Type II has a sequence number and an 8-byte header; type I has neither.
        return ethernet_network(data, body + 8 if flags & 0x1000 else body)
    if protocol == _ERSPAN_3 and body + 12 <= end:
        if (data[body + 11] >> 1) & 0x1F:
            return None  # frame type other than Ethernet
        return ethernet_network(data, body + 12 + (8 if data[body + 11] & 1 else 0))
    return None


def _udp(data: bytes, p: int, end: int, dport: int, sport: int) -> Located | None:
    """A UDP tunnel's header at ``p`` (after the UDP header)."""
    if dport in _VXLAN_PORTS:
        # RFC 7348 5: flags (the I bit set), reserved, VNI, reserved: 8 bytes.
        if p + 8 > end or not data[p] & 0x08:
            return None
        return ethernet_network(data, p + 8)
    if dport == _GENEVE:
        # RFC 8926 3.4: version (0) and option length in 4-byte words, flags, protocol type.
        if p + 8 > end or data[p] >> 6:
            return None
        return _by_protocol(data, p + 8 + ((data[p] & 0x3F) << 2), _u16(data, p + 2)[0])
    if dport == _VXLAN_GPE:
        # draft-ietf-nvo3-vxlan-gpe 3.3: next protocol 1 IPv4, 2 IPv6, 3 Ethernet.
        if p + 8 > end:
            return None
        return _by_protocol(data, p + 8, _GPE_NEXT.get(data[p + 3], 0))
    if dport == _GTP_U or sport == _GTP_U:
        return _gtp_u(data, p, end)
    return None


def _by_protocol(data: bytes, at: int, protocol: int) -> Located | None:
    if protocol == ETHERTYPE_IPV4 or protocol == ETHERTYPE_IPV6:
        return protocol, at
    if protocol == _ETHERNET_BRIDGING:
        return ethernet_network(data, at)
    return None


def _gtp_u(data: bytes, p: int, end: int) -> Located | None:
    """GTP-U (3GPP TS 29.281 5.1): version 1, a G-PDU (message type 255) carrying an IP packet."""
    if p + 8 > end or data[p] >> 5 != 1 or data[p + 1] != 0xFF:
        return None
    flags = data[p]
    at = p + 8
    if flags & 0x07:
        # Sequence number, N-PDU number and next extension header type follow (4 bytes).
        if at + 4 > end:
            return None
        next_type = data[at + 3]
        at += 4
        while next_type:
            # Each extension header: its length in 4-byte units first, its next type last (5.2).
            if at >= end or not data[at]:
                return None
            length = data[at] << 2
            if at + length > end:
                return None
            next_type = data[at + length - 1]
            at += length
    if at >= end:
        return None
    found = ip_by_version(data, at)
    return None if found == NOT_IP else found
