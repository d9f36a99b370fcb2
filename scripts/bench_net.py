"""Micro-benchmark of the packet layer: decode_tcp + TcpTracker.feed over synthetic frames.

Usage: python scripts/bench_net.py [N]   (default 800000 packets)

The frames are Ethernet/IPv4/TCP, built with struct (no scapy, so the timing is the library's):
many connections interleaved, each a handshake, alternating 1400-byte data segments and bare ACKs
with some out-of-order delivery, then FINs.
"""

from __future__ import annotations

import struct
import sys
import time

from capdebug.net import TcpTracker, decode_tcp
from capdebug.pcap.model import LinkType

_ETH = bytes(6) + bytes(range(1, 7)) + b"\x08\x00"


def frame(
    src: int, sport: int, dst: int, dport: int, seq: int, ack: int, flags: int, payload: bytes
) -> bytes:
    tcp = struct.pack(
        "!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags, 65535, 0, 0
    )
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src.to_bytes(4), dst.to_bytes(4))
    return _ETH + ip + tcp + payload


def build(n: int, conns: int = 200) -> list[bytes]:
    data = bytes(1400)
    per_conn = n // conns
    streams = []
    for c in range(conns):
        cli, srv, cport = 0x0A000001 + c, 0x0A00FF01, 30000 + c
        cseq, sseq = 1000 * c, 0xFFFF0000  # the server side wraps around 2**32
        pkts = [
            frame(cli, cport, srv, 443, cseq, 0, 0x02, b""),
            frame(srv, 443, cli, cport, sseq, cseq + 1, 0x12, b""),
            frame(cli, cport, srv, 443, cseq + 1, sseq + 1, 0x10, b""),
        ]
        cseq += 1
        sseq += 1
        i = 0
        while len(pkts) < per_conn - 4:
            a = frame(srv, 443, cli, cport, sseq, cseq, 0x18, data)
            b = frame(srv, 443, cli, cport, sseq + 1400, cseq, 0x18, data)
            if i % 10 == 5:
                pkts += [b, a]  # out of order
            else:
                pkts += [a, b]
            sseq += 2800
            pkts.append(frame(cli, cport, srv, 443, cseq, sseq, 0x10, b""))
            i += 1
        pkts += [
            frame(cli, cport, srv, 443, cseq, sseq, 0x11, b""),
            frame(srv, 443, cli, cport, sseq, cseq + 1, 0x11, b""),
            frame(cli, cport, srv, 443, cseq + 1, sseq + 1, 0x10, b""),
        ]
        streams.append(pkts)
    out = []
    for k in range(max(len(s) for s in streams)):
        for s in streams:
            if k < len(s):
                out.append(s[k])
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 800_000
    frames = build(n)
    tracker = TcpTracker()
    linktype = LinkType.ETHERNET
    events = 0
    start = time.perf_counter()
    for number, data in enumerate(frames, 1):
        seg = decode_tcp(linktype, data)
        if seg is not None:
            events += len(tracker.feed(number, number, seg))
    events += len(tracker.flush())
    elapsed = time.perf_counter() - start
    print(
        f"{len(frames)} packets, {events} events in {elapsed:.2f} s: {len(frames) / elapsed:,.0f} packets/s"
    )
    start = time.perf_counter()
    for data in frames:
        decode_tcp(linktype, data)
    elapsed = time.perf_counter() - start
    print(f"decode_tcp alone: {len(frames) / elapsed:,.0f} packets/s")


if __name__ == "__main__":
    main()
