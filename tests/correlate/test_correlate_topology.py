"""``capdebug correlate`` on captures of real topologies: client, middlebox and server namespaces
(see conftest.py), real tcpdump on the client's and the server's links, real TLS peers.

Each test builds the fault into the middlebox (nftables rules, or haproxy) and asserts the hop
(the two capture points, in the direction the bytes travel), the event, and who sent it."""

from __future__ import annotations

import shutil
import subprocess
import time
from typing import Any

import pytest

from tests.correlate.conftest import MB_CLIENT_ADDR, PORT, SERVER_ADDR, SNI, Topology, correlate_json
from tests.tools import require

pytestmark = [pytest.mark.slow, pytest.mark.tools]


def _verdicts(doc: dict[str, Any]) -> list[tuple[str, tuple[str, ...], str | None]]:
    return [(v["code"], tuple(v["between"]), v["by"]) for c in doc["connections"] for v in c["verdicts"]]


def _one_connection(doc: dict[str, Any]) -> dict[str, Any]:
    assert len(doc["connections"]) == 1, doc["connections"]
    conn: dict[str, Any] = doc["connections"][0]
    return conn


def test_nat_pass_through_matches_by_client_random_and_estimates_clock_offset(topo: Topology) -> None:
    topo.nat()
    c_pcap, s_pcap, keys, status = topo.traffic("nat", "--send", "3000")
    assert status == {"handshake": True, "received": 3000, "error": None}
    rc, doc = correlate_json(c_pcap, s_pcap, "--keylog", keys)
    assert rc == 0
    conn = _one_connection(doc)
    assert conn["match"] == "client_random" and conn["confidence"] == "high"
    client_leg, server_leg = conn["legs"]
    assert client_leg["point"] == c_pcap.name and server_leg["point"] == s_pcap.name
    # The NAT rewrote the client's address and port; the session is the same.
    assert client_leg["client"].startswith("10.99.1.2:") and server_leg["client"].startswith("10.99.2.1:")
    assert client_leg["client"] != server_leg["client"].replace("10.99.2.1", "10.99.1.2")
    assert client_leg["client_random"] == server_leg["client_random"]
    (hop,) = conn["hops"]
    assert (hop["from"], hop["to"]) == (c_pcap.name, s_pcap.name)
    assert hop["oriented_by"] == "TTL of the client's segments"
    # One host clock: the offset is the noise of two tcpdumps, far below a millisecond.
    assert abs(hop["clock"]["offset_s"]) < 1e-3
    assert hop["clock"]["samples"] >= 6
    assert conn["verdicts"] == []
    assert doc["unmatched"] == []

    # The server's capture with its clock 5 s ahead: the offset is found, the match stays.
    require("editcap")
    shifted = s_pcap.with_name("nat-server-ahead.pcap")
    subprocess.run(["editcap", "-t", "5", str(s_pcap), str(shifted)], check=True, capture_output=True)
    rc, doc = correlate_json(c_pcap, shifted, "--keylog", keys)
    (hop,) = _one_connection(doc)["hops"]
    assert abs(hop["clock"]["offset_s"] - 5.0) < 1e-3
    assert rc == 0 and _one_connection(doc)["verdicts"] == []

    # The server's capture started after the ClientHello: matched by TCP payload instead.
    late = s_pcap.with_name("nat-server-late.pcap")
    subprocess.run(["editcap", "-r", str(s_pcap), str(late), "6-1000"], check=True, capture_output=True)
    rc, doc = correlate_json(c_pcap, late, "--keylog", keys)
    conn = _one_connection(doc)
    assert conn["match"] == "tcp_payload" and conn["confidence"] == "medium"
    assert conn["legs"][1]["client_random"] is None


