"""TCP health verdicts on real traffic: Python ssl peers in network namespaces, the router
impairing packets with nftables, tcpdump capturing (tests/correlate/conftest.py's topology)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from capdebug.analysis.triage import ConnectionReport
from capdebug.api import load_keys, triage_capture
from tests.correlate.conftest import PORT, SERVER_ADDR, Topology
from tests.tools import require


def _forward(t: Topology, rules: str) -> None:
    """nftables rules in the router's forward path."""
    chain = f"chain cd_forward {{ type filter hook forward priority filter; {rules} }}"
    t.nft(f"table ip cdhealth {{\n  {chain}\n}}\n")


def _reports(pcap: Path, keys: Path | None = None) -> list[ConnectionReport]:
    return triage_capture(pcap, load_keys(pcap, [keys] if keys and keys.exists() else [])).reports


def _codes(r: ConnectionReport) -> dict[str, tuple[str, str | None]]:
    return {v.code: (v.severity, v.by) for v in r.verdicts}


def _client_only(t: Topology, name: str, *client_args: str) -> Path:
    """A client attempt with no server program, captured on the client's link."""
    pcap = t.root / f"{name}.pcap"
    cap = t.start_capture(t.client, "c-m", pcap)
    try:
        t.run(
            t.client, sys.executable, "-m", "tests.correlate.peers", "client", "--addr", SERVER_ADDR,
            "--port", str(PORT), "--keylog", str(t.root / f"{name}.keys"), *client_args, check=False,
        )  # fmt: skip
    finally:
        t.stop_capture(cap)
    return pcap


def test_connection_refused(topo: Topology) -> None:
    (r,) = _reports(_client_only(topo, "refused"))
    assert _codes(r) == {"connection_refused": ("error", "server")}


def test_syn_never_answered(topo: Topology) -> None:
    _forward(topo, "tcp dport 4433 tcp flags & (syn | ack) == syn drop;")
    (r,) = _reports(_client_only(topo, "synto", "--timeout", "3.5"))
    got = _codes(r)
    assert got == {"syn_unanswered": ("error", "server")}
    # Linux retries the SYN with a doubling timeout: at least three in 3.5 s.
    m = re.match(r"(\d+) SYN\(s\) to 10\.99\.2\.2:4433 over (\d+)", r.verdicts[0].detail)
    assert m is not None and int(m[1]) >= 3 and int(m[2]) >= 2000, r.verdicts[0].detail


def test_rst_injected_by_the_router(topo: Topology) -> None:
    # The router resets the connection at the client's first large record (application data:
    # the ClientHello is smaller), answering as if it were the server, with its own TTL.
    _forward(topo, f"ip daddr {SERVER_ADDR} tcp dport 4433 meta length > 1000 reject with tcp reset;")
    c_pcap, _, keys, status = topo.traffic("inject", "--send", "3000")
    assert status["error"] is not None
    (r,) = _reports(c_pcap, keys)
    got = _codes(r)
    assert got["injected_rst"] == ("error", "path")
    assert "reset" not in got and "benign_reset" not in got
    v = next(v for v in r.verdicts if v.code == "injected_rst")
    assert "TTL 64" in v.detail and "TTL 63" in v.detail  # the router's vs the server's, one hop away


def _no_offload(t: Topology) -> None:
    """Wire-sized segments in the server's capture, as on a real NIC (veth would hand tcpdump
    64 kB super-segments)."""
    require("ethtool")
    t.run(t.server, "ethtool", "-K", "s-m", "tso", "off", "gso", "off", "gro", "off")


def test_random_loss(topo: Topology) -> None:
    _no_offload(topo)
    _forward(topo, "ip saddr 10.99.2.2 tcp sport 4433 meta length > 200 numgen random mod 100 < 8 drop;")
    _, s_pcap, keys, status = topo.traffic(
        "loss", "--send", "400000", "--timeout", "20", server_args=("--timeout", "20")
    )
    assert status["received"] == 400000
    (r,) = _reports(s_pcap, keys)
    got = _codes(r)
    assert got["retransmissions"] == ("info", "server"), r.verdicts
    assert got["heavy_loss"] == ("info", "path")
    assert got["clean_close"] == ("info", None)


def test_mtu_black_hole(topo: Topology) -> None:
    _no_offload(topo)
    # Full-size packets from the server vanish; small ones (and everything from the client) pass.
    _forward(topo, "ip saddr 10.99.2.2 tcp sport 4433 meta length > 1000 drop;")
    _, s_pcap, keys, status = topo.traffic("blackhole", "--send", "6000", "--timeout", "4")
    assert status["received"] < 6000
    (r,) = _reports(s_pcap, keys)
    got = _codes(r)
    assert got["mtu_blackhole"] == ("error", "path")
    assert "unresponsive_peer" not in got
