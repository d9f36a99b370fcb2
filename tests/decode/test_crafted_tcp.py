"""Real TLS bytes over crafted TCP: retransmission, reordering, overlap, port reuse, link
types and 1-byte segments decode to the events of the clean capture, in the right frames."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.decode import craft as c
from tests.oracle import by_frame, capdebug_rows, tshark_rows
from tests.tools import require

SMALL = "tls13-aes128gcm"
LARGE = "tls13-large-transfer"
TLS12 = "tls12-ecdhe-aes128gcm"


def _clean(name: str) -> tuple[list[c.Seg], Path, list[dict[str, Any]]]:
    pcap, keys = c.fixture(name)
    return c.read_segments(pcap), keys, c.as_json(c.decode(pcap, keys))


def _check_frames(
    tmp_path: Path, name: str, crafted: list[c.Seg], *, tshark: bool | None = None, conflicts: int = 0
) -> list[dict[str, Any]]:
    """Decode ``crafted``; its events must be the clean capture's with frames moved to the frame
    that completes each one, and (optionally) agree with tshark frame by frame. ``conflicts``:
    the ``overlap_conflict`` events expected besides (copies of stream bytes that differ)."""
    segs, keys, clean = _clean(name)
    out = c.write(tmp_path / "crafted.pcap", crafted)
    events = c.decode(out, keys)
    got = c.as_json(events)
    said = [o for o in got if o["event"] == "overlap_conflict"]
    assert len(said) == conflicts, said
    got = [o for o in got if o["event"] != "overlap_conflict"]
    expected = c.remap(clean, c.completion_frames(segs, crafted))
    assert c.strip(got) == c.strip(expected)
    # tshark on the large transfer takes seconds: only where it checks something new.
    if tshark or (tshark is None and name != LARGE):
        require("tshark")
        assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(out, keys))
    return got


# -- (1) retransmissions -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [SMALL, TLS12, LARGE])
def test_every_segment_retransmitted_at_once(tmp_path: Path, name: str) -> None:
    segs, _, _ = _clean(name)
    crafted: list[c.Seg] = []
    for s in segs:
        crafted.append(s)
        if s.payload:
            crafted.append(replace(s, ts_ns=s.ts_ns + 1))
    got = _check_frames(tmp_path, name, crafted)
    # Each record is attributed to the first copy, never to the retransmission.
    origins = {n: s for n, s in enumerate(crafted, 1)}
    for o in got:
        if "frame" in o and o["event"] != "tcp":
            frame = o["frame"]
            assert origins[frame] is not origins.get(frame - 1), o


@pytest.mark.parametrize("name", [SMALL, LARGE])
def test_late_retransmission_of_everything(tmp_path: Path, name: str) -> None:
    """The whole conversation is retransmitted after it happened (before the FINs)."""
    segs, _, _ = _clean(name)
    last = max(i for i, s in enumerate(segs) if s.payload)
    again = [replace(s, ts_ns=s.ts_ns + 1) for s in segs[: last + 1] if s.payload]
    _check_frames(tmp_path, name, segs[: last + 1] + again + segs[last + 1 :])


@pytest.mark.parametrize("name", [SMALL, LARGE])
def test_partial_overlap_retransmission_after_both(tmp_path: Path, name: str) -> None:
    """A retransmission covering the end of one segment and the start of the next, sent after
    both (in each direction): nothing new, nothing reported twice."""
    segs, _, _ = _clean(name)
    client = c.client_of(segs)
    for from_client in (False, True):
        idx = c.data_segs(segs, client, from_client)
        a, b = idx[len(idx) // 2 - 1], idx[len(idx) // 2]
        sa, sb = segs[a], segs[b]
        half = len(sa.payload) // 2
        bridge = replace(sa, seq=(sa.seq + half) & 0xFFFFFFFF, payload=sa.payload[half:] + sb.payload[:3])
        segs = [*segs[: b + 1], bridge, *segs[b + 1 :]]
    _check_frames(tmp_path, name, segs)


@pytest.mark.parametrize("name", [SMALL, LARGE])
def test_original_overlapping_an_early_partial_copy(tmp_path: Path, name: str) -> None:
    """The first 3 bytes of a segment arrive alone first (no record ends in them); the original
    segment then overlaps them and brings the rest: its records complete in its own frame.

    tshark 4.0 agrees only with tcp.reassemble_out_of_order on (see conftest.py): with its
    defaults it shows no record of that direction from there on.
    """
    segs, _keys, _ = _clean(name)
    client = c.client_of(segs)
    k = c.data_segs(segs, client, False)[-2]
    crafted = [*segs[:k], c.sub(segs[k], 0, 3), *segs[k:]]
    got = _check_frames(tmp_path, name, crafted)
    assert not [o for o in got if o["event"] in ("gap", "undecryptable")]


# -- (2) reordering --------------------------------------------------------------------------------


def _move_before(segs: list[c.Seg], later: int, earlier: int) -> list[c.Seg]:
    """Move ``segs[later]`` just before ``segs[earlier]``. Its acknowledgment number becomes the
    earlier one's, so that it acknowledges nothing the capture has not shown yet (causality)."""
    out = list(segs)
    seg = out.pop(later)
    out.insert(earlier, replace(seg, ack=segs[earlier].ack))
    return out