def test_rst_injected_by_the_middlebox(topo: Topology) -> None:
    # The middlebox answers the client's 700-byte request record (IP length 774) with a TCP
    # reset forged from the server, and drops the request.
    topo.nat(f"ip daddr {SERVER_ADDR} tcp dport {PORT} meta length 700-900 reject with tcp reset;")
    c_pcap, s_pcap, keys, status = topo.traffic("rst", "--send", "700")
    # Reset while sending or while reading, as the kernel reports it.
    assert status["handshake"] is True and status["error"] in ("ConnectionResetError", "BrokenPipeError")
    rc, doc = correlate_json(c_pcap, s_pcap, "--keylog", keys)
    assert rc == 1
    conn = _one_connection(doc)
    first = conn["verdicts"][0]
    assert (first["code"], tuple(first["between"]), first["by"]) == (
        "injected_rst",
        (s_pcap.name, c_pcap.name),
        "server",
    )
    # The forged RST carries the middlebox's TTL, not the server's: that makes it certain.
    assert first["confidence"] == "high"
    # The request the middlebox dropped in exchange is reported too, after its cause.
    assert _verdicts(doc)[1:] == [("segments_lost", (c_pcap.name, s_pcap.name), "client")]


def test_three_points_name_the_hop_where_the_rst_was_forged(topo: Topology) -> None:
    # Captures on the client's link, on the middlebox's client-side link and on the server's
    # link. The middlebox forges the RST on its way out towards the client: it is present at
    # the middlebox's client-side link and at the client, absent at the server.
    topo.nat(f"ip daddr {SERVER_ADDR} tcp dport {PORT} meta length 700-900 reject with tcp reset;")
    c_pcap, s_pcap, keys, _ = topo.traffic("three", "--send", "700", middlebox_capture=True)
    m_pcap = c_pcap.with_name("three-middlebox.pcap")
    rc, doc = correlate_json(c_pcap, m_pcap, s_pcap, "--keylog", keys)
    assert rc == 1
    conn = _one_connection(doc)
    assert [leg["point"] for leg in conn["legs"]] == [c_pcap.name, m_pcap.name, s_pcap.name]
    assert len(conn["hops"]) == 3
    # Only neighbours are judged: the RST lies between the server's link and the middlebox's
    # client-side link (where the middlebox sent it), and the request the middlebox swallowed
    # between the middlebox's client-side link and the server's.
    assert _verdicts(doc) == [
        ("injected_rst", (s_pcap.name, m_pcap.name), "server"),
        ("segments_lost", (m_pcap.name, s_pcap.name), "client"),
    ]


def test_mtu_black_hole(topo: Topology) -> None:
    # Packets to the server above 1000 bytes vanish silently (no ICMP): a black hole.
    topo.nat(f"ip daddr {SERVER_ADDR} meta length > 1000 drop;")
    c_pcap, s_pcap, keys, status = topo.traffic("mtu", "--send", "5000", "--abort", "--timeout", "2")
    assert status["handshake"] is True and status["received"] == 0
    rc, doc = correlate_json(c_pcap, s_pcap, "--keylog", keys)
    assert rc == 1
    assert _verdicts(doc) == [("mtu_black_hole", (c_pcap.name, s_pcap.name), "client")]


def test_segments_lost_then_retransmitted(topo: Topology) -> None:
    # The first 8000 bytes' worth of large packets to the server are dropped, later ones pass:
    # the client's retransmissions get through.
    topo.nat(f"ip daddr {SERVER_ADDR} meta length > 1000 quota until 8000 bytes drop;")
    c_pcap, s_pcap, keys, status = topo.traffic("retx", "--send", "5000")
    assert status == {"handshake": True, "received": 5000, "error": None}
    rc, doc = correlate_json(c_pcap, s_pcap, "--keylog", keys)
    assert rc == 0  # a warning: the connection recovered
    (verdict,) = _one_connection(doc)["verdicts"]
    assert (verdict["code"], tuple(verdict["between"]), verdict["by"], verdict["severity"]) == (
        "segments_lost",
        (c_pcap.name, s_pcap.name),
        "client",
        "warning",
    )


