"""A segment held back while more than a megabyte of later data arrives: reassembly waits for
it (up to the stated limit, ``max_out_of_order``) and the exported plaintext is exact; past the
limit the hole is a gap whose cause says so (issue 14)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from capdebug.analysis.events import GapEvent
from capdebug.analysis.triage import Triage
from capdebug.api import PlaintextExporter, decode_capture, load_keys
from tests.decode.craft import Seg, client_of, fixture, is_client, read_segments, write

HELD_BACK = 1 << 20  # later server bytes that pass the held-back segment


def _reordered(tmp: Path) -> tuple[Path, Path]:
    """tls13-large-transfer with one early server data segment moved behind more than
    ``HELD_BACK`` later server bytes; the client's ACKs in between stop at the hole (a receiver
    never acknowledges past a hole), so nothing says the capture lost it."""
    pcap, keys = fixture("tls13-large-transfer")
    segs = read_segments(pcap)
    client = client_of(segs)
    server_data = [i for i, s in enumerate(segs) if not is_client(s, client) and len(s.payload) > 1000]
    k = server_data[5]
    held = segs[k]
    hole = held.seq
    later = 0
    j = k + 1
    while later <= HELD_BACK:
        if not is_client(segs[j], client):
            later += len(segs[j].payload)
        j += 1
    out: list[Seg] = [*segs[:k]]
    for s in segs[k + 1 : j]:
        if is_client(s, client) and (s.ack - hole) & 0xFFFFFFFF < 0x80000000:
            s = replace(s, ack=hole)
        out.append(s)
    out.append(replace(held, ts_ns=segs[j - 1].ts_ns))
    out += segs[j:]
    return write(tmp / "reordered.pcap", out), keys


def _export(pcap: Path, keys: Path, folder: Path, **kw: int) -> tuple[dict[str, str], list[GapEvent]]:
    with (
        PlaintextExporter(folder) as exporter,
        decode_capture(pcap, load_keys(pcap, [keys]), app_data_sink=exporter, **kw) as decoding,
    ):
        gaps = [e for e in decoding if isinstance(e, GapEvent)]
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.bin"))}
    return digests, gaps


def test_held_back_segment_fills_its_hole(tmp_path: Path) -> None:
    pcap, keys = fixture("tls13-large-transfer")
    want, no_gaps = _export(pcap, keys, tmp_path / "original")
    assert not no_gaps and want
    reordered, _ = _reordered(tmp_path)
    got, gaps = _export(reordered, keys, tmp_path / "reordered")
    assert gaps == []
    assert got == want


def test_past_the_limit_the_gap_says_out_of_order(tmp_path: Path) -> None:
    pcap, keys = fixture("tls13-large-transfer")
    want, _ = _export(pcap, keys, tmp_path / "original")
    reordered, _ = _reordered(tmp_path)
    got, gaps = _export(reordered, keys, tmp_path / "small", max_out_of_order=256 << 10)
    assert [g.cause for g in gaps] == ["out_of_order"]
    assert gaps[0].from_ == "server"
    assert got != want  # a record is lost, and the gap event says why
    # ... and so does the map beside the plaintext: where, how much, why.
    (gap_map,) = (tmp_path / "small").glob("*.gaps.json")
    entries = json.loads(gap_map.read_text())
    assert [e["reason"] for e in entries] == ["out_of_order"]
    assert entries[0]["tcp_bytes"] == gaps[0].size and entries[0]["frame"] == gaps[0].frame
    name = gap_map.name.replace(".gaps.json", ".bin")
    before = (tmp_path / "original" / name).read_bytes()
    after = (tmp_path / "small" / name).read_bytes()
    offset = entries[0]["offset"]
    # The records cut by the hole are missing from the plaintext at that offset.
    assert 0 < offset < len(after) < len(before) and after[:offset] == before[:offset]
    assert gap_map.stat().st_mode & 0o777 == 0o600


def test_no_gap_no_map(tmp_path: Path) -> None:
    pcap, keys = fixture("tls13-large-transfer")
    _export(pcap, keys, tmp_path / "out")
    assert not list((tmp_path / "out").glob("*.gaps.json"))


def test_triage_says_the_hole_was_given_up_not_lost(tmp_path: Path) -> None:
    """Past the limit, triage's capture_incomplete says the hole was given up with data behind
    it, not that the capture (or the network) lost the bytes."""
    reordered, keys = _reordered(tmp_path)
    triage = Triage()
    with decode_capture(reordered, load_keys(reordered, [keys]), max_out_of_order=256 << 10) as decoding:
        for ev in decoding:
            triage.add(ev)
    (report,) = list(triage.reports())
    (v,) = [v for v in report.verdicts if v.code == "capture_incomplete"]
    assert (v.severity, v.by) == ("warning", "server")
    assert "given up after more data than the reassembly limit" in v.detail
    assert "lost by the" not in v.detail
