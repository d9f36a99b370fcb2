"""What a frame holds when it holds no TCP segment: the words a report uses to say why a capture
shows no TLS connection (QUIC, DTLS, DNS, ARP, an IPsec tunnel, ...).

Called only for frames :func:`capdebug.net.tcp.decode_tcp` found no segment in, so the cost of
looking again is paid by what the decoder does not decode. Never raises.
"""

from __future__ import annotations

import struct

from capdebug.net.defrag import fragment_id
from capdebug.net.tunnel import ip_layers, ip_payload

__all__ = ["DTLS", "QUIC", "frame_kind"]

QUIC = "QUIC"
DTLS = "DTLS"
_UDP, _ICMP, _ICMPV6, _ESP, _TCP = 17, 1, 58, 50, 6
_u16 = struct.Struct("!H").unpack_from
_DTLS_VERSIONS = frozenset((0xFEFF, 0xFEFD, 0xFEFC))  # DTLS 1.0, 1.2, 1.3 (RFC 9147 4)


def frame_kind(linktype: int, data: bytes) -> str | None:
    """A short name for what the frame carries (``"QUIC"``, ``"DTLS"``, ``"DNS"``, ``"UDP"``,
    ``"ICMP"``, ``"IPsec ESP"``, ``"not IP"``, ...), through any tunnel; None for an IP fragment
    (the fragment reassembly accounts for those)."""
    layers = list(ip_layers(linktype, data))
    if not layers:
        return "not IP (ARP, LLDP, ...)"
    if any(fragment_id(data, ethertype, off) is not None for ethertype, off in layers):
        return None
    ethertype, off = layers[-1]
    found = ip_payload(data, ethertype, off)
    if found is None:
        return "malformed IP"
    proto, p, end = found
    if proto == _UDP:
        return _udp_kind(data, p, end)
    if proto == _ICMP or proto == _ICMPV6:
        return "ICMP"
    if proto == _ESP:
        return "IPsec ESP"
    if proto == _TCP:
        return "TCP with a malformed or cut header"
    return f"IP protocol {proto}"


def _udp_kind(data: bytes, p: int, end: int) -> str:
    if p + 8 > end:
        return "UDP"
    sport, dport = _u16(data, p)[0], _u16(data, p + 2)[0]
    body = p + 8
    if body + 13 <= end and 20 <= data[body] <= 25 and _u16(data, body + 1)[0] in _DTLS_VERSIONS:
        return DTLS  # a DTLS record header (RFC 6347 4.1)
    if body + 5 <= end and data[body] & 0xC0 == 0xC0 and data[body + 1 : body + 5] == b"\x00\x00\x00\x01":
        return QUIC  # a QUIC version 1 long header (RFC 9000 17.2), on any port
    if sport == 443 or dport == 443:
        return QUIC  # short headers carry no version: UDP 443 is HTTP/3's port (RFC 9114 3.1)
    if sport == 53 or dport == 53:
        return "DNS"
    return "UDP"
