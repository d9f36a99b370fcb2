"""Each TCP health rule on a crafted capture: real TLS segments of a fixture, with the
retransmissions, windows, TTLs and SYNs a test chooses (tests/health/crafted.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from capdebug.analysis.sessions import iter_events, load_keys
from capdebug.pcap import open_capture
from tests.decode import craft as c
from tests.health.crafted import LARGE, MS, SMALL, Pkt, codes, from_fixture, later, triage, write

SERVER, CLIENT = "10.0.0.2", "10.0.0.1"


def _events(path: Path, keys: Path | None) -> list[dict[str, object]]:
    k = load_keys(path, [keys] if keys else [], use_env=False)
    with open_capture(path) as reader:
        return [json.loads(json.dumps(e.to_json())) for e in iter_events(reader, k.keylog)]


def _first_data(pkts: list[Pkt], client: tuple[str, int], from_client: bool, skip: int = 0) -> int:
    found = [i for i, p in enumerate(pkts) if p.seg.payload and c.is_client(p.seg, client) == from_client]
    return found[skip]


def _before_close(pkts: list[Pkt]) -> int:
    return next(i for i, p in enumerate(pkts) if p.seg.flags & (c.FIN | c.RST))


def test_retransmissions_and_rto_stalls(tmp_path: Path) -> None:
    pkts, client, keys = from_fixture(SMALL)
    k = _first_data(pkts, client, from_client=False)  # the server's first flight
    seg = pkts[k].seg
    copies = [replace(pkts[k], seg=replace(seg, ts_ns=seg.ts_ns + d * MS)) for d in (300, 900, 2100)]
    crafted = pkts[: k + 1] + copies + later(pkts[k + 1 :], 2500 * MS)
    r = triage(write(tmp_path / "rto.pcap", crafted), keys)
    got = codes(r)
    assert got["retransmissions"] == ("info", "server")
    assert got["rto_stall"] == ("warning", "path")
    v = next(v for v in r.verdicts if v.code == "rto_stall")
    assert v.detail.startswith("2 retransmission timeout(s) of the server")  # 0.6 s and 1.2 s waits
    assert v.frame == k + 2
    assert "handshake_incomplete" not in got and "mtu_blackhole" not in got


def test_zero_window(tmp_path: Path) -> None:
    pkts, client, keys = from_fixture(SMALL)
    k = _first_data(pkts, client, from_client=False, skip=1)
    ack = next(
        i for i in range(k + 1, len(pkts)) if c.is_client(pkts[i].seg, client) and pkts[i].seg.flags & c.ACK
    )
    crafted = pkts[: ack + 1] + later(pkts[ack + 1 :], 3000 * MS)
    crafted[ack] = replace(crafted[ack], window=0)
    r = triage(write(tmp_path / "zw.pcap", crafted), keys)
    assert codes(r)["zero_window"] == ("warning", "client")
    v = next(v for v in r.verdicts if v.code == "zero_window")
    assert v.frame == ack + 1 and "stopped reading" in v.detail


def test_retransmissions_into_a_zero_window_blame_the_reader(tmp_path: Path) -> None:
    # The client advertises a zero window, then the server's next segment is resent with
    # timeouts: the reader's full buffer dropped it (as on loopback when a reader stops), so
    # the stall is the client's, and no loss on the path is claimed.
    pkts, client, keys = from_fixture(SMALL)
    k = _first_data(pkts, client, from_client=False)
    ack = next(
        i for i in range(k + 1, len(pkts)) if c.is_client(pkts[i].seg, client) and pkts[i].seg.flags & c.ACK
    )
    crafted = pkts[: ack + 1]
    crafted[ack] = replace(crafted[ack], window=0)
    nxt = _first_data(pkts, client, from_client=False, skip=1)
    seg = pkts[nxt].seg
    copies = [replace(pkts[nxt], seg=replace(seg, ts_ns=seg.ts_ns + d * MS)) for d in (300, 900, 2100)]
    crafted += [pkts[nxt], *copies, *later([p for p in pkts[ack + 1 :] if p is not pkts[nxt]], 2500 * MS)]
    r = triage(write(tmp_path / "zw-rto.pcap", crafted), keys)
    got = codes(r)
    assert got["zero_window"][1] == "client"
    assert got["retransmissions"] == ("info", "server")
    assert got["rto_stall"] == ("warning", "client")
    assert "heavy_loss" not in got
    v = next(v for v in r.verdicts if v.code == "rto_stall")
    assert "zero window" in v.detail and "not the network" in v.detail


def test_injected_rst_is_blamed_on_the_path(tmp_path: Path) -> None:
    pkts, client, keys = from_fixture(SMALL)
    end = _before_close(pkts)
    last = pkts[end - 1].seg
    srv = next(p.seg for p in pkts if not c.is_client(p.seg, client))
    cli = next(p.seg for p in pkts if c.is_client(p.seg, client))
    # The server's side of the stream, as a forger would compute it from the client's ACK.
    ack_seg = next(p.seg for p in reversed(pkts[:end]) if c.is_client(p.seg, client))
    rst = c.Seg(srv.src, srv.sport, cli.src, cli.sport, ack_seg.ack, 0, c.RST, b"", last.ts_ns + MS)
    crafted = [*pkts[:end], Pkt(rst, ttl=50, ip_id=4242)]
    r = triage(write(tmp_path / "inj.pcap", crafted), keys)
    got = codes(r)
    assert got["injected_rst"] == ("error", "path")
    assert "reset" not in got and "benign_reset" not in got  # not blamed on the server
    v = next(v for v in r.verdicts if v.code == "injected_rst")
    assert v.frame == len(crafted) and "TTL 50" in v.detail and "TTL 64" in v.detail
    # The same RST with the server's TTL is the server's own.
    crafted[-1] = Pkt(rst, ttl=64)
    got = codes(triage(write(tmp_path / "own.pcap", crafted), keys))
    # (after both close_notify: the server's kernel answering late data, as a real one would)
    assert "injected_rst" not in got and got["benign_reset"] == ("info", "server")


def _syn(ts: int, seq: int = 1000) -> Pkt:
    return Pkt(c.Seg(CLIENT, 40000, SERVER, 443, seq, 0, c.SYN, b"", ts))


def test_connection_refused(tmp_path: Path) -> None:
    rst = Pkt(c.Seg(SERVER, 443, CLIENT, 40000, 0, 1001, c.RST | c.ACK, b"", 2 * MS))
    r = triage(write(tmp_path / "refused.pcap", [_syn(MS), rst]), None)
    assert codes(r) == {"connection_refused": ("error", "server")}
    assert r.verdicts[0].frame == 2


def test_syn_unanswered(tmp_path: Path) -> None:
    syns = [_syn(t * 1000 * MS) for t in (1, 2, 4, 8)]
    r = triage(write(tmp_path / "timeout.pcap", syns), None)
    assert codes(r) == {"syn_unanswered": ("error", "server")}
    v = r.verdicts[0]
    assert v.frame == 4 and v.detail.startswith("4 SYN(s) to 10.0.0.2:443 over 7000.0 ms and no answer")


def test_syn_retries_and_connect_time(tmp_path: Path) -> None:
    pkts, _, keys = from_fixture(SMALL)
    first = pkts[0]
    assert first.seg.flags == c.SYN
    retry = replace(first, seg=replace(first.seg, ts_ns=first.seg.ts_ns + 1000 * MS))
    crafted = [first, retry, *later(pkts[1:], 1000 * MS)]
    r = triage(write(tmp_path / "retry.pcap", crafted), keys)
    got = codes(r)
    assert got["syn_retries"] == ("warning", None)
    v = next(v for v in r.verdicts if v.code == "syn_retries")
    assert "2 SYNs" in v.detail and "connect time 1000." in v.detail
    assert "clean_close" in got  # the TLS session itself is fine


def test_unresponsive_peer(tmp_path: Path) -> None:
    pkts, client, keys = from_fixture(SMALL)
    end = _before_close(pkts)
    # The client's last record before the close, retransmitted into silence, then its RST.
    k = max(i for i in range(end) if pkts[i].seg.payload and c.is_client(pkts[i].seg, client))
    seg = pkts[k].seg
    copies = [replace(pkts[k], seg=replace(seg, ts_ns=seg.ts_ns + d * MS)) for d in (200, 600, 1400, 3000)]
    rst = c.Seg(
        seg.src,
        seg.sport,
        seg.dst,
        seg.dport,
        (seg.seq + len(seg.payload)) & 0xFFFFFFFF,
        0,
        c.RST,
        b"",
        seg.ts_ns + 6000 * MS,
    )
    crafted = [*pkts[: k + 1], *copies, Pkt(rst)]
    r = triage(write(tmp_path / "silent.pcap", crafted), keys)
    got = codes(r)
    assert got["unresponsive_peer"] == ("error", "server")
    v = next(v for v in r.verdicts if v.code == "unresponsive_peer")
    assert v.frame == k + 2 and "4 time(s)" in v.detail and "then a RST" in v.detail
    assert "mtu_blackhole" not in got


def test_mtu_blackhole(tmp_path: Path) -> None:
    pkts, client, keys = from_fixture(LARGE)
    k = next(
        i
        for i, p in enumerate(pkts)
        if len(p.seg.payload) >= 1000 and not c.is_client(p.seg, client) and i > 10
    )
    seg = pkts[k].seg
    mine = next(p.seg for p in reversed(pkts[:k]) if c.is_client(p.seg, client))
    crafted = pkts[:k]
    t = seg.ts_ns
    for d in (0, 300, 900, 2100):
        crafted.append(Pkt(replace(seg, ts_ns=t + d * MS)))
        # The client answers each copy with an ACK that does not cover it (a duplicate ACK).
        nxt = (mine.seq + len(mine.payload)) & 0xFFFFFFFF
        dup = c.Seg(mine.src, mine.sport, mine.dst, mine.dport, nxt, seg.seq, c.ACK, b"", t + (d + 1) * MS)
        crafted.append(Pkt(dup))
    r = triage(write(tmp_path / "bh.pcap", crafted), keys)
    got = codes(r)
    assert got["mtu_blackhole"] == ("error", "path")
    v = next(v for v in r.verdicts if v.code == "mtu_blackhole")
    assert v.frame == k + 3  # the first retransmission
    assert f"a {len(seg.payload)}-byte segment of the server was retransmitted 3 time(s)" in v.detail
    assert "unresponsive_peer" not in got


def test_heavy_loss_is_one_info_line(tmp_path: Path) -> None:
    pkts, client, keys = from_fixture(LARGE)
    crafted: list[Pkt] = []
    n = 0
    for p in pkts:
        crafted.append(p)
        if p.seg.payload and not c.is_client(p.seg, client):
            n += 1
            if n % 5 == 0:
                crafted.append(replace(p, seg=replace(p.seg, ts_ns=p.seg.ts_ns + 1)))
    r = triage(write(tmp_path / "loss.pcap", crafted), keys)
    got = codes(r)
    assert got["heavy_loss"] == ("info", "path")
    assert got["retransmissions"] == ("info", "server")
    assert sum(v.code == "heavy_loss" for v in r.verdicts) == 1


def test_gap_acknowledged_by_the_receiver_is_the_captures_loss(tmp_path: Path) -> None:
    pkts, client, keys = from_fixture(LARGE)
    k = _first_data(pkts, client, from_client=False, skip=20)
    crafted = pkts[:k] + pkts[k + 1 :]
    path = write(tmp_path / "gap.pcap", crafted)
    gaps = [e for e in _events(path, keys) if e["event"] == "gap"]
    assert [g["cause"] for g in gaps] == ["capture"]
    r = triage(path, keys)
    v = next(v for v in r.verdicts if v.code == "capture_incomplete")
    assert "acknowledged them" in v.detail and "lost by the capture, not by the network" in v.detail
