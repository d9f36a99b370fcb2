"""Roles of a connection picked up mid-stream (no SYN, no ClientHello): an endpoint that served
another connection of the capture serves this one too; otherwise the lower port serves.

The fixture's server listens on a port above its client's ephemeral port (as gRPC's 50051
often is), so the lower-port rule alone gets it backwards."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from capdebug.analysis.events import (
    AppDataEvent,
    ConnectionEvent,
    DecodeEvent,
    RecoveredEvent,
    UndecryptableEvent,
)
from capdebug.api import load_keys, triage_capture
from tests.decode import craft as c


def _mid_stream_copy(segs: list[c.Seg], client: tuple[str, int], port: int, shift_ns: int) -> list[c.Seg]:
    """The fixture's connection from its 15th segment on, from another client port, later."""
    out = []
    for s in segs[14:]:
        if c.is_client(s, client):
            out.append(replace(s, sport=port, ts_ns=s.ts_ns + shift_ns, origin=0))
        else:
            out.append(replace(s, dport=port, ts_ns=s.ts_ns + shift_ns, origin=0))
    return out


def _records(events: list[DecodeEvent], side: str) -> list[tuple[bool, int]]:
    return [(e.decrypted, e.length) for e in events if isinstance(e, AppDataEvent) and e.from_ == side]


def _connections(cap: Path) -> list[ConnectionEvent]:
    return [e for e in c.decode(cap, None) if isinstance(e, ConnectionEvent)]


def test_server_known_from_another_connection(tmp_path: Path) -> None:
    pcap, _ = c.fixture("tls13-large-transfer")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    server = next((s.dst, s.dport) for s in segs if c.is_client(s, client))
    assert client[1] < server[1], "the fixture no longer has its server on the higher port"
    later = _mid_stream_copy(segs, client, client[1] - 100, 10_000_000_000)
    cap = c.write(tmp_path / "pool.pcap", [*segs, *later])
    first, second = _connections(cap)
    assert first.roles_from == "syn" and first.server == f"{server[0]}:{server[1]}"
    assert second.roles_from == "guess"
    assert (second.client, second.server) == (f"{client[0]}:{client[1] - 100}", first.server)
    # Triage (no keys) blames the FIN's real sender, as it would with the roles from the SYN.
    fin = next(s for s in segs if s.flags & c.FIN)
    closer = "client" if c.is_client(fin, client) else "server"
    (report,) = [r for r in triage_capture(cap).reports if r.conn == 2]
    assert [v.by for v in report.verdicts if v.code == "premature_close"] == [closer]


def test_alone_the_lower_port_serves(tmp_path: Path) -> None:
    pcap, _ = c.fixture("tls13-large-transfer")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    cap = c.write(tmp_path / "alone.pcap", _mid_stream_copy(segs, client, client[1], 0))
    (only,) = _connections(cap)
    assert only.roles_from == "guess"
    assert only.server == f"{client[0]}:{client[1]}"  # backwards, and said to be a guess


def test_shares_agree_with_one_process(tmp_path: Path) -> None:
    """With --jobs, the connection that served may be in another share: the share that guessed
    from it says so (partition_dependent), and the result is that of one process."""
    pcap, _ = c.fixture("tls13-large-transfer")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    cap = c.write(tmp_path / "pool.pcap", [*segs, *_mid_stream_copy(segs, client, client[1] - 100, 10**10)])
    one = [(r.client, r.server) for r in triage_capture(cap, jobs=1).reports]
    two = [(r.client, r.server) for r in triage_capture(cap, jobs=2).reports]
    assert two == one and one[1][1] == one[0][1]


def test_server_hello_names_the_server(tmp_path: Path) -> None:
    """The capture starts after the ClientHello: the ServerHello's sender is the server, even on
    the higher port, and the undecryptable reason says the ClientHello is what is missing."""
    pcap, keys = c.fixture("tls13-large-transfer")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    server = next((s.dst, s.dport) for s in segs if c.is_client(s, client))
    hello = next(k for k, s in enumerate(segs) if s.payload and not c.is_client(s, client))
    assert segs[hello].payload[0] == 22 and segs[hello].payload[5] == 2  # a ServerHello
    cap = c.write(tmp_path / "late.pcap", segs[hello:])
    events = c.decode(cap, keys)
    (conn,) = [e for e in events if isinstance(e, ConnectionEvent)]
    assert (conn.roles_from, conn.server) == ("server_hello", f"{server[0]}:{server[1]}")
    reasons = [e.message for e in events if isinstance(e, UndecryptableEvent)]
    assert reasons and all("the ClientHello is not in the capture" in m for m in reasons)
    # The application records are recovered from the key log's traffic secrets.
    assert {e.from_ for e in events if isinstance(e, RecoveredEvent)} == {"client", "server"}


def test_keys_turn_a_wrong_guess_round(tmp_path: Path) -> None:
    """Alone and on the higher port, the server is guessed wrong; with the key log, the
    direction that opens with a SERVER_TRAFFIC_SECRET is the server's: the roles are turned
    round before anything of the connection is shown (roles_from "keys"), the plaintext of each
    side is what the full capture gives that side, and triage blames the real closer, sure of it."""
    pcap, keys = c.fixture("tls13-large-transfer")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    server = next((s.dst, s.dport) for s in segs if c.is_client(s, client))
    cap = c.write(tmp_path / "alone.pcap", _mid_stream_copy(segs, client, client[1], 0))
    events = c.decode(cap, keys)
    (only,) = [e for e in events if isinstance(e, ConnectionEvent)]
    assert (only.roles_from, only.client, only.server) == (
        "keys",
        f"{client[0]}:{client[1]}",
        f"{server[0]}:{server[1]}",
    )
    recovered = {e.from_: e.label for e in events if isinstance(e, RecoveredEvent)}
    assert recovered == {"client": "CLIENT_TRAFFIC_SECRET_0", "server": "SERVER_TRAFFIC_SECRET_0"}
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]
    # Each side's decrypted records end the list of that side's records in the full capture.
    full = c.decode(pcap, keys)
    for side in ("client", "server"):
        mid = _records(events, side)
        assert all(d for d, _ in mid) and _records(full, side)[len(_records(full, side)) - len(mid) :] == mid
    assert len(_records(events, "server")) > 10

    (with_keys,) = triage_capture(cap, load_keys(cap, [keys])).reports
    assert (with_keys.client, with_keys.server) == (only.client, only.server)
    assert [v.code for v in with_keys.verdicts if v.severity != "info"] == ["capture_incomplete"]
    assert all(v.confidence == "high" for v in with_keys.verdicts)
    # Without keys the guess stands (backwards), and every verdict naming a side says how unsure.
    (without,) = triage_capture(cap).reports
    assert without.server == only.client
    named = [v for v in without.verdicts if v.by in ("client", "server")]
    assert named and all(v.confidence == "low" and "guessed from the ports" in v.detail for v in named)
