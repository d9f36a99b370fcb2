"""A pcapng with several interfaces: each connection says on which interface it was first seen
(the IDB's if_name), and the same connection captured on both links of a router (every packet
twice, once per interface) is decoded once: no retransmissions that never happened, no second
connection when the file is not in time order (``mergecap -a``), and not a byte lost.

Real topology (tests/correlate/conftest.py): client -- router -- server in namespaces, a Python
ssl client and server, dumpcap on each of the router's two links; ``mergecap`` merges the two
files in time order, ``mergecap -a`` one after the other. tshark reads the merged file as one
stream with every segment retransmitted; the reference here is the capture of one link alone.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from capdebug.analysis.events import (
    AppDataEvent,
    ConnectionEvent,
    DecodeEvent,
    GapEvent,
    HandshakeEvent,
    TcpHealthEvent,
)
from capdebug.analysis.triage import triage
from tests.correlate.conftest import PORT, Topology, topo  # noqa: F401  (the fixture)
from tests.decode.test_json_contract import check_contract
from tests.keysrc2._capture import events
from tests.tools import require


def _dumpcap(t: Topology, iface: str, out: Path) -> subprocess.Popen[str]:
    proc = t.popen(t.middlebox, "dumpcap", "-i", iface, "-f", f"tcp port {PORT}", "-w", str(out), "-q")
    time.sleep(0.1)
    deadline = time.monotonic() + 10
    while not out.exists() or out.stat().st_size == 0:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "dumpcap did not start"
        time.sleep(0.05)
    time.sleep(0.3)
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=10)


def _view(evs: list[DecodeEvent]) -> dict[str, list[tuple[object, ...]]]:
    """What must not change between one link and both: the TLS content, per side in order.
    Not the interleaving of the two sides: in a merged file each direction's first copies come
    from the link nearer its sender, so one side's events may move ahead of the other's."""
    out: list[tuple[object, ...]] = []
    for e in evs:
        if isinstance(e, HandshakeEvent):
            out.append(("hs", e.from_, e.type, e.length))
        elif isinstance(e, AppDataEvent):
            out.append(("app", e.from_, e.length, e.decrypted))
        elif isinstance(e, GapEvent):
            out.append(("gap", e.from_, e.size))
    return {side: [x for x in out if x[1] == side] for side in ("client", "server")}


def _health(events: list[TcpHealthEvent]) -> list[tuple[int, ...]]:
    """What TCP health counted, without frame numbers (the merged file numbers them otherwise)."""
    return [
        (s.retransmissions, s.retransmitted_bytes, s.syns, s.rto_stalls, s.zero_windows)
        for h in events
        for s in (h.client, h.server)
    ]


def _codes(evs: list[DecodeEvent]) -> set[str]:
    return {v.code for r in triage(evs) for v in r.verdicts}


def test_router_capture_on_two_interfaces(topo: Topology, tmp_path: Path) -> None:  # noqa: F811
    require("dumpcap", "mergecap", "tshark")
    inside, outside = tmp_path / "mb-c.pcapng", tmp_path / "mb-s.pcapng"
    keylog = tmp_path / "session.keys"
    caps = [_dumpcap(topo, "mb-c", inside), _dumpcap(topo, "mb-s", outside)]
    try:
        server = topo.start_server(keylog)
        try:
            status = topo.client_request(keylog, "--send", "30000")
        finally:
            server.communicate(timeout=15)
    finally:
        for proc in caps:
            _stop(proc)
    assert status["handshake"] and status["received"] == 30000, status

    merged, appended = tmp_path / "merged.pcapng", tmp_path / "appended.pcapng"
    subprocess.run(["mergecap", "-F", "pcapng", "-w", str(merged), str(inside), str(outside)], check=True)
    subprocess.run(
        ["mergecap", "-a", "-F", "pcapng", "-w", str(appended), str(inside), str(outside)], check=True
    )
    # tshark: one TCP stream, every data segment of the second link a retransmission.
    retrans = subprocess.run(
        ["tshark", "-n", "-r", str(merged), "-Y", "tcp.analysis.retransmission",
         "-T", "fields", "-e", "frame.number"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert len(retrans) > 10

    one_link = events(inside, keylog)
    reference = _view(one_link)
    reference_codes = _codes(one_link)
    assert "capture_incomplete" not in reference_codes
    reference_health = _health([h for h in one_link if isinstance(h, TcpHealthEvent)])
    assert sum(1 for e in one_link if isinstance(e, AppDataEvent) and e.decrypted) >= 2
    for capture in (merged, appended):
        evs = events(capture, keylog)
        conns = [e for e in evs if isinstance(e, ConnectionEvent)]
        assert len(conns) == 1, (capture.name, conns)  # not a second connection from the copies
        assert conns[0].interface == "mb-c"  # the client's side comes first in both files
        objs = [e.to_json() for e in evs]
        check_contract(objs)
        assert objs[0]["interface"] == "mb-c"
        assert _view(evs) == reference, capture.name  # nothing doubled, nothing lost
        # The copies are not retransmissions (a real one, under load, is on both links and
        # stays one): TCP health and the verdicts are those of one link.
        health = [e for e in evs if isinstance(e, TcpHealthEvent)]
        assert _health(health) == reference_health, capture.name
        assert _codes(evs) == reference_codes, capture.name
    # One interface: no interface named (nothing to tell apart).
    assert all(e.interface is None for e in one_link if isinstance(e, ConnectionEvent))


@pytest.mark.parametrize("order", ["in", "out"])
def test_interface_is_named_per_connection(topo: Topology, tmp_path: Path, order: str) -> None:  # noqa: F811
    """Two connections, each captured on one link only: each names its own interface."""
    require("dumpcap", "mergecap")
    first, second = tmp_path / "a.pcapng", tmp_path / "b.pcapng"
    keylog = tmp_path / "session.keys"
    for out, iface in ((first, "mb-c"), (second, "mb-s")):
        cap = _dumpcap(topo, iface, out)
        try:
            server = topo.start_server(keylog)
            try:
                topo.client_request(keylog)
            finally:
                server.communicate(timeout=15)
        finally:
            _stop(cap)
    merged = tmp_path / "merged.pcapng"
    files = [first, second] if order == "in" else [second, first]
    subprocess.run(["mergecap", "-a", "-F", "pcapng", "-w", str(merged), *map(str, files)], check=True)
    conns = [e for e in events(merged, keylog) if isinstance(e, ConnectionEvent)]
    expected = ["mb-c", "mb-s"] if order == "in" else ["mb-s", "mb-c"]
    assert [c.interface for c in conns] == expected
