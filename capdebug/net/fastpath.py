"""The fast path: plain frames of followed connections taken in without packet objects.

Most frames of a capture are plain: in-order data or a bare acknowledgment, on an untagged
Ethernet link, IPv4 without options or IPv6 without extension headers, no SYN, FIN or RST. For
those the general path (:func:`capdebug.net.tcp.decode_tcp`, then :meth:`TcpTracker.feed`, then
a :class:`StreamData` per segment) costs a packet, a segment and an event object. The fast path
reads them inside the capture reader instead (:meth:`capdebug.pcap.CaptureReader.skip_frames`),
with one unpack and one dictionary lookup, and hands the data straight to its consumer.

It is an optimisation and nothing else: for every frame it either does exactly what the general
path would have (the same reassembly state, the same bytes to the consumer, in the same order)
or declines the frame, which then takes the general path. The differential tests
(tests/net/test_net_fastpath.py, tests/analysis/test_frame_filter.py) hold it to that.

The interface to the consumer
=============================

A consumer (the capture decoder) gives the fast path, per connection and per sending
:class:`~capdebug.net.flow.Direction`, with :meth:`FastPath.attach`:

* a :data:`Deliver` callable, ``deliver(data, frame, ts_ns) -> hold``, for in-order bytes, as a
  :class:`~capdebug.net.flow.StreamData` from :meth:`TcpTracker.feed` would carry them. It
  returns True when the consumer wants the fast path out of its way for a moment (it has events
  piled up that it hands out only from its general path): the next frame with data to deliver
  is then declined, so that it comes through the general path, and the fast path resumes after.
* optionally a :class:`SkipCounter`: how many of the next in-order bytes of that direction the
  consumer will drop unread. Segments wholly inside them are not copied nor delivered: the fast
  path lowers the count instead. The consumer lowers it itself for bytes it gets otherwise.

That is all the fast path knows of its consumer. It reads and changes reassembly state only
through the fast-path method of :class:`~capdebug.net.reassembly.StreamReassembler`
(:meth:`~capdebug.net.reassembly.StreamReassembler.take_plain`), the same rule
:meth:`TcpTracker.feed` follows, and the header layouts come from net/link.py, net/ip.py and
net/tcp.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from capdebug.net.ip import IPPROTO_TCP, IPV4_ADDRS, IPV4_FIELDS, IPV6_ADDRS, IPV6_FIELDS
from capdebug.net.link import ETHERNET_HEADER_LEN, ETHERTYPE_AT, ETHERTYPE_IPV4, ETHERTYPE_IPV6
from capdebug.net.tcp import (
    ACK,
    CONTROL,
    ETH_IPV4_TCP_AT,
    ETH_IPV6_TCP_AT,
    TCP_HEADER_LEN,
    TCP_PORTS,
    TCP_REST,
)
from capdebug.pcap import FrameFilter

if TYPE_CHECKING:
    from capdebug.net.flow import Connection, Endpoint
    from capdebug.net.reassembly import StreamReassembler

__all__ = ["Deliver", "FastPath", "SkipCounter", "share_of"]

Deliver = Callable[[bytes, int, int], bool]
"""``deliver(data, frame, ts_ns) -> hold``: in-order stream bytes of one direction, as a
:class:`~capdebug.net.flow.StreamData` would carry them; True asks the fast path to give way
(module docstring)."""


class SkipCounter(Protocol):
    """A consumer's count of the next in-order bytes of one direction it will drop unread."""

    skip: int


class _NoSkip:
    __slots__ = ("skip",)

    def __init__(self) -> None:
        self.skip = 0


_SHARE_HASH: Final = 0x9E3779B1


def share_of(sport: int, dport: int, shares: int) -> int:
    """Which of ``shares`` shares a connection between these two ports belongs to: the same
    whichever way a segment goes, and spread by a multiplicative hash because port numbers are
    not random (Linux hands out even ephemeral ports to connect(), so a sum or a parity would
    put every connection to one server port in the same share). The frame filter inlines it."""
    return (((sport ^ dport) * _SHARE_HASH & 0xFFFFFFFF) >> 16) % shares


