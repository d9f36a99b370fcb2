"""A TLS 1.2 alert read without its keys is an encrypted alert, never "level 136 unknown"
(issue 14): in JSON, in the text timeline and in triage, also when the capture lost the
ChangeCipherSpec or the hellos that say the records are protected.

The capture is real: OpenSSL's s_server and s_client over loopback, TLS 1.2, tcpdump.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from capdebug.analysis.events import AlertEvent
from capdebug.api import decode_capture, load_keys, triage_capture
from tests.decode import craft as c
from tests.tools import require, require_root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls12(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(capture, key log) of one TLS 1.2 connection: the client sends a line, the server closes
    with a FIN (its stdin ended), the client answers with an (encrypted) alert."""
    require_root()
    require("openssl", "tcpdump", "editcap")
    d = tmp_path_factory.mktemp("tls12")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=capdbg.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = _free_port()
    pcap, keys = d / "tls12.pcap", d / "tls12.keys"
    dump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-n", "-U", "--immediate-mode", "-s", "0", "-w", str(pcap),
         f"tcp port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert dump.stderr is not None and "listening on" in dump.stderr.readline()
    # The server's stdin ends after 2 s (it then shuts the connection down with a FIN), the
    # client's after its line: it answers the FIN with a fatal alert, protected.
    server = subprocess.Popen(
        ["sh", "-c", f"sleep 2 | openssl s_server -tls1_2 -cert {cert} -key {key} -accept {port} "
         f"-naccept 1 -keylogfile {keys}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        while "ACCEPT" not in server.stdout.readline():
            pass
        subprocess.run(
            ["sh", "-c",
             f"(echo hello; sleep 0.5) | openssl s_client -tls1_2 -connect 127.0.0.1:{port} -quiet"],
            capture_output=True, timeout=20,
        )  # fmt: skip
        server.communicate(timeout=20)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        time.sleep(0.3)
        dump.send_signal(signal.SIGINT)
        dump.communicate(timeout=10)
    yield pcap, keys


def _alerts(pcap: Path, keys: Path | None) -> list[AlertEvent]:
    with decode_capture(pcap, load_keys(pcap, [keys] if keys else [])) as decoding:
        return [e for e in decoding if isinstance(e, AlertEvent)]


def _cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", "from capdebug.cli.app import main; main()", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def _without_frames(pcap: Path, out: Path, pick: str) -> Path:
    """The capture without the frames of ``pick``: "client_ccs" (the client's ChangeCipherSpec
    and Finished) or "server_flight" (the server's first flight, ServerHello included)."""
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    data = [s for s in segs if s.payload]
    if pick == "server_flight":
        frames = []
        for s in data[1:]:
            if c.is_client(s, client):
                break
            frames.append(s.origin)
    else:
        # The client's second flight: its first payload after the server's.
        frames = [next(s.origin for s in data[2:] if c.is_client(s, client))]
    subprocess.run(["editcap", str(pcap), str(out), *map(str, frames)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize("cut", [None, "client_ccs", "server_flight"])
def test_encrypted_alert_without_keys(tls12: tuple[Path, Path], tmp_path: Path, cut: str | None) -> None:
    pcap, keys = tls12
    # With the keys it is a real alert (the record is an alert, not something else).
    assert [(a.from_, a.encrypted, a.level) for a in _alerts(pcap, keys)] == [("client", True, 2)]
    capture = pcap if cut is None else _without_frames(pcap, tmp_path / f"{cut}.pcap", cut)
    (alert,) = _alerts(capture, None)
    assert (alert.from_, alert.level, alert.description, alert.name, alert.encrypted) == (
        "client",
        None,
        None,
        "encrypted_alert",
        True,
    )
    objs = [json.loads(line) for line in _cli("decrypt", str(capture), "--json").splitlines()]
    (obj,) = [o for o in objs if o["event"] == "alert"]
    assert obj["level"] is None and obj["name"] == "encrypted_alert" and obj["encrypted"] is True
    text = _cli("decrypt", str(capture))
    line = next(ln for ln in text.splitlines() if "alert" in ln)
    assert "encrypted" in line and "level" not in line and "unknown" not in line
    (report,) = triage_capture(capture, load_keys(capture, [])).reports
    details = " ".join(f"{v.code} {v.detail}" for v in report.verdicts)
    assert "level" not in details and "unknown(" not in details
    triage_json = json.loads(_cli("triage", str(capture), "--json"))
    assert "unknown(" not in json.dumps(triage_json)
