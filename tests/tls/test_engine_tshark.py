"""The key log the engine's callback produced decrypts a real tcpdump capture of that
connection in tshark: the oracle is an independent TLS implementation (Wireshark's)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from capdebug.tls.io import TLSSocket
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

from ._peers import TIMEOUT, EngineServer, engine_client
from ._pki import Pki, client_config, server_config

pytestmark = [pytest.mark.tools]


def test_key_log_decrypts_a_tcpdump_capture_in_tshark(pki: Pki, tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "tshark")
    lines: list[str] = []

    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        request = tls.recv()
        tls.sendall(b"capdebug-reply:" + request)
        tls.shutdown()
        return request

    server = EngineServer(server_config(pki, key_log_callback=lines.append), handler)
    pcap = tmp_path / "engine.pcap"
    # The capture stops 0.5 s after the block, once the last packets are written.
    with tcpdump(pcap, server.port, settle=0.5, extra=("-n",)):
        tls = engine_client(server.port, client_config(pki))
        tls.negotiate()
        tls.sendall(b"capdebug-request")
        assert tls.recv_all() == b"capdebug-reply:capdebug-request"
        tls.shutdown()
        tls.close()
        assert server.join() == b"capdebug-request"
    keylog = tmp_path / "keys.log"
    keylog.write_text("\n".join(lines) + "\n")

    base = ["tshark", "-n", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}"]
    base += ["-d", f"tcp.port=={server.port},tls"]

    def tshark(*args: str) -> str:
        out = subprocess.run([*base, *args], capture_output=True, text=True, timeout=TIMEOUT * 3, check=True)
        return out.stdout

    types = {
        t
        for line in tshark("-Y", "tls.handshake", "-T", "fields", "-e", "tls.handshake.type").split()
        for t in line.split(",")
    }
    # 8 EncryptedExtensions, 11 Certificate, 15 CertificateVerify, 20 Finished, 4 NewSessionTicket:
    # all inside protected records, visible only if the key log decrypted them.
    assert {"1", "2", "8", "11", "15", "20", "4"} <= types
    payloads = tshark("-Y", "tls.app_data", "-T", "fields", "-e", "tls.segment.data", "-e", "data.data")
    text = bytes.fromhex("".join(payloads.split())).decode("latin-1")
    assert "capdebug-request" in text and "capdebug-reply:capdebug-request" in text
    alerts = tshark("-Y", "tls.alert_message", "-T", "fields", "-e", "tls.alert_message.desc")
    assert alerts.split().count("0") == 2  # close_notify each way, decrypted
