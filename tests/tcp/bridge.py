"""A user-space Ethernet bridge that impairs TCP on purpose, for tests on real paths (the kernel
here may lack ``netem``; nftables cannot delay or reorder). Run inside the bridge namespace:

    python -m tests.tcp.bridge --left IF --right IF --port P [--hold-at N --hold-release M]
                               [--reorder PERCENT --seed S]

It forwards every frame received on one interface out of the other through AF_PACKET raw
sockets (the interfaces have no addresses: the kernel itself forwards nothing), and does to the
TCP segments of port ``P``, in both directions:

* ``--hold-at N --hold-release M``: the first data segment sent towards the client (source port
  ``P``) that starts at or after stream offset ``N`` (from the SYN+ACK) is held back, and so is
  every later segment overlapping its bytes (the sender's retransmissions of it); all of them
  are released, in order, once more than ``M`` bytes of later data of that direction have
  passed. ``--hold-timeout`` releases them anyway, so that a broken run ends (the summary says
  which it was).
* ``--reorder PERCENT``: each data segment is held with that probability (seeded) until 2 to 5
  later frames of its direction have passed (or 20 ms, when nothing follows).
* ``--forge-first TEXT``: an on-path injector racing the client: its first data segment is
  sent first with its opening bytes replaced by ``TEXT`` (a valid TCP checksum, so the server's
  kernel takes it), then as it was (a duplicate the server's kernel drops).

It prints ``ready`` once its sockets are bound, and on SIGTERM one JSON line of what it did.
Checksums are not touched: the peers must compute them (``ethtool -K IF tx off`` on their side;
veth otherwise leaves them to hardware that does not exist).
"""

from __future__ import annotations

import argparse
import json
import random
import select
import signal
import socket
import struct
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33
SOL_PACKET, PACKET_STATISTICS = 263, 6
PACKET_OUTGOING = 4  # recvfrom's pkttype for a frame this host sent (our own forwards)
_MASK = 0xFFFFFFFF
_IP_TCP = struct.Struct("!HBxHxxxxxB")  # EtherType, version/IHL, total length, protocol
_PORTS_SEQ = struct.Struct("!HHIIB")  # sport, dport, seq, ack, data offset


@dataclass
class Segment:
    """What the bridge needs of a TCP/IPv4 frame."""

    sport: int
    dport: int
    seq: int
    syn: bool
    size: int  # payload bytes


def forged(frame: bytes, text: bytes) -> bytes:
    """``frame`` (TCP/IPv4 with data) with its payload's first bytes replaced by ``text`` and the
    TCP checksum computed again (RFC 9293 3.1: over the IPv4 pseudo-header and the segment)."""
    ihl = (frame[14] & 0x0F) << 2
    total = struct.unpack_from("!H", frame, 16)[0]
    t = 14 + ihl
    data_at = t + ((frame[t + 12] >> 4) << 2)
    out = bytearray(frame[: 14 + total])
    out[data_at : data_at + len(text)] = text
    out[t + 16 : t + 18] = b"\0\0"
    segment = bytes(out[t:])
    pseudo = bytes(out[26:34]) + struct.pack("!BBH", 0, 6, len(segment))
    words = pseudo + segment + (b"\0" if len(segment) % 2 else b"")
    total_sum = sum(struct.unpack(f"!{len(words) // 2}H", words))
    while total_sum >> 16:
        total_sum = (total_sum & 0xFFFF) + (total_sum >> 16)
    struct.pack_into("!H", out, t + 16, ~total_sum & 0xFFFF)
    return bytes(out)


def parse(frame: bytes) -> Segment | None:
    if len(frame) < 54:
        return None
    ethertype, ver_ihl, total, proto = _IP_TCP.unpack_from(frame, 12)
    if ethertype != 0x0800 or ver_ihl >> 4 != 4 or proto != 6:
        return None
    t = 14 + ((ver_ihl & 0x0F) << 2)
    sport, dport, seq, _, offset = _PORTS_SEQ.unpack_from(frame, t)
    size = 14 + total - t - ((offset >> 4) << 2)
    return Segment(sport, dport, seq, bool(frame[t + 13] & 0x02), size)


@dataclass
class Hold:
    """The held-back range towards the client and what waits behind it."""

    at: int
    release: int
    timeout: float
    isn: int | None = None
    start: int | None = None  # sequence range held
    end: int | None = None
    since: float = 0.0
    frames: list[bytes] = field(default_factory=list)
    later: int = 0  # stream bytes beyond the held range that have passed
    released_after: int | None = None
    timed_out: bool = False

    def take(self, seg: Segment, frame: bytes, now: float) -> bool:
        """Keep ``frame`` back? (Also follows how far later data has gone.)"""
        if seg.syn:
            self.isn = seg.seq
            return False
        if self.isn is None or not seg.size or self.released_after is not None:
            return False
        if self.start is None:
            if (seg.seq - self.isn - 1) & _MASK < self.at:
                return False
            self.start, self.end, self.since = seg.seq, (seg.seq + seg.size) & _MASK, now
        assert self.end is not None
        size = (self.end - self.start) & _MASK
        if (seg.seq - self.start) & _MASK < size or (self.start - seg.seq) & _MASK < seg.size:
            self.frames.append(frame)  # overlaps the held range: the first copy or a retransmission
            return True
        beyond = (seg.seq + seg.size - self.end) & _MASK
        if beyond < 0x80000000:
            self.later = max(self.later, beyond)
        return False

    def due(self, now: float) -> bool:
        if not self.frames:
            return False
        if self.later > self.release or now - self.since > self.timeout:
            self.released_after, self.timed_out = self.later, self.later <= self.release
            return True
        return False


