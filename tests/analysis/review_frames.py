"""Hand-built Ethernet/IPv4/TCP frames for the review tests (no scapy: tens of thousands of
frames are built in well under a second).

:class:`Conv` follows the sequence numbers of both sides of one connection, so a test writes
``c.syn(); c.syn_ack(); c.ack(); c.send(0, b"...")`` and gets frames as a real stack would
send them (checksums are left at 0: the decoder does not verify them).
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from capdebug.pcap import LinkType, Packet, write_pcap

SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10

_ETH = bytes.fromhex("0200000000020200000000010800")


def frame(
    src: str, sport: int, dst: str, dport: int, seq: int, ack: int, flags: int, payload: bytes
) -> bytes:
    """An untagged Ethernet frame with IPv4 (no options, DF) and a 20-byte TCP header."""
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40 + len(payload),
        0,
        0x4000,
        64,
        6,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    tcp = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 65535, 0, 0
    )
    return _ETH + ip + tcp + payload


class Conv:
    """Both directions of one TCP connection; every method appends a packet to ``out``."""

    def __init__(
        self, out: list[Packet], client: tuple[str, int], server: tuple[str, int], isn: tuple[int, int]
    ) -> None:
        self.out = out
        self.ends = (client, server)
        self.next = [isn[0], isn[1]]  # next sequence number each side sends

    def _add(
        self, side: int, flags: int, payload: bytes, *, ack: int | None = None, caplen: int | None = None
    ) -> None:
        (src, sport), (dst, dport) = self.ends[side], self.ends[1 - side]
        acked = self.next[1 - side] if ack is None else ack
        data = frame(src, sport, dst, dport, self.next[side], acked, flags, payload)
        orig = len(data)
        if caplen is not None:
            data = data[:caplen]
        self.out.append(Packet(1_000_000 * (len(self.out) + 1), 0, data, orig))

    def syn(self) -> None:
        self._add(0, SYN, b"")
        self.next[0] += 1

    def syn_ack(self) -> None:
        self._add(1, SYN | ACK, b"")
        self.next[1] += 1

    def ack(self, side: int = 0, upto: int | None = None) -> None:
        """A bare ACK (of everything the peer sent, or up to sequence number ``upto``)."""
        self._add(side, ACK, b"", ack=upto)

    def send(self, side: int, payload: bytes, *, caplen: int | None = None) -> None:
        self._add(side, PSH | ACK, payload, caplen=caplen)
        self.next[side] += len(payload)

    def lose(self, side: int, size: int) -> None:
        """``size`` bytes sent by ``side`` that the capture missed."""
        self.next[side] += size

    def rst(self, side: int) -> None:
        self._add(side, RST | ACK, b"")

    def handshake(self) -> None:
        self.syn()
        self.syn_ack()
        self.ack()


def write(path: Path, packets: list[Packet]) -> Path:
    write_pcap(path, packets, linktype=LinkType.ETHERNET, nanosecond=True)
    return path


def app_records(count: int) -> bytes:
    """``count`` minimal protected application_data records (1 byte of ciphertext each)."""
    return b"\x17\x03\x03\x00\x01\xaa" * count


# A handshake record whose message type is not a hello: with no hello seen, the decoder takes
# it as protected (a connection picked up mid-stream), so the connection is TLS from here on.
PROTECTED_HANDSHAKE = b"\x16\x03\x03\x00\x05\x55\x00\x00\x01\x00"


# Two connections in different shares of two (capdebug.net.flow.share_of): an HTTP one, a TLS one.
HTTP_CLIENT, HTTP_SERVER = ("10.0.0.1", 40001), ("10.0.0.2", 8080)
TLS_CLIENT, TLS_SERVER = ("10.0.0.3", 40002), ("10.0.0.2", 443)


def undecided_then_many_events(path: Path, segments: int, per_segment: int) -> Path:
    """The HTTP connection opens (no data yet: undecided, its events held); the TLS connection
    sends ``segments`` segments of ``per_segment`` small records (one event each, held behind
    the HTTP connection's); then the HTTP connection sends its request (not TLS)."""
    packets: list[Packet] = []
    http = Conv(packets, HTTP_CLIENT, HTTP_SERVER, (1000, 5000))
    http.handshake()
    tls = Conv(packets, TLS_CLIENT, TLS_SERVER, (7000, 9000))
    tls.handshake()
    tls.send(0, PROTECTED_HANDSHAKE)
    for _ in range(segments):
        tls.send(0, app_records(per_segment))
    http.send(0, b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    return write(path, packets)


def bulk_records(sizes: list[int]) -> bytes:
    """Protected application_data records of these ciphertext sizes, one after another."""
    return b"".join(b"\x17\x03\x03" + n.to_bytes(2, "big") + bytes([n & 0xFF]) * n for n in sizes)


def interleaved_bulk(path: Path, conns: int, segments: int, mss: int = 1400) -> Path:
    """``conns`` connections to one server, opened one after another, then sending in turn:
    each client a protected handshake record, then records of 1 to 5000 bytes cut into
    ``segments`` segments of ``mss`` bytes (so records span segments, as bulk data does), with
    the server's bare ACKs in between; one segment of every third connection is lost (a gap);
    the connections end by FIN or RST in turn."""
    packets: list[Packet] = []
    convs = [
        Conv(packets, (f"10.1.0.{i + 1}", 41000 + i), ("10.1.255.1", 443), (1000 * i, 9000 * i))
        for i in range(conns)
    ]
    stream = bulk_records([1, 200, 2000, 5000, 16, 1400, 3] * (segments * mss // 8000 + 1))
    for conv in convs:
        conv.handshake()
        conv.send(0, PROTECTED_HANDSHAKE)
    for n in range(segments):
        chunk = stream[n * mss : (n + 1) * mss]
        for i, conv in enumerate(convs):
            if i % 3 == 0 and n == segments // 2:
                conv.lose(0, len(chunk))
            else:
                conv.send(0, chunk)
            if n % 2:
                conv.ack(1)
    for i, conv in enumerate(convs):
        if i % 2:
            conv.rst(0)
        else:
            conv._add(0, FIN | ACK, b"")
    return write(path, packets)
