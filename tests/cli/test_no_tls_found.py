"""When a capture holds no TLS connection, capdebug says what it holds instead (TCP connections
without TLS, frames without TCP by kind), and QUIC or DTLS, which carry TLS that capdebug does
not decode, are named in a warning even beside TLS connections.

DTLS comes from a real ``openssl s_server -dtls`` and ``s_client -dtls`` on the loopback,
captured by tcpdump; there is no QUIC peer here (no HTTP/3 curl, no QUIC library), so QUIC
datagrams (RFC 9000 long headers) are crafted with scapy."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap
from typer.testing import CliRunner

from capdebug.cli.app import app
from tests.keysrc.peers import rsa_identity
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tls13-aes128gcm.pcap"


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--no-env"])
    return result.exit_code, result.stdout, result.stderr


def test_real_dtls_is_named(tmp_path: Path) -> None:
    require("openssl", "tcpdump")
    require_root()
    cert, key = rsa_identity(tmp_path / "id")
    pcap = tmp_path / "dtls.pcap"
    server, port = openssl_s_server(["-dtls", "-cert", str(cert), "-key", str(key)])
    try:
        with tcpdump(pcap, port, extra=("udp", "port", str(port), "or")):
            argv = ["openssl", "s_client", "-dtls", "-connect", f"127.0.0.1:{port}", "-quiet"]
            client = Proc(argv, name="s_client")
            try:
                client.send(b"hello over DTLS\n")
                server.wait_match("hello over DTLS")  # the handshake and a record went through
            finally:
                client.kill()  # s_client -dtls does not end at its input's end
    finally:
        server.close()
    code, out, err = _run("decrypt", str(pcap))
    assert code == 0 and out == ""
    assert "frame(s) are DTLS (TLS over UDP): capdebug does not decode DTLS" in err
    assert "no TLS connection found: " in err and " DTLS" in err.split("no TLS connection found: ")[1]
    code, out, err = _run("triage", str(pcap))
    assert "no TLS connection found: " in out and "DTLS" in out


def test_quic_beside_tls_and_what_a_capture_without_tls_holds(tmp_path: Path) -> None:
    quic = [
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=50000, dport=443)
        / Raw(b"\xc3\x00\x00\x00\x01" + bytes(60))
        for _ in range(5)
    ]  # fmt: skip
    other = [
        Ether() / IP(src="10.0.0.1", dst="10.0.0.3") / UDP(sport=50001, dport=53) / Raw(bytes(30)),
        Ether() / ARP(),
    ]
    only = tmp_path / "no-tls.pcap"
    wrpcap(str(only), quic + other)
    code, out, err = _run("decrypt", str(only))
    assert code == 0
    assert "no TLS connection found: 7 frame(s) carried no TCP (5 QUIC, 1 DNS, 1 not IP" in err
    assert "5 frame(s) are QUIC (HTTP/3 over UDP)" in err
    code, out, err = _run("triage", str(only), "--json")
    assert out.strip() == '{"connections":[]}' and "no TLS connection found: 7 frame(s)" in err
    # Beside a TLS connection: the connection is shown and the QUIC frames are still said.
    from scapy.utils import rdpcap

    mixed = tmp_path / "mixed.pcap"
    wrpcap(str(mixed), list(rdpcap(str(FIXTURE))) + quic)
    code, out, err = _run("decrypt", str(mixed))
    assert code == 0 and "client_hello" in out and "no TLS connection found" not in err
    assert "5 frame(s) are QUIC" in err
