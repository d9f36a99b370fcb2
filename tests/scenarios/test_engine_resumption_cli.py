"""The README's resumption and 0-RTT commands, run as written (``serve --early-data``, ``connect
--sess-out/--sess-in/--early-data``) between two engine processes over loopback: what each side
prints is the contract a user reads."""

from __future__ import annotations

import contextlib
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.proc import Proc

TIMEOUT = 15.0
ENGINE = [sys.executable, "-m", "capdebug.cli.engine"]


def _connect(port: int, ca: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ENGINE, "connect", f"127.0.0.1:{port}", "--ca", ca, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("version", ["1.3", "1.2"])
def test_resumption_from_a_session_file(version: str, tmp_path: Path) -> None:
    sess = tmp_path / "sess.json"
    server = Proc([*ENGINE, "serve", "--port", "0", "--echo"], name="serve")
    try:
        ca = server.wait_match(r"--ca (\S+)").group(1)
        port = int(server.wait_match(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        first = _connect(port, ca, "--max-version", version, "--send", "hi", "--sess-out", str(sess))
        assert first.returncode == 0, first.stderr
        assert first.stdout == "hi" and "resumed" not in first.stderr
        assert stat.S_IMODE(sess.stat().st_mode) == 0o600  # it holds the resumption secret
        second = _connect(port, ca, "--max-version", version, "--send", "hi", "--sess-in", str(sess))
    finally:
        server.close()
    assert second.returncode == 0, second.stderr
    line = next(ln for ln in second.stderr.splitlines() if ln.startswith("handshake complete"))
    assert f"TLS {version}" in line and ", resumed" in line
    # No key exchange of its own, and no certificate: a resumed handshake is not an RSA one.
    assert "signature -" in line and "RSA key exchange" not in line
    if version == "1.2":
        assert "extended master secret yes" in line


@contextlib.contextmanager
def _ticketed(tmp_path: Path) -> Iterator[tuple[Proc, str, int, Path]]:
    """An echo server accepting early data, and a session ticket of it in a file."""
    sess = tmp_path / "sess.json"
    server = Proc([*ENGINE, "serve", "--port", "0", "--echo", "--early-data", "1024"], name="serve")
    try:
        ca = server.wait_match(r"--ca (\S+)").group(1)
        port = int(server.wait_match(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        first = _connect(port, ca, "--send", "hi", "--sess-out", str(sess))
        assert first.returncode == 0, first.stderr
        yield server, ca, port, sess
    finally:
        server.close()


def test_early_data_accepted_then_the_ticket_is_spent(tmp_path: Path) -> None:
    with _ticketed(tmp_path) as (server, ca, port, sess):
        early = ["--sess-in", str(sess), "--early-data", "GET / HTTP/1.0", "--send", " again"]
        second = _connect(port, ca, *early)
        assert second.returncode == 0, second.stderr
        server.wait_for("0-RTT early data: 14 bytes")
        # The same ticket again: single use (RFC 8446 8.1), so neither resumed nor 0-RTT.
        third = _connect(port, ca, *early)
    assert "resumed, early data accepted" in second.stderr
    assert second.stdout == "GET / HTTP/1.0 again"
    assert third.returncode == 0, third.stderr
    assert "resumed" not in third.stderr and "early data REJECTED" in third.stderr
    assert third.stdout == " again"  # the early data was lost; only what followed the handshake


def test_early_data_alone_is_a_complete_request(tmp_path: Path) -> None:
    """--early-data without --send half-closes after the handshake: the echo server answers and
    closes at once instead of both sides waiting for the socket timeout."""
    with _ticketed(tmp_path) as (_, ca, port, sess):
        started = time.monotonic()
        second = _connect(port, ca, "--sess-in", str(sess), "--early-data", "ping")
        took = time.monotonic() - started
    assert second.returncode == 0, second.stderr
    assert "early data accepted" in second.stderr
    assert second.stdout == "ping"
    assert took < 5, f"connect took {took:.1f} s: it waited for a timeout"