def test_close_notify_dropped(topo: Topology) -> None:
    # A TLS 1.3 close_notify record is 24 bytes: 5 header + 1 content type + 2 alert + 16 tag
    # (RFC 8446 5.2); with the 32-byte TCP header (timestamps) its packet is 76 bytes long.
    topo.nat(f"ip daddr {SERVER_ADDR} tcp dport {PORT} meta length 76 drop;")
    c_pcap, s_pcap, keys, status = topo.traffic("notify", "--send", "200", "--timeout", "2")
    assert status["received"] == 200
    rc, doc = correlate_json(c_pcap, s_pcap, "--keylog", keys)
    assert rc == 1
    assert _verdicts(doc) == [("close_notify_not_delivered", (c_pcap.name, s_pcap.name), "client")]


def test_fin_dropped(topo: Topology) -> None:
    # Every FIN from the client towards the server is dropped; close_notify and data pass.
    topo.nat(f"ip daddr {SERVER_ADDR} tcp dport {PORT} tcp flags & fin == fin drop;")
    # The probe (a connection attempt a second later) shows the server's capture still ran
    # while the client retransmitted its FIN.
    c_pcap, s_pcap, keys, status = topo.traffic(
        "fin", "--send", "200", "--timeout", "2", "--probe-after", "1"
    )
    assert status == {"handshake": True, "received": 200, "error": None}
    rc, doc = correlate_json(c_pcap, s_pcap, "--keylog", keys)
    assert rc == 1
    assert _verdicts(doc) == [("fin_not_delivered", (c_pcap.name, s_pcap.name), "client")]
    assert _one_connection(doc)["verdicts"][0]["confidence"] == "high"


def test_tls_terminating_proxy_closes_a_leg(topo: Topology) -> None:
    require("haproxy")
    pem = topo.root / "haproxy.pem"
    pem.write_text(topo.cert.read_text() + topo.key.read_text())
    cfg = topo.root / "haproxy.cfg"
    cfg.write_text(
        "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1s\n  timeout server 1s\n"
        f"frontend fe\n  bind {MB_CLIENT_ADDR}:{PORT} ssl crt {pem}\n  default_backend be\n"
        f"backend be\n  server s1 {SERVER_ADDR}:{PORT} ssl verify none sni str({SNI})\n"
    )
    proxy = topo.popen(topo.middlebox, shutil.which("haproxy") or "haproxy", "-db", "-f", str(cfg))
    try:
        _wait_listening(topo, topo.middlebox, PORT)
        # The server reads the request and says nothing; the proxy gives up after 1 s idle.
        c_pcap, s_pcap, keys, status = topo.traffic(
            "proxy", "--send", "100", "--abort", server_args=("--hold", "3"), connect_to=MB_CLIENT_ADDR
        )
    finally:
        proxy.terminate()
        proxy.communicate(timeout=10)
    assert status["handshake"] is True and status["received"] == 0
    rc, doc = correlate_json(c_pcap, s_pcap, "--keylog", keys)
    assert rc == 1
    conn = _one_connection(doc)
    assert conn["match"] == "sni_timing" and conn["confidence"] == "low"
    assert conn["legs"][0]["client_random"] != conn["legs"][1]["client_random"]
    assert [leg["point"] for leg in conn["legs"]] == [c_pcap.name, s_pcap.name]
    assert _verdicts(doc) == [("proxy_closed_leg", (c_pcap.name, s_pcap.name), None)]


def test_unrelated_captures_do_not_match(topo: Topology) -> None:
    topo.nat()
    first_client, _, keys1, _ = topo.traffic("one", "--send", "300")
    _, second_server, keys2, _ = topo.traffic("two", "--send", "300")
    rc, doc = correlate_json(first_client, second_server, "--keylog", keys1, "--keylog", keys2)
    assert rc == 0
    assert doc["connections"] == []
    assert sorted(leg["point"] for leg in doc["unmatched"]) == sorted([first_client.name, second_server.name])


def _wait_listening(topo: Topology, ns: str, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = topo.run(ns, "ss", "-ltnH", f"sport = :{port}", check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} in {ns}")
