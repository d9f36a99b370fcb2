"""The committed fixture captures (made by scripts/make_fixtures.py) are what their manifest says.

tshark is the oracle: with each fixture's key log it must decrypt the handshake and show the
alerts, resumptions, key updates and extensions the manifest promises. The key logs themselves
must parse with capdebug's key log reader without a single issue.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from capdebug.crypto.keylog import KeyLog
from tests.tools import require

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]

pytestmark = pytest.mark.tools

FIELDS = [
    "tcp.stream",
    "tcp.srcport",
    "tcp.flags.syn",
    "tcp.flags.ack",
    "tcp.flags.fin",
    "tcp.flags.reset",
    "tls.handshake.type",
    "tls.alert_message.desc",
    "tls.handshake.extension.type",
    "tls.handshake.random",
]


@dataclass(frozen=True, slots=True)
class Row:
    stream: int
    side: str  # "client" | "server"
    syn: bool
    ack: bool
    fin: bool
    rst: bool
    handshake_types: list[int]
    alerts: list[int]
    extensions: list[int]
    randoms: list[bytes]


def _ints(cell: str) -> list[int]:
    return [int(x, 0) for x in cell.split(",") if x]


def _flag(cell: str) -> bool:
    return cell in ("1", "True", "true")


def tshark_rows(entry: dict[str, Any]) -> list[Row]:
    port = entry["server_port"]
    argv = [
        "tshark",
        "-n",
        "-r",
        str(FIXTURES / entry["pcap"]),
        "-o",
        f"tls.keylog_file:{FIXTURES / entry['keys']}",
    ]
    argv += ["-d", f"tcp.port=={port},tls", "-T", "fields", "-E", "separator=|"]
    for f in FIELDS:
        argv += ["-e", f]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout
    rows = []
    for line in out.splitlines():
        c = line.split("|")
        rows.append(
            Row(
                stream=int(c[0]),
                side="server" if int(c[1]) == port else "client",
                syn=_flag(c[2]),
                ack=_flag(c[3]),
                fin=_flag(c[4]),
                rst=_flag(c[5]),
                handshake_types=_ints(c[6]),
                alerts=_ints(c[7]),
                extensions=_ints(c[8]),
                randoms=[bytes.fromhex(r.replace(":", "")) for r in c[9].split(",") if r],
            )
        )
    return rows


def test_manifest_lists_every_file() -> None:
    names = [e["name"] for e in MANIFEST]
    assert len(names) == len(set(names)) >= 20
    on_disk = {p.stem for p in FIXTURES.glob("*.pcap")} | {p.stem for p in FIXTURES.glob("*.keys")}
    assert on_disk == set(names)
    for e in MANIFEST:
        assert (FIXTURES / e["pcap"]).is_file() and (FIXTURES / e["keys"]).is_file()
        assert e["tool"] and e["version"] and e["cipher_suite"].startswith("TLS_") and e["ending"]
        assert e["tls_version"] in ("1.2", "1.3")
    total = sum((FIXTURES / e["pcap"]).stat().st_size for e in MANIFEST)
    assert total < 4_000_000


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["name"] for e in MANIFEST])
def test_fixture_decrypts_as_promised(entry: dict[str, Any]) -> None:
    require("tshark")
    expect = entry["expect"]
    keylog = KeyLog.from_file(FIXTURES / entry["keys"])
    assert keylog.issues == []

    rows = tshark_rows(entry)
    streams = sorted({r.stream for r in rows})
    assert len(streams) == expect.get("connections", 1)
    assert sum(r.syn and not r.ack for r in rows) == len(streams)

    types = {t for r in rows for t in r.handshake_types}
    assert set(expect["handshake_types"]) <= types, "tshark did not decrypt the handshake"

    alerts = [{"from": r.side, "description": d} for r in rows for d in r.alerts]
    for want in expect["alerts"]:
        assert want in alerts
    if not expect["alerts"]:
        assert 0 not in {a["description"] for a in alerts}

    for stream in streams:
        mine = [r for r in rows if r.stream == stream]
        finished_from = {r.side for r in mine if 20 in r.handshake_types}
        if expect["handshake_complete"]:
            assert finished_from == {"client", "server"}, f"stream {stream}"
        else:
            assert finished_from <= {"server"}
        client_randoms = [
            rnd for r in mine if 1 in r.handshake_types and r.side == "client" for rnd in r.randoms
        ]
        assert client_randoms, "no ClientHello.random"
        if expect["handshake_complete"]:
            assert keylog.labels_missing(client_randoms[0], entry["tls_version"]) == []
        else:
            assert client_randoms[0] in keylog

    if "resumed" in expect:
        for stream, resumed in zip(streams, expect["resumed"], strict=True):
            server_types = {
                t for r in rows if r.stream == stream and r.side == "server" for t in r.handshake_types
            }
            assert (11 not in server_types) == resumed, f"stream {stream}"
    if expect.get("hello_retry_request"):
        assert sum(r.handshake_types.count(1) for r in rows) == expect["client_hellos"]
    if "key_updates" in expect:
        counted = Counter(r.side for r in rows for t in r.handshake_types if t == 24)
        assert dict(counted) == expect["key_updates"]
    if "extended_master_secret" in expect:
        server_hello_ext = {
            e for r in rows if 2 in r.handshake_types and r.side == "server" for e in r.extensions
        }
        assert (23 in server_hello_ext) == expect["extended_master_secret"]
    if "encrypt_then_mac" in expect:
        server_hello_ext = {
            e for r in rows if 2 in r.handshake_types and r.side == "server" for e in r.extensions
        }
        assert (22 in server_hello_ext) == expect["encrypt_then_mac"]
    if expect.get("early_data_accepted"):
        assert 5 in types  # EndOfEarlyData, only sent when the server accepted 0-RTT
    if "rst_from" in expect:
        assert {r.side for r in rows if r.rst} == {expect["rst_from"]}
    if "fin_without_close_notify" in expect:
        side = expect["fin_without_close_notify"]
        assert any(r.fin and r.side == side for r in rows)
        assert {"from": side, "description": 0} not in alerts
