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

from ._harness import (
    alert_rows,
    events,
    handshake_rows,
    tshark_alert_rows,
    tshark_fields,
    tshark_handshake_rows,
    upgrades,
)

# Built by the server from two literals: in the server's decrypted reply only, never in the query.
QUERY = "SELECT CONCAT('capdebug-', 'marker-', 6 * 7) AS m"
RESULT = b"capdebug-marker-42"


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
             "--innodb-log-file-size=4M"],
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
        f"--pid-file={root / f'mysqld-{port}.pid'}", f"--log-error={log}", "--innodb-buffer-pool-size=16M",
        "--skip-name-resolve",
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
    decode_as = _decode_as(port)
    # The prelude: the server's greeting offered TLS, the client's SSL request asked for it.
    (up,) = upgrades(evs)
    assert (up.protocol, up.command, up.accepted, up.from_) == (
        "mysql",
        "SSL request (CLIENT_SSL)",
        True,
        "client",
    )
    greeting = tshark_fields(
        pcap, None, decode_as, "mysql.packet_number == 0", "frame.number", "mysql.caps.sl"
    )
    assert [sl for _, sl in greeting] == ["1"]
    ssl_request = tshark_fields(
        pcap, None, decode_as, "mysql.packet_number == 1 && mysql.caps.sl == 1 && !tls", "frame.number"
    )
    assert [int(f) for (f,) in ssl_request] == [up.frame] == [up.command_frame]
    # TLS from the frame after it: every handshake message and alert as tshark has them.
    ours = handshake_rows(evs)
    assert ours[0] == (min(f for f, _ in ours), 1) and ours[0][0] > up.frame  # the ClientHello follows
    assert {t for _, t in ours} >= {1, 2, 8, 11, 13, 15, 20}  # the server asks for a client certificate
    assert ours == tshark_handshake_rows(pcap, keylog, decode_as)
    assert alert_rows(evs) == tshark_alert_rows(pcap, keylog, decode_as)
    assert not [e for e in evs if isinstance(e, UndecryptableEvent)]
    # Application data: every record decrypted, and per frame as many plaintext bytes as the
    # MySQL packets tshark decodes from its own decryption (4-byte header + payload each).
    data = [e for e in evs if isinstance(e, AppDataEvent)]
    assert data and all(e.decrypted for e in data)
    ours_data: Counter[int] = Counter()
    for e in data:
        ours_data[e.frame] += e.length
    theirs_data: Counter[int] = Counter()
    for frame, lengths in tshark_fields(
        pcap, keylog, decode_as, "tls && mysql", "frame.number", "mysql.packet_length"
    ):
        theirs_data[int(frame)] += sum(int(n) + 4 for n in lengths.split(","))
    assert ours_data == theirs_data
    rows = tshark_fields(pcap, keylog, decode_as, "mysql.query", "frame.number", "mysql.query")
    assert [q for _, q in rows] == [QUERY]
    rows = tshark_fields(pcap, keylog, decode_as, "mysql.row.text", "mysql.row.text")
    assert [t for (t,) in rows] == [RESULT.decode()]

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
    # the client's COM_QUIT the server closes TCP without close_notify (tshark sees no alert at
    # all: the client sends none either).
    verdicts = [v for r in triage(evs) for v in r.verdicts]
    codes = {v.code: v.by for v in verdicts}
    assert "upgraded" in codes and "upgrade_refused" not in codes and "tls_never_followed" not in codes
    errors = sorted((v.code, v.by) for v in verdicts if v.severity == "error")
    assert errors in ([], [("premature_close", "server")]), verdicts
    if errors:
        assert tshark_alert_rows(pcap, keylog, decode_as) == []
