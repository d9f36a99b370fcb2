"""The same packet captured on two interfaces (a router or bridge captured on both sides).

A capture with several interfaces may hold every packet of a connection twice: once where it
came in, once where it went out (pcapng with one IDB per interface, dumpcap -i a -i b, or
``mergecap`` of two tcpdumps). tshark reads the second copy as a retransmission; a decoder that
did the same would report retransmissions that never happened, and when the file is not in time
order (``mergecap -a``: one interface after the other) the second copy of a closed connection
would start over as a new connection and decode every byte twice.

:class:`TwinFilter` drops the copy of a TCP segment seen on another interface than an earlier,
still unmatched, copy: the connection is decoded once, from the copies in file order, and a
retransmission stays a retransmission (two copies on each interface match one for one).

What makes two frames the same packet: addresses, ports, sequence and acknowledgment numbers,
flags, window and payload, which routing does not change (only the TTL / hop limit and the IPv4
header checksum change, RFC 791 / RFC 8200; the link-layer header differs). A NAT between the
interfaces changes addresses or ports: its two sides are then two connections, as they are.

Memory: one entry per unmatched segment, bounded by :data:`MAX_UNMATCHED` (oldest dropped
first), and only for captures that have more than one interface.
"""

from __future__ import annotations

import hashlib

from .tcp import TcpSegment

__all__ = ["MAX_UNMATCHED", "TwinFilter"]

#: Unmatched segments remembered; past it the oldest are forgotten (a twin that far away in
#: the file is then decoded again, as a retransmission or, after the connection closed, anew).
MAX_UNMATCHED = 1 << 20


class TwinFilter:
    """Decide, frame by frame, whether a TCP segment is a copy from another interface."""

    def __init__(self, max_unmatched: int = MAX_UNMATCHED) -> None:
        self._unmatched: dict[tuple[object, ...], list[int]] = {}
        """segment key -> interfaces of its copies not matched yet, oldest first."""
        self._max = max_unmatched
        self.dropped: dict[int, int] = {}
        """interface index -> copies dropped from it."""

    def is_twin(self, interface: int, seg: TcpSegment) -> bool:
        """True when ``seg``, seen on ``interface``, is the copy of a segment seen earlier on
        another interface (and not yet matched): the caller drops it."""
        payload = seg.payload
        key = (
            seg.src,
            seg.dst,
            seg.sport,
            seg.dport,
            seg.seq,
            seg.ack,
            seg.flags,
            seg.window,
            len(payload),
            hashlib.blake2b(payload, digest_size=16).digest() if payload else b"",
        )
        seen = self._unmatched.get(key)
        if seen is not None:
            for i, other in enumerate(seen):
                if other != interface:
                    del seen[i]
                    if not seen:
                        del self._unmatched[key]
                    self.dropped[interface] = self.dropped.get(interface, 0) + 1
                    return True
            seen.append(interface)
            return False
        if len(self._unmatched) >= self._max:
            del self._unmatched[next(iter(self._unmatched))]
        self._unmatched[key] = [interface]
        return False