@pytest.mark.parametrize("name", [SMALL, TLS12, LARGE])
def test_swapped_segments(tmp_path: Path, name: str) -> None:
    """A data segment of each direction arrives before the one sent just before it: the
    records of both complete in the frame that fills the hole."""
    segs, _, _ = _clean(name)
    client = c.client_of(segs)
    crafted = list(segs)
    for from_client in (True, False):
        idx = c.data_segs(crafted, client, from_client)
        crafted = _move_before(crafted, idx[-2], idx[-3])
    got = _check_frames(tmp_path, name, crafted)
    assert not [o for o in got if o["event"] in ("gap", "undecryptable")]


def test_reversed_burst(tmp_path: Path) -> None:
    """A burst of six segments of the large transfer arrives last segment first."""
    segs, _, _ = _clean(LARGE)
    client = c.client_of(segs)
    idx = c.data_segs(segs, client, False)
    burst = idx[6:12]
    lo, hi = burst[0], burst[-1]
    window = [s for s in segs[lo : hi + 1] if s.payload and not c.is_client(s, client)][::-1]
    window = [replace(s, ack=segs[lo].ack) for s in window]
    others = [s for s in segs[lo : hi + 1] if not (s.payload and not c.is_client(s, client))]
    crafted = segs[:lo] + window + others + segs[hi + 1 :]
    got = _check_frames(tmp_path, LARGE, crafted, tshark=True)
    assert not [o for o in got if o["event"] in ("gap", "undecryptable")]


def test_ack_captured_before_the_data_it_acknowledges(tmp_path: Path) -> None:
    """Captures taken on several interfaces or CPUs can show an ACK before the segment it
    acknowledges (Wireshark: "ACKed unseen segment"). The segment still arrives, a frame
    later: nothing is missing, so there must be no gap and every record decrypts."""
    segs, _, _ = _clean(SMALL)
    client = c.client_of(segs)
    idx = c.data_segs(segs, client, False)
    k = idx[-2]  # a server data segment; the next client segment acknowledges it
    nxt = next(i for i in range(k + 1, len(segs)) if c.is_client(segs[i], client))
    crafted = list(segs)
    crafted[k], crafted[nxt] = crafted[nxt], crafted[k]
    if nxt != k + 1:
        crafted.insert(k + 1, crafted.pop(nxt))
    got = c.as_json(c.decode(c.write(tmp_path / "ack-first.pcap", crafted), c.fixture(SMALL)[1]))
    assert [o for o in got if o["event"] in ("gap", "undecryptable")] == []


# -- (3) conflicting overlaps ----------------------------------------------------------------------


def _server_record_segment(segs: list[c.Seg]) -> int:
    client = c.client_of(segs)
    return c.data_segs(segs, client, False)[5]


def test_conflicting_retransmission_after_original_is_ignored(tmp_path: Path) -> None:
    """In order: the original bytes were delivered, a later copy with other bytes is old."""
    segs, _, _ = _clean(LARGE)
    i = _server_record_segment(segs)
    bad = c.sub(segs[i], 100, 200, b"\xaa" * 100)
    _check_frames(tmp_path, LARGE, [*segs[: i + 1], bad, *segs[i + 1 :]], conflicts=1)


def test_conflicting_overlap_while_buffered_first_wins(tmp_path: Path) -> None:
    """Out of order: a segment waits behind a hole, a conflicting copy arrives, then the hole
    fills: the bytes that arrived first are kept, so everything still decrypts."""
    segs, _, _ = _clean(LARGE)
    client = c.client_of(segs)
    idx = c.data_segs(segs, client, False)
    a, b = idx[5], idx[6]
    later = segs[b]
    bad = c.sub(later, 10, 300, b"\x55" * 290)
    crafted = [s for k, s in enumerate(segs) if k != b]
    pos = crafted.index(segs[a])
    crafted[pos:pos] = [later, bad]
    _check_frames(tmp_path, LARGE, crafted, conflicts=1)


