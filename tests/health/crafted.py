"""Crafted captures for the TCP health rules: real TLS segments of a fixture (tests/decode/craft.py)
rewritten with the TTL and window a test chooses, through scapy."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from capdebug.analysis.triage import ConnectionReport
from capdebug.api import load_keys, triage_capture
from capdebug.pcap import LinkType, Packet, write_pcap
from tests.decode import craft as c

MS = 1_000_000
SMALL = "tls13-aes128gcm"
LARGE = "tls13-large-transfer"


@dataclass(frozen=True, slots=True)
class Pkt:
    seg: c.Seg
    ttl: int = 64
    window: int = 65535
    ip_id: int = 1
    sack: tuple[int, ...] = ()
    """SACK blocks (RFC 2018 3) as left, right, left, right, ...: a SACK option when given."""


def from_fixture(name: str) -> tuple[list[Pkt], tuple[str, int], Path]:
    pcap, keys = c.fixture(name)
    segs = c.read_segments(pcap)
    return [Pkt(s) for s in segs], c.client_of(segs), keys


def write(path: Path, pkts: list[Pkt]) -> Path:
    out = []
    for p in pkts:
        s = p.seg
        tcp = TCP(
            sport=s.sport,
            dport=s.dport,
            seq=s.seq,
            ack=s.ack if s.flags & c.ACK else 0,
            flags=s.flags,
            window=p.window,
            options=[("SAck", p.sack)] if p.sack else [],
        )
        body = tcp / Raw(s.payload) if s.payload else tcp
        data = bytes(Ether() / IP(src=s.src, dst=s.dst, ttl=p.ttl, id=p.ip_id) / body)
        out.append(Packet(s.ts_ns, 0, data, len(data)))
    write_pcap(path, out, linktype=LinkType.ETHERNET, nanosecond=True)
    return path


def later(pkts: list[Pkt], ns: int) -> list[Pkt]:
    return [replace(p, seg=replace(p.seg, ts_ns=p.seg.ts_ns + ns)) for p in pkts]


def triage(path: Path, keys: Path | None) -> ConnectionReport:
    reports = triage_capture(path, load_keys(path, [keys] if keys else [])).reports
    assert len(reports) == 1, reports
    return reports[0]


def codes(r: ConnectionReport) -> dict[str, tuple[str, str | None]]:
    return {v.code: (v.severity, v.by) for v in r.verdicts}
