"""IP fragments put back together (net/defrag.py): a real TLS capture whose every packet is cut
into fragments, sent in a shuffled order, decodes as tshark decodes it and gives the plaintext
of the unfragmented capture; what cannot be completed is said, never guessed."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import rdpcap, wrpcap

from capdebug.net import decode_tcp
from capdebug.net.defrag import FRAGMENT_TIMEOUT_NS, Defragmenter
from capdebug.net.link import ETHERTYPE_IPV4
from capdebug.pcap.model import LinkType
from tests.net.test_tunnels import FIXTURES, NAME, _export
from tests.oracle import by_frame, capdebug_events, capdebug_rows, tshark_rows
from tests.tools import require


def _eth(p: Packet) -> Packet:
    return Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:02") / p


def _as_ipv6(p: Packet, client_port: int, ident: int) -> Packet:
    """The IPv4 packet's TCP segment in IPv6 (ports kept, checksum redone), with a Fragment
    header for fragment6 to fill in."""
    tcp = p[TCP].copy()
    del tcp.chksum
    src, dst = ("fd00::1", "fd00::2") if tcp.sport == client_port else ("fd00::2", "fd00::1")
    return IPv6(src=src, dst=dst) / IPv6ExtHdrFragment(id=ident) / tcp


def _fragmented(tmp_path: Path, v6: bool, seed: int) -> Path:
    """Every packet with a payload cut into 3+ fragments (IPv4 or IPv6), shuffled within each
    datagram, one fragment sent twice."""
    rng = random.Random(seed)
    out: list[Packet] = []
    packets = rdpcap(str(FIXTURES / f"{NAME}.pcap"))
    client_port = packets[0][TCP].sport
    for n, p in enumerate(packets):
        if v6:
            pieces = fragment6(IPv6(bytes(_as_ipv6(p, client_port, n))), 200)
        else:
            pieces = fragment(IP(bytes(p[IP])), fragsize=160)
        rng.shuffle(pieces)
        if len(pieces) > 1 and n % 5 == 0:
            pieces.append(pieces[0])  # a duplicate fragment, as a retransmitting path may give
        for f in pieces:
            frame = _eth(f)
            frame.time = p.time
            out.append(frame)
    path = tmp_path / f"frag{'6' if v6 else '4'}.pcap"
    wrpcap(str(path), out)
    return path


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_fragmented_tls_decodes_as_tshark_does(tmp_path: Path, v6: bool) -> None:
    require("tshark")
    keys = FIXTURES / f"{NAME}.keys"
    pcap = _fragmented(tmp_path, v6, seed=3)
    mine = by_frame(capdebug_rows(capdebug_events(pcap, keys)))
    assert mine and mine == by_frame(tshark_rows(pcap, keys))
    assert _export(tmp_path, pcap, "frag") == _export(tmp_path, FIXTURES / f"{NAME}.pcap", "plain")


def _pieces() -> list[bytes]:
    """One 1,044-byte IPv4 datagram (UDP, not TCP: the defragmenter does not care) in five
    fragments, as Ethernet frames."""
    datagram = IP(bytes(IP(src="192.0.2.1", dst="192.0.2.2", id=77, proto=17) / (bytes(range(256)) * 4)))
    return [bytes(_eth(f)) for f in fragment(datagram, fragsize=240)]


def _take(d: Defragmenter, frame: bytes, ts: int = 0) -> tuple[bytes, int] | None:
    return d.take(frame, ETHERTYPE_IPV4, 14, ts)


def test_any_order_and_overlaps() -> None:
    frames = _pieces()
    whole = None
    d = Defragmenter()
    for f in reversed(frames):
        whole = _take(d, f)
    assert whole is not None and d.completed == 1 and d.conflicts == 0
    data, off = whole
    # The reassembled packet is one unfragmented IPv4 packet of the right length.
    assert off == 0 and data[6:8] == b"\x00\x00" and int.from_bytes(data[2:4], "big") == len(data)
    # A second copy of a fragment with other bytes: the first copy is kept and it is counted.
    d = Defragmenter()
    forged = bytearray(frames[1])
    forged[-1] ^= 0xFF
    for f in (frames[1], bytes(forged), *frames[2:], frames[0]):
        got = _take(d, f)
    assert got is not None and got[0] == whole[0] and d.conflicts == 1


def test_missing_late_and_crowded_out_fragments_are_counted() -> None:
    frames = _pieces()
    d = Defragmenter()
    for f in frames[:-1]:
        assert _take(d, f) is None
    d.finish()
    assert (d.completed, d.incomplete) == (0, 1)
    # The last fragment more than the timeout after the first: the datagram was given up.
    d = Defragmenter()
    for f in frames[:-1]:
        _take(d, f, 0)
    assert _take(d, frames[-1], FRAGMENT_TIMEOUT_NS + 1) is None
    assert d.incomplete == 1
    # Not a fragment: handed back untouched, nothing held.
    plain = bytes(_eth(IP(src="192.0.2.1", dst="192.0.2.2", flags="DF") / (b"x" * 40)))
    assert _take(d, plain) == (plain, 14)


def test_fragments_never_raise() -> None:
    rng = random.Random(11)
    frames = _pieces()
    d = Defragmenter()
    for _ in range(3000):
        f = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 4)):
            f[rng.randrange(14, 40)] = rng.randrange(256)
        decode_tcp(LinkType.ETHERNET, bytes(f[: rng.randrange(14, len(f) + 1)]), d, rng.randrange(10**11))
    d.finish()


def test_export_keeps_a_connections_fragments(tmp_path: Path) -> None:
    """`capdebug export --conn` keeps the fragments after the first with the connection whose
    TCP header the first one holds, and leaves the other connection's out."""
    from typer.testing import CliRunner

    from capdebug.cli.app import app

    frag = _fragmented(tmp_path, v6=False, seed=5)
    other = rdpcap(str(FIXTURES / "tls13-chacha20.pcap"))
    merged = tmp_path / "two.pcap"
    wrpcap(str(merged), sorted([*rdpcap(str(frag)), *other], key=lambda p: float(p.time)))
    keys = tmp_path / "both.keys"
    keys.write_bytes(
        (FIXTURES / f"{NAME}.keys").read_bytes() + (FIXTURES / "tls13-chacha20.keys").read_bytes()
    )
    runner = CliRunner()
    listing = runner.invoke(app, ["decrypt", str(merged), "--keylog", str(keys), "--json", "--no-env"])
    conns = [json.loads(x) for x in listing.stdout.splitlines() if '"event":"connection"' in x]
    wanted = next(
        c["conn"]
        for c in conns
        if c["client"].endswith(f":{rdpcap(str(FIXTURES / f'{NAME}.pcap'))[0][TCP].sport}")
    )
    out = tmp_path / "one.pcapng"
    result = runner.invoke(
        app, ["export", str(merged), "--keylog", str(keys), "--conn", str(wanted), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(rdpcap(str(out))) == len(rdpcap(str(frag)))
    assert _export(tmp_path, out, "exported") == _export(tmp_path, FIXTURES / f"{NAME}.pcap", "plain")


def test_fragments_are_not_counted_as_other_traffic(tmp_path: Path) -> None:
    """What a frame without TCP carries (net/kinds.py) is not asked of a fragment, IPv4 or IPv6,
    first or not: the reassembly accounts for those."""
    from capdebug.net.kinds import frame_kind

    for v6 in (False, True):
        frames = [bytes(p) for p in rdpcap(str(_fragmented(tmp_path, v6=v6, seed=1)))]
        fragments = [f for f in frames if decode_tcp(LinkType.ETHERNET, f) is None]
        assert fragments and all(frame_kind(LinkType.ETHERNET, f) is None for f in fragments)
