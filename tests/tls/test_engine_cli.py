"""``capdebug serve``, ``connect`` and ``certs make``: through typer's CliRunner and as real
processes (``python -m capdebug.cli.engine``) talking to each other and to openssl."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from capdebug.cli.engine import register
from capdebug.crypto.keylog import KeyLog
from capdebug.crypto.x509 import summarize_certificate
from capdebug.crypto.x509_engine import load_pem_certificates
from capdebug.tls.io import TLSSocket
from tests.tools import require

from ._peers import TIMEOUT, EngineServer, Proc, openssl_server
from ._pki import NOW, Pki, server_config


def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


def test_certs_make_writes_a_usable_pki(tmp_path: Path) -> None:
    result = CliRunner().invoke(app(), ["certs", "make", str(tmp_path / "pki")])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "pki"
    for name in ("ca", "server-ecdsa", "server-rsa", "client-ecdsa", "server-expired", "server-wrong-host"):
        assert (folder / f"{name}.pem").exists()
        assert stat.S_IMODE((folder / f"{name}.key").stat().st_mode) == 0o600
    expired = summarize_certificate(load_pem_certificates((folder / "server-expired.pem").read_bytes())[0])
    assert expired.not_after < NOW
    future = summarize_certificate(
        load_pem_certificates((folder / "server-not-yet-valid.pem").read_bytes())[0]
    )
    assert future.not_before > NOW
    wrong = summarize_certificate(load_pem_certificates((folder / "server-wrong-host.pem").read_bytes())[0])
    assert "localhost" not in wrong.sans
    assert summarize_certificate(
        load_pem_certificates((folder / "server-self-signed.pem").read_bytes())[0]
    ).self_signed


def test_certs_make_verifies_with_openssl(tmp_path: Path) -> None:
    require("openssl")
    assert CliRunner().invoke(app(), ["certs", "make", str(tmp_path)]).exit_code == 0
    ok = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.pem", "-purpose", "sslserver", "server-rsa.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(
        ["openssl", "verify", "-CAfile", "ca.pem", "server-expired.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0 and "expired" in (bad.stdout + bad.stderr)


def test_certs_make_only_and_unknown(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(app(), ["certs", "make", str(tmp_path), "--only", "server-rsa"]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ca.key",
        "ca.pem",
        "server-rsa.key",
        "server-rsa.pem",
    ]
    bad = runner.invoke(app(), ["certs", "make", str(tmp_path), "--only", "nonsense"])
    assert bad.exit_code != 0


def test_connect_through_cli_runner_logs_keys(pki: Pki, tmp_path: Path) -> None:
    def handler(tls: TLSSocket) -> object:
        tls.negotiate()
        data = tls.recv_all()
        tls.sendall(data[::-1])
        tls.shutdown_send()
        return data

    server = EngineServer(server_config(pki, alpn_protocols=("h2",)), handler)
    keys = tmp_path / "keys.log"
    result = CliRunner().invoke(
        app(),
        [
            "connect",
            f"127.0.0.1:{server.port}",
            "--sni",
            "localhost",
            "--ca",
            str(pki.ca_pem),
            "--key-log",
            str(keys),
            "--alpn",
            "h2",
            "--send",
            "stressed",
        ],
    )
    assert server.join() == b"stressed"
    assert result.exit_code == 0, result.output
    assert "desserts" in result.output
    assert "alpn h2" in result.output
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert len(list(KeyLog.from_file(keys).entries())) == 5


def _engine(*args: str) -> list[str]:
    return [sys.executable, "-m", "capdebug.cli.engine", *args]


def test_serve_and_connect_as_processes(tmp_path: Path) -> None:
    env = {**os.environ, "SSLKEYLOGFILE": str(tmp_path / "client.keys")}
    env.pop("CAPDEBUG_TRACE", None)
    server = Proc(
        _engine("serve", "--port", "0", "--once", "--echo", "--key-log", str(tmp_path / "server.keys"))
    )
    try:
        port = int(server.wait_match(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        ca = server.wait_match(r"--ca (\S+)").group(1)
        client = subprocess.run(
            _engine(
                "connect",
                f"127.0.0.1:{port}",
                "--sni",
                "localhost",
                "--ca",
                ca,
                "--send",
                "round trip",
                "--trace",
                "handshake",
            ),
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            env=env,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout == "round trip"
        assert "CLIENT_EXPECT_FINISHED -> CLIENT_CONNECTED" in client.stderr
        assert server.wait_exit() == 0
    finally:
        server.close()
    client_keys = KeyLog.from_file(tmp_path / "client.keys")
    server_keys = KeyLog.from_file(tmp_path / "server.keys")
    assert {(e.label, e.secret) for e in client_keys.entries()} == {
        (e.label, e.secret) for e in server_keys.entries()
    }


def test_connect_reports_a_certificate_failure(pki: Pki) -> None:
    require("openssl")
    server, port = openssl_server(["-cert", "wrong-host.pem", "-key", "wrong-host.key"], str(pki.folder))
    try:
        client = subprocess.run(
            _engine("connect", f"127.0.0.1:{port}", "--sni", "localhost", "--ca", str(pki.ca_pem)),
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=False,
        )
        assert client.returncode == 1
        assert re.search(r"ERR_CERT_HOSTNAME", client.stderr), client.stderr
    finally:
        server.close()


def test_connect_insecure_is_loud(pki: Pki) -> None:
    require("openssl")
    server, port = openssl_server(
        ["-cert", "self-signed.pem", "-key", "self-signed.key", "-www"], str(pki.folder)
    )
    try:
        client = subprocess.run(
            _engine("connect", f"127.0.0.1:{port}", "--insecure", "--send", "GET / HTTP/1.0\r\n\r\n"),
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        assert "verification is DISABLED" in client.stderr
        assert client.stdout.startswith("HTTP/1.0 200 ok")
    finally:
        server.close()


def _serve12(*extra: str) -> tuple[Proc, int, str]:
    server = Proc(_engine("serve", "--port", "0", "--once", "--echo", *extra))
    port = int(server.wait_match(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    ca = server.wait_match(r"--ca (\S+)").group(1)
    return server, port, ca


def test_serve_and_connect_tls12_with_openssl_cipher_names() -> None:
    server, port, ca = _serve12("--max-version", "1.2", "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305")
    try:
        client = subprocess.run(
            [
                *_engine(
                    "connect", f"127.0.0.1:{port}", "--sni", "localhost", "--ca", ca, "--send", "twelve"
                ),
                "--min-version",
                "TLSv1.2",
                "--ciphers",
                "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-SHA",
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=False,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout == "twelve"
        assert "TLS 1.2, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" in client.stderr
        assert "extended master secret yes" in client.stderr
        assert server.wait_exit() == 0
    finally:
        server.close()


def test_connect_version_mismatch_is_one_line_protocol_version() -> None:
    server, port, ca = _serve12("--max-version", "1.2")
    try:
        client = subprocess.run(
            _engine("connect", f"127.0.0.1:{port}", "--sni", "localhost", "--ca", ca, "--min-version", "1.3"),
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=False,
        )
        assert client.returncode == 1
        assert "protocol_version" in client.stderr and "Traceback" not in client.stderr
        server.wait_match("ERR_NO_SHARED_VERSION")
    finally:
        server.close()


def test_bad_version_and_cipher_options_are_usage_errors() -> None:
    for args, words in (
        (["--min-version", "1.1"], "--min-version must be 1.2 or 1.3"),
        (["--ciphers", "RC4-MD5"], "unknown cipher 'RC4-MD5'"),
        (["--min-version", "1.3", "--max-version", "1.2"], "min_version is above max_version"),
    ):
        done = subprocess.run(
            _engine("connect", "127.0.0.1:9", "--insecure", *args),
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 3,
            check=False,
        )
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], done.stderr
