"""TLS 1.2 interop over real loopback sockets, both directions, every suite: the engine against
openssl s_server/s_client, GnuTLS (gnutls-serv/gnutls-cli), Python's ssl and curl; and the
negative cases of version negotiation (mismatch, downgrade sentinel, TLS_FALLBACK_SCSV) and
renegotiation, each against a real peer."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest

from capdebug.crypto.keylog import KeyLog
from capdebug.errors import TLSError
from capdebug.tls.config import ClientAuth
from capdebug.tls.events import RenegotiationRefused
from capdebug.tls.io import TLSSocket
from capdebug.wire.constants import AlertDescription, CipherSuite, ProtocolVersion
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc
from tests.tools import require

from ._interop12 import CBC, SUITES12, StripVersionsProxy, free_port, gnutls_priority, leaf_for, openssl_name
from ._peers import TIMEOUT, EngineServer, engine_client
from ._pki import Pki, client_config, server_config

pytestmark = pytest.mark.tools

TLS12 = ProtocolVersion.TLS1_2
TLS13 = ProtocolVersion.TLS1_3


def secrets(text: str) -> set[tuple[str, bytes, bytes]]:
    return {(e.label, e.client_random, e.secret) for e in KeyLog.parse(text).entries()}


def echo(tls: TLSSocket) -> object:
    tls.negotiate()
    received = b""
    while data := tls.recv():
        received += data
        tls.sendall(data)
    tls.shutdown_send()
    return received


def s_client(port: int, *args: str, cwd: Path) -> Proc:
    return Proc(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-servername",
            "localhost",
            "-CAfile",
            "ca.pem",
            "-verify_return_error",
            *args,
        ],
        cwd=str(cwd),
    )


def engine_suites(suite: CipherSuite) -> tuple[CipherSuite, ...]:
    return (suite,)


# ---------------------------------------------------------------- openssl


@pytest.mark.parametrize(("suite", "etm"), [(s, True) for s in SUITES12] + [(s, False) for s in CBC])
def test_client_vs_openssl_s_server(pki: Pki, tmp_path: Path, suite: CipherSuite, etm: bool) -> None:
    require("openssl")
    keylog = tmp_path / "openssl.keys"
    leaf = leaf_for(suite)
    args = ["-tls1_2", "-cert", f"{leaf}.pem", "-key", f"{leaf}.key", "-cipher", openssl_name(suite)]
    proc, port = openssl_s_server([*args, "-keylogfile", str(keylog)], pki.folder)
    lines: list[str] = []
    try:
        tls = engine_client(
            port,
            client_config(pki, cipher_suites=(suite,), encrypt_then_mac=etm, key_log_callback=lines.append),
        )
        hs = tls.negotiate()
        assert hs.version is TLS12 and hs.cipher_suite is suite
        assert hs.extended_master_secret
        assert hs.encrypt_then_mac is (etm and suite in CBC)
        tls.sendall(b"hello from capdebug 1.2\n")
        proc.wait_match("^hello from capdebug 1.2$")
        proc.write("hello from openssl\n")
        assert tls.recv() == b"hello from openssl\n"
        tls.shutdown()
        tls.close()
    finally:
        proc.close()
    assert secrets("\n".join(lines)) == secrets(keylog.read_text())
    assert [e.label for e in KeyLog.parse("\n".join(lines)).entries()] == ["CLIENT_RANDOM"]


@pytest.mark.parametrize("suite", SUITES12, ids=lambda s: s.name)
def test_server_vs_openssl_s_client(pki: Pki, tmp_path: Path, suite: CipherSuite) -> None:
    require("openssl")
    lines: list[str] = []
    cfg = server_config(pki, leaf_for(suite), cipher_suites=(suite,), key_log_callback=lines.append)
    server = EngineServer(cfg, echo)
    keylog = tmp_path / "s_client.keys"
    proc = s_client(
        server.port, "-tls1_2", "-cipher", openssl_name(suite), "-keylogfile", str(keylog), cwd=pki.folder
    )
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        proc.wait_match(rf"Cipher is {openssl_name(suite)}")
        proc.write("echo me\n")
        proc.wait_match("^echo me$")
        proc.write("Q\n")
        assert server.join() == b"echo me\n"
        proc.wait_exit()
    finally:
        proc.close()
    assert "Extended master secret: yes" in proc.output()
    assert secrets("\n".join(lines)) == secrets(keylog.read_text())


def test_server_vs_openssl_s_client_mutual_tls(pki: Pki) -> None:
    require("openssl")
    server = EngineServer(server_config(pki, client_auth=ClientAuth.REQUIRED), echo)
    proc = s_client(
        server.port, "-tls1_2", "-cert", "client-rsa.pem", "-key", "client-rsa.key", cwd=pki.folder
    )
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        proc.write("mtls 1.2\n")
        proc.wait_match("^mtls 1.2$")
        proc.write("Q\n")
        server.join()
        assert server.tls is not None and server.tls.handshake is not None
        assert server.tls.handshake.peer_certificates == pki.chain("client-rsa")
    finally:
        proc.close()


def test_client_vs_openssl_s_server_mutual_tls(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_s_server(
        ["-tls1_2", "-cert", "rsa.pem", "-key", "rsa.key", "-Verify", "1", "-CAfile", "ca.pem"], pki.folder
    )
    try:
        tls = engine_client(port, client_config(pki, credential=pki.credential("client")))
        assert tls.negotiate().version is TLS12
        tls.sendall(b"client auth ok\n")
        proc.wait_match("^client auth ok$")
        tls.shutdown()
        tls.close()
    finally:
        proc.close()
    assert "verify return:1" in proc.output()


# ---------------------------------------------------------------- GnuTLS


@pytest.mark.parametrize("suite", SUITES12, ids=lambda s: s.name)
def test_server_vs_gnutls_cli(pki: Pki, suite: CipherSuite) -> None:
    require("gnutls-cli")
    server = EngineServer(server_config(pki, leaf_for(suite), cipher_suites=(suite,)), echo)
    out = subprocess.run(
        [
            "gnutls-cli",
            "--x509cafile",
            str(pki.ca_pem),
            "-p",
            str(server.port),
            "localhost",
            "--priority",
            gnutls_priority(suite),
        ],
        input=b"gnutls 1.2 hello\n",
        capture_output=True,
        timeout=TIMEOUT * 2,
        check=False,
    )
    assert server.join() == b"gnutls 1.2 hello\n"
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert "The certificate is trusted" in text and "(TLS1.2-" in text
    assert "extended master secret" in text and "safe renegotiation" in text
    assert "gnutls 1.2 hello" in text
    assert server.tls is not None and server.tls.handshake is not None
    assert server.tls.handshake.cipher_suite is suite
    assert server.tls.handshake.encrypt_then_mac is (suite in CBC)


@pytest.mark.parametrize("suite", SUITES12, ids=lambda s: s.name)
def test_client_vs_gnutls_serv(pki: Pki, suite: CipherSuite) -> None:
    require("gnutls-serv")
    port = free_port()
    leaf = leaf_for(suite)
    proc = Proc(
        [
            "gnutls-serv",
            "-p",
            str(port),
            "--echo",
            "--x509certfile",
            f"{leaf}.pem",
            "--x509keyfile",
            f"{leaf}.key",
            "--priority",
            gnutls_priority(suite),
        ],
        cwd=str(pki.folder),
    )
    try:
        proc.wait_match("listening on")
        tls = engine_client(port, client_config(pki, cipher_suites=(suite,)))
        hs = tls.negotiate()
        assert hs.version is TLS12 and hs.cipher_suite is suite and hs.extended_master_secret
        assert hs.encrypt_then_mac is (suite in CBC)
        tls.sendall(b"to gnutls\n")
        assert tls.recv() == b"to gnutls\n"
        tls.shutdown()
        tls.close()
    finally:
        proc.close()


# ---------------------------------------------------------------- Python ssl and curl


def python_ssl_server12(pki: Pki, suite: CipherSuite) -> tuple[int, threading.Thread]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(openssl_name(suite))
    leaf = leaf_for(suite)
    ctx.load_cert_chain(pki.pem(leaf), pki.key(leaf))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]

    def run() -> None:
        with listener:
            raw, _ = listener.accept()
            with raw, ctx.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(TIMEOUT)
                conn.sendall(conn.recv(100).upper())
                conn.unwrap()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize("suite", SUITES12, ids=lambda s: s.name)
def test_client_vs_python_ssl(pki: Pki, suite: CipherSuite) -> None:
    port, thread = python_ssl_server12(pki, suite)
    tls = engine_client(port, client_config(pki, cipher_suites=(suite,)))
    try:
        assert tls.negotiate().cipher_suite is suite
        tls.sendall(b"shout 1.2")
        assert tls.recv() == b"SHOUT 1.2"
        assert tls.recv() == b""
        tls.shutdown()
    finally:
        tls.close()
        thread.join(TIMEOUT)


@pytest.mark.parametrize("suite", SUITES12, ids=lambda s: s.name)
def test_server_vs_python_ssl(pki: Pki, suite: CipherSuite) -> None:
    server = EngineServer(server_config(pki, leaf_for(suite), cipher_suites=(suite,)), echo)
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(openssl_name(suite))
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            assert conn.version() == "TLSv1.2" and conn.cipher()[0] == openssl_name(suite)
            conn.sendall(b"python 1.2")
            assert conn.recv(100) == b"python 1.2"
            conn.unwrap()
    assert server.join() == b"python 1.2"


def test_server_vs_curl(pki: Pki) -> None:
    require("curl")

    def http(tls: TLSSocket) -> object:
        tls.negotiate()
        request = b""
        while b"\r\n\r\n" not in request:
            request += tls.recv()
        tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\ncapdebug")
        tls.shutdown()
        return request

    server = EngineServer(server_config(pki, "rsa", alpn_protocols=("http/1.1",)), http)
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--tlsv1.2",
            "--tls-max",
            "1.2",
            "--cacert",
            str(pki.ca_pem),
            "--resolve",
            f"localhost:{server.port}:127.0.0.1",
            f"https://localhost:{server.port}/x",
            "-w",
            "%{ssl_verify_result}",
        ],
        capture_output=True,
        timeout=TIMEOUT * 2,
        check=False,
    )
    request = server.join()
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"capdebug0"
    assert isinstance(request, bytes) and request.startswith(b"GET /x HTTP/1.1\r\n")
    assert server.tls is not None and server.tls.handshake is not None
    assert server.tls.handshake.version is TLS12


# ---------------------------------------------------------------- negative: versions


def test_tls12_only_client_vs_tls13_only_openssl_server(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_s_server(["-tls1_3", "-cert", "ecdsa.pem", "-key", "ecdsa.key"], pki.folder)
    try:
        tls = engine_client(port, client_config(pki, max_version=TLS12))
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        assert exc.value.name == "ERR_PEER_ALERT" and exc.value.alert == AlertDescription.protocol_version
        tls.close()
    finally:
        proc.close()


def test_tls12_only_server_vs_tls13_only_openssl_client(pki: Pki) -> None:
    require("openssl")

    def handler(tls: TLSSocket) -> object:
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        return (exc.value.name, exc.value.alert)

    server = EngineServer(server_config(pki, max_version=TLS12), handler)
    proc = s_client(server.port, "-tls1_3", cwd=pki.folder)
    try:
        assert server.join() == ("ERR_NO_SHARED_VERSION", AlertDescription.protocol_version)
        proc.wait_match(r"alert protocol version|alert number 70")
    finally:
        proc.close()


def test_client_detects_downgrade_sentinel_of_openssl(pki: Pki) -> None:
    """An attacker strips supported_versions; OpenSSL (able to do TLS 1.3) answers TLS 1.2 with
    the RFC 8446 4.1.3 sentinel in its random, and the engine refuses it."""
    require("openssl")
    proc, port = openssl_s_server(["-cert", "ecdsa.pem", "-key", "ecdsa.key"], pki.folder)
    proxy = StripVersionsProxy(port)
    try:
        tls = engine_client(proxy.port, client_config(pki))
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        assert exc.value.name == "ERR_DOWNGRADE_DETECTED"
        assert exc.value.alert == AlertDescription.illegal_parameter
        tls.close()
        proc.wait_match(r"alert illegal parameter|alert number 47")
    finally:
        proc.close()


def test_openssl_client_detects_downgrade_sentinel_of_engine(pki: Pki) -> None:
    require("openssl")

    def handler(tls: TLSSocket) -> object:
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        return exc.value.name, exc.value.alert

    server = EngineServer(server_config(pki), handler)
    proxy = StripVersionsProxy(server.port)
    proc = s_client(proxy.port, cwd=pki.folder)
    try:
        assert server.join() == ("ERR_PEER_ALERT", AlertDescription.illegal_parameter)
        proc.wait_match(r"(?i)downgrade|illegal parameter|inappropriate fallback")
    finally:
        proc.close()


def test_server_answers_fallback_scsv_with_inappropriate_fallback(pki: Pki) -> None:
    require("openssl")

    def handler(tls: TLSSocket) -> object:
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        return exc.value.name, exc.value.alert

    server = EngineServer(server_config(pki), handler)
    proc = s_client(server.port, "-tls1_2", "-fallback_scsv", cwd=pki.folder)
    try:
        assert server.join() == ("ERR_INAPPROPRIATE_FALLBACK", AlertDescription.inappropriate_fallback)
        proc.wait_match(r"alert inappropriate fallback|alert number 86")
    finally:
        proc.close()


def test_client_fallback_scsv_refused_by_openssl(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_s_server(["-cert", "ecdsa.pem", "-key", "ecdsa.key"], pki.folder)
    try:
        tls = engine_client(port, client_config(pki, max_version=TLS12, send_fallback_scsv=True))
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        assert (
            exc.value.name == "ERR_PEER_ALERT" and exc.value.alert == AlertDescription.inappropriate_fallback
        )
        tls.close()
    finally:
        proc.close()


def test_fallback_scsv_accepted_when_the_server_has_nothing_higher(pki: Pki) -> None:
    require("openssl")
    server = EngineServer(server_config(pki, max_version=TLS12), echo)
    proc = s_client(server.port, "-tls1_2", "-fallback_scsv", cwd=pki.folder)
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        proc.write("Q\n")
        server.join()
    finally:
        proc.close()


# ---------------------------------------------------------------- negative: renegotiation


def test_server_refuses_openssl_client_renegotiation(pki: Pki) -> None:
    require("openssl")

    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        with pytest.raises(TLSError) as exc:
            tls.recv()
        return exc.value.name, exc.value.alert

    server = EngineServer(server_config(pki, max_version=TLS12), handler)
    proc = s_client(server.port, "-tls1_2", cwd=pki.folder)
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        proc.write("R\n")  # s_client: renegotiate
        # OpenSSL gives up its renegotiation after our warning, with a fatal handshake_failure.
        assert server.join() == ("ERR_PEER_ALERT", AlertDescription.handshake_failure)
        assert server.tls is not None
        assert RenegotiationRefused(by_client=True) in server.tls.events
        proc.wait_match(r"(?i)no renegotiation|alert number 100")
    finally:
        proc.close()


def test_client_refuses_openssl_hello_request(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_s_server(["-tls1_2", "-cert", "ecdsa.pem", "-key", "ecdsa.key"], pki.folder)
    try:
        tls = engine_client(port, client_config(pki))
        assert tls.negotiate().version is TLS12
        proc.write("R\n")  # s_server: send a HelloRequest
        with pytest.raises(TLSError):
            tls.recv()  # OpenSSL gives up on its renegotiation after our refusal
        assert RenegotiationRefused(by_client=False) in tls.events
        tls.close()
    finally:
        proc.close()
