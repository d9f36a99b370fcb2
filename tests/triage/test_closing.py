"""Why it closed, on real captures made here (Python ssl over loopback, real tcpdump): an idle
timeout on the server, a connection still open when the capture ended, and whose turn it was when
a handshake stopped."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from capdebug.analysis.triage import ConnectionReport
from capdebug.api import load_keys, triage_capture
from capdebug.crypto import testpki
from tests.support.proc import TIMEOUT
from tests.support.tcpdump import tcpdump
from tests.tools import require

from .test_triage_verdicts import one, only, triage


def _pki(tmp: Path) -> tuple[Path, Path]:
    import datetime as dt

    paths = testpki.make_test_pki(tmp / "pki", dt.datetime.now(dt.UTC), only=("server-ecdsa",))
    return paths["server-ecdsa"], paths["server-ecdsa.key"]


def _recv(s: ssl.SSLSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _triage(pcap: Path, keys: Path | None) -> ConnectionReport:
    reports, _ = triage_capture(pcap, load_keys(pcap, [keys] if keys else []))
    assert len(reports) == 1
    return reports[0]


def _run(tmp: Path, name: str, *, idle: float, close_in_capture: bool) -> tuple[Path, Path]:
    cert = _pki(tmp)
    keys, pcap = tmp / f"{name}.keys", tmp / f"{name}.pcap"
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(*map(str, cert))
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
    cctx.keylog_filename = str(keys)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    lsock.settimeout(TIMEOUT)
    port = lsock.getsockname()[1]
    release = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        conn, _ = lsock.accept()
        s = sctx.wrap_socket(conn, server_side=True)
        held.append(s)
        s.sendall(b"hello" + _recv(s, 5))
        if close_in_capture:
            time.sleep(idle)  # the server's idle timeout
            s.unwrap().close()
        else:
            release.wait(TIMEOUT)
            s.close()

    with tcpdump(pcap, port):
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        c = cctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        c.sendall(b"ping!")
        assert _recv(c, 10) == b"helloping!"
        if close_in_capture:
            assert c.recv(1) == b""  # the server's close_notify
            c.unwrap().close()
            t.join(TIMEOUT)
    if not close_in_capture:
        c.close()
        release.set()
        t.join(TIMEOUT)
    lsock.close()
    return pcap, keys


def test_idle_close_by_the_server(tmp_path: Path) -> None:
    require("tcpdump")
    pcap, keys = _run(tmp_path, "idle", idle=1.0, close_in_capture=True)
    for k in (keys, None):
        r = _triage(pcap, k)
        (v,) = [v for v in r.verdicts if v.code == "idle_close"]
        assert (v.severity, v.by) == ("info", "server")
        # It slept 1.0 s; a loaded machine adds a little to what the capture shows.
        m = re.search(r"the server closed (\d+\.\d) s after the last data", v.detail)
        assert m is not None and 1.0 <= float(m.group(1)) < 1.5, v.detail
        assert "an idle timeout on the server's side" in v.detail
        assert not r.has_error
    assert "with close_notify" in one(_triage(pcap, keys), "idle_close").detail


def test_open_at_capture_end(tmp_path: Path) -> None:
    require("tcpdump")
    pcap, keys = _run(tmp_path, "open", idle=0, close_in_capture=False)
    for k in (keys, None):
        r = _triage(pcap, k)
        v = one(r, "open_at_capture_end")
        assert (v.severity, v.by) == ("info", None)
        assert "still open when the capture ended" in v.detail
        assert not any(
            x.code in ("premature_close", "handshake_incomplete", "idle_close") for x in r.verdicts
        )


@pytest.mark.parametrize("name", ["handshake_incomplete", "handshake_server_fin"])
def test_handshake_incomplete_says_whose_turn(name: str) -> None:
    """The client sent its ClientHello and the server never answered: the server's turn."""
    for keys in (True, False):
        v = one(only(triage(name, keys=keys)), "handshake_incomplete")
        assert v.by == "server"
        assert "it was the server's turn" in v.detail
