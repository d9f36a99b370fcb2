"""TLS 1.2 connections made by the engine, captured by tcpdump, decrypt with the engine's key log
(CLIENT_RANDOM) in tshark (an independent implementation) and in ``capdebug decrypt``, which
must agree on what was inside."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from capdebug.tls.connection import Connection
from capdebug.tls.events import EarlyDataReceived
from capdebug.tls.io import TLSSocket
from capdebug.wire.constants import CipherSuite, ProtocolVersion
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

from ._interop12 import leaf_for
from ._peers import TIMEOUT, EngineServer, engine_client
from ._pki import NOW, Pki, client_config, server_config

pytestmark = [pytest.mark.tools]

CS = CipherSuite
CASES = [
    (CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, True),
    (CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, True),
    (CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, True),
    (CS.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, True),
    (CS.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, False),
    (CS.TLS_RSA_WITH_AES_128_GCM_SHA256, True),
]


@pytest.mark.parametrize(
    ("suite", "etm"), CASES, ids=lambda v: v.name if isinstance(v, CipherSuite) else f"etm={v}"
)
def test_tls12_capture_decrypts_in_tshark_and_capdebug(
    pki: Pki, tmp_path: Path, suite: CipherSuite, etm: bool
) -> None:
    require_root()
    require("tcpdump", "tshark")
    lines: list[str] = []

    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        request = tls.recv()
        tls.sendall(b"capdebug-reply:" + request)
        tls.shutdown()
        return request

    cfg = server_config(pki, leaf_for(suite), cipher_suites=(suite,), encrypt_then_mac=etm)
    server = EngineServer(cfg, handler)
    pcap = tmp_path / "engine12.pcap"
    with tcpdump(pcap, server.port, settle=0.5, extra=("-n",)):
        tls = engine_client(
            server.port, client_config(pki, cipher_suites=(suite,), key_log_callback=lines.append)
        )
        hs = tls.negotiate()
        assert hs.version is ProtocolVersion.TLS1_2 and hs.encrypt_then_mac is (etm and "CBC" in suite.name)
        tls.sendall(b"capdebug-request")
        assert tls.recv_all() == b"capdebug-reply:capdebug-request"
        tls.shutdown()
        tls.close()
        assert server.join() == b"capdebug-request"
    keylog = tmp_path / "keys.log"
    keylog.write_text("\n".join(lines) + "\n")
    assert [line.split()[0] for line in lines] == ["CLIENT_RANDOM"]

    base = [
        "tshark",
        "-n",
        "-r",
        str(pcap),
        "-o",
        f"tls.keylog_file:{keylog}",
        "-d",
        f"tcp.port=={server.port},tls",
    ]

    def tshark(*args: str) -> str:
        out = subprocess.run([*base, *args], capture_output=True, text=True, timeout=TIMEOUT * 3, check=True)
        return out.stdout

    types = {t for line in tshark("-Y", "tls.handshake", "-T", "fields", "-e", "tls.handshake.type").split()
             for t in line.split(",")}  # fmt: skip
    # 20 Finished is encrypted in TLS 1.2: seen only when the key log decrypted it.
    assert {"1", "2", "11", "14", "16", "20"} <= types
    payloads = tshark("-Y", "tls.app_data", "-T", "fields", "-e", "tls.segment.data", "-e", "data.data")
    text = bytes.fromhex("".join(payloads.split())).decode("latin-1")
    assert "capdebug-request" in text and "capdebug-reply:capdebug-request" in text
    alerts = tshark("-Y", "tls.alert_message", "-T", "fields", "-e", "tls.alert_message.desc")
    assert alerts.split().count("0") == 2  # close_notify each way, decrypted

    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from capdebug.cli.app import main; main()",
            "decrypt",
            str(pcap),
            "--keylog",
            str(keylog),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert not [e for e in events if e["event"] == "undecryptable"]
    app = [e for e in events if e["event"] == "app_data"]
    assert [(e["from"], e["length"], e["decrypted"]) for e in app] == [
        ("client", len(b"capdebug-request"), True),
        ("server", len(b"capdebug-reply:capdebug-request"), True),
    ]
    finished = [e for e in events if e["event"] == "handshake" and e["name"] == "finished"]
    assert [(e["from"], e["encrypted"]) for e in finished] == [("client", True), ("server", True)]
    closes = sorted((e["from"], e["name"]) for e in events if e["event"] == "alert")
    assert closes == [("client", "close_notify"), ("server", "close_notify")]


def _capture_resumed(pki: Pki, tmp_path: Path, *, tls12: bool) -> tuple[Path, Path, int]:
    """A first connection for the session (not captured), then the resumed one under tcpdump:
    TLS 1.3 with 0-RTT early data, or a TLS 1.2 abbreviated handshake (RFC 5077 ticket)."""
    top = ProtocolVersion.TLS1_2 if tls12 else ProtocolVersion.TLS1_3
    scfg = server_config(pki, max_early_data=1024, max_version=top)

    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        data = b"".join(e.data for e in tls.events if isinstance(e, EarlyDataReceived))
        data += tls.recv()
        tls.sendall(b"reply:" + data)
        tls.shutdown()
        return data

    server = EngineServer(scfg, handler)
    tls = engine_client(server.port, client_config(pki))
    tls.negotiate()
    tls.sendall(b"first")
    tls.recv_all()
    tls.shutdown()
    tls.close()
    server.join()
    session = next(t.session for t in reversed(tls.tickets) if t.session is not None)
    lines: list[str] = []
    server = EngineServer(scfg, handler)
    pcap = tmp_path / "resumed.pcap"
    with tcpdump(pcap, server.port, settle=0.5, extra=("-n",)):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        conn = Connection(
            client_config(pki, key_log_callback=lines.append),
            is_client=True,
            now=NOW,
            session=session,
            early_data=None if tls12 else b"zero-rtt-request",
        )
        again = TLSSocket(sock, conn)
        hs = again.negotiate()
        assert hs.resumed and (tls12 or hs.early_data is True)
        again.sendall(b"one-rtt-request")
        assert again.recv_all().startswith(b"reply:")
        again.shutdown()
        again.close()
        server.join()
    keylog = tmp_path / "resumed.keys"
    keylog.write_text("\n".join(lines) + "\n")
    return pcap, keylog, server.port


def _tshark_payloads(pcap: Path, keylog: Path, port: int) -> str:
    """The decrypted application data tshark shows, concatenated."""
    cmd = ["tshark", "-n", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-d", f"tcp.port=={port},tls"]
    cmd += ["-Y", "tls.app_data", "-T", "fields", "-e", "tls.segment.data", "-e", "data.data"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT * 3, check=True)
    return bytes.fromhex("".join(out.stdout.split())).decode("latin-1")


def _capdebug_decrypt(pcap: Path, keylog: Path) -> list[dict[str, object]]:
    cmd = [sys.executable, "-c", "from capdebug.cli.app import main; main()", "decrypt", str(pcap)]
    done = subprocess.run(
        [*cmd, "--keylog", str(keylog), "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_tls13_0rtt_capture_decrypts_in_tshark_and_capdebug(pki: Pki, tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "tshark")
    pcap, keylog, port = _capture_resumed(pki, tmp_path, tls12=False)
    assert "CLIENT_EARLY_TRAFFIC_SECRET" in keylog.read_text()
    text = _tshark_payloads(pcap, keylog, port)
    assert "zero-rtt-request" in text and "one-rtt-request" in text and "reply:zero-rtt-request" in text
    events = _capdebug_decrypt(pcap, keylog)
    assert not [e for e in events if e["event"] == "undecryptable"], events
    client_app = [e["length"] for e in events if e["event"] == "app_data" and e["from"] == "client"]
    assert client_app == [len(b"zero-rtt-request"), len(b"one-rtt-request")]


def test_tls12_resumed_capture_decrypts_in_tshark_and_capdebug(pki: Pki, tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "tshark")
    pcap, keylog, port = _capture_resumed(pki, tmp_path, tls12=True)
    text = _tshark_payloads(pcap, keylog, port)
    assert "one-rtt-request" in text and "reply:one-rtt-request" in text
    events = _capdebug_decrypt(pcap, keylog)
    assert not [e for e in events if e["event"] == "undecryptable"], events
    assert [e["from"] for e in events if e["event"] == "app_data" and e["decrypted"]] == ["client", "server"]
