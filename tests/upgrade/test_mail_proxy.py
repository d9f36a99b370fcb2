"""Real IMAP/POP3 STARTTLS (dovecot, ``openssl s_client -starttls imap|pop3``), HTTP CONNECT
through a real proxy (tinyproxy, curl, openssl s_server), and traffic that is not TLS where TLS
was expected (a ClientHello answered by an HTTP server; plain HTTP sent to a TLS port)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from capdebug.analysis.events import PlaintextEvent
from tests.support.peers import openssl_s_server, self_signed_localhost
from tests.support.proc import Proc
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

from ._harness import events, handshake_rows, s_client, tshark_handshake_rows, upgrades, verdict_codes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"nothing listens on {port}") from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[tuple[int, int]]:
    require_root()
    require("dovecot", "tcpdump", "tshark", "openssl")
    root = Path(tempfile.mkdtemp(prefix="capdebug-dovecot-"))
    root.chmod(0o755)
    cert, key = self_signed_localhost(root, ec.generate_private_key(ec.SECP256R1()))
    imap, pop3 = _free_port(), _free_port()
    (root / "dovecot.conf").write_text(
        f"base_dir = {root}/run\nstate_dir = {root}/state\nlog_path = {root}/log\n"
        "protocols = imap pop3\nlisten = 127.0.0.1\nssl = yes\n"
        f"ssl_cert = <{cert}\nssl_key = <{key}\nauth_mechanisms = plain\n"
        "passdb {\n driver = static\n args = password=x\n}\n"
        f"userdb {{\n driver = static\n args = uid=nobody gid=nogroup home={root}/home\n}}\n"
        f"service imap-login {{\n inet_listener imap {{\n port = {imap}\n }}\n"
        " inet_listener imaps {\n port = 0\n }\n}\n"
        f"service pop3-login {{\n inet_listener pop3 {{\n port = {pop3}\n }}\n"
        " inet_listener pop3s {\n port = 0\n }\n}\n"
    )
    proc = subprocess.Popen(
        [shutil.which("dovecot") or "/usr/sbin/dovecot", "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(imap, proc)
        _wait_port(pop3, proc)
        yield imap, pop3
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize(
    ("proto", "command", "reply_start"), [("imap", "STARTTLS", ". OK"), ("pop3", "STLS", "+OK")]
)
def test_dovecot_starttls_decrypted_like_tshark(
    dovecot: tuple[int, int], tmp_path: Path, proto: str, command: str, reply_start: str
) -> None:
    port = dovecot[0] if proto == "imap" else dovecot[1]
    pcap, keylog = tmp_path / f"{proto}.pcap", tmp_path / "keys.txt"
    with tcpdump(pcap, port):
        s_client(["-connect", f"127.0.0.1:{port}", "-starttls", proto, "-keylogfile", str(keylog)])
    evs = events(pcap, keylog)
    (up,) = upgrades(evs)
    assert (up.protocol, up.accepted) == (proto, True)
    assert up.command.upper().endswith(command) and up.reply.startswith(reply_start), up
    ours = handshake_rows(evs)
    assert ours[0][0] > up.frame and {t for _, t in ours} >= {1, 2, 8, 11, 15, 20}
    decode_as = f"tcp.port=={port},{'pop' if proto == 'pop3' else 'imap'}"
    assert ours == tshark_handshake_rows(pcap, keylog, decode_as)
    assert "upgraded" in verdict_codes(pcap, keylog)


def test_http_connect_through_tinyproxy(tmp_path: Path) -> None:
    require_root()
    require("tinyproxy", "curl", "tcpdump", "tshark", "openssl")
    cert, key = self_signed_localhost(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    server, tls_port = openssl_s_server(["-cert", str(cert), "-key", str(key), "-www"])
    proxy_port = _free_port()
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text(f"User nobody\nGroup nogroup\nPort {proxy_port}\nListen 127.0.0.1\nAllow 127.0.0.1\n")
    proxy = subprocess.Popen(
        ["tinyproxy", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    pcap, keylog = tmp_path / "connect.pcap", tmp_path / "keys.txt"
    try:
        _wait_port(proxy_port, proxy)
        with tcpdump(pcap, proxy_port):
            done = subprocess.run(
                ["curl", "-sk", "-x", f"http://127.0.0.1:{proxy_port}", f"https://localhost:{tls_port}/"],
                capture_output=True, timeout=30, env={**os.environ, "SSLKEYLOGFILE": str(keylog)},
            )  # fmt: skip
    finally:
        proxy.terminate()
        proxy.wait(20)
        server.kill()
    assert done.returncode == 0, done.stderr
    evs = events(pcap, keylog)
    (up,) = upgrades(evs)
    assert up.protocol == "http-connect" and up.accepted and up.reply.startswith("HTTP/1.")
    assert up.command == f"CONNECT localhost:{tls_port} HTTP/1.1"
    ours = handshake_rows(evs)
    assert ours and ours[0][0] > up.frame and 20 in {t for _, t in ours}
    # tshark's http dissector hands the tunnel to TLS after the 200.
    assert ours == tshark_handshake_rows(pcap, keylog, f"tcp.port=={proxy_port},http")


def test_client_hello_answered_by_http_server(tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "openssl")
    port = _free_port()
    http = Proc(["python3", "-m", "http.server", "--bind", "127.0.0.1", str(port)], cwd=tmp_path)
    pcap = tmp_path / "tls-to-http.pcap"
    try:
        _wait_port(port, http.p)
        with tcpdump(pcap, port):
            s_client(["-connect", f"127.0.0.1:{port}"])
    finally:
        http.kill()
    evs = events(pcap, None)
    (p,) = [e for e in evs if isinstance(e, PlaintextEvent)]
    # Python's server reads the binary request line as HTTP/0.9 and answers its error page
    # (code 400) without a status line.
    assert (p.from_, p.kind) == ("server", "http") and p.text.startswith("<!DOCTYPE HTML>"), p
    assert verdict_codes(pcap, None).get("not_tls_reply") == "server"


def test_plain_http_sent_to_a_tls_port(tmp_path: Path) -> None:
    require_root()
    require("tcpdump", "openssl", "curl")
    cert, key = self_signed_localhost(tmp_path, ec.generate_private_key(ec.SECP256R1()))
    port = 8883  # a TLS port (MQTT over TLS) of TLS_PORTS
    server = Proc(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(key)]
    )
    pcap = tmp_path / "http-to-tls.pcap"
    try:
        server.wait_match(r"^ACCEPT")
        with tcpdump(pcap, port):
            subprocess.run(
                ["curl", "-s", "-m", "5", f"http://127.0.0.1:{port}/"], capture_output=True, timeout=30
            )
    finally:
        server.kill()
    evs = events(pcap, None)
    client = [e for e in evs if isinstance(e, PlaintextEvent) and e.from_ == "client"]
    assert client and client[0].kind == "http" and client[0].text.startswith("GET / HTTP/1.1")
    assert verdict_codes(pcap, None).get("plaintext_to_tls_port") == "client"
