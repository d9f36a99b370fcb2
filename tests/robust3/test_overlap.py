"""Copies of the same stream bytes that differ (issue 15): reported as an ``overlap_conflict``
event and verdict, saying the first copy was used; a ClientHello hit by a forged first copy is
still shown. Through the reassembler alone, and through crafted captures whose Ethernet frames
take the fast path (the first copy is released there)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from capdebug.api import load_keys, triage_capture
from capdebug.net.reassembly import Data, Overlap, Released, StreamReassembler
from tests.decode import craft as c

SYN, ACK = 0x02, 0x10


def _overlaps(out: list[Released]) -> list[tuple[int, int, int, int]]:
    return [(o.offset, o.size, o.differ, o.frame) for o in out if isinstance(o, Overlap)]


def test_identical_retransmissions_and_keepalives_are_not_conflicts() -> None:
    r = StreamReassembler()
    out = list(r.feed(999, b"", SYN, 1, 0))
    out += r.feed(1000, b"hello world", ACK, 2, 0)
    out += r.feed(1000, b"hello world", ACK, 3, 0)  # the same bytes again
    out += r.feed(1006, b"world", ACK, 4, 0)  # part of them
    out += r.feed(1010, b"\x00", ACK, 5, 0)  # keep-alive: one garbage octet at next-1
    assert _overlaps(out) == []
    assert b"".join(i.data for i in out if isinstance(i, Data)) == b"hello world"


def test_retransmission_differing_from_the_released_copy() -> None:
    r = StreamReassembler()
    out = list(r.feed(999, b"", SYN, 1, 0))
    out += r.feed(1000, b"GET / HTTP/1.1", ACK, 2, 0)
    out += r.feed(1000, b"GET / HTTX/1.1more", ACK, 3, 0)  # 1 byte differs, then new bytes
    assert _overlaps(out) == [(9, 14, 1, 3)]
    # The first copy stays; only the new tail is taken from the later one.
    assert b"".join(i.data for i in out if isinstance(i, Data)) == b"GET / HTTP/1.1more"


def test_segment_differing_from_a_buffered_chunk() -> None:
    r = StreamReassembler()
    out = list(r.feed(0, b"", SYN, 1, 0))
    out += r.feed(11, b"abcdefghij", ACK, 2, 0)  # behind a hole of 10 bytes
    out += r.feed(16, b"FGHIJ", ACK, 3, 0)  # overlaps the buffered chunk, all different
    out += r.feed(1, b"0123456789", ACK, 4, 0)  # fills the hole
    assert _overlaps(out) == [(15, 5, 5, 3)]
    assert b"".join(i.data for i in out if isinstance(i, Data)) == b"0123456789abcdefghij"


def _segments() -> tuple[list[c.Seg], tuple[str, int], Path, int]:
    pcap, keys = c.fixture("tls13-aes128gcm")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    first = next(k for k, s in enumerate(segs) if c.is_client(s, client) and s.payload)
    return segs, client, keys, first


def test_forged_first_copy_of_the_client_hello(tmp_path: Path) -> None:
    """An injected segment races the real ClientHello: the capture has the forged copy first,
    the real one as a "retransmission". The connection is shown (it looked like plaintext),
    with the conflict and the verdict."""
    segs, _client, keys, i = _segments()
    forged = bytearray(segs[i].payload)
    forged[0:3] = b"GET"
    crafted = [*segs[:i], replace(segs[i], payload=bytes(forged)), replace(segs[i], ts_ns=segs[i].ts_ns + 1)]
    crafted += segs[i + 1 :]
    cap = c.write(tmp_path / "forged.pcap", crafted)
    events = c.as_json(c.decode(cap, keys))
    conflicts = [e for e in events if e["event"] == "overlap_conflict"]
    assert len(conflicts) == 1
    assert {k: conflicts[0][k] for k in ("conn", "frame", "from", "offset", "differ", "kept")} == {
        "conn": 1,
        "frame": i + 2,
        "from": "client",
        "offset": 0,
        "differ": 3,
        "kept": "first",
    }
    assert conflicts[0]["size"] == len(segs[i].payload)
    assert events[0]["event"] == "connection"
    report = triage_capture(cap, load_keys(cap, [keys])).reports[0]
    verdict = next(v for v in report.verdicts if v.code == "overlap_conflict")
    assert (verdict.severity, verdict.by, verdict.frame) == ("error", "path", i + 2)
    assert "first was used" in verdict.detail


def test_rewritten_retransmission_after_the_real_copy(tmp_path: Path) -> None:
    """A middlebox rewrites a retransmission of the ServerHello flight: the real copy came first
    and is decoded (the session decrypts as without it); the rewritten copy is reported."""
    segs, client, keys, _ = _segments()
    j = next(k for k, s in enumerate(segs) if not c.is_client(s, client) and len(s.payload) > 100)
    bad = bytearray(segs[j].payload)
    bad[50:54] = bytes(b ^ 0xFF for b in bad[50:54])
    crafted = [*segs[: j + 1], replace(segs[j], payload=bytes(bad), ts_ns=segs[j].ts_ns + 1), *segs[j + 1 :]]
    cap = c.write(tmp_path / "rewritten.pcap", crafted)
    events = c.as_json(c.decode(cap, keys))
    clean = c.as_json(c.decode(c.fixture("tls13-aes128gcm")[0], keys))
    conflicts = [e for e in events if e["event"] == "overlap_conflict"]
    assert [(e["from"], e["offset"], e["differ"], e["frame"]) for e in conflicts] == [
        ("server", 50, 4, j + 2)
    ]
    same = [e for e in events if e["event"] not in ("overlap_conflict", "tcp_health")]
    assert c.strip(same, ("ts", "frame")) == c.strip(
        [e for e in clean if e["event"] != "tcp_health"], ("ts", "frame")
    )
    assert any(e["event"] == "app_data" and e["decrypted"] for e in events)
