"""IP fragment reassembly: the datagram a TCP segment (or a tunnel carrying one) was cut into.

TCP avoids fragmentation, but a tunnel does not: a VXLAN or GRE underlay with the overlay's MTU
fragments every full-size packet, and a capture on the underlay holds the inner TCP segment in
two IP fragments. Reading only the first (as if the rest were lost) would report capture loss
for bytes that are in the file. :class:`Defragmenter` puts the fragments of one datagram
together (RFC 791 3.2 for IPv4; RFC 8200 4.5 for IPv6), in any order, with overlaps resolved
as TCP's are (the first copy wins, RFC 5722 aside: a differing overlap is counted), and hands
back the whole IP packet once the pieces cover it.

Bounds, as an IP stack has them: a datagram whose fragments do not all arrive within
:data:`FRAGMENT_TIMEOUT_NS` of its first (Linux's ``ipfrag_time``, 30 s, by capture timestamps,
so that every share of a capture decides alike), or beyond :data:`MAX_PENDING` datagrams or
:data:`MAX_PENDING_BYTES` held, is given up and counted (:attr:`Defragmenter.incomplete`): its
TCP bytes then show as a gap. A fragment cut by the snaplen is not held: the datagram is left
to the caller as before (its first fragment read as a truncated segment).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from capdebug.net.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6
from capdebug.net.tunnel import ip_layers

__all__ = [
    "FRAGMENT_TIMEOUT_NS",
    "MAX_PENDING",
    "MAX_PENDING_BYTES",
    "Defragmenter",
    "fragment_id",
    "fragment_key",
]

FRAGMENT_TIMEOUT_NS = 30 * 10**9
MAX_PENDING = 4096
"""Datagrams waiting for fragments at once."""
MAX_PENDING_BYTES = 64 << 20
"""Fragment bytes held at once."""
_MAX_DATAGRAM = 0xFFFF + 40
"""No fragment may end past the largest IP packet (RFC 791: 65,535; RFC 8200 adds nothing)."""

_FRAGMENT = 44
_HOP_BY_HOP, _ROUTING, _DEST_OPTS = 0, 43, 60
_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from
_IPV4_FRAGMENT = struct.Struct("!BxHHH").unpack_from  # version/IHL, total length, ID, flags/offset


@dataclass(slots=True)
class _Datagram:
    header: bytes
    """The IP header to put back in front (IPv4: the first fragment's; IPv6: the fixed header)."""
    first_ts: int
    data: bytearray = field(default_factory=bytearray)
    have: list[tuple[int, int]] = field(default_factory=list)
    """Received byte ranges of the payload, sorted and merged."""
    total: int | None = None
    """Payload length, known once the last fragment (More Fragments clear) arrived."""
    held: int = 0


class Defragmenter:
    """Reassembles IP fragments (see the module docstring). One per decoder."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, bytes, bytes, int, int], _Datagram] = {}
        self._held = 0
        self.completed = 0
        """Datagrams put back together."""
        self.incomplete = 0
        """Datagrams given up: fragments missing (or past the bounds) when they timed out, were
        crowded out, or the capture ended."""
        self.incomplete_fragments = 0
        self.conflicts = 0
        """Overlapping fragments whose bytes differed (the first copy was kept)."""

    def take(self, data: bytes, ethertype: int, off: int, ts_ns: int) -> tuple[bytes, int] | None:
        """The IP packet at ``data[off:]``: ``(data, off)`` unchanged when it is not a fragment
        (or one cut by the snaplen), ``(whole packet, 0)`` when this fragment completes its
        datagram, None when the datagram still waits for fragments (or the fragment is bad)."""
        n = len(data)
        if ethertype == ETHERTYPE_IPV4:
            if off + 20 > n:
                return data, off
            ver_ihl, total_length, ident, frag = _IPV4_FRAGMENT(data, off)
            if not frag & 0x3FFF:
                return data, off  # Don't Fragment or not: not a fragment (the common case)
            header_len = (ver_ihl & 0x0F) << 2
            if ver_ihl >> 4 != 4 or header_len < 20 or total_length < header_len:
                return data, off
            if off + total_length > n:
                return data, off  # cut by the snaplen: left to the caller as a truncated packet
            src, dst = data[off + 12 : off + 16], data[off + 16 : off + 20]
            key: tuple[int, bytes, bytes, int, int] = (4, src, dst, data[off + 9], ident)
            start = (frag & 0x1FFF) << 3
            more = bool(frag & 0x2000)
            payload = data[off + header_len : off + total_length]
            header = data[off : off + header_len] if not start else b""
        elif ethertype == ETHERTYPE_IPV6:
            found = _ipv6_fragment(data, off)
            if found is None:
                return data, off
            at, end, next_header = found
            if end > n:
                return data, off
            offset_flags = _u16(data, at + 2)[0]
            ident = _u32(data, at + 4)[0]
            key = (6, data[off + 8 : off + 24], data[off + 24 : off + 40], 0, ident)
            start = offset_flags & 0xFFF8
            more = bool(offset_flags & 1)
            payload = data[at + 8 : end]
            # The reassembled packet: the fixed header with the fragment's next header; the
            # unfragmentable extension headers before it are not needed to find TCP.
            header = data[off : off + 6] + bytes((next_header,)) + data[off + 7 : off + 40]
        else:
            return data, off
        return self._add(key, header, start, more, payload, ts_ns, ethertype)

    def finish(self) -> None:
        """The capture ended: what still waits is incomplete."""
        for d in self._pending.values():
            self._give_up(d)
        self._pending.clear()
        self._held = 0

    def _add(
        self,
        key: tuple[int, bytes, bytes, int, int],
        header: bytes,
        start: int,
        more: bool,
        payload: bytes,
        ts_ns: int,
        ethertype: int,
    ) -> tuple[bytes, int] | None:
        end = start + len(payload)
        if end > _MAX_DATAGRAM or (more and len(payload) % 8):
            return None  # impossible (RFC 791: every fragment but the last is a multiple of 8)
        self._expire(ts_ns)
        d = self._pending.get(key)
        if d is None:
            if len(self._pending) >= MAX_PENDING:
                self._drop_oldest()
            d = self._pending[key] = _Datagram(b"", ts_ns)
        if header:
            d.header = header
        if not more:
            d.total = end
        if len(d.data) < end:
            d.data.extend(bytes(end - len(d.data)))
        self._place(d, start, payload)
        d.held += len(payload)
        self._held += len(payload)
        while self._held > MAX_PENDING_BYTES and self._pending:
            self._drop_oldest()
        if d.total is None or not d.header or d.have != [(0, d.total)]:
            return None
        del self._pending[key]
        self._held -= d.held
        self.completed += 1
        body = bytes(d.data[: d.total])
        if ethertype == ETHERTYPE_IPV4:
            h = bytearray(d.header)
            h[2:4] = (len(h) + len(body)).to_bytes(2, "big")
            h[6:8] = b"\x00\x00"  # no longer a fragment (the checksum is not read by capdebug)
            return bytes(h) + body, 0
        h = bytearray(d.header)
        h[4:6] = len(body).to_bytes(2, "big")
        return bytes(h) + body, 0

    def _place(self, d: _Datagram, start: int, payload: bytes) -> None:
        """Copy ``payload`` into what ``d`` lacks at ``start``: bytes already there stay (and a
        copy that differs from them is counted)."""
        end = start + len(payload)
        pos = start
        for lo, hi in d.have:  # sorted, disjoint
            if hi <= pos:
                continue
            if lo >= end:
                break
            if lo > pos:
                d.data[pos:lo] = payload[pos - start : lo - start]
            over_lo, over_hi = max(lo, pos), min(hi, end)
            if d.data[over_lo:over_hi] != payload[over_lo - start : over_hi - start]:
                self.conflicts += 1
            pos = max(pos, hi)
            if pos >= end:
                break
        if pos < end:
            d.data[pos:end] = payload[pos - start :]
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted([*d.have, (start, end)]):
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
            else:
                merged.append((lo, hi))
        d.have = merged

    def _give_up(self, d: _Datagram) -> None:
        self.incomplete += 1
        self.incomplete_fragments += max(1, len(d.have))

    def _drop_oldest(self) -> None:
        key = next(iter(self._pending))
        d = self._pending.pop(key)
        self._held -= d.held
        self._give_up(d)

    def _expire(self, now: int) -> None:
        pending = self._pending
        while pending:
            key = next(iter(pending))
            d = pending[key]
            if now - d.first_ts <= FRAGMENT_TIMEOUT_NS:
                return
            del pending[key]
            self._held -= d.held
            self._give_up(d)


def fragment_id(data: bytes, ethertype: int, off: int) -> tuple[int, bytes, bytes, int] | None:
    """``(IP version, source, destination, identification)`` when the IP header at ``off`` is a
    fragment (IPv4: More Fragments or an offset; IPv6: a Fragment header that is not atomic),
    else None."""
    if ethertype == ETHERTYPE_IPV4:
        if off + 20 > len(data) or not _u16(data, off + 6)[0] & 0x3FFF:
            return None
        return 4, data[off + 12 : off + 16], data[off + 16 : off + 20], _u16(data, off + 4)[0]
    found = _ipv6_fragment(data, off) if ethertype == ETHERTYPE_IPV6 else None
    if found is None:
        return None
    return 6, data[off + 8 : off + 24], data[off + 24 : off + 40], _u32(data, found[0] + 4)[0]


def fragment_key(linktype: int, data: bytes) -> tuple[int, bytes, bytes, int] | None:
    """:func:`fragment_id` of the first fragmented IP header in the frame (the outer one of a
    tunnel that fragments), or None: what ties a datagram's fragments together (for keeping
    them with the connection its first fragment belongs to)."""
    for ethertype, off in ip_layers(linktype, data):
        key = fragment_id(data, ethertype, off)
        if key is not None:
            return key
    return None


def _ipv6_fragment(data: bytes, off: int) -> tuple[int, int, int] | None:
    """``(offset of the Fragment header, end of the packet, its next header)`` when the IPv6
    packet at ``off`` is a fragment; None otherwise."""
    n = len(data)
    if off + 40 > n or data[off] >> 4 != 6:
        return None
    payload_length = _u16(data, off + 4)[0]
    next_header = data[off + 6]
    p = off + 40
    end = p + payload_length
    while next_header in (_HOP_BY_HOP, _ROUTING, _DEST_OPTS):
        if p + 8 > min(n, end):
            return None
        next_header, p = data[p], p + ((data[p + 1] + 1) << 3)
    if next_header != _FRAGMENT or p + 8 > min(n, end):
        return None
    offset_flags = _u16(data, p + 2)[0]
    if not offset_flags & 0xFFF9:
        return None  # an atomic fragment (offset 0, M clear; RFC 8021): a whole packet
    return p, end, data[p]
