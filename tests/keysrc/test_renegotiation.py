"""TLS 1.2 renegotiation, initiated by the client (s_client ``R``) and by the server (s_server
``r``): the second handshake is decoded under the first keys, and its own keys (its
CLIENT_RANDOM line) take over at its ChangeCipherSpec; events equal tshark's."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from capdebug.analysis.decode import DecodeOptions
from capdebug.analysis.events import AlertEvent, DecodeEvent, HandshakeEvent, UndecryptableEvent
from capdebug.analysis.sessions import embed_keylog, export_connections, iter_events, load_keys, scan_sessions
from capdebug.api import triage_capture
from capdebug.crypto.keylog import KeyLog
from capdebug.pcap.open import open_capture
from tests.decode import craft
from tests.oracle import by_frame, capdebug_rows, tshark_rows
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

from .peers import rsa_identity

TLS12 = ["-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "-no_tls1_3"]


def _renegotiated(folder: Path, by: str) -> tuple[Path, Path, int]:
    cert, key = rsa_identity(folder)
    capture, keylog = folder / "reneg.pcap", folder / "server.keys"
    # OpenSSL 3 refuses a client's renegotiation unless told otherwise (-client_renegotiation).
    allow = ["-client_renegotiation"] if by == "client" else []
    client_renegotiates = by in ("client", "refused")
    args = ["-cert", str(cert), "-key", str(key), "-keylogfile", str(keylog), *allow, *TLS12]
    server, port = openssl_s_server(args)
    try:
        with tcpdump(capture, port):
            client = Proc(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *TLS12], name="s_client")
            client.wait_for("Verify return code")
            client.write("before\n")
            server.wait_for("before")
            if client_renegotiates:
                client.write("R\n")
                client.wait_for("RENEGOTIATING")
            else:
                server.write("r\n")
                # The client answers the HelloRequest when it next reads.
            time.sleep(0.5)
            if by != "refused":
                client.write("after\n")
                server.wait_for("after")
                client.write("Q\n")
            client.finish(ok=None)
    finally:
        server.close()
    return capture, keylog, port


def _decode(capture: Path, keylog: Path) -> tuple[list[DecodeEvent], list[bytes]]:
    keys = load_keys(capture, [keylog] if keylog.exists() else [], use_env=False)
    plain: list[bytes] = []
    options = DecodeOptions(app_data_sink=lambda conn, who, data: plain.append(data))
    with open_capture(capture) as reader:
        return list(iter_events(reader, keys.keylog, options)), plain


@pytest.mark.parametrize("by", ["client", "server"])
def test_renegotiation_decrypts_like_tshark(tmp_path: Path, by: str, monkeypatch: pytest.MonkeyPatch) -> None:
    require("openssl", "tcpdump", "tshark")
    require_root()
    capture, keylog, port = _renegotiated(tmp_path, by)
    assert len(KeyLog.from_file(keylog).client_randoms()) == 2  # two handshakes, two lines
    events, plain = _decode(capture, keylog)
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]
    hellos = [e for e in events if isinstance(e, HandshakeEvent) and e.name == "client_hello"]
    assert len(hellos) == 2 and hellos[1].encrypted  # the second under the first keys
    finished = [e for e in events if isinstance(e, HandshakeEvent) and e.name == "finished"]
    assert len(finished) == 4
    if by == "server":
        assert any(isinstance(e, HandshakeEvent) and e.name == "hello_request" for e in events)
    assert b"before\n" in plain and b"after\n" in plain  # "after" under the renegotiated keys
    monkeypatch.setenv("WIRESHARK_CONFIG_DIR", str(craft.wireshark_config(tmp_path / "ws", [port])))
    assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(capture, keylog))
    # embed/export keep both handshakes' lines: the scan (with the key log) sees both hellos.
    log = KeyLog.from_file(keylog)
    sessions = scan_sessions(capture, log)
    assert len(sessions) == 1 and len(sessions[0].client_randoms) == 2
    result = embed_keylog(capture, log, tmp_path / "embedded.pcapng")
    assert result.lines_embedded == 2
    embedded, _ = _decode(tmp_path / "embedded.pcapng", tmp_path / "empty.keys")
    assert by_frame(capdebug_rows(embedded)) == by_frame(capdebug_rows(events))
    _, _, lines = export_connections(capture, tmp_path / "export.pcapng", log, conns=[1])
    assert lines == 2


def test_refused_renegotiation(tmp_path: Path) -> None:
    """OpenSSL 3's server refuses a client's renegotiation by default: a warning
    no_renegotiation alert, then the client's fatal handshake_failure."""
    require("openssl", "tcpdump")
    require_root()
    capture, keylog, _ = _renegotiated(tmp_path, "refused")
    events, _ = _decode(capture, keylog)
    alerts = [(e.from_, e.level, e.description) for e in events if isinstance(e, AlertEvent)]
    assert ("server", 1, 100) in alerts  # warning no_renegotiation (RFC 5246 7.2.2)
    assert alerts[-1][0] == "client" and alerts[-1][1] == 2  # then the client gives up
    report = triage_capture(capture, load_keys(capture, [keylog], use_env=False)).reports[0]
    codes = {v.code: v for v in report.verdicts}
    refused = codes["renegotiation_refused"]
    assert refused.by == "client" and refused.severity == "error"
    assert "the server refused the client's renegotiation" in refused.detail
    assert codes["warning_alert"].severity == "warning"
    text = json.dumps(report.to_json())
    # Neither the cipher-suite guess for handshake_failure nor a fatal alert's advice.
    assert "no cipher suite" not in text and '"alert"' not in text
