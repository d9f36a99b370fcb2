"""Interop over real loopback sockets: the engine against openssl s_server/s_client, Python's
ssl module (OpenSSL underneath) and curl, in both roles."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from capdebug.crypto.keylog import KeyLog
from capdebug.errors import ErrorKind, TLSError
from capdebug.tls.config import ClientAuth
from capdebug.tls.events import HelloRetryRequestSent, KeyUpdateReceived
from capdebug.tls.faults import Faults
from capdebug.tls.io import TLSSocket
from capdebug.wire.constants import AlertDescription, CipherSuite, NamedGroup, ProtocolVersion
from tests.support.peers import openssl_s_server
from tests.tools import require

from ._peers import TIMEOUT, EngineServer, Proc, engine_client, openssl_server
from ._pki import Pki, client_config, server_config

pytestmark = pytest.mark.tools

SUITES = [
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
]


def secrets(lines: list[str] | str) -> set[tuple[str, bytes, bytes]]:
    text = "\n".join(lines) if isinstance(lines, list) else lines
    return {(e.label, e.client_random, e.secret) for e in KeyLog.parse(text).entries()}


# ---------------------------------------------------------------- engine client vs openssl


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_client_vs_openssl_server_each_suite(pki: Pki, tmp_path: Path, suite: CipherSuite) -> None:
    require("openssl")
    keylog = tmp_path / "openssl.keys"
    proc, port = openssl_server(
        ["-cert", "ecdsa.pem", "-key", "ecdsa.key", "-ciphersuites", suite.name, "-keylogfile", str(keylog)],
        str(pki.folder),
    )
    lines: list[str] = []
    try:
        tls = engine_client(port, client_config(pki, key_log_callback=lines.append))
        hs = tls.negotiate()
        assert hs.cipher_suite is suite
        tls.sendall(b"hello from capdebug\n")
        proc.wait_match("^hello from capdebug$")
        proc.write("hello from openssl\n")
        assert tls.recv() == b"hello from openssl\n"
        # Our close_notify first; openssl answers with its own and shutdown() returns.
        tls.shutdown()
        tls.close()
        proc.wait_match("^DONE$")
    finally:
        proc.close()
    assert secrets(lines) == secrets(keylog.read_text())
    assert len(secrets(lines)) == 5


def test_client_vs_openssl_server_hello_retry_request(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_server(["-cert", "rsa.pem", "-key", "rsa.key", "-groups", "P-384"], str(pki.folder))
    try:
        tls = engine_client(port, client_config(pki))
        hs = tls.negotiate()
        assert hs.hello_retry and hs.group is NamedGroup.secp384r1
        tls.sendall(b"after hrr\n")
        proc.wait_match("^after hrr$")
        tls.shutdown()
        tls.close()
    finally:
        proc.close()


# openssl s_server requiring a client certificate issued by the test CA.
MTLS_SERVER_ARGS = [
    "-cert",
    "ecdsa.pem",
    "-key",
    "ecdsa.key",
    "-CAfile",
    "ca.pem",
    "-Verify",
    "1",
    "-verify_return_error",
]


def test_client_vs_openssl_server_mutual_tls(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_server(MTLS_SERVER_ARGS, str(pki.folder))
    try:
        tls = engine_client(port, client_config(pki, credential=pki.credential("client")))
        tls.negotiate()
        tls.sendall(b"mtls\n")
        proc.wait_match("^mtls$")
        assert "capdebug client" in proc.output()  # openssl printed our certificate's subject
        tls.shutdown()
        tls.close()
    finally:
        proc.close()


def test_client_without_certificate_gets_certificate_required(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_server(MTLS_SERVER_ARGS, str(pki.folder))
    try:
        tls = engine_client(port, client_config(pki))
        tls.negotiate()  # TLS 1.3: the client finishes before the server judges its flight
        with pytest.raises(TLSError) as exc:
            tls.recv()
        assert exc.value.name == "ERR_PEER_ALERT"
        assert exc.value.alert == AlertDescription.certificate_required
        tls.close()
    finally:
        proc.close()


def test_client_key_update_both_directions_with_openssl(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_server(["-cert", "ecdsa.pem", "-key", "ecdsa.key"], str(pki.folder))
    try:
        tls = engine_client(port, client_config(pki))
        tls.negotiate()
        tls.key_update(request=True)  # ours, asking openssl to update too
        tls.sendall(b"one\n")
        proc.wait_match("^one$")  # openssl decrypted with our next key
        proc.write("K\n")  # openssl's own KeyUpdate, update_requested
        time.sleep(0.5)  # s_server takes one stdin read per command and prints nothing for "K"
        proc.write("two\n")
        assert tls.recv() == b"two\n"
        updates = [e for e in tls.events if isinstance(e, KeyUpdateReceived)]
        assert updates and updates[-1].update_requested
        tls.sendall(b"three\n")  # under the key we moved to when answering
        proc.wait_match("^three$")
        tls.shutdown()
        tls.close()
    finally:
        proc.close()


def test_client_sees_openssl_close_notify_as_end_of_data(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_server(["-cert", "ecdsa.pem", "-key", "ecdsa.key", "-www"], str(pki.folder))
    try:
        tls = engine_client(port, client_config(pki))
        tls.negotiate()
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        page = tls.recv_all()  # -www answers, then close_notify: end of data, not an error
        assert page.startswith(b"HTTP/1.0 200 ok")
        assert tls.recv() == b""
        tls.close()
    finally:
        proc.close()


def test_client_sees_openssl_socket_close_as_truncation(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_server(["-cert", "ecdsa.pem", "-key", "ecdsa.key"], str(pki.folder))
    try:
        tls = engine_client(port, client_config(pki))
        tls.negotiate()
        proc.write("bye\n")
        assert tls.recv() == b"bye\n"
        proc.write("Q\n")  # s_server "Q" shuts the socket down before any close_notify
        with pytest.raises(TLSError) as exc:
            tls.recv()
        assert exc.value.name == "ERR_PREMATURE_CLOSE"
        tls.close()
    finally:
        proc.close()


@pytest.mark.parametrize(
    ("leaf", "name", "alert"),
    [
        ("wrong-host", "ERR_CERT_HOSTNAME", AlertDescription.bad_certificate),
        ("expired", "ERR_CERT_EXPIRED", AlertDescription.certificate_expired),
        ("self-signed", "ERR_CERT_UNKNOWN_CA", AlertDescription.unknown_ca),
    ],
)
def test_client_certificate_failures_tell_openssl(pki: Pki, leaf: str, name: str, alert: int) -> None:
    require("openssl")
    proc, port = openssl_server(["-cert", f"{leaf}.pem", "-key", f"{leaf}.key"], str(pki.folder))
    try:
        tls = engine_client(port, client_config(pki))
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        assert (exc.value.name, exc.value.alert) == (name, alert)
        tls.close()
        proc.wait_match(rf"alert number {alert}\b")
    finally:
        proc.close()


def test_client_tampered_record_openssl_answers_bad_record_mac(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_server(["-cert", "ecdsa.pem", "-key", "ecdsa.key"], str(pki.folder))
    faults = Faults()
    try:
        tls = engine_client(port, client_config(pki), faults)
        tls.negotiate()
        faults.tamper_next_record()
        tls.sendall(b"corrupted\n")
        with pytest.raises(TLSError) as exc:
            tls.recv()
        assert exc.value.name == "ERR_PEER_ALERT"
        assert exc.value.alert == AlertDescription.bad_record_mac
        tls.close()
        proc.wait_match("bad record mac|decryption failed")
    finally:
        proc.close()


# ---------------------------------------------------------------- engine client vs Python ssl


def python_ssl_server(
    pki: Pki, clean_close: bool, keylog: Path | None = None
) -> tuple[int, threading.Thread]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(pki.pem("rsa"), pki.key("rsa"))
    if keylog is not None:
        ctx.keylog_filename = str(keylog)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]

    def run() -> None:
        with listener:
            raw, _ = listener.accept()
            with raw, ctx.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(TIMEOUT)
                data = conn.recv(100)
                conn.sendall(data.upper())
                if clean_close:
                    conn.unwrap()  # close_notify, and wait for the client's
                # otherwise closing sends FIN without close_notify: a truncation

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return port, thread


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "truncated"])
@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_client_vs_python_ssl_close_or_truncation(
    pki: Pki, tmp_path: Path, clean: bool, suite: CipherSuite
) -> None:
    keylog = tmp_path / "python.keys"
    port, thread = python_ssl_server(pki, clean, keylog)
    lines: list[str] = []
    tls = engine_client(port, client_config(pki, key_log_callback=lines.append, cipher_suites=(suite,)))
    try:
        assert tls.negotiate().cipher_suite is suite
        tls.sendall(b"shout")
        assert tls.recv() == b"SHOUT"
        if clean:
            assert tls.recv() == b""  # close_notify: end of data, not an error
            tls.shutdown()  # ours, which Python's unwrap() waits for
        else:
            with pytest.raises(TLSError) as exc:
                tls.recv()
            assert exc.value.name == "ERR_PREMATURE_CLOSE"
            assert exc.value.kind is ErrorKind.CLOSED
    finally:
        tls.close()
        thread.join(TIMEOUT)
    assert secrets(lines) <= secrets(keylog.read_text())


def test_client_non_blocking_reports_what_it_waits_for(pki: Pki) -> None:
    import select

    from capdebug.tls.io import BlockedError

    port, thread = python_ssl_server(pki, True)
    tls = engine_client(port, client_config(pki), blocking=False)
    seen: set[str] = set()
    try:
        while True:
            try:
                tls.negotiate()
                break
            except BlockedError as exc:
                seen.add(exc.blocked)
                assert exc.kind is ErrorKind.BLOCKED
                rd, wr = ([tls], []) if exc.blocked == "read" else ([], [tls])
                select.select(rd, wr, [], TIMEOUT)
        assert seen <= {"read", "write"}
        with pytest.raises(BlockedError) as blocked:
            tls.recv()  # the server waits for us: nothing to read yet
        assert blocked.value.blocked == "read"
        assert tls.send(b"nb") == 2
        while True:
            try:
                data = tls.recv()
                break
            except BlockedError:
                select.select([tls], [], [], TIMEOUT)
        assert data == b"NB"
        tls.sock.setblocking(True)
        assert tls.recv() == b""
        tls.shutdown()
    finally:
        tls.close()
        thread.join(TIMEOUT)


# ---------------------------------------------------------------- engine server vs openssl s_client


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
            "-tls1_3",
            "-CAfile",
            "ca.pem",
            "-verify_return_error",
            *args,
        ],
        cwd=str(cwd),
    )


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_server_vs_openssl_client_each_suite(pki: Pki, tmp_path: Path, suite: CipherSuite) -> None:
    require("openssl")
    lines: list[str] = []
    server = EngineServer(server_config(pki, "rsa", key_log_callback=lines.append), echo)
    keylog = tmp_path / "s_client.keys"
    proc = s_client(server.port, "-ciphersuites", suite.name, "-keylogfile", str(keylog), cwd=pki.folder)
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        proc.wait_match(rf"Cipher is {suite.name}")
        proc.write("echo me\n")
        proc.wait_match("^echo me$")
        proc.write("Q\n")  # s_client: close_notify and exit; the echo loop ends with b""
        assert server.join() == b"echo me\n"
        proc.wait_exit()
    finally:
        proc.close()
    assert secrets(lines) == secrets(keylog.read_text())


def test_server_vs_openssl_client_hello_retry_request(pki: Pki) -> None:
    require("openssl")
    cfg = server_config(pki, groups=(NamedGroup.secp384r1,))
    server = EngineServer(cfg, echo)
    proc = s_client(server.port, "-groups", "X25519:P-384", cwd=pki.folder)
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        proc.write("Q\n")
        server.join()
        assert server.tls is not None
        assert HelloRetryRequestSent(NamedGroup.secp384r1) in server.tls.events
        assert "P-384" in proc.output() or "secp384r1" in proc.output()
    finally:
        proc.close()


def test_server_vs_openssl_client_mutual_tls(pki: Pki) -> None:
    require("openssl")
    server = EngineServer(server_config(pki, client_auth=ClientAuth.REQUIRED), echo)
    proc = s_client(server.port, "-cert", "client-rsa.pem", "-key", "client-rsa.key", cwd=pki.folder)
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        proc.write("mtls\n")
        proc.wait_match("^mtls$")
        proc.write("Q\n")
        server.join()
        assert server.tls is not None and server.tls.handshake is not None
        assert server.tls.handshake.peer_certificates == pki.chain("client-rsa")
    finally:
        proc.close()


def test_server_key_update_both_directions_with_openssl(pki: Pki) -> None:
    require("openssl")
    ready = threading.Event()

    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        assert tls.recv() == b"first\n"
        tls.key_update(request=True)
        tls.sendall(b"after our update\n")
        ready.set()
        got = tls.recv()  # openssl's KeyUpdate(s) come first, then the data
        tls.sendall(b"bye\n")
        tls.shutdown_send()
        return got

    server = EngineServer(server_config(pki), handler)
    proc = s_client(server.port, cwd=pki.folder)
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        proc.write("first\n")
        proc.wait_match("^after our update$")
        assert ready.wait(TIMEOUT)
        proc.write("K\n")
        proc.wait_match("^KEYUPDATE$")
        proc.write("second\n")
        assert server.join() == b"second\n"
        proc.wait_match("^bye$")
        assert server.tls is not None
        updates = [e.update_requested for e in server.tls.events if isinstance(e, KeyUpdateReceived)]
        assert True in updates  # openssl's "K": update_requested
    finally:
        proc.close()


def test_server_close_notify_reaches_openssl_client(pki: Pki) -> None:
    require("openssl")

    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        tls.sendall(b"closing now\n")
        tls.shutdown()  # close_notify, then wait for openssl's
        return True

    server = EngineServer(server_config(pki), handler)
    proc = s_client(server.port, cwd=pki.folder)
    try:
        proc.wait_match("^closing now$")
        assert server.join() is True
        proc.wait_match("closed|DONE")
        assert proc.wait_exit() == 0
    finally:
        proc.close()


def test_server_tampered_record_openssl_client_says_bad_record_mac(pki: Pki) -> None:
    require("openssl")
    faults = Faults()

    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        faults.tamper_next_record()
        tls.sendall(b"tampered\n")
        with pytest.raises(TLSError) as exc:
            tls.recv()
        return (exc.value.name, exc.value.alert)

    server = EngineServer(server_config(pki), handler, faults)
    proc = s_client(server.port, cwd=pki.folder)
    try:
        proc.wait_match(r"Verify return code: 0 \(ok\)")
        assert server.join() == ("ERR_PEER_ALERT", AlertDescription.bad_record_mac)
        proc.wait_match("bad record mac|decryption failed")
    finally:
        proc.close()


# ---------------------------------------------------------------- engine server vs Python ssl and curl


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_server_vs_python_ssl_client(pki: Pki, suite: CipherSuite) -> None:
    server = EngineServer(server_config(pki, "ed25519", cipher_suites=(suite,), alpn_protocols=("h2",)), echo)
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            cipher = conn.cipher()
            assert cipher is not None and cipher[0] == suite.name
            assert conn.selected_alpn_protocol() == "h2"
            conn.sendall(b"python says hi")
            assert conn.recv(100) == b"python says hi"
            conn.unwrap()  # close_notify both ways
    assert server.join() == b"python says hi"


def test_server_vs_python_ssl_mutual_tls(pki: Pki) -> None:
    server = EngineServer(server_config(pki, client_auth=ClientAuth.REQUIRED), echo)
    ctx = ssl.create_default_context(cafile=str(pki.ca_pem))
    ctx.load_cert_chain(pki.pem("client"), pki.key("client"))
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as conn:
            conn.sendall(b"m")
            assert conn.recv(10) == b"m"
            conn.unwrap()
    server.join()
    assert server.tls is not None and server.tls.handshake is not None
    assert server.tls.handshake.peer_certificates[0] == pki.leaves["client"].cert_der


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_server_vs_curl(pki: Pki, suite: CipherSuite) -> None:
    require("curl")

    def www(tls: TLSSocket) -> object:
        hs = tls.negotiate()
        request = b""
        while b"\r\n\r\n" not in request:
            request += tls.recv()
        body = f"suite={hs.cipher_suite.name} alpn={hs.alpn}\n".encode()
        tls.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        tls.shutdown()
        return request

    server = EngineServer(server_config(pki, alpn_protocols=("http/1.1",)), www)
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "--max-time",
            "10",
            "--tlsv1.3",
            "--tls13-ciphers",
            suite.name,
            "--cacert",
            str(pki.ca_pem),
            "--resolve",
            f"localhost:{server.port}:127.0.0.1",
            f"https://localhost:{server.port}/probe",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    request = server.join()
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"suite={suite.name} alpn=http/1.1\n"
    assert isinstance(request, bytes) and request.startswith(b"GET /probe HTTP/1.1\r\n")


# ---------------------------------------------------------------- more failure modes


def test_tls13_only_client_vs_tls12_only_server_is_protocol_version(pki: Pki) -> None:
    require("openssl")
    proc, port = openssl_s_server(["-tls1_2", "-cert", "ecdsa.pem", "-key", "ecdsa.key"], pki.folder)
    try:
        tls = engine_client(port, client_config(pki, min_version=ProtocolVersion.TLS1_3))
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        # openssl refuses a TLS 1.3-only ClientHello itself: its alert is what we report.
        assert exc.value.name == "ERR_PEER_ALERT"
        assert exc.value.alert == AlertDescription.protocol_version
        tls.close()
    finally:
        proc.close()


def test_tls13_only_server_vs_tls12_only_client_is_protocol_version(pki: Pki) -> None:
    require("openssl")

    def handler(tls: TLSSocket) -> object:
        with pytest.raises(TLSError) as exc:
            tls.negotiate()
        return (exc.value.name, exc.value.alert)

    server = EngineServer(server_config(pki, min_version=ProtocolVersion.TLS1_3), handler)
    proc = Proc(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-tls1_2"], cwd=str(pki.folder)
    )
    try:
        assert server.join() == ("ERR_NO_SHARED_VERSION", AlertDescription.protocol_version)
        proc.wait_match(r"alert protocol version|alert number 70")
    finally:
        proc.close()


def test_rst_instead_of_fin_is_a_premature_close(pki: Pki) -> None:
    faults = Faults(rst_instead_of_fin=True)

    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        tls.sendall(b"then RST")
        assert tls.recv() == b"go"
        return None  # EngineServer closes the socket: SO_LINGER 0 makes it an RST

    server = EngineServer(server_config(pki), handler, faults)
    tls = engine_client(server.port, client_config(pki))
    try:
        tls.negotiate()
        assert tls.peek(4) == b"then"  # peek leaves the bytes in place
        assert tls.pending() == 8
        assert tls.recv(5) == b"then "
        assert tls.pending() == 3
        assert tls.recv() == b"RST"
        tls.sendall(b"go")
        server.join()
        with pytest.raises(TLSError) as exc:
            tls.recv()
        assert exc.value.name == "ERR_PREMATURE_CLOSE"
        assert "rst_instead_of_fin" in faults.fired
    finally:
        tls.close()


def test_delay_fault_slows_writes(pki: Pki) -> None:
    faults = Faults(delay_before_send=0.2)
    server = EngineServer(server_config(pki), echo)
    tls = engine_client(server.port, client_config(pki), faults)
    try:
        tls.negotiate()
        start = time.monotonic()
        tls.sendall(b"slow")
        assert time.monotonic() - start >= 0.2
        assert tls.recv() == b"slow"
        tls.shutdown()
    finally:
        tls.close()
    assert server.join() == b"slow"


def test_non_blocking_send_reports_partial_writes_then_blocks_on_write(pki: Pki) -> None:
    import select

    from capdebug.tls.io import BlockedError

    go = threading.Event()

    def slow_reader(tls: TLSSocket) -> object:
        tls.negotiate()
        assert go.wait(TIMEOUT)  # read nothing until the client has filled the pipe
        total = 0
        while data := tls.recv():
            total += len(data)
        tls.shutdown()
        return total

    server = EngineServer(server_config(pki), slow_reader)
    tls = engine_client(server.port, client_config(pki), blocking=False)
    payload = memoryview(bytes(8 * 1024 * 1024))
    sent = 0
    try:
        while True:
            try:
                tls.negotiate()
                break
            except BlockedError as exc:
                select.select(
                    [tls] if exc.blocked == "read" else [],
                    [tls] if exc.blocked == "write" else [],
                    [],
                    TIMEOUT,
                )
        first = tls.send(payload)
        assert 0 < first < len(payload)  # a partial write, reported as such
        sent = first
        with pytest.raises(BlockedError) as exc:
            while sent < len(payload):
                sent += tls.send(payload[sent:])
        assert exc.value.blocked == "write" and exc.value.kind is ErrorKind.BLOCKED
        go.set()
        while sent < len(payload):
            try:
                sent += tls.send(payload[sent:])
            except BlockedError:
                select.select([], [tls], [], TIMEOUT)
        tls.sock.setblocking(True)
        tls.flush()
        tls.shutdown_send()
        assert tls.recv() == b""
    finally:
        go.set()
        tls.close()
    assert server.join() == len(payload)


def test_client_echoes_the_hrr_cookie_of_a_stateless_openssl_server(pki: Pki) -> None:
    require("openssl")
    # -stateless answers every first ClientHello with a HelloRetryRequest carrying a cookie.
    proc, port = openssl_server(["-cert", "ecdsa.pem", "-key", "ecdsa.key", "-stateless"], str(pki.folder))
    try:
        tls = engine_client(port, client_config(pki))
        hs = tls.negotiate()
        assert hs.hello_retry
        tls.sendall(b"cookie ok\n")
        proc.wait_match("^cookie ok$")
        tls.shutdown()
        tls.close()
    finally:
        proc.close()


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_server_vs_gnutls_client(pki: Pki, suite: CipherSuite) -> None:
    require("gnutls-cli")
    gnutls_cipher = {
        CipherSuite.TLS_AES_128_GCM_SHA256: "AES-128-GCM",
        CipherSuite.TLS_AES_256_GCM_SHA384: "AES-256-GCM",
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256: "CHACHA20-POLY1305",
    }[suite]
    server = EngineServer(server_config(pki, "rsa"), echo)
    out = subprocess.run(
        [
            "gnutls-cli",
            "--x509cafile",
            str(pki.ca_pem),
            "-p",
            str(server.port),
            "localhost",
            "--priority",
            f"NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+{gnutls_cipher}",
        ],
        input=b"gnutls hello\n",
        capture_output=True,
        timeout=TIMEOUT * 2,
        check=False,
    )
    assert server.join() == b"gnutls hello\n"
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert "The certificate is trusted" in text and f"({gnutls_cipher})" in text
    assert "gnutls hello" in text
