"""TLS 1.3 0-RTT against OpenSSL, both ways (s_server -early_data; s_client -sess_in
-early_data), and a replayed ticket refused by the engine server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from capdebug.tls.connection import Connection
from capdebug.tls.events import EarlyDataReceived
from capdebug.tls.io import TLSSocket
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc
from tests.tools import require

from ._peers import TIMEOUT, EngineServer, engine_client
from ._pki import NOW, Pki, client_config, server_config

pytestmark = pytest.mark.tools


def test_engine_client_early_data_to_openssl(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_s_server(
        ["-tls1_3", "-cert", "ecdsa.pem", "-key", "ecdsa.key", "-early_data"], pki.folder
    )
    try:
        tls = engine_client(port, client_config(pki))
        tls.negotiate()
        tls.sendall(b"one\n")
        proc.wait_match("^one$")
        proc.write("ticket\n")
        assert tls.recv() == b"ticket\n"
        session = next(t.session for t in reversed(tls.tickets) if t.session is not None)
        assert session.max_early_data > 0
        tls.shutdown()
        tls.close()
        lines: list[str] = []
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        conn = Connection(
            client_config(pki, key_log_callback=lines.append),
            is_client=True,
            now=NOW,
            session=session,
            early_data=b"zero rtt hello\n",
        )
        again = TLSSocket(sock, conn)
        hs = again.negotiate()
        assert hs.resumed and hs.early_data is True
        proc.wait_match("zero rtt hello")
        assert any(line.startswith("CLIENT_EARLY_TRAFFIC_SECRET ") for line in lines)
        again.sendall(b"then 1-rtt\n")
        proc.wait_match("^then 1-rtt$")
        again.shutdown()
        again.close()
    finally:
        proc.close()


def echo(tls: TLSSocket) -> object:
    tls.negotiate()
    data = b"".join(e.data for e in tls.events if isinstance(e, EarlyDataReceived))
    early = data
    while chunk := tls.recv():
        data += chunk
        tls.sendall(chunk)
    tls.shutdown_send()
    return early, data


def test_openssl_client_early_data_to_engine_and_replay(pki: Pki, tmp_path: Path) -> None:
    require("openssl")
    cfg = server_config(pki, max_early_data=4096)
    sess = tmp_path / "sess.pem"
    early_file = tmp_path / "early.txt"
    early_file.write_bytes(b"openssl early\n")
    for round_, args in enumerate(
        (
            ["-sess_out", str(sess)],
            ["-sess_in", str(sess), "-early_data", str(early_file)],
            ["-sess_in", str(sess), "-early_data", str(early_file)],
        )
    ):
        server = EngineServer(cfg, echo)
        proc = Proc(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{server.port}",
                "-servername",
                "localhost",
                "-tls1_3",
                "-CAfile",
                "ca.pem",
                *args,
            ],
            cwd=str(pki.folder),
        )
        try:
            proc.wait_match(r"Verify return code: 0 \(ok\)")
            # An echo makes s_client read past the ticket, which -sess_out needs.
            proc.write(f"line {round_}\n")
            proc.wait_match(f"^line {round_}$")
            proc.write("Q\n")
            early, _ = server.join()  # type: ignore[misc]
            proc.wait_exit()
        finally:
            proc.close()
        out = proc.output()
        if round_ == 1:
            assert early == b"openssl early\n" and "Early data was accepted" in out
        elif round_ == 2:
            # The same ticket again: single use, so neither resumption nor 0-RTT (anti-replay).
            assert early == b"" and "Early data was rejected" in out
