"""Bounded state under a SYN flood (issue 15): the connection table holds at most
``max_connections`` connections and an eighth of that without data, drops the oldest half-open
one first, and says so (an ``evicted`` event, a warning, a ``connection_table_full`` verdict); a
real TLS session in the middle of the flood is decoded whole; triage keeps a small record per
attempt and writes its reports one by one."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path

from capdebug.analysis.decode import DecodeOptions, Decoder
from capdebug.analysis.sessions import run_decoder
from capdebug.api import decode_capture, load_keys, triage_capture
from capdebug.net.flow import ConnectionClosed, ConnectionStarted, TcpTracker
from capdebug.net.tcp import decode_tcp
from capdebug.pcap import LinkType, open_capture
from tests.decode import craft as c

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "make_flood.py"
CAPDEBUG = [sys.executable, "-c", "import sys; from capdebug.cli.app import main; main(sys.argv[1:])"]


def _flood(path: Path, count: int, *extra: str) -> Path:
    subprocess.run([sys.executable, str(SCRIPT), str(path), "--count", str(count), *extra], check=True)
    return path


def test_table_never_exceeds_its_limit_and_drops_the_oldest_half_open(tmp_path: Path) -> None:
    cap = _flood(tmp_path / "flood.pcap", 3000)
    tracker = TcpTracker(max_connections=500)
    assert tracker.max_half_open == 62  # an eighth
    started: list[int] = []
    evicted: list[int] = []
    with open_capture(cap) as reader:
        for frame, pkt in enumerate(reader, 1):
            seg = decode_tcp(LinkType.ETHERNET, pkt.data)
            assert seg is not None
            for ev in tracker.feed(frame, pkt.ts_ns, seg):
                if isinstance(ev, ConnectionStarted):
                    started.append(ev.conn.id)
                elif isinstance(ev, ConnectionClosed):
                    assert ev.conn.evicted == (frame, pkt.ts_ns, 62)
                    evicted.append(ev.conn.id)
            assert tracker.open_connections <= 62
    assert len(started) == 3000
    assert evicted == list(range(1, 2939))  # oldest first
    assert (tracker.evicted, tracker.evicted_with_data) == (2938, 0)


def test_decrypt_and_triage_say_what_was_dropped(tmp_path: Path) -> None:
    cap = _flood(tmp_path / "flood.pcap", 1200)
    with decode_capture(cap, max_connections=200) as decoding:
        events = [ev.to_json() for ev in decoding]
    drops = [e for e in events if e["event"] == "evicted"]
    assert len(drops) == 1175  # 200 // 8 = 25 half-open connections held
    first = {"conn": 1, "frame": 26, "limit": 25, "bound": "half_open", "carried_data": False}
    assert drops[0] == {**drops[0], **first}
    assert any(
        "1175 connection(s) dropped" in w and "200 open" in w and "25 without data" in w
        for w in decoding.warnings
    )
    reports, warnings = triage_capture(cap, max_connections=200)
    assert any("1175 connection(s) dropped" in w for w in warnings)
    codes = [{v.code for v in r.verdicts} for r in reports]
    assert len(codes) == 1200
    # Dropped while half-open: whether its SYN was answered later is unknown, so no
    # syn_unanswered; the 25 still held at the end were never answered.
    assert all("connection_table_full" in s and "syn_unanswered" not in s for s in codes[:1175])
    assert all("syn_unanswered" in s and "connection_table_full" not in s for s in codes[1175:])
    full = next(v for v in reports[0].verdicts if v.code == "connection_table_full")
    assert "the limit of 25 connections without data (an eighth of --max-connections)" in full.detail


def test_cli_limit_option(tmp_path: Path) -> None:
    cap = _flood(tmp_path / "flood.pcap", 300)
    run = subprocess.run(
        [*CAPDEBUG, "triage", str(cap), "--json", "--max-connections", "100"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr  # syn_unanswered are errors
    assert "288 connection(s) dropped" in run.stderr  # 12 half-open held
    doc = json.loads(run.stdout)
    assert [r["conn"] for r in doc["connections"]] == list(range(1, 301))
    full = [v for r in doc["connections"] for v in r["verdicts"] if v["code"] == "connection_table_full"]
    assert len(full) == 288 and full[0]["severity"] == "warning"


def test_tls_session_inside_a_flood_is_decoded_whole(tmp_path: Path) -> None:
    """A real session starts after the table filled up with half-open connections: they go,
    it stays (it carries data), and it decrypts exactly as without the flood."""
    pcap, keys = c.fixture("tls13-aes128gcm")
    segs = c.read_segments(pcap)
    flood = c.read_segments(_flood(tmp_path / "f.pcap", 400))
    t0 = segs[0].ts_ns
    mixed = [replace(s, ts_ns=t0 - 1000 + i) for i, s in enumerate(flood[:300])]
    mixed += segs[:6]
    mixed += [replace(s, ts_ns=segs[5].ts_ns + i) for i, s in enumerate(flood[300:])]
    mixed += segs[6:]
    mixed.sort(key=lambda s: s.ts_ns)
    out = c.write(tmp_path / "mixed.pcap", mixed)
    alone = [e for e in c.as_json(c.decode(pcap, keys)) if e["event"] != "connection"]
    with decode_capture(out, load_keys(out, [keys]), max_connections=50) as decoding:
        events = [ev.to_json() for ev in decoding]
    mine = [e for e in events if e["conn"] == 301]
    assert mine[0]["event"] == "connection"
    assert [e["event"] for e in mine[1:]] == [e["event"] for e in alone]
    assert any(e["event"] == "app_data" and e["decrypted"] for e in mine)
    assert not any(e["event"] == "evicted" and e["conn"] == 301 for e in events)
    # 50 // 8 = 6 half-open connections held: the 394 others go, the TLS one never counts.
    assert sum(e["event"] == "evicted" for e in events) == 400 - 50 // 8


def test_an_evicted_attempt_answered_later_starts_a_new_connection(tmp_path: Path) -> None:
    """No tombstone for a dropped connection: its SYN+ACK, coming after, is followed."""
    cap = _flood(tmp_path / "flood.pcap", 30, "--synack")
    segs = c.read_segments(cap)
    # Every SYN first, then every SYN+ACK: with a limit of 10, the first 20 SYNs are dropped.
    syns = [s for s in segs if s.flags == c.SYN]
    acks = [s for s in segs if s.flags != c.SYN]
    order = [replace(s, ts_ns=i) for i, s in enumerate(syns + acks)]
    out = c.write(tmp_path / "late.pcap", order)
    with decode_capture(out, max_connections=80) as decoding:  # 10 half-open
        events = [ev.to_json() for ev in decoding]
    conns = [e for e in events if e["event"] == "connection"]
    # 30 attempts, then 30 answers: each answer finds its attempt gone (the first 20 were pushed
    # out by later SYNs, the last 10 by the first answers' new connections) and starts a new
    # connection, with the roles a SYN+ACK gives.
    assert len(conns) == 60
    assert [e["client"] for e in conns[30:]] == [e["client"] for e in conns[:30]]
    assert all(e["roles_from"] == "syn" for e in conns)
    assert sum(e["event"] == "evicted" for e in events) == 50


def _peak(cap: Path, limit: int) -> int:
    tracemalloc.start()
    try:
        decoder = Decoder(None, DecodeOptions(decrypt_app_data=False, max_connections=limit))
        with open_capture(cap) as reader:
            for _ in run_decoder(reader, decoder):
                pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_as_the_flood_grows(tmp_path: Path) -> None:
    """Three times the flood, the same table: the decoder's peak memory does not triple."""
    small = _peak(_flood(tmp_path / "small.pcap", 4000), 500)
    large = _peak(_flood(tmp_path / "large.pcap", 12000), 500)
    unbounded = _peak(tmp_path / "large.pcap", 1 << 20)
    assert large < small * 1.5, (small, large)
    assert unbounded > large * 3, (large, unbounded)


def test_triage_keeps_a_small_record_per_half_open_connection(tmp_path: Path) -> None:
    """Triage's own state for a flood's attempts is a small record each (no full summary),
    its reports are made as they are read, and they say what a full summary would."""
    cap = _flood(tmp_path / "flood.pcap", 4000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        reports, _ = triage_capture(cap, max_connections=1 << 20)  # no eviction: 4000 attempts
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(reports) == 4000
    # About 1.3 KB each (the record, its TCP health facts, the client's address); full
    # summaries (a Conn with two Sides) held about 3 KB each.
    assert held / 4000 < 1600, held / 4000
    first, last = reports[0], reports[3999]
    assert [v.code for v in first.verdicts] == ["syn_unanswered"]
    assert first.verdicts[0].detail.startswith("1 SYN(s) to 10.0.0.1:443 over 0.0 ms")
    port = 1024 + (3999 * 7919) % 64000  # as make_flood.py numbers its sources
    assert (last.conn, last.client, last.first_frame) == (4000, f"172.16.15.159:{port}", 4000)
    assert list(reports[1:3]) == [reports[1], reports[2]]
