"""``capdebug serve --fault`` / ``connect --fault`` against real peers (openssl s_client and
s_server, Python ``ssl``): each fault makes the peer fail the way its stack reports that failure,
and the alerts the peers send back prove it (asserted on what they print or raise)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from capdebug.errors import UsageError
from capdebug.tls.config import ClientAuth, TLSConfig
from capdebug.tls.faults import FAULTS, Faults, parse_faults
from capdebug.wire.constants import CipherSuite, ContentType, HandshakeType
from tests.support.peers import openssl_s_server
from tests.support.proc import Proc
from tests.tools import require

TIMEOUT = 15.0
ENGINE = [sys.executable, "-m", "capdebug.cli.engine"]


@contextmanager
def serve(*faults: str) -> Iterator[tuple[Proc, int]]:
    proc = Proc([*ENGINE, "serve", "--port", "0", "--once", "--fault", ",".join(faults)], name="serve")
    try:
        port = int(proc.wait_match(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        yield proc, port
    finally:
        proc.close()


#: The same faults over each version the engine speaks (openssl flag, Python ssl maximum).
VERSIONS = [
    pytest.param("-tls1_3", ssl.TLSVersion.TLSv1_3, id="tls13"),
    pytest.param("-tls1_2", ssl.TLSVersion.TLSv1_2, id="tls12"),
]


def s_client(port: int, version: str = "-tls1_3") -> str:
    # -ign_eof: stdin's EOF does not end the session, the server's close does.
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-ign_eof", version],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    return done.stdout + done.stderr


def python_client(port: int, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> ssl.SSLSocket:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return ctx.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)


# -- the catalog ------------------------------------------------------------------------------


def test_fault_list_names_each_fault_on_one_line() -> None:
    done = subprocess.run([*ENGINE, "serve", "--fault", "list"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(FAULTS)
    for line, name in zip(lines, FAULTS, strict=True):
        assert line.split()[0].split("[")[0] == name
        assert len(line.split(None, 1)[1]) > 10  # a description follows


def test_an_unknown_fault_is_a_usage_error_before_listening() -> None:
    done = subprocess.run(
        [*ENGINE, "serve", "--port", "0", "--fault", "premature-close,no-such-fault"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown fault 'no-such-fault'" in done.stderr
    assert "listening" not in done.stderr


def test_no_fault_is_armed_by_default() -> None:
    assert not Faults().active
    assert not parse_faults("").active
    assert parse_faults("premature-close").drop_close_notify


def test_parse_faults_values_and_configuration() -> None:
    f = parse_faults(
        ["delay-first-byte=0.5,stall", "offer-suites=TLS_AES_256_GCM_SHA384", "client-cert-required"]
    )
    assert f.delay_first_byte == 0.5 and f.stall_s == 3.0
    config = f.configure(TLSConfig(verify=False))
    assert config.cipher_suites == (CipherSuite.TLS_AES_256_GCM_SHA384,)
    assert config.client_auth is ClientAuth.REQUIRED
    with pytest.raises(UsageError, match="takes no value"):
        parse_faults("bad-mac=3")
    with pytest.raises(UsageError, match="expected seconds"):
        parse_faults("stall=soon")
    assert parse_faults("out-of-order").hold_back == HandshakeType.encrypted_extensions


def test_tamper_by_content_type_skips_other_records() -> None:
    f = parse_faults("bad-mac-data")
    handshake = bytearray(b"\x17\x03\x03\x00\x02ab")
    f.on_protected_record(handshake, ContentType.handshake)
    assert handshake == bytearray(b"\x17\x03\x03\x00\x02ab") and f.fired == []
    data = bytearray(b"\x17\x03\x03\x00\x02ab")
    f.on_protected_record(data, ContentType.application_data)
    assert data[-1] == ord("b") ^ 1 and f.fired == ["tamper_record"]


# -- serve --fault against real clients ------------------------------------------------------


@pytest.mark.parametrize(("version", "py_version"), VERSIONS)
def test_premature_close_makes_openssl_report_unexpected_eof(
    version: str, py_version: ssl.TLSVersion
) -> None:
    require("openssl")
    with serve("premature-close") as (server, port):
        out = s_client(port, version)
        assert server.wait_exit(TIMEOUT) == 0
    assert "capdebug: injected fault" in out  # the data came first, decrypted
    assert "unexpected eof while reading" in out
    assert f"New, {'TLSv1.3' if version == '-tls1_3' else 'TLSv1.2'}, Cipher is" in out


@pytest.mark.parametrize(("version", "py_version"), VERSIONS)
def test_premature_close_makes_python_ssl_raise_eof(version: str, py_version: ssl.TLSVersion) -> None:
    with serve("premature-close") as (server, port):
        s = python_client(port, py_version)
        got = b""
        with pytest.raises(ssl.SSLEOFError, match="EOF occurred in violation of protocol"):
            while True:
                chunk = s.recv(100)
                got += chunk
                if not chunk:
                    break
        s.close()
        assert server.wait_exit(TIMEOUT) == 0
    assert got == b"capdebug: injected fault\n"


@pytest.mark.parametrize(("version", "py_version"), VERSIONS)
def test_bad_mac_makes_openssl_client_send_bad_record_mac(version: str, py_version: ssl.TLSVersion) -> None:
    require("openssl")
    with serve("bad-mac") as (server, port):
        out = s_client(port, version)
        server.wait_exit(TIMEOUT)
        # s_client says why; our server says which alert it received from s_client.
        assert "bad record mac" in out
        assert "the peer sent a fatal alert: bad_record_mac (20)" in server.output()


@pytest.mark.parametrize(("version", "py_version"), VERSIONS)
def test_bad_mac_makes_python_ssl_send_bad_record_mac(version: str, py_version: ssl.TLSVersion) -> None:
    with serve("bad-mac") as (server, port):
        with pytest.raises(ssl.SSLError) as caught:
            python_client(port, py_version)
        server.wait_exit(TIMEOUT)
        assert "the peer sent a fatal alert: bad_record_mac (20)" in server.output()
    assert "BAD_RECORD_MAC" in str(caught.value)


# -- connect --fault against openssl s_server -------------------------------------------------


def _cert(tmp_path: Path) -> list[str]:
    done = subprocess.run(
        [*ENGINE, "certs", "make", str(tmp_path), "--only", "server-ecdsa"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return ["-cert", str(tmp_path / "server-ecdsa.pem"), "-key", str(tmp_path / "server-ecdsa.key")]


@pytest.mark.parametrize(("version", "py_version"), VERSIONS)
def test_client_bad_mac_makes_openssl_server_send_bad_record_mac(
    version: str, py_version: ssl.TLSVersion, tmp_path: Path
) -> None:
    require("openssl")
    server, port = openssl_s_server([version, "-naccept", "1", *_cert(tmp_path)])
    try:
        done = subprocess.run(
            [*ENGINE, "connect", f"127.0.0.1:{port}", "--insecure", "--fault", "bad-mac", "--send", "x"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        server.wait_for("bad record mac")
    finally:
        server.close()
    assert done.returncode != 0
    assert "the peer sent a fatal alert: bad_record_mac (20)" in done.stderr


def test_client_premature_close_makes_openssl_server_report_unexpected_eof(tmp_path: Path) -> None:
    require("openssl")
    server, port = openssl_s_server(["-tls1_3", "-naccept", "1", *_cert(tmp_path)])
    try:
        done = subprocess.run(
            [
                *ENGINE,
                "connect",
                f"127.0.0.1:{port}",
                "--insecure",
                "--fault",
                "premature-close",
                "--send",
                "hi",
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        server.wait_for("unexpected eof while reading")
    finally:
        server.close()
    assert "handshake complete" in done.stderr


@pytest.mark.parametrize(
    ("fault", "openssl_says"),
    [
        # EncryptedExtensions held back after the Certificate: RFC 8446 4 ordering violated.
        ("out-of-order", "unexpected message"),
        # Half a record, then FIN: the reader waits for the rest and meets EOF.
        ("truncate-record", "unexpected eof while reading"),
        ("alert-at=SERVER_EXPECT_FINISHED:handshake_failure", "alert handshake failure"),
        ("expired-cert", "certificate has expired"),
        ("wrong-host-cert", "hostname mismatch"),
    ],
)
def test_more_server_faults_as_openssl_reports_them(fault: str, openssl_says: str, tmp_path: Path) -> None:
    require("openssl")
    with serve(fault) as (server, port):
        ca = server.wait_match(r"--ca (\S+)").group(1)
        done = subprocess.run(
            [
                "openssl",
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-ign_eof",
                "-CAfile",
                ca,
                "-verify_return_error",
                "-verify_hostname",
                "localhost",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        server.wait_exit(TIMEOUT)
    out = done.stdout + done.stderr
    assert openssl_says in out.lower(), out
