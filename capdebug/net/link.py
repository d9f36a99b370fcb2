"""Link-layer headers: find where the IP header starts.

One function, :func:`network_offset`, maps ``(linktype, frame bytes)`` to the EtherType of the
network layer and the offset of its header. Only IPv4 and IPv6 matter to capdebug; everything
else is reported as :data:`NOT_IP`. The link types are the tcpdump.org ``LINKTYPE_`` values in
:class:`capdebug.pcap.model.LinkType`.
"""

from __future__ import annotations

import struct
from typing import Final

from capdebug.pcap.model import LinkType

__all__ = [
    "ETHERNET_HEADER_LEN",
    "ETHERTYPE_AT",
    "ETHERTYPE_IPV4",
    "ETHERTYPE_IPV6",
    "NOT_IP",
    "ethernet_network",
    "ip_by_version",
    "network_offset",
]

ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_IPV6: Final = 0x86DD
#: An untagged Ethernet II header: destination (6), source (6), EtherType (2) (IEEE 802.3 3.1.1).
ETHERNET_HEADER_LEN: Final = 14
#: Where the EtherType lies in it.
ETHERTYPE_AT: Final = 12
# IEEE 802.1Q C-tag, 802.1ad S-tag, and the pre-standard QinQ S-tag some switches still send.
_ETHERTYPE_VLAN: Final = frozenset((0x8100, 0x88A8, 0x9100))
_ETHERTYPE_MPLS: Final = frozenset((0x8847, 0x8848))  # unicast, multicast (RFC 3032 5)
_ETHERTYPE_PPPOE_SESSION: Final = 0x8864  # RFC 2516 4
_PPP_IPV4, _PPP_IPV6 = 0x0021, 0x0057

#: Returned by :func:`network_offset` when the frame carries neither IPv4 nor IPv6.
NOT_IP: tuple[int, int] = (0, -1)

_IPV4_AT: Final = (ETHERTYPE_IPV4, 0)
_IPV6_AT: Final = (ETHERTYPE_IPV6, 0)
_IPV4_AT4: Final = (ETHERTYPE_IPV4, 4)
_IPV6_AT4: Final = (ETHERTYPE_IPV6, 4)

# BSD loopback address families: AF_INET is 2 everywhere; AF_INET6 differs per OS
# (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS, 10 Linux).
_AF_INET: Final = 2
_AF_INET6: Final = frozenset((10, 24, 28, 30))

_u16: Final = struct.Struct("!H").unpack_from
_u32_le: Final = struct.Struct("<I").unpack_from
_u32_be: Final = struct.Struct("!I").unpack_from


def _after_vlans(data: bytes, ethertype: int, off: int) -> tuple[int, int]:
    """Resolve ``ethertype`` (of the payload at ``off``) through any depth of VLAN tags, MPLS
    label stacks (an Ethernet pseudowire with its control word included) and a PPPoE session."""
    n = len(data)
    while True:
        if ethertype in _ETHERTYPE_VLAN:
            # A tag is TCI (2 bytes) then the next EtherType (IEEE 802.1Q-2018 9.3); 802.1ad stacks them.
            if off + 4 > n:
                return NOT_IP
            (ethertype,) = _u16(data, off + 2)
            off += 4
        elif ethertype in _ETHERTYPE_MPLS:
            # Labels of 4 bytes up to the one with the bottom-of-stack bit (RFC 3032 2.1); the
            # payload's first nibble tells IPv4, IPv6, or 0: a pseudowire control word, then an
            # Ethernet frame (RFC 4448 3).
            while True:
                if off + 4 > n:
                    return NOT_IP
                bottom = data[off + 2] & 1
                off += 4
                if bottom:
                    break
            if off >= n:
                return NOT_IP
            if data[off] >> 4:
                return ip_by_version(data, off)
            if off + 4 + ETHERNET_HEADER_LEN > n:
                return NOT_IP
            off += 4 + ETHERNET_HEADER_LEN
            (ethertype,) = _u16(data, off - 2)
        elif ethertype == _ETHERTYPE_PPPOE_SESSION:
            # Version/type, code, session ID, length (6 bytes), then the PPP protocol (RFC 2516 4).
            if off + 8 > n:
                return NOT_IP
            protocol = _u16(data, off + 6)[0]
            off += 8
            if protocol == _PPP_IPV4:
                return ETHERTYPE_IPV4, off
            if protocol == _PPP_IPV6:
                return ETHERTYPE_IPV6, off
            return NOT_IP
        elif ethertype == ETHERTYPE_IPV4 or ethertype == ETHERTYPE_IPV6:
            return ethertype, off
        else:
            return NOT_IP