# What the filter reads of an untagged Ethernet frame, from the EtherType to the TCP control
# bits, in one unpack: the fixed IP header's fields, then the addresses and ports as one bytes
# object, as they lie in the frame (source and destination address, source and destination
# port: contiguous when there are no IP options or extension headers), the lookup key of a
# direction; then the rest of the fixed TCP header up to the window (a window of 0 is declined:
# the TCP health observer, net/health.py, must see every zero-window acknowledgment). The IP
# header's bytes before its addresses (RFC 791 3.1: checksum; RFC 8200 3: hop limit) are skipped.
_PORTS_LEN: Final = struct.calcsize("!" + TCP_PORTS)
_V4_KEY_LEN: Final = 2 * 4 + _PORTS_LEN
_V6_KEY_LEN: Final = 2 * 16 + _PORTS_LEN
_V4: Final = struct.Struct(
    f"!H{IPV4_FIELDS}{struct.calcsize('!' + IPV4_ADDRS) - 2 * 4}x{_V4_KEY_LEN}s{TCP_REST}H"
).unpack_from
_V6: Final = struct.Struct(
    f"!H{IPV6_FIELDS}{struct.calcsize('!' + IPV6_ADDRS) - 2 * 16}x{_V6_KEY_LEN}s{TCP_REST}H"
).unpack_from
_PORTS: Final = struct.Struct("!" + TCP_PORTS).unpack_from
_V4_MIN: Final = ETH_IPV4_TCP_AT + TCP_HEADER_LEN
_V6_MIN: Final = ETH_IPV6_TCP_AT + TCP_HEADER_LEN

# One direction of an attached connection: its stream, the peer's stream (whose ACKs this side
# sends), the consumer's skip counter for its bytes, where its data goes.
_Entry = tuple["StreamReassembler", "StreamReassembler", SkipCounter, Deliver]


def _raw_key(src: Endpoint, dst: Endpoint) -> bytes:
    return src[0] + dst[0] + src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big")


