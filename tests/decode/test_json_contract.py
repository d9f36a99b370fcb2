"""`capdebug decrypt --json` keeps ARCHITECTURE.md's contract on every fixture and on crafted
captures (duplicated SYN/FIN, FIN piggybacked on the last record, IPv6)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from capdebug.cli.app import app
from tests.decode import craft as c

MANIFEST = json.loads((c.FIXTURES / "manifest.json").read_text())["fixtures"]
NAMES = [f["name"] for f in MANIFEST]

_COMMON = {"event", "conn", "frame", "ts", "from"}
FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # event: (exactly these keys, documented optional extras)
    "connection": ({"event", "conn", "client", "server", "first_frame"}, {"roles_from", "interface"}),
    "tcp": (_COMMON | {"flag"}, set()),
    "ccs": (set(_COMMON), set()),
    "alert": (_COMMON | {"level", "description", "name", "encrypted"}, {"likely"}),
    "app_data": (_COMMON | {"length", "decrypted"}, {"early_data"}),
    "heartbeat": (_COMMON | {"type"}, set()),
    "undecryptable": ({"event", "conn", "frame", "from", "reason"}, set()),
    "gap": (_COMMON | {"size"}, {"cause", "cut_frames"}),
    # A connection's TCP health at its end (net/health.py): both sides' facts, no "from".
    "tcp_health": ({"event", "conn", "frame", "ts", "connect", "client", "server"}, set()),
    "upgrade": (_COMMON | {"protocol", "command", "command_frame", "reply", "accepted"}, set()),
    "plaintext": (_COMMON | {"kind", "text"}, set()),
}


def _run(capture: Path, keys: Path | None) -> list[dict[str, Any]]:
    args = ["decrypt", str(capture), "--json", "--no-env"]
    if keys is not None:
        args += ["--keylog", str(keys)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def check_contract(objs: list[dict[str, Any]]) -> None:
    assert objs
    seen: list[int] = []
    flags: set[tuple[int, str, str]] = set()
    last_frame = 0
    for i, o in enumerate(objs):
        assert isinstance(o.get("event"), str) and isinstance(o.get("conn"), int), o
        ev, conn = o["event"], o["conn"]
        if ev == "handshake":
            need = _COMMON | {"type", "name", "encrypted"}
            assert need <= o.keys(), o
            assert (
                isinstance(o["type"], int) and isinstance(o["name"], str) and isinstance(o["encrypted"], bool)
            )
        else:
            assert ev in FIELDS, o
            exact, extra = FIELDS[ev]
            assert exact <= o.keys() <= exact | extra, (ev, sorted(o.keys()))
        if ev == "connection":
            assert conn not in seen
            assert not seen or conn > seen[-1]
            seen.append(conn)
            assert isinstance(o["first_frame"], int) and o["first_frame"] >= 1
            for k in ("client", "server"):
                host, _, port = o[k].rpartition(":")
                assert port.isdigit() and 0 < int(port) < 65536
                if ":" in host:
                    assert host.startswith("[") and host.endswith("]"), o[k]
            continue
        assert conn in seen, f"event before its connection: {o}"
        assert ev == "tcp_health" or o["from"] in ("client", "server")
        assert isinstance(o["frame"], int) and o["frame"] >= 1
        assert o["frame"] >= last_frame, "not in capture order"
        last_frame = o["frame"]
        if "ts" in o:
            assert isinstance(o["ts"], float | int)
        if ev == "tcp":
            assert o["flag"] in ("SYN", "FIN", "RST")
            key = (conn, o["from"], o["flag"])
            assert key not in flags, f"{o['flag']} reported twice"
            flags.add(key)
            if o["flag"] in ("FIN", "RST"):
                # Nothing of that frame's records comes after its FIN or RST.
                later = [x for x in objs[i + 1 :] if x["conn"] == conn and x.get("frame") == o["frame"]]
                assert all(x["event"] in ("tcp", "tcp_health") for x in later), later
        elif ev == "alert":
            assert o["level"] is None or isinstance(o["level"], int)
            assert isinstance(o["encrypted"], bool)
        elif ev == "app_data":
            assert isinstance(o["length"], int) and isinstance(o["decrypted"], bool)
        elif ev == "undecryptable":
            assert set(o["reason"]) == {"code", "message"}
            assert o["reason"]["code"].islower() and o["reason"]["message"]
    assert seen[0] >= 1


@pytest.mark.parametrize("name", NAMES)
def test_contract_on_fixture(name: str) -> None:
    pcap, keys = c.fixture(name)
    objs = _run(pcap, keys)
    check_contract(objs)
    # Real captures starting with a SYN: numbered 1, 2, ... in order of first appearance.
    conns = [o for o in objs if o["event"] == "connection"]
    assert [o["conn"] for o in conns] == list(range(1, len(conns) + 1))
    assert [o["first_frame"] for o in conns] == sorted(o["first_frame"] for o in conns)
    assert all(o["roles_from"] == "syn" for o in conns)


@pytest.mark.parametrize("name", ["tls13-aes128gcm", "tls12-ecdhe-aes128gcm"])
def test_contract_without_keys(name: str) -> None:
    check_contract(_run(c.fixture(name)[0], None))


def test_retransmitted_syn_and_fin_reported_once(tmp_path: Path) -> None:
    pcap, keys = c.fixture("tls13-aes128gcm")
    segs = c.read_segments(pcap)
    crafted: list[c.Seg] = []
    for s in segs:
        crafted.append(s)
        if s.flags & (c.SYN | c.FIN):
            crafted += [replace(s, ts_ns=s.ts_ns + 1), replace(s, ts_ns=s.ts_ns + 2)]
    objs = _run(c.write(tmp_path / "dup.pcap", crafted), keys)
    check_contract(objs)
    tcp = [(o["from"], o["flag"]) for o in objs if o["event"] == "tcp"]
    assert sorted(tcp) == sorted([("client", "SYN"), ("server", "SYN"), ("client", "FIN"), ("server", "FIN")])


def test_fin_after_the_records_its_frame_completes(tmp_path: Path) -> None:
    """The FIN rides on the segment carrying the close_notify: alert first, then FIN."""
    pcap, keys = c.fixture("tls13-aes128gcm")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    crafted = list(segs)
    for from_client in (True, False):
        fin = next(
            i for i, s in enumerate(crafted) if s.flags & c.FIN and c.is_client(s, client) == from_client
        )
        last = max(i for i in c.data_segs(crafted, client, from_client))
        crafted[last] = replace(crafted[last], flags=crafted[last].flags | c.FIN)
        del crafted[fin]
    objs = _run(c.write(tmp_path / "fin.pcap", crafted), keys)
    check_contract(objs)
    for who in ("client", "server"):
        mine = [o for o in objs if o.get("from") == who and o["event"] in ("alert", "tcp")]
        assert [o["event"] for o in mine][-2:] == ["alert", "tcp"]
        assert mine[-1]["flag"] == "FIN" and mine[-1]["frame"] == mine[-2]["frame"]


def test_fin_after_records_released_by_the_filling_frame(tmp_path: Path) -> None:
    """The server's close_notify segment is captured after its FIN: the frame that fills the
    hole completes both the alert and the FIN, and the alert comes first."""
    pcap, keys = c.fixture("tls13-aes128gcm")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    last = max(c.data_segs(segs, client, False))
    fin = next(i for i, s in enumerate(segs) if s.flags & c.FIN and not c.is_client(s, client))
    crafted = list(segs)
    crafted[last], crafted[fin] = crafted[fin], replace(crafted[last], ack=crafted[fin].ack)
    objs = _run(c.write(tmp_path / "late-alert.pcap", crafted), keys)
    check_contract(objs)
    mine = [o for o in objs if o.get("from") == "server" and o["event"] in ("alert", "tcp")]
    assert [(o["event"], o["frame"]) for o in mine[-2:]] == [("alert", fin + 1), ("tcp", fin + 1)]


def test_rst_fixture_order() -> None:
    objs = _run(*c.fixture("tls13-server-rst"))
    check_contract(objs)
    assert [o["flag"] for o in objs if o["event"] == "tcp"][-1] == "RST"


def test_ipv6_endpoints_in_json(tmp_path: Path) -> None:
    pcap, keys = c.fixture("tls12-ecdhe-aes128gcm")
    objs = _run(c.write(tmp_path / "v6.pcap", c.read_segments(pcap), "ipv6"), keys)
    check_contract(objs)
    conn = objs[0]
    assert conn["client"].startswith("[::1]:") and conn["server"].startswith("[::1]:")
