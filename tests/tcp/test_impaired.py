"""Loss, reordering and duplicates on a real path (issue 14, "Done means"): the router of the
namespace topology (tests/correlate/conftest.py) drops and duplicates the TLS peers' segments
with nftables; tcpdump captures on both ends. Every exported plaintext must be what the peers
sent (SHA-256), nothing may be reported missing, and events must come out in frame order.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from capdebug.analysis.decode.order import frame_of
from capdebug.analysis.events import GapEvent, TcpHealthEvent, UndecryptableEvent
from capdebug.api import PlaintextExporter, decode_capture, load_keys, triage_capture
from tests.correlate.conftest import PORT, SERVER_ADDR, Topology
from tests.tools import require

SEND = 300_000


def _no_offload(t: Topology) -> None:
    """Wire-sized segments, as on a real NIC (veth would hand tcpdump 64 kB super-segments)."""
    require("ethtool")
    for ns, dev in ((t.server, "s-m"), (t.client, "c-m")):
        t.run(ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off")


def _exported(pcap: Path, keys: Path, folder: Path) -> tuple[dict[str, str], list[object]]:
    with (
        PlaintextExporter(folder) as exporter,
        decode_capture(pcap, load_keys(pcap, [keys]), app_data_sink=exporter) as decoding,
    ):
        events = list(decoding)
    frames = [frame_of(e) for e in events]
    assert frames == sorted(frames)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.bin"))}
    return digests, events


def test_loss_and_duplicates_both_ways(topo: Topology) -> None:
    require("nft", "tshark")
    _no_offload(topo)
    # 4% of the data segments each way are dropped, 4% duplicated (dup sends a copy at once):
    # the receivers see holes filled later by retransmissions, and copies of what they have.
    topo.nft(
        "table ip cdimpair {\n"
        "  chain cd_loss { type filter hook forward priority filter; "
        "tcp dport 4433 meta length > 200 numgen random mod 100 < 4 drop; "
        "tcp sport 4433 meta length > 200 numgen random mod 100 < 4 drop; }\n"
        "  chain cd_dup { type filter hook postrouting priority filter; "
        'oifname "mb-s" tcp dport 4433 meta length > 200 numgen random mod 100 < 4 '
        'dup to 10.99.2.2 device "mb-s"; '
        'oifname "mb-c" tcp sport 4433 meta length > 200 numgen random mod 100 < 4 '
        'dup to 10.99.1.2 device "mb-c"; }\n'
        "}\n"
    )
    c_pcap, s_pcap, keys, status = topo.traffic(
        "impaired", "--send", str(SEND), "--timeout", "30", server_args=("--timeout", "30")
    )
    assert status["received"] == SEND, status
    want = hashlib.sha256(b"x" * SEND).hexdigest()
    for pcap in (c_pcap, s_pcap):
        got, events = _exported(pcap, keys, topo.root / pcap.stem)
        assert got == {"conn1-client.bin": want, "conn1-server.bin": want}, pcap.name
        assert not [e for e in events if isinstance(e, GapEvent | UndecryptableEvent)], pcap.name
        # The path really was impaired: tshark sees retransmissions (and the copies) in each.
        seen = subprocess.run(
            ["tshark", "-n", "-r", str(pcap), "-Y", "tcp.analysis.retransmission", "-T", "fields",
             "-e", "frame.number"],
            check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        assert seen, pcap.name


def test_idle_flow_silently_dropped(topo: Topology) -> None:
    # A middlebox forgets an idle flow and drops its packets without a word (no RST): after the
    # pause, the client's request is retransmitted and never answered, then its FIN too.
    require("nft")
    pcap = topo.root / "idle-client.pcap"
    keys = topo.root / "idle.keys"
    cap = topo.start_capture(topo.client, "c-m", pcap)
    try:
        server = topo.start_server(keys, "--timeout", "12")
        client = topo.popen(
            topo.client, sys.executable, "-m", "tests.tcp.peers", "idle-client", "--addr", SERVER_ADDR,
            "--port", str(PORT), "--idle", "2", "--timeout", "5", "--keylog", str(keys),
        )  # fmt: skip
        assert client.stdout is not None
        first = client.stdout.readline()  # "idle": the first exchange is over
        topo.nft(
            "table ip cdidle {\n  chain cd_forget { type filter hook forward priority filter; "
            "tcp dport 4433 drop; tcp sport 4433 drop; }\n}\n"
        )
        out, _ = client.communicate(timeout=30)
        server.communicate(timeout=30)
    finally:
        topo.stop_capture(cap)
    assert first.strip() == "idle", (first, out)
    status = json.loads(out.strip().splitlines()[-1])
    assert status["first"] is True and status["second"] is False, status
    (report,) = triage_capture(pcap, load_keys(pcap, [keys])).reports
    codes = {v.code: (v.severity, v.by) for v in report.verdicts}
    # The server (or the path to it) went away: the client's retransmissions got no answer.
    assert codes["unresponsive_peer"] == ("error", "server"), report.verdicts
    assert "mtu_blackhole" not in codes and "clean_close" not in codes
    # The request was sent after the pause, in the timeline with its retransmissions counted.
    with decode_capture(pcap, load_keys(pcap, [keys])) as decoding:
        events = list(decoding)
    frames = [frame_of(e) for e in events]
    assert frames == sorted(frames)
    health = [e for e in events if isinstance(e, TcpHealthEvent)]
    assert health and health[0].client.retransmissions >= 2
