"""TLS 1.3 and TLS 1.2 resumption against OpenSSL, both ways: the engine resumes an openssl s_server
session from its ticket, and openssl s_client resumes an engine session (-sess_out/-sess_in);
the CLI writes and reads a session file (--sess-out/--sess-in)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from capdebug.tls.connection import Connection
from capdebug.tls.io import TLSSocket
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc
from tests.tools import require

from ._peers import TIMEOUT, EngineServer, engine_client
from ._pki import NOW, Pki, client_config, server_config

pytestmark = pytest.mark.tools


def test_engine_client_resumes_an_openssl_session(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_s_server(["-tls1_3", "-cert", "ecdsa.pem", "-key", "ecdsa.key"], pki.folder)
    try:
        tls = engine_client(port, client_config(pki))
        assert not tls.negotiate().resumed
        tls.sendall(b"first\n")
        proc.wait_match("^first$")
        proc.write("ticket please\n")
        assert tls.recv() == b"ticket please\n"  # OpenSSL's tickets came before it
        sessions = [t.session for t in tls.tickets if t.session is not None]
        assert sessions
        tls.shutdown()
        tls.close()

        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        again = TLSSocket(sock, Connection(client_config(pki), is_client=True, now=NOW, session=sessions[-1]))
        hs = again.negotiate()
        assert hs.resumed and hs.peer_certificates == ()
        again.sendall(b"resumed\n")
        proc.wait_match("^resumed$")
        again.shutdown()
        again.close()
    finally:
        proc.close()


def echo_once(tls: TLSSocket) -> object:
    hs = tls.negotiate()
    data = b""
    while chunk := tls.recv():
        data += chunk
        tls.sendall(chunk)
    tls.shutdown_send()
    return hs.resumed, data


def test_openssl_client_resumes_an_engine_session(pki: Pki, tmp_path: Path) -> None:
    require("openssl")
    cfg = server_config(pki)
    sess = tmp_path / "sess.pem"
    for round_, flag in enumerate(("-sess_out", "-sess_in")):
        server = EngineServer(cfg, echo_once)
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
                flag,
                str(sess),
            ],
            cwd=str(pki.folder),
        )
        try:
            proc.wait_match(r"Verify return code: 0 \(ok\)")
            proc.write(f"round {round_}\n")
            proc.wait_match(f"^round {round_}$")
            proc.write("Q\n")
            resumed, data = server.join()  # type: ignore[misc]
            proc.wait_exit()
        finally:
            proc.close()
        assert data == f"round {round_}\n".encode()
        assert resumed is (round_ == 1)
        assert ("Reused, TLSv1.3" in proc.output()) is (round_ == 1)


def test_cli_sess_out_then_sess_in(pki: Pki, tmp_path: Path) -> None:
    require("openssl")
    proc, port = openssl_s_server(["-tls1_3", "-cert", "ecdsa.pem", "-key", "ecdsa.key"], pki.folder)
    sess = tmp_path / "session.json"
    cli = [sys.executable, "-c", "from capdebug.cli.app import main; main()", "connect"]
    target = ["--ca", str(pki.ca_pem), "--sni", "localhost", f"127.0.0.1:{port}"]
    try:
        outs = []
        for opt in ("--sess-out", "--sess-in"):
            run = subprocess.Popen(
                [*cli, *target, opt, str(sess), "--send", "hi\n"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            proc.wait_match("^hi$")
            proc.write("bye\n")  # s_server: then we close our side
            _out, errtext = run.communicate(timeout=TIMEOUT * 2)
            outs.append(errtext)
            if opt == "--sess-out":
                assert stat.S_IMODE(os.stat(sess).st_mode) == 0o600
    finally:
        proc.close()
    assert "resumed" not in outs[0] and "session written to" in outs[0]
    assert "resumed" in outs[1], outs[1]


@pytest.mark.parametrize("ticket", [True, False], ids=["ticket", "session-id"])
def test_engine_client_resumes_an_openssl_tls12_session(pki: Pki, ticket: bool) -> None:
    require("openssl")
    args = ["-tls1_2", "-cert", "ecdsa.pem", "-key", "ecdsa.key"] + ([] if ticket else ["-no_ticket"])
    proc, port = openssl_s_server(args, pki.folder)
    try:
        tls = engine_client(port, client_config(pki))
        assert tls.negotiate().version == 0x0303
        sessions = [t.session for t in tls.tickets if t.session is not None]
        assert len(sessions) == 1 and bool(sessions[0].ticket) is ticket
        tls.shutdown()
        tls.close()
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        again = TLSSocket(sock, Connection(client_config(pki), is_client=True, now=NOW, session=sessions[0]))
        hs = again.negotiate()
        assert hs.resumed and hs.version == 0x0303
        again.sendall(b"resumed 1.2\n")
        proc.wait_match("^resumed 1.2$")
        again.shutdown()
        again.close()
    finally:
        proc.close()


@pytest.mark.parametrize("ticket", [True, False], ids=["ticket", "session-id"])
def test_openssl_client_resumes_an_engine_tls12_session(pki: Pki, tmp_path: Path, ticket: bool) -> None:
    require("openssl")
    cfg = server_config(pki, session_tickets=1 if ticket else 0)
    sess = tmp_path / "sess12.pem"
    for round_, flag in enumerate(("-sess_out", "-sess_in")):
        server = EngineServer(cfg, echo_once)
        proc = Proc(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{server.port}",
                "-servername",
                "localhost",
                "-tls1_2",
                "-CAfile",
                "ca.pem",
                flag,
                str(sess),
            ],
            cwd=str(pki.folder),
        )
        try:
            proc.wait_match(r"Verify return code: 0 \(ok\)")
            proc.write(f"r{round_}\n")
            proc.wait_match(f"^r{round_}$")
            proc.write("Q\n")
            resumed, _ = server.join()  # type: ignore[misc]
            proc.wait_exit()
        finally:
            proc.close()
        assert resumed is (round_ == 1)
        assert ("Reused, TLSv1.2" in proc.output()) is (round_ == 1)
        if round_ == 0:
            assert ("TLS session ticket:" in proc.output()) is ticket
