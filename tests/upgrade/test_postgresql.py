"""A real PostgreSQL server (a throwaway cluster) and a real client of its protocol
(``openssl s_client -starttls postgres``): SSLRequest, 'S', then TLS; and 'N' with ssl=off."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from capdebug.cli.app import app
from tests.decode.test_json_contract import check_contract
from tests.support.peers import self_signed_localhost
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

from ._harness import events, handshake_rows, s_client, tshark_handshake_rows, upgrades, verdict_codes

PG_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    require_root()
    require("tcpdump", "tshark", "openssl")
    if not (PG_BIN / "initdb").exists() and os.environ.get("CI") != "true":
        pytest.skip("needs postgresql (run `make system-deps`)")
    # Not under pytest's 0700 temp root: the postgres user must reach it.
    root = Path(tempfile.mkdtemp(prefix="capdebug-pg-"))
    root.chmod(0o755)
    shutil.chown(root, "postgres")
    cert, key = self_signed_localhost(root, ec.generate_private_key(ec.SECP256R1()))
    for f in (cert, key):
        shutil.chown(f, "postgres")
        f.chmod(0o600)
    subprocess.run(
        ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-N", "-A", "trust", "-U", "postgres",
         "-D", str(root / "data")],
        check=True, capture_output=True, timeout=120, cwd=root,
    )  # fmt: skip
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _server(root: Path, port: int, ssl: bool) -> Iterator[None]:
    argv = [
        "runuser", "-u", "postgres", "--", str(PG_BIN / "postgres"), "-D", str(root / "data"),
        "-p", str(port), "-k", str(root), "-c", "listen_addresses=127.0.0.1",
        "-c", f"ssl={'on' if ssl else 'off'}",
        "-c", f"ssl_cert_file={root / 'cert.pem'}", "-c", f"ssl_key_file={root / 'key.pem'}",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("postgres did not start") from None
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def test_sslrequest_then_tls_is_decrypted_like_tshark(cluster: Path, tmp_path: Path) -> None:
    port = _free_port()
    server = _server(cluster, port, ssl=True)
    next(server)
    pcap, keylog = tmp_path / "pg.pcap", tmp_path / "keys.txt"
    try:
        with tcpdump(pcap, port):
            args = ["-connect", f"127.0.0.1:{port}", "-starttls", "postgres", "-keylogfile", str(keylog)]
            done = s_client(args)
    finally:
        next(server, None)
    assert b"BEGIN CERTIFICATE" in done.stdout or b"Server certificate" in done.stdout, done.stdout[-500:]
    evs = events(pcap, keylog)
    (up,) = upgrades(evs)
    assert (up.protocol, up.command, up.reply, up.accepted) == ("postgresql", "SSLRequest", "S", True)
    ours = handshake_rows(evs)
    assert (up.frame < ours[0][0]) and ours[0][1] == 1  # the ClientHello follows the 'S'
    assert {t for _, t in ours} >= {1, 2, 8, 11, 15, 20}  # decrypted: EE, certificate, CV, Finished
    assert ours == tshark_handshake_rows(pcap, keylog, f"tcp.port=={port},pgsql")
    assert not [e for e in evs if type(e).__name__ == "UndecryptableEvent"]
    codes = verdict_codes(pcap, keylog)
    assert "upgraded" in codes and "upgrade_refused" not in codes
    # The CLI: the JSON keeps the contract, and embed keeps this session's key lines.
    out = CliRunner().invoke(app, ["decrypt", str(pcap), "--json", "--no-env", "--keylog", str(keylog)])
    assert out.exit_code == 0, out.output
    objs = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    check_contract(objs)
    assert [o["event"] for o in objs].count("upgrade") == 1
    argv = ["embed", str(pcap), str(keylog), "-o", str(tmp_path / "with-keys.pcapng")]
    embedded = CliRunner().invoke(app, argv)
    assert embedded.exit_code == 0, embedded.output
    # (the other connection is the readiness probe's late FIN)
    m = re.search(r"(\d+) key-log lines embedded \((\d+) of", embedded.output)
    assert m is not None and int(m.group(1)) >= 5 and m.group(2) == "1", embedded.output


def test_ssl_off_answers_n_and_triage_says_refused(cluster: Path, tmp_path: Path) -> None:
    port = _free_port()
    server = _server(cluster, port, ssl=False)
    next(server)
    pcap = tmp_path / "pg-n.pcap"
    try:
        with tcpdump(pcap, port):
            s_client(["-connect", f"127.0.0.1:{port}", "-starttls", "postgres"])
    finally:
        next(server, None)
    evs = events(pcap, None)
    (up,) = upgrades(evs)
    assert (up.protocol, up.reply, up.accepted) == ("postgresql", "N", False)
    assert verdict_codes(pcap, None).get("upgrade_refused") == "server"
