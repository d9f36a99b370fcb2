"""Thousands of short TLS connections through a NAT with a narrow port range: every ClientHello
tshark sees at the server is a connection in capdebug (issue 14, port reuse after a SYN
collision with the server's TIME-WAIT)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from capdebug.analysis.events import HandshakeEvent
from capdebug.api import decode_capture
from capdebug.wire.handshake import ClientHello
from tests.correlate.conftest import MB_SERVER_ADDR, PORT, SERVER_ADDR, Topology
from tests.tools import require

pytestmark = [pytest.mark.slow, pytest.mark.tools]

COUNT = 2000


def _tshark_randoms(pcap: str) -> list[str]:
    out = subprocess.run(
        ["tshark", "-n", "-r", pcap, "-o", "tcp.desegment_tcp_streams:TRUE", "-d", f"tcp.port=={PORT},tls",
         "-Y", "tls.handshake.type==1", "-T", "fields", "-e", "tls.handshake.random"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.strip().replace(":", "") for line in out.splitlines() if line.strip()]


def _raw_randoms(pcap: str) -> set[str]:
    out = subprocess.run(
        ["tshark", "-n", "-r", pcap, "-Y", "tcp.len > 43 && tcp.payload[0:1] == 16 && tcp.payload[5:1] == 01",
         "-T", "fields", "-e", "tcp.payload"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # record header (5) + handshake header (4) + legacy_version (2), then the 32-byte random
    return {line.replace(":", "")[22:86] for line in out.split()}


def test_every_client_hello_through_a_port_reusing_nat_is_a_connection(topo: Topology) -> None:
    require("tshark")
    topo.nft(
        "table ip cdtest {\n"
        "  chain cd_post { type nat hook postrouting priority srcnat; "
        'oifname "mb-s" meta l4proto tcp masquerade to :40000-40010; }\n'
        "}\n"
    )
    pcap = topo.root / "server.pcap"
    cap = topo.start_capture(topo.server, "s-m", pcap)
    server = topo.popen(
        topo.server, sys.executable, "-m", "tests.tcp.peers", "server", "--addr", SERVER_ADDR,
        "--port", str(PORT), "--cert", str(topo.cert), "--key", str(topo.key),
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        done = topo.run(
            topo.client, sys.executable, "-m", "tests.tcp.peers", "client", "--addr", SERVER_ADDR,
            "--port", str(PORT), "--count", str(COUNT),
        )  # fmt: skip
        status = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        server.kill()
        server.communicate(timeout=10)
        topo.stop_capture(cap)
    randoms = _tshark_randoms(str(pcap))
    assert status["done"] >= COUNT * 9 // 10, status
    assert len(randoms) >= COUNT // 2  # tshark itself loses some to port reuse
    # The topology really produced the case: SYNs meeting TIME-WAIT, answered by a RST.
    resets = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-Y", f"tcp.flags.reset==1 && ip.src=={MB_SERVER_ADDR}"],
        capture_output=True, text=True, check=True,
    ).stdout.count("\n")  # fmt: skip
    assert resets > 0, "no SYN met a TIME-WAIT socket: the test did not exercise port reuse"
    with decode_capture(pcap) as decoding:
        got = {
            e.message.random.hex()
            for e in decoding
            if isinstance(e, HandshakeEvent) and isinstance(e.message, ClientHello)
        }
    assert set(randoms) <= got, f"{len(set(randoms) - got)} of {len(set(randoms))} ClientHellos lost"
    # tshark's dissector misses a few ClientHellos on a reused port: every one lying whole in a
    # segment of the capture (the TLS record header, then type 1) is a connection too.
    raw = _raw_randoms(str(pcap))
    assert len(raw) >= len(set(randoms))
    assert raw <= got, f"{len(raw - got)} of {len(raw)} ClientHellos lost"
