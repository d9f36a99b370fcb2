"""TLS through a real VXLAN overlay, captured on the underlay (as AWS VPC Traffic Mirroring or a
switch's VXLAN monitor delivers it): kernel VXLAN devices in the client and server namespaces
of tests/correlate/conftest.py's routed topology, Python ssl peers talking over the overlay,
tcpdump on the router's underlay link seeing only UDP port 4789. capdebug finds the overlay's
connection, decodes it as tshark does and triages it, as if captured on the overlay."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from typer.testing import CliRunner

from capdebug.api import load_keys, triage_capture
from capdebug.cli.app import app
from tests.correlate.conftest import CLIENT_ADDR, PORT, SERVER_ADDR, Topology
from tests.oracle import by_frame, capdebug_events, capdebug_rows, tshark_rows

OVERLAY_CLIENT, OVERLAY_SERVER = "192.168.77.1", "192.168.77.2"


def _overlay(t: Topology) -> None:
    for ns, local, remote, addr in (
        (t.client, CLIENT_ADDR, SERVER_ADDR, OVERLAY_CLIENT),
        (t.server, SERVER_ADDR, CLIENT_ADDR, OVERLAY_SERVER),
    ):
        t.run(ns, "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
              "local", local, "remote", remote)  # fmt: skip
        t.run(ns, "ip", "addr", "add", f"{addr}/24", "dev", "vx0")
        t.run(ns, "ip", "link", "set", "vx0", "up")


def _traffic(t: Topology, tmp_path: Path, capture_filter: str) -> tuple[Path, Path]:
    """One TLS exchange over the overlay (20 kB each way), captured on the router's underlay
    link with ``capture_filter``."""
    pcap, keys = tmp_path / "underlay.pcap", tmp_path / "vxlan.keys"
    cap = t.popen(t.middlebox, "tcpdump", "-i", "mb-c", "-n", "-U", "--immediate-mode", "-s", "0",
                  "-Z", "root", "-w", str(pcap), capture_filter)  # fmt: skip
    assert cap.stderr is not None and "listening on" in cap.stderr.readline()
    try:
        server = t.start_server(keys, addr=OVERLAY_SERVER)
        try:
            status = t.client_request(keys, "--send", "20000", addr=OVERLAY_SERVER)
        finally:
            server.communicate(timeout=15)
    finally:
        time.sleep(0.3)
        cap.send_signal(signal.SIGINT)
        cap.communicate(timeout=10)
    assert status == {"handshake": True, "received": 20000, "error": None}
    return pcap, keys


def test_tls_over_vxlan_captured_on_the_underlay(topo: Topology, tmp_path: Path) -> None:
    """The overlay's MTU equals the underlay's, so full-size segments travel in two IP
    fragments (the second without a UDP header): the capture filter keeps both."""
    _overlay(topo)
    pcap, keys = _traffic(topo, tmp_path, "udp port 4789 or (ip[6:2] & 0x1fff != 0)")
    # Only tunnelled packets were captured, some of them fragmented.
    outer = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-e", "ip.flags.mf", "-Y", "tcp && !vxlan"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert outer.stdout == ""
    fragments = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", "ip.flags.mf == 1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert fragments.stdout.count("\n") >= 4

    mine = by_frame(capdebug_rows(capdebug_events(pcap, keys)))
    assert mine and mine == by_frame(tshark_rows(pcap, keys))
    result = CliRunner().invoke(app, ["decrypt", str(pcap), "--keylog", str(keys), "--json", "--no-env"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert not [e for e in events if e["event"] in ("gap", "undecryptable")]
    (conn,) = [e for e in events if e["event"] == "connection"]
    assert (conn["client"].split(":")[0], conn["server"]) == (OVERLAY_CLIENT, f"{OVERLAY_SERVER}:{PORT}")
    for side in ("client", "server"):
        sent = sum(e["length"] for e in events if e["event"] == "app_data" and e["from"] == side)
        assert sent == 20000, side
    (report,) = triage_capture(pcap, load_keys(pcap, [keys])).reports
    assert report.server == f"{OVERLAY_SERVER}:{PORT}"
    # (The test certificate is self-signed, for a name outside its subjectAltName.)
    assert {v.code for v in report.verdicts if v.severity != "info"} == {"certificate_problem"}
    assert "clean_close" in {v.code for v in report.verdicts}


def test_a_port_filter_loses_the_fragments_and_capdebug_says_so(topo: Topology, tmp_path: Path) -> None:
    """'udp port 4789' keeps only the first fragment of each datagram: the inner segments are
    incomplete, and capdebug says which bytes are missing and why, instead of decoding a part."""
    _overlay(topo)
    pcap, keys = _traffic(topo, tmp_path, "udp port 4789")
    result = CliRunner().invoke(app, ["decrypt", str(pcap), "--keylog", str(keys), "--json", "--no-env"])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    gaps = [e for e in events if e["event"] == "gap"]
    assert gaps and all(e["cause"] != "lost_by_network" for e in gaps)
    assert "fragmented IP datagram(s) never completed" in result.stderr
    assert "ip[6:2] & 0x1fff != 0" in result.stderr