def test_conflicting_bytes_first_wins_and_fail_authentication(tmp_path: Path) -> None:
    """Wrong bytes arrive first (ahead of the hole), the true segment second: the first bytes
    win, so that record fails authentication: reported as bad_tag, never as plaintext, and the
    records after it still decrypt.

    tshark 4.0 (same keys, tcp.reassemble_out_of_order on) keeps the first bytes too: it
    shows the same records in the same frames (with its defaults, it shows nothing more for that
    direction after the corrupted segment).
    """
    segs, keys, clean = _clean(LARGE)
    i = _server_record_segment(segs)
    bad = c.sub(segs[i], 100, 200, b"\xaa" * 100)
    crafted = [*segs[:i], bad, *segs[i:]]
    out = c.write(tmp_path / "conflict.pcap", crafted)
    events = c.decode(out, keys)
    got = c.as_json(events)
    assert c.reasons(got) == [(1, "server", "bad_tag")]
    # The true segment, second, is reported as a conflicting copy (the first was used).
    assert [(o["from"], o["offset"] > 0, o["kept"]) for o in got if o["event"] == "overlap_conflict"] == [
        ("server", True, "first")
    ]
    clean_kinds = [k for k in c.kinds(clean)]
    got_kinds = [k for k in c.kinds(got) if k[1] not in ("undecryptable", "overlap_conflict")]
    diff = [(a, b) for a, b in zip(clean_kinds, got_kinds, strict=True) if a != b]
    assert len(diff) == 1
    (was, now) = diff[0]
    assert was[:3] == now[:3] == (1, "app_data", "server") and was[4] and not now[4]
    assert now[3] > was[3]  # the record length, not the plaintext length
    require("tshark")
    assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(out, keys))


# -- (6) port reuse ----------------------------------------------------------------------------------


def test_port_reuse_gives_a_new_connection(tmp_path: Path) -> None:
    segs, keys, clean = _clean(SMALL)
    client = c.client_of(segs)
    span = segs[-1].ts_ns - segs[0].ts_ns
    again = c.shift(segs, seq_client=0x10000000, seq_server=0x20000000, client=client, ts=span + 10**9)
    out = c.write(tmp_path / "reuse.pcap", segs + again)
    events = c.decode(out, keys)
    got = c.as_json(events)
    first = [o for o in got if o["conn"] == 1]
    second = [o for o in got if o["conn"] == 2]
    assert {o["conn"] for o in got} == {1, 2}
    assert c.strip(first) == c.strip(clean)
    n = len(segs)
    assert c.strip(second) == c.strip(
        [dict(o, conn=2) for o in c.remap(clean, {k: k + n for k in range(1, n + 1)})]
    )
    require("tshark")
    assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(out, keys))


def test_port_reuse_without_fin(tmp_path: Path) -> None:
    """A new SYN (another ISN) on a 4-tuple still open ends the old connection."""
    segs, keys, clean = _clean(SMALL)
    client = c.client_of(segs)
    open_part = [s for s in segs if not s.flags & c.FIN][:-1]
    again = c.shift(segs, seq_client=0x30000000, seq_server=0x40000000, client=client, ts=10**9)
    got = c.as_json(c.decode(c.write(tmp_path / "reuse.pcap", open_part + again), keys))
    assert [o["conn"] for o in got if o["event"] == "connection"] == [1, 2]
    assert sum(1 for o in got if o["event"] == "app_data" and o["decrypted"] and o["conn"] == 2) == sum(
        1 for o in clean if o["event"] == "app_data"
    )


# -- (7) link types and IPv6 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "link"),
    [(SMALL, link) for link in ("ipv6", "vlan", "qinq", "sll", "sll2", "vlan-ipv6", "sll2-ipv6")]
    + [(TLS12, link) for link in ("ipv6", "qinq", "sll2")],
)
def test_link_types_decode_identically(tmp_path: Path, name: str, link: str) -> None:
    segs, keys, clean = _clean(name)
    out = c.write(tmp_path / f"{link}.pcap", segs, link)
    events = c.decode(out, keys)
    got = c.as_json(events)
    addr = ["client", "server"]
    assert c.strip(got, ("ts", *addr)) == c.strip(clean, ("ts", *addr))
    conn = got[0]
    if "ipv6" in link:
        assert conn["client"].startswith("[::1]:") and conn["server"].startswith("[::1]:")
        assert conn["client"] == "[::1]:" + clean[0]["client"].rsplit(":", 1)[1]
    else:
        assert conn["client"] == clean[0]["client"] and conn["server"] == clean[0]["server"]
    require("tshark")
    assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(out, keys))


# -- (10) one byte per segment ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [SMALL])
def test_one_byte_segments(tmp_path: Path, name: str) -> None:
    segs, keys, clean = _clean(name)
    crafted: list[c.Seg] = []
    for s in segs:
        if len(s.payload) > 1:
            crafted.extend(c.split(s, [1] * len(s.payload)))
        else:
            crafted.append(s)
    out = c.write(tmp_path / "bytes.pcap", crafted)
    events = c.decode(out, keys)
    got = c.as_json(events)
    assert c.kinds(got) == c.kinds(clean)
    # Each record completes in the frame of its last byte.
    expected = c.remap(clean, c.completion_frames(segs, crafted))
    for g, e in zip(got, expected, strict=True):
        if g["event"] == "connection":
            continue
        if g["event"] in ("tcp",):
            assert g["frame"] == e["frame"]
        else:
            # The record's last byte lies within the original frame's bytes.
            assert g["frame"] <= e["frame"]
            assert crafted[g["frame"] - 1].origin == crafted[e["frame"] - 1].origin
    require("tshark")
    assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(out, keys))