@dataclass
class Delayed:
    frame: bytes
    frames_to_pass: int
    deadline: float


class Bridge:
    def __init__(self, args: argparse.Namespace) -> None:
        self.socks = []
        for name in (args.left, args.right):
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            # Room for bursts: a frame the socket has no room for is dropped (a loss nobody asked for).
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
            s.bind((name, 0))
            self.socks.append(s)
        self.port = args.port
        self.rng = random.Random(args.seed)
        self.reorder = args.reorder / 100
        self.hold = Hold(args.hold_at, args.hold_release, args.hold_timeout) if args.hold_at >= 0 else None
        self.delayed: tuple[list[Delayed], list[Delayed]] = ([], [])  # per output side
        self.forwarded = 0
        self.reordered = [0, 0]  # per sending side: 0 the client's, 1 the server's
        self.held = 0
        self.forge: bytes | None = args.forge_first.encode() if args.forge_first else None
        self.forged = 0

    def send(self, out: int, frame: bytes) -> None:
        self.socks[out].send(frame)
        self.forwarded += 1

    def forward(self, src: int, frame: bytes, now: float) -> None:
        out = 1 - src
        seg = parse(frame)
        if seg is None or self.port not in (seg.sport, seg.dport):
            self.send(out, frame)
            return
        if self.forge is not None and src == 0 and seg.size >= len(self.forge):
            self.send(out, forged(frame, self.forge))  # the injected copy wins the race
            self.forge = None
            self.forged += 1
        if self.hold is not None and src == 1 and self.hold.take(seg, frame, now):
            self.held += 1
            return
        if seg.size and self.reorder and self.rng.random() < self.reorder:
            self.delayed[out].append(Delayed(frame, self.rng.randint(2, 5), now + 0.02))
            self.reordered[src] += 1
            return
        self.send(out, frame)
        self.tick(out, now, passed=1)

    def tick(self, out: int, now: float, passed: int = 0) -> None:
        """Send what waited long enough on side ``out`` (``passed``: a frame just went by)."""
        waiting = self.delayed[out]
        if waiting:
            keep = []
            for d in waiting:
                d.frames_to_pass -= passed
                if d.frames_to_pass <= 0 or now >= d.deadline:
                    self.send(out, d.frame)
                else:
                    keep.append(d)
            self.delayed[out][:] = keep
        if out == 0 and self.hold is not None and self.hold.due(now):
            for f in self.hold.frames:
                self.send(out, f)
            self.hold.frames = []

    def run(self) -> None:
        print("ready", flush=True)
        while True:
            ready, _, _ = select.select(self.socks, [], [], 0.01)
            now = time.monotonic()
            for i, s in enumerate(self.socks):
                if s not in ready:
                    continue
                for _ in range(64):  # drain what is queued before looking at the other side
                    try:
                        frame, addr = s.recvfrom(65535, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
                    if addr[2] != PACKET_OUTGOING:
                        self.forward(i, frame, now)
            for out in (0, 1):
                self.tick(out, now)

    def summary(self) -> dict[str, object]:
        h = self.hold
        held = None
        if h is not None:
            held = {
                "frames": self.held,
                "offset": None if h.start is None or h.isn is None else (h.start - h.isn - 1) & _MASK,
                "size": None if h.start is None or h.end is None else (h.end - h.start) & _MASK,
                "released_after": h.released_after,
                "timed_out": h.timed_out,
            }
        # struct tpacket_stats: packets, drops (since the last read; read once, at the end).
        dropped = sum(
            struct.unpack("II", s.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))[1] for s in self.socks
        )
        return {
            "forwarded": self.forwarded,
            "dropped": dropped,
            "reordered": self.reordered,
            "hold": held,
            "forged": self.forged,
        }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--left", required=True, help="the client's side")
    p.add_argument("--right", required=True, help="the server's side")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hold-at", type=int, default=-1)
    p.add_argument("--hold-release", type=int, default=0)
    p.add_argument("--hold-timeout", type=float, default=8.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--forge-first", default="")
    bridge = Bridge(p.parse_args())

    def stop(*_: object) -> None:
        print(json.dumps(bridge.summary()), flush=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    bridge.run()


if __name__ == "__main__":
    main()
