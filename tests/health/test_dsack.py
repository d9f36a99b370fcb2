"""D-SACK (RFC 2883): a retransmission the receiver reports as a duplicate was spurious (the
original had arrived) and is no loss: it is taken back out of the TCP health summary. Crafted
from a real transfer (tests/health/crafted.py): every fifth server segment sent twice, each
copy answered by a client ACK whose SACK option the test chooses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from capdebug.analysis.events import TcpHealthEvent
from capdebug.api import decode_capture, load_keys
from tests.decode import craft as c
from tests.health.crafted import LARGE, Pkt, codes, from_fixture, triage, write

MASK = 0xFFFFFFFF


def _copies(tmp: Path, form: str, only_first: bool = False) -> tuple[Path, Path]:
    """``only_first``: the first copy's ACK has the ``form``, the others a plain SACK."""
    pkts, client, keys = from_fixture(LARGE)
    out: list[Pkt] = []
    n = 0
    last_ack = next(p.seg.ack for p in pkts if c.is_client(p.seg, client) and p.seg.flags & c.ACK)
    for i, p in enumerate(pkts):
        out.append(p)
        s = p.seg
        if c.is_client(s, client):
            last_ack = s.ack if s.flags & c.ACK else last_ack
            continue
        if not s.payload:
            continue
        n += 1
        if n % 5:
            continue
        out.append(replace(p, seg=replace(s, ts_ns=s.ts_ns + 1)))  # the (spurious) retransmission
        left, right = s.seq, (s.seq + len(s.payload)) & MASK
        nxt = next(q.seg for q in pkts[i:] if c.is_client(q.seg, client))
        ack, sack = {
            # The first block below the cumulative ACK: a duplicate of acknowledged data.
            "below_ack": (right, (left, right)),
            # The first block inside the second, both above the ACK: a duplicate beyond a hole.
            "inside_second": (last_ack, (left, right, (left - 1448) & MASK, (right + 1448) & MASK)),
            # An ordinary SACK block above the ACK: no D-SACK, the retransmission stands.
            "plain": (last_ack, (right, (right + 1448) & MASK)),
        }["plain" if only_first and n > 5 else form]
        ack_seg = replace(nxt, flags=c.ACK, ack=ack, payload=b"", ts_ns=s.ts_ns + 2)
        out.append(Pkt(ack_seg, sack=sack))
    return write(tmp / f"{form}{'-first' if only_first else ''}.pcap", out), keys


def _server_health(pcap: Path, keys: Path) -> tuple[int, int, float]:
    with decode_capture(pcap, load_keys(pcap, [keys])) as decoding:
        (health,) = [e for e in decoding if isinstance(e, TcpHealthEvent)] or [None]
    if health is None:
        return 0, 0, 0.0
    s = health.server
    return s.retransmissions, s.retransmitted_bytes, s.retransmission_ns


@pytest.mark.parametrize("form", ["below_ack", "inside_second"])
def test_dsack_takes_a_spurious_retransmission_back(tmp_path: Path, form: str) -> None:
    plain, keys = _copies(tmp_path, "plain")
    count, size, cost = _server_health(plain, keys)
    assert count >= 5 and size > 5_000 and cost > 0  # without D-SACK: each copy counted
    assert codes(triage(plain, keys))["retransmissions"] == ("info", "server")
    dsack, _ = _copies(tmp_path, form)
    assert _server_health(dsack, keys) == (0, 0, 0.0)
    got = codes(triage(dsack, keys))
    assert "retransmissions" not in got and "heavy_loss" not in got, got


def test_dsack_undoes_only_what_it_names(tmp_path: Path) -> None:
    # One D-SACK, for the first copy: the other copies stay counted.
    plain, keys = _copies(tmp_path, "plain")
    first, _ = _copies(tmp_path, "below_ack", only_first=True)
    count, size, _ = _server_health(plain, keys)
    less, smaller, _ = _server_health(first, keys)
    assert less == count - 1 and 0 < smaller < size


@pytest.mark.parametrize(("rtt_ms", "still_watched_ms", "released_ms"), [(0.1, 4, 6), (20, 70, 90)])
def test_watch_for_the_dsack_scales_with_the_round_trip(
    rtt_ms: float, still_watched_ms: float, released_ms: float
) -> None:
    """After its retransmission is acknowledged a connection stays off the fast path four round
    trips (at least 5 ms), for a D-SACK: not a fixed 200 ms, which on a fast link is tens of
    thousands of frames taken the slow way."""
    from capdebug.net.health import RELEASE, WATCH, HealthObserver

    ms = 1_000_000
    h = HealthObserver()
    ack_flag, server, client = c.ACK, 1, 0
    # The server's segment [1000, 2000) is sent again (its first copy took the fast path).
    assert h.observe(server, 10, 0, 1000, 1, ack_flag, 65535, 1000, 2000, False, 1, b"") == WATCH
    ack_at = int(rtt_ms * ms)
    assert h.observe(client, 11, ack_at, 1, 2000, ack_flag, 65535, 0, 1, False, 1, b"") == 0
    later = ack_at + int(still_watched_ms * ms)
    assert h.observe(client, 12, later, 1, 2000, ack_flag, 65535, 0, 1, False, 1, b"") == 0
    done = ack_at + int(released_ms * ms)
    assert h.observe(client, 13, done, 1, 2000, ack_flag, 65535, 0, 1, False, 1, b"") == RELEASE
