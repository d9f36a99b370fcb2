"""Events in capture order (issue 14): what reassembly held behind a hole comes out in the frame
it arrived in, and nothing of another direction or connection made in between overtakes it.

The oracle is tshark: the frames in which it sees TLS records, and the frame it flags
"previous segment not captured" (where a hole is). Captures are real ones (a fixture recorded by
tcpdump over loopback, a namespace topology whose router drops one segment) and crafted ones
(a fixture's real segments rewritten with scapy, tests/decode/craft.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from capdebug.analysis.decode import decoder, order
from capdebug.analysis.decode.order import frame_of
from capdebug.analysis.events import (
    AlertEvent,
    AppDataEvent,
    CcsEvent,
    DecodeEvent,
    GapEvent,
    HandshakeEvent,
    TcpEvent,
)
from tests.correlate.conftest import Topology
from tests.decode import craft as c
from tests.tools import require

_RECORDS = (HandshakeEvent, CcsEvent, AlertEvent, AppDataEvent)


def _tshark(pcap: Path, *args: str, reorder: bool = False) -> list[int]:
    """Frames tshark selects. ``reorder``: let it reassemble out-of-order segments (it then
    waits forever at a hole that never fills, so only where holes fill)."""
    require("tshark")
    opt = f"tcp.reassemble_out_of_order:{'TRUE' if reorder else 'FALSE'}"
    out = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-o", opt, *args, "-T", "fields", "-e", "frame.number"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [int(x) for x in out.split()]


def _check_order(pcap: Path, events: list[DecodeEvent], *, reorder: bool = False) -> None:
    """Frames never go back, and records are shown at the frames where tshark sees them."""
    frames = [frame_of(e) for e in events]
    assert frames == sorted(frames), [(frame_of(e), type(e).__name__) for e in events]
    ours = {e.frame for e in events if isinstance(e, _RECORDS)}
    assert ours and ours <= set(_tshark(pcap, "-Y", "tls", reorder=reorder))


def _gap_frames(events: list[DecodeEvent]) -> list[int]:
    return [e.frame for e in events if isinstance(e, GapEvent)]


def _unacked_hole(name: str, drop: int, *, later_ns: int = 10**10) -> tuple[list[c.Seg], c.Seg]:
    """Fixture ``name`` without the client's segment of frame ``drop``: the server never
    acknowledges past the hole (it never got it), and its close comes ``later_ns`` after."""
    segs = c.read_segments(c.fixture(name)[0])
    client = c.client_of(segs)
    lost = next(s for s in segs if s.origin == drop)
    assert c.is_client(lost, client) and lost.payload
    out = []
    for s in segs:
        if s is lost:
            continue
        if not c.is_client(s, client) and s.flags & c.ACK and (s.ack - lost.seq) & 0xFFFFFFFF < 1 << 31:
            s = replace(s, ack=lost.seq)
        if s.origin > drop + 6:
            s = replace(s, ts_ns=s.ts_ns + later_ns)
        out.append(s)
    return out, lost


def test_hole_never_acknowledged_does_not_let_the_peer_overtake(tmp_path: Path) -> None:
    # tls13-aes128gcm: the client's first application record (frame 12) is lost; its next
    # records and its FIN wait behind the hole while the server answers and closes 10 s later.
    segs, _ = _unacked_hole("tls13-aes128gcm", 12)
    pcap = c.write(tmp_path / "hole.pcap", segs)
    events = c.decode(pcap, c.fixture("tls13-aes128gcm")[1])
    _check_order(pcap, events)
    # The gap is where tshark says a segment is missing, and is shown there.
    assert _gap_frames(events) == _tshark(pcap, "-Y", "tcp.analysis.lost_segment")
    # The client's later records are decrypted (sequence numbers recovered after the gap),
    # each at the frame that brought it, and all before the server's FIN.
    client_app = [e for e in events if isinstance(e, AppDataEvent) and e.from_ == "client"]
    assert len(client_app) == 2 and all(e.decrypted for e in client_app)
    fin = next(
        i for i, e in enumerate(events) if isinstance(e, TcpEvent) and e.from_ == "server" and e.flag == "FIN"
    )
    assert all(events.index(e) < fin for e in client_app)
    # The same order in the CLI's JSON Lines.
    done = subprocess.run(
        [sys.executable, "-c", "from capdebug.cli.app import main; main()", "decrypt", str(pcap),
         "--keylog", str(c.fixture("tls13-aes128gcm")[1]), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    objs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o.get("frame", o.get("first_frame")) for o in objs] == [frame_of(e) for e in events]


def test_hole_held_to_the_end_of_the_capture_across_connections(tmp_path: Path) -> None:
    # Connection 1 keeps a hole until the capture ends; connection 2 runs from start to end
    # while it waits. Connection 1's held records and FIN come out at the end of the capture,
    # but in frame order with connection 2's events.
    first, _ = _unacked_hole("tls13-aes128gcm", 12, later_ns=0)
    client = c.client_of(first)
    clean = c.shift(c.read_segments(c.fixture("tls13-aes128gcm")[0]), client=client, ts=50_000)
    second = c.with_ports(clean, {client[1]: client[1] + 1})
    merged = sorted(first + second, key=lambda s: s.ts_ns)
    pcap = c.write(tmp_path / "two.pcap", merged)
    events = c.decode(pcap, c.fixture("tls13-aes128gcm")[1])
    _check_order(pcap, events)
    assert {e.conn for e in events} == {1, 2}
    assert _gap_frames(events) == _tshark(pcap, "-Y", "tcp.analysis.lost_segment")
    # Connection 2 closed cleanly in between, its events interleaved with connection 1's.
    conns = [e.conn for e in events if isinstance(e, _RECORDS)]
    assert conns != sorted(conns)


def test_capture_loss_gap_is_at_the_hole(tmp_path: Path) -> None:
    # A real loopback capture with one server segment removed by editcap: the client's ACK
    # says it was received (the capture lost it). The gap is shown at the hole, not at the ACK
    # that released it, and the records after it at the frames they arrived in.
    require("editcap")
    pcap, keys = c.fixture("tls13-large-transfer")
    cut = tmp_path / "cut.pcap"
    subprocess.run(["editcap", str(pcap), str(cut), "20"], check=True, capture_output=True)
    events = c.decode(cut, keys)
    _check_order(cut, events)
    gaps = [e for e in events if isinstance(e, GapEvent)]
    assert [(g.from_, g.cause) for g in gaps] == [("server", "capture")]
    assert _gap_frames(events) == _tshark(cut, "-Y", "tcp.analysis.lost_segment") == [20]


def _no_offload(t: Topology, ns: str, dev: str) -> None:
    require("ethtool")
    t.run(ns, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off")


def test_real_segment_dropped_once_and_retransmitted(topo: Topology) -> None:
    # The router drops one full-size segment of the server's echo, once: the client receives
    # the later segments first (a hole, SACKed), then the retransmission. Captured at the
    # client, every record comes out at the frame that completes it, in capture order.
    _no_offload(topo, topo.server, "s-m")
    _no_offload(topo, topo.client, "c-m")
    topo.nft(
        "table ip cdorder {\n  chain cd_drop_once { type filter hook forward priority filter; "
        "ip saddr 10.99.2.2 tcp sport 4433 meta length > 1000 numgen inc mod 1000000 == 3 drop; }\n}\n"
    )
    c_pcap, _, keys, status = topo.traffic("drop1", "--send", "60000", "--timeout", "10")
    assert status["received"] == 60000, status
    events = c.decode(c_pcap, keys)
    _check_order(c_pcap, events, reorder=True)
    assert not _gap_frames(events)
    got = sum(e.length for e in events if isinstance(e, AppDataEvent) and e.from_ == "server" and e.decrypted)
    assert got == 60000
    # The capture really is out of order: tshark sees it.
    assert _tshark(c_pcap, "-Y", "tcp.analysis.out_of_order or tcp.analysis.retransmission")


def test_a_hole_holds_the_output_for_a_bounded_number_of_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past ORDER_WINDOW frames a hole stops holding the output back: what it releases later
    # is shown at the frame that releases it (here the end of the capture), still in order.
    monkeypatch.setattr(order, "ORDER_WINDOW", 3)
    monkeypatch.setattr(decoder, "ORDER_WINDOW", 3)
    segs, _ = _unacked_hole("tls13-aes128gcm", 12)
    pcap = c.write(tmp_path / "hole.pcap", segs)
    events = c.decode(pcap, c.fixture("tls13-aes128gcm")[1])
    frames = [frame_of(e) for e in events]
    assert frames == sorted(frames)
    late = [
        e for e in events if isinstance(e, AppDataEvent | GapEvent) and e.from_ == "client" and e.frame > 12
    ]
    assert late and {e.frame for e in late} == {len(segs)}
    assert all(e.decrypted for e in late if isinstance(e, AppDataEvent))