class FastPath:
    """The fast path of one :class:`~capdebug.net.flow.TcpTracker` (made by
    :meth:`~capdebug.net.flow.TcpTracker.fast_path`); see the module docstring."""

    __slots__ = ("_entries", "_partition", "_watched")

    def __init__(self, partition: tuple[int, int] | None) -> None:
        self._partition = partition
        self._entries: dict[bytes, _Entry] = {}
        self._watched: set[int] = set()

    def attach(
        self,
        conn: Connection,
        deliver: tuple[Deliver, Deliver],
        counters: tuple[SkipCounter, SkipCounter] | None = None,
    ) -> None:
        """Let the frame filter take the plain frames of ``conn`` (an open connection): data
        sent by direction ``d`` goes to ``deliver[d]``, and ``counters[d]`` (when given) counts
        what may be dropped unread. Calling it again replaces the entries; they leave with the
        connection (:meth:`detach`). A connection already closed is not attached."""
        if not conn.open or conn.id in self._watched:
            return
        streams = conn.streams
        c0, c1 = counters if counters is not None else (_NoSkip(), _NoSkip())
        # Server first: a connection from an endpoint to itself has one key, and the client's
        # side must win it, as in the tracker's table (TcpTracker.feed counts its segments as
        # the client's).
        self._entries[_raw_key(conn.server, conn.client)] = (streams[1], streams[0], c1, deliver[1])
        self._entries[_raw_key(conn.client, conn.server)] = (streams[0], streams[1], c0, deliver[0])

    def watch(self, conn: Connection) -> None:
        """Leave every frame of ``conn`` to the general path from now on, whoever attaches it
        again (the TCP health observer measures a troubled connection: net/health.py)."""
        self._watched.add(conn.id)
        self.detach(conn)

    def unwatch(self, conn: Connection) -> None:
        """The health observer is done with ``conn``: it may be attached again."""
        self._watched.discard(conn.id)

    def detach(self, conn: Connection) -> None:
        """Forget ``conn`` (the tracker calls it when the connection closes)."""
        if self._entries:
            self._entries.pop(_raw_key(conn.client, conn.server), None)
            self._entries.pop(_raw_key(conn.server, conn.client), None)

    def frame_filter(self) -> FrameFilter:
        """A predicate for :meth:`capdebug.pcap.CaptureReader.skip_frames` (Ethernet frames).

        ``take(window, start, stop, frame, ts_ns)`` is True when it has dealt with the frame
        ``window[start:stop]`` itself: a segment of an attached connection with no control bit,
        in order, and acknowledging nothing beyond what the other side has released. It updates
        the stream state exactly as :meth:`TcpTracker.feed` would and hands the data to the
        consumer. Anything else (IP options, VLAN tags, fragments, truncation, SYN/FIN/RST,
        holes, retransmissions, a zero window, a watched connection, a consumer that asked to
        give way) is left to the general path.
        With a partition, the plain frames of other shares' connections are taken and dropped
        (the tracker ignores them too)."""
        get = self._entries.get
        v4, v6, ports = _V4, _V6, _PORTS
        v4_min, v6_min = _V4_MIN, _V6_MIN
        v4_tcp, v6_tcp = ETH_IPV4_TCP_AT, ETH_IPV6_TCP_AT
        eth_v4, eth_v6, tcp_proto = ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_TCP
        control, ack_bit = CONTROL, ACK
        share, shares = self._partition or (0, 1)
        mult = _SHARE_HASH
        hold = False

        def take(buf: bytes, start: int, stop: int, frame: int, ts_ns: int) -> bool:
            nonlocal hold
            n = stop - start
            if n < v4_min:
                return False
            ethertype, ver, length, frag, proto, key, seq, ack, offset_byte, flags, window = v4(
                buf, start + ETHERTYPE_AT
            )
            if ethertype == eth_v4:
                # IPv4 without options (RFC 791 3.1), not a fragment (MF clear, offset 0).
                if ver != 0x45 or proto != tcp_proto or frag & 0x3FFF:
                    return False
                tcp_at = v4_tcp
                end = ETHERNET_HEADER_LEN + length  # the IPv4 total length counts its header
            elif ethertype == eth_v6 and n >= v6_min:
                ethertype, ver, length, proto, key, seq, ack, offset_byte, flags, window = v6(
                    buf, start + ETHERTYPE_AT
                )
                if ver >> 4 != 6 or proto != tcp_proto:
                    return False
                tcp_at = v6_tcp
                end = v6_tcp + length  # the IPv6 payload length does not
            else:
                return False
            entry = get(key)
            if entry is None:
                # Only connections of this share are attached: one of another share is dropped
                # whole, as if not captured (the tracker ignores it too).
                if shares > 1:
                    sport, dport = ports(buf, start + tcp_at)
                    return bool((((sport ^ dport) * mult & 0xFFFFFFFF) >> 16) % shares != share)
                return False
            size = end - tcp_at - ((offset_byte >> 4) << 2)
            # No control bit; the TCP data offset is at least 5 words (RFC 9293 3.1); the frame
            # holds the whole IP packet (else it is truncated: the general path reports the hole);
            # a zero window goes to the health observer (net/health.py).
            if flags & control or end > n or size < 0 or offset_byte < 0x50 or not window:
                return False
            mine, peer, counter, deliver = entry
            if size:
                skip = counter.skip
                if skip > size:
                    # Wholly inside bytes the consumer drops unread: not even copied.
                    if not mine.take_plain(seq, size, peer, ack if flags & ack_bit else None):
                        return False
                    counter.skip = skip - size
                    return True
                if hold:
                    hold = False
                    return False
                data = buf[start + end - size : start + end]
                if not mine.take_plain(seq, size, peer, ack if flags & ack_bit else None, data):
                    return False
                hold = deliver(data, frame, ts_ns)
                return True
            return mine.take_plain(seq, 0, peer, ack if flags & ack_bit else None)

        return take
