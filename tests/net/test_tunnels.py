"""TLS inside tunnels: every encapsulation of net/tunnel.py and net/link.py, decoded as tshark
decodes it, frame for frame, with the same plaintext as the capture without the tunnel.

A real TLS 1.3 capture (tests/fixtures, OpenSSL over loopback) is wrapped by scapy in each
encapsulation, as a mirror port, a cloud traffic mirror or a mobile core would deliver it. The
kernel here lacks the GRE, IP-in-IP, Geneve and ERSPAN drivers (only VXLAN: see
tests/net/test_vxlan_real.py for a real one), so these are crafted; tshark decodes each
independently. A frame whose tunnel is malformed gives no segment and never an exception."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.contrib.geneve import GENEVE
from scapy.contrib.gtp import GTP_U_Header
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap, wrpcap
from typer.testing import CliRunner

from capdebug.cli.app import app
from capdebug.net import decode_tcp
from capdebug.pcap.model import LinkType
from tests.oracle import by_frame, capdebug_events, capdebug_rows, tshark_rows
from tests.tools import require

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NAME = "tls13-aes128gcm"
OUTER = {"src": "10.20.0.1", "dst": "10.20.0.2"}


def _eth(inner: Packet | None = None, **kw: object) -> Packet:
    frame = Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02", **kw)
    return frame if inner is None else frame / inner


def _erspan2(p: Packet) -> Packet:
    # GRE with a sequence number, protocol 0x88BE, an 8-byte ERSPAN type II header (version 1,
    # VLAN 0, session 7, index 0), then the mirrored Ethernet frame.
    header = bytes([0x10, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00])
    return _eth(IP(**OUTER) / GRE(seqnum_present=1, sequence_number=1, proto=0x88BE) / Raw(header) / p)


def _erspan3(p: Packet) -> Packet:
    # ERSPAN type III (protocol 0x22EB): version 2, a 12-byte header without the optional
    # platform subheader (O flag clear), frame type 0 (Ethernet).
    header = bytes([0x20, 0x00, 0x00, 0x07]) + bytes(4) + bytes([0, 0, 0, 0])
    return _eth(IP(**OUTER) / GRE(seqnum_present=1, sequence_number=1, proto=0x22EB) / Raw(header) / p)


def _gtp_with_extension(p: Packet) -> Packet:
    # GTP-U G-PDU with the E flag and one PDU Session Container extension (5G, TS 38.415).
    ip = bytes(p[IP])
    header = bytes([0x34, 0xFF]) + (len(ip) + 8).to_bytes(2, "big") + (0x1234).to_bytes(4, "big")
    header += bytes([0, 0, 0, 0x85]) + bytes([1, 0x00, 0x01, 0x00])
    return _eth(IP(**OUTER) / UDP(sport=2152, dport=2152) / Raw(header + ip))


WRAPS: dict[str, Callable[[Packet], Packet]] = {
    "vxlan": lambda p: _eth(IP(**OUTER) / UDP(sport=51000, dport=4789) / VXLAN(vni=42) / p),
    "vxlan-ipv6-vlan": lambda p: _eth(
        Dot1Q(vlan=7) / IPv6(src="fd00::1", dst="fd00::2") / UDP(dport=4789) / VXLAN(vni=1) / p
    ),
    "geneve": lambda p: _eth(IP(**OUTER) / UDP(sport=51000, dport=6081) / GENEVE(vni=9, proto=0x6558) / p),
    "gre-ip": lambda p: _eth(IP(**OUTER) / GRE(proto=0x0800) / p[IP]),
    "gre-key-ethernet": lambda p: _eth(IP(**OUTER) / GRE(key_present=1, key=99, proto=0x6558) / p),
    "erspan2": _erspan2,
    "erspan3": _erspan3,
    "ipip": lambda p: _eth(IP(proto=4, **OUTER) / p[IP]),
    "gtp-u": lambda p: _eth(IP(**OUTER) / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=5) / p[IP]),
    "gtp-u-extension": _gtp_with_extension,
    "mpls": lambda p: _eth(MPLS(label=100, s=0, ttl=64) / MPLS(label=200, s=1, ttl=64) / p[IP], type=0x8847),
    "pppoe": lambda p: _eth(PPPoE(sessionid=3) / PPP(proto=0x0021) / p[IP], type=0x8864),
    "vxlan-in-gre": lambda p: _eth(
        IP(**OUTER)
        / GRE(proto=0x0800)
        / IP(src="10.30.0.1", dst="10.30.0.2")
        / UDP(dport=4789)
        / VXLAN(vni=3)
        / p
    ),
}


def _wrapped(tmp_path: Path, kind: str) -> Path:
    original = rdpcap(str(FIXTURES / f"{NAME}.pcap"))
    out = []
    for p in original:
        w = WRAPS[kind](p)
        w.time = p.time
        out.append(w)
    path = tmp_path / f"{kind}.pcap"
    wrpcap(str(path), out)
    return path


def _export(tmp_path: Path, pcap: Path, tag: str) -> dict[str, bytes]:
    folder = tmp_path / f"export-{tag}"
    keys = FIXTURES / f"{NAME}.keys"
    result = CliRunner().invoke(
        app, ["decrypt", str(pcap), "--keylog", str(keys), "--export", str(folder), "--no-env", "--json"]
    )
    assert result.exit_code == 0, result.output
    conns = [json.loads(line) for line in result.stdout.splitlines() if '"event":"connection"' in line]
    assert len(conns) == 1
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix == ".bin"}


@pytest.mark.parametrize("kind", sorted(WRAPS))
def test_tunnelled_tls_decodes_as_tshark_does(tmp_path: Path, kind: str) -> None:
    require("tshark")
    keys = FIXTURES / f"{NAME}.keys"
    pcap = _wrapped(tmp_path, kind)
    mine = by_frame(capdebug_rows(capdebug_events(pcap, keys)))
    theirs = by_frame(tshark_rows(pcap, keys))
    assert mine and mine == theirs
    # The plaintext is the capture's without the tunnel, byte for byte.
    assert _export(tmp_path, pcap, kind) == _export(tmp_path, FIXTURES / f"{NAME}.pcap", "plain")


def test_broken_tunnels_never_raise() -> None:
    """Every cut and random byte flips of each tunnel's first data frame: no exception, and
    a segment only when its TCP header is there."""
    original = rdpcap(str(FIXTURES / f"{NAME}.pcap"))
    rng = random.Random(7)
    for kind, wrap in WRAPS.items():
        frame = bytes(wrap(original[3]))
        assert decode_tcp(LinkType.ETHERNET, frame) is not None, kind
        for cut in range(len(frame)):
            decode_tcp(LinkType.ETHERNET, frame[:cut])
        for _ in range(300):
            broken = bytearray(frame)
            for _ in range(rng.randint(1, 4)):
                broken[rng.randrange(min(len(broken), 120))] = rng.randrange(256)
            decode_tcp(LinkType.ETHERNET, bytes(broken))
