"""A real MariaDB server (``mariadbd`` on a throwaway datadir) and its real client (``mariadb``):
the client's SSL request (CLIENT_SSL in a short handshake response), then TLS. The client
writes no key log of its own: ``capdebug run`` gets its keys through the shim (Debian's client
is linked with OpenSSL 3). tshark, told the port is MySQL, is the oracle: it switches to TLS
after the SSL request and decodes the MySQL packets inside the decrypted records."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from capdebug.analysis.events import AppDataEvent, UndecryptableEvent
from capdebug.analysis.triage import triage
from capdebug.cli.app import app
from tests.decode.test_json_contract import check_contract
from tests.support.peers import self_signed_localhost
from tests.support.tcpdump import tcpdump
from tests.tools import require, require_root

from ._harness import alert_rows, events, handshake_rows, tshark_table, upgrades

# Built by the server from two literals: in the server's decrypted reply only, never in the query.
QUERY = "SELECT CONCAT('capdebug-', 'marker-', 6 * 7) AS m"
RESULT = b"capdebug-marker-42"


# A throwaway server: small, and nothing waits for the disk (5.5 s -> 0.8 s for the datadir).
FAST = (
    "--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M", "--innodb-flush-method=nosync",
    "--innodb-flush-log-at-trx-commit=0", "--innodb-doublewrite=0", "--skip-name-resolve",
)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def datadir() -> Iterator[Path]:
    """A fresh datadir (system tables, root with a password-less normal login) and a test
    certificate, owned by the ``mysql`` user: mariadbd refuses to run as root."""
    require_root()
    require("tcpdump", "tshark", "mariadbd", "mariadb", "mariadb-install-db", "gcc")
    # Not under pytest's 0700 temp root: the mysql user must reach it.
    root = Path(tempfile.mkdtemp(prefix="capdebug-mariadb-"))
    try:
        root.chmod(0o755)
        shutil.chown(root, "mysql")
        cert, key = self_signed_localhost(root, ec.generate_private_key(ec.SECP256R1()))
        for f in (cert, key):
            shutil.chown(f, "mysql")
            f.chmod(0o600)
        subprocess.run(
            ["runuser", "-u", "mysql", "--", "mariadb-install-db", "--no-defaults",
             f"--datadir={root / 'data'}", "--auth-root-authentication-method=normal", "--skip-test-db",
             *FAST],
            check=True, capture_output=True, timeout=120, cwd=root,
        )  # fmt: skip
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def _mariadbd(root: Path, port: int, *, ssl: bool) -> Iterator[None]:
    """mariadbd on 127.0.0.1:PORT with the test certificate (``ssl``) or ``--skip-ssl``; ready
    when its log says so (no probe connection that the capture could see)."""
    log = root / f"server-{port}.log"
    argv = [
        "runuser", "-u", "mysql", "--", "mariadbd", "--no-defaults", f"--datadir={root / 'data'}",
        f"--port={port}", "--bind-address=127.0.0.1", f"--socket={root / f'mysqld-{port}.sock'}",
        f"--pid-file={root / f'mysqld-{port}.pid'}", f"--log-error={log}", *FAST,
    ]  # fmt: skip
    argv += [f"--ssl-cert={root / 'cert.pem'}", f"--ssl-key={root / 'key.pem'}"] if ssl else ["--skip-ssl"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and "ready for connections" in log.read_text(errors="replace")):
            if time.monotonic() > deadline or proc.poll() is not None:
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"mariadbd did not start: {text[-800:]}")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()  # runuser passes SIGTERM on; mariadbd shuts down cleanly
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client(port: int, *opts: str) -> list[str]:
    return ["mariadb", "--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", str(port), "-u", "root",
            "--batch", "--skip-column-names", *opts, "-e", QUERY]  # fmt: skip


def _decode_as(port: int) -> str:
    return f"tcp.port=={port},mysql"


FIELDS = (
    "frame.number", "mysql.packet_number", "mysql.caps.sl", "mysql.packet_length", "mysql.query",
    "mysql.row.text", "tls.record.content_type", "tls.handshake.type", "tls.alert_message.desc",
)  # fmt: skip


def _rows(shark: list[dict[str, list[str]]], field: str) -> list[tuple[int, int]]:
    """(frame, value) for each occurrence of a numeric field, sorted."""
    return sorted((int(r["frame.number"][0]), int(v)) for r in shark for v in r[field])


def test_ssl_request_then_tls_decrypted_like_tshark(datadir: Path, tmp_path: Path) -> None:
    port = _free_port()
    pcap, keylog = tmp_path / "mariadb.pcap", tmp_path / "keys.log"
    with _mariadbd(datadir, port, ssl=True), tcpdump(pcap, port):
        done = subprocess.run(
            ["capdebug", "run", "--keylog", str(keylog), "--", *_client(port, "--ssl")],
            capture_output=True, timeout=60, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
    # The real client ran its query over TLS, and the shim logged that session's keys.
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == RESULT, done.stdout
    assert b"1 TLS session(s) logged" in done.stderr and b"(via shim)" in done.stderr, done.stderr
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600

    evs = events(pcap, keylog)
    shark = tshark_table(pcap, keylog, _decode_as(port), *FIELDS)
    # The prelude: the server's greeting offered TLS, the client's SSL request asked for it.
    (up,) = upgrades(evs)
    assert (up.protocol, up.command, up.accepted, up.from_) == (
        "mysql",
        "SSL request (CLIENT_SSL)",
        True,
        "client",
    )
    plain = [r for r in shark if r["mysql.packet_number"] and not r["tls.record.content_type"]]
    greeting = [r for r in plain if r["mysql.packet_number"] == ["0"]]
    assert [r["mysql.caps.sl"] for r in greeting] == [["1"]]
    ssl_request = [
        int(r["frame.number"][0])
        for r in shark
        if r["mysql.packet_number"] == ["1"]
        and r["mysql.caps.sl"] == ["1"]
        and not r["tls.record.content_type"]
    ]
    assert ssl_request == [up.frame] == [up.command_frame]
    # TLS from the next frame on: every handshake message and alert as tshark has them.
    ours = handshake_rows(evs)
    assert ours[0][1] == 1 and ours[0][0] > up.frame  # the ClientHello follows the SSL request
    assert {t for _, t in ours} >= {1, 2, 8, 11, 13, 15, 20}  # the server asks for a client certificate
    assert ours == _rows(shark, "tls.handshake.type")
    assert alert_rows(evs) == _rows(shark, "tls.alert_message.desc")
    assert not [e for e in evs if isinstance(e, UndecryptableEvent)]
    # Application data: every record decrypted, and per frame as many plaintext bytes as the
    # MySQL packets tshark decodes from its own decryption (4-byte header + payload each).
    data = [e for e in evs if isinstance(e, AppDataEvent)]
    assert data and all(e.decrypted for e in data)
    ours_data: Counter[int] = Counter()
    for e in data:
        ours_data[e.frame] += e.length
    theirs_data = {
        int(r["frame.number"][0]): sum(int(n) + 4 for n in r["mysql.packet_length"])
        for r in shark
        if r["mysql.packet_length"] and r["tls.record.content_type"]
    }
    assert ours_data == theirs_data
    assert [q for r in shark for q in r["mysql.query"]] == [QUERY]
    assert [t for r in shark for t in r["mysql.row.text"]] == [RESULT.decode()]

    # The CLI: the JSON keeps the contract and the exported plaintext holds the query's result.
    exported = tmp_path / "plain"
    argv = ["decrypt", str(pcap), "--json", "--no-env", "--keylog", str(keylog), "--export", str(exported)]
    out = CliRunner().invoke(app, argv)
    assert out.exit_code == 0, out.output
    objs = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    check_contract(objs)
    assert [o["event"] for o in objs].count("upgrade") == 1
    assert RESULT in (exported / "conn1-server.bin").read_bytes()
    assert QUERY.encode() in (exported / "conn1-client.bin").read_bytes()

    # Triage: the upgrade, and no error except one that is true of MariaDB on the wire: after
    # the client's COM_QUIT one side closes TCP without close_notify (tshark sees no alert at
    # all: neither sends one); which side's FIN comes first is a race, and that side is blamed.
    verdicts = [v for r in triage(evs) for v in r.verdicts]
    codes = {v.code: v.by for v in verdicts}
    assert "upgraded" in codes and "upgrade_refused" not in codes and "tls_never_followed" not in codes
    errors = sorted((v.code, v.by) for v in verdicts if v.severity == "error")
    if errors:
        fins = subprocess.run(
            ["tshark", "-n", "-r", str(pcap), "-Y", "tcp.flags.fin==1", "-T", "fields", "-e", "tcp.srcport"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        first = "server" if fins and int(fins[0]) == port else "client"
        assert errors == [("premature_close", first)], (verdicts, fins)
        assert _rows(shark, "tls.alert_message.desc") == []


def test_server_without_tls_and_a_client_that_requires_it(datadir: Path, tmp_path: Path) -> None:
    """``--skip-ssl``: the greeting has no CLIENT_SSL; a client that requires TLS
    (``--ssl-verify-server-cert``) closes without a word (MariaDB 10.11's ``--ssl`` alone logs in
    in plaintext instead: nothing on the wire says it wanted TLS, so that is not judged)."""
    port = _free_port()
    pcap = tmp_path / "mariadb-nossl.pcap"
    with _mariadbd(datadir, port, ssl=False), tcpdump(pcap, port):
        done = subprocess.run(
            _client(port, "--ssl-verify-server-cert"),
            capture_output=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode != 0 and b"server does not support it" in done.stderr, done.stderr
    shark = tshark_table(pcap, None, _decode_as(port), *FIELDS)
    mysql = [r for r in shark if r["mysql.packet_number"]]
    assert [(r["mysql.packet_number"], r["mysql.caps.sl"]) for r in mysql] == [
        (["0"], ["0"])
    ]  # the greeting only
    client_fin = tshark_table(pcap, None, _decode_as(port), "frame.number", "tcp.flags.fin", "tcp.srcport")
    fins = [
        int(r["frame.number"][0])
        for r in client_fin
        if r["tcp.flags.fin"] == ["1"] and r["tcp.srcport"] != [str(port)]
    ]
    evs = events(pcap, None)
    # Told by the client's FIN after a greeting it never answered: the server refused TLS.
    (up,) = upgrades(evs)
    assert (up.protocol, up.command, up.reply, up.accepted, up.from_) == (
        "mysql", "", "greeting without CLIENT_SSL", False, "server",
    )  # fmt: skip
    assert [up.frame] == [up.command_frame] == fins
    verdicts = [v for r in triage(evs) for v in r.verdicts]
    (refused,) = [v for v in verdicts if v.code == "upgrade_refused"]
    assert (refused.by, refused.frame) == ("server", up.frame) and "no TLS" in refused.detail, refused
    assert not {"upgraded", "tls_never_followed", "plaintext_to_tls_port"} & {v.code for v in verdicts}