def ethernet_network(data: bytes, off: int) -> tuple[int, int]:
    """``(ethertype, offset)`` of the IP header in the Ethernet frame at ``data[off:]`` (one
    carried inside a tunnel), or :data:`NOT_IP`."""
    if off + ETHERNET_HEADER_LEN > len(data):
        return NOT_IP
    return _after_vlans(data, _u16(data, off + ETHERTYPE_AT)[0], off + ETHERNET_HEADER_LEN)


def ip_by_version(data: bytes, off: int) -> tuple[int, int]:
    """Raw IP at ``off`` (no header says which): the version nibble tells IPv4 from IPv6."""
    if len(data) <= off:
        return NOT_IP
    version = data[off] >> 4
    if version == 4:
        return (ETHERTYPE_IPV4, off) if off else _IPV4_AT
    if version == 6:
        return (ETHERTYPE_IPV6, off) if off else _IPV6_AT
    return NOT_IP


def _bsd_family(family: int) -> tuple[int, int]:
    if family == _AF_INET:
        return _IPV4_AT4
    if family in _AF_INET6:
        return _IPV6_AT4
    return NOT_IP


def network_offset(linktype: int, data: bytes) -> tuple[int, int]:
    """Return ``(ethertype, offset)`` of the IPv4/IPv6 header in a captured frame.

    ``ethertype`` is :data:`ETHERTYPE_IPV4` or :data:`ETHERTYPE_IPV6`. Frames of other protocols,
    unknown link types and frames too short for their link header give :data:`NOT_IP`. Never raises.
    """
    if linktype == LinkType.ETHERNET:
        # dst(6) src(6) EtherType(2); values <= 1500 are IEEE 802.3 lengths (LLC), not IP.
        if len(data) < ETHERNET_HEADER_LEN:
            return NOT_IP
        (ethertype,) = _u16(data, ETHERTYPE_AT)
        if ethertype == ETHERTYPE_IPV4:
            return ETHERTYPE_IPV4, ETHERNET_HEADER_LEN
        return _after_vlans(data, ethertype, ETHERNET_HEADER_LEN)
    if linktype == LinkType.LINUX_SLL2:
        # SLL2: protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) addrlen(1) addr(8).
        if len(data) < 20:
            return NOT_IP
        (proto,) = _u16(data, 0)
        if proto == ETHERTYPE_IPV4:
            return ETHERTYPE_IPV4, 20
        if proto == ETHERTYPE_IPV6:
            return ETHERTYPE_IPV6, 20
        return _after_vlans(data, proto, 20)
    if linktype == LinkType.LINUX_SLL:
        # SLL: pkttype(2) hatype(2) addrlen(2) addr(8) protocol(2).
        if len(data) < 16:
            return NOT_IP
        return _after_vlans(data, _u16(data, 14)[0], 16)
    if linktype == LinkType.RAW:
        return ip_by_version(data, 0)
    if linktype == LinkType.IPV4:
        return _IPV4_AT
    if linktype == LinkType.IPV6:
        return _IPV6_AT
    if linktype == LinkType.NULL:
        # The family is in the capturing host's byte order, which the file does not record.
        # Families are small, so a value that does not fit 16 bits was written big-endian.
        if len(data) < 4:
            return NOT_IP
        (family,) = _u32_le(data, 0)
        if family > 0xFFFF:
            (family,) = _u32_be(data, 0)
        return _bsd_family(family)
    if linktype == LinkType.LOOP:
        if len(data) < 4:
            return NOT_IP
        return _bsd_family(_u32_be(data, 0)[0])
    return NOT_IP
