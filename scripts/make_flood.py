#!/usr/bin/env python3
"""Write a SYN-flood capture: many half-open TCP connections, for the bounded-state measurements.

Each connection is one SYN from its own spoofed source (address and port) to one server port, as a
SYN flood looks at its victim; ``--synack`` adds the victim's SYN+ACK to each (half-open on the
server side). With the defaults (200,000 SYNs, 54-byte frames) the file is about 14 MB::

    python3 scripts/make_flood.py /tmp/flood.pcap [--count 200000] [--synack]
    /usr/bin/time -v capdebug decrypt /tmp/flood.pcap --json > /dev/null   # "Maximum resident"
    /usr/bin/time -v capdebug triage /tmp/flood.pcap --json > /dev/null

Frames are written directly (Ethernet, IPv4, TCP with correct checksums; RFC 791, RFC 9293 3.1)
rather than through scapy, which takes minutes for this many packets.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

_ETH = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
_SERVER = bytes((10, 0, 0, 1))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(
    src: bytes, sport: int, dst: bytes, dport: int, seq: int, ack: int, flags: int, ip_id: int
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), ip_id, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    return _ETH + ip + tcp


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=200_000, help="half-open connections")
    parser.add_argument("--port", type=int, default=443, help="the victim's port")
    parser.add_argument("--synack", action="store_true", help="the victim answers each SYN")
    args = parser.parse_args(argv)
    record = struct.Struct("<IIII")
    ts = 1_700_000_000 * 1_000_000
    with open(args.output, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))  # pcap, microseconds, Ethernet
        for i in range(args.count):
            src = bytes((172, 16 + (i >> 16) % 16, (i >> 8) & 0xFF, i & 0xFF))
            sport = 1024 + (i * 7919) % 64000
            isn = (i * 2654435761) & 0xFFFFFFFF
            frames = [_frame(src, sport, _SERVER, args.port, isn, 0, 0x02, i & 0xFFFF)]
            if args.synack:
                frames.append(
                    _frame(_SERVER, args.port, src, sport, isn ^ 0x5A5A5A5A, (isn + 1) & 0xFFFFFFFF, 0x12, 0)
                )
            for data in frames:
                ts += 5
                f.write(record.pack(ts // 1_000_000, ts % 1_000_000, len(data), len(data)))
                f.write(data)
    print(f"{args.output}: {args.count} half-open connections", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
