#!/usr/bin/env python3
"""Time capdebug's capture reader against tshark on the same file.

    python scripts/bench_read.py FILE
    python scripts/bench_read.py --make-test-file 100      # synthesize ~100 MB of TCP, then time

The reader is timed alone (``for item in open_capture(FILE)``), tshark as a whole process
(``tshark -r FILE -T fields -e frame.number`` to /dev/null), both on a warm page cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from capdebug.pcap import Interface, LinkType, Packet, PcapngWriter, open_capture


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, payload: bytes) -> bytes:
    """Ethernet + IPv4 + TCP (flags ACK|PSH when carrying data), as a NIC would capture it."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x18 if payload else 0x10, 502, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
    return eth + ip + tcp + payload


def make_test_file(path: Path, megabytes: int) -> int:
    """Write ~``megabytes`` MB of a bulk TCP transfer (1400-byte segments, an ACK every two)."""
    target = megabytes * 1_000_000
    payloads = [os.urandom(1400) for _ in range(64)]
    client, server = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    ts = 1_700_000_000_000_000_000
    seq, ack = 1000, 5000
    count = 0
    with open(path, "wb") as f:
        writer = PcapngWriter(f, shb_comment="synthetic bulk TCP transfer for scripts/bench_read.py")
        idx = writer.add_interface(Interface(LinkType.ETHERNET, name="eth0"))
        while f.tell() < target:
            for _ in range(2):
                data = _frame(server, client, 443, 50000, ack, seq, payloads[count % 64])
                writer.write_packet(Packet(ts, idx, data, len(data)), idx)
                ack += 1400
                ts += 11_000
                count += 1
            data = _frame(client, server, 50000, 443, seq, ack, b"")
            writer.write_packet(Packet(ts, idx, data, len(data)), idx)
            ts += 3_000
            count += 1
    return count


def _warm(path: Path) -> None:
    """Read the file once so that both contenders find it in the page cache. In chunks: one
    huge allocation would skew the allocator and slow the first timed run down."""
    with open(path, "rb") as f:
        while f.read(1 << 20):
            pass


def time_reader(path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    packets = 0
    with open_capture(path) as reader:
        for _ in reader:
            packets += 1
    return time.perf_counter() - start, packets


def time_tshark(path: Path) -> float | None:
    tshark = shutil.which("tshark")
    if tshark is None:
        return None
    start = time.perf_counter()
    subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-e", "frame.number"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", nargs="?", type=Path, help="capture to read")
    parser.add_argument(
        "--make-test-file", type=int, metavar="N_MB", help="first write a synthetic N MB pcapng"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="capdebug-bench-") as tmp:
        path: Path | None = args.file
        if args.make_test_file:
            path = Path(tmp) / "synthetic.pcapng"
            start = time.perf_counter()
            written = make_test_file(path, args.make_test_file)
            print(f"wrote {written} packets to {path} in {time.perf_counter() - start:.2f} s")
        if path is None:
            parser.error("give a FILE or --make-test-file N_MB")
        size = path.stat().st_size
        _warm(path)
        elapsed, packets = time_reader(path)
        print(
            f"capdebug: {packets} items, {size / 1e6:.1f} MB in {elapsed:.3f} s: "
            f"{packets / elapsed:,.0f} packets/s, {size / 1e6 / elapsed:,.1f} MB/s"
        )
        shark = time_tshark(path)
        if shark is None:
            print("tshark: not installed")
        else:
            print(f"tshark:   {shark:.3f} s wall ({packets / shark:,.0f} packets/s)")
            print(f"ratio:    capdebug is {shark / elapsed:.1f}x faster than tshark")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
