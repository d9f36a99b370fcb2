"""A capture that lost the server's first flight (ServerHello to Finished): the key log's TLS 1.3
handshake and traffic secrets of the session still decrypt the rest (issue 14).

The captures are the real fixtures (tcpdump over loopback) with the server's first-flight
frames removed by editcap; the plaintext exported from them must be the original's, byte for
byte (SHA-256).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from capdebug.analysis.events import DecodeEvent, RecoveredEvent, UndecryptableEvent
from capdebug.api import PlaintextExporter, decode_capture, load_keys, triage_capture
from tests.decode import craft as c
from tests.tools import require


def _first_flight(pcap: Path) -> list[int]:
    """Frames of the server's payload between the ClientHello and the client's next payload."""
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    data = [s for s in segs if s.payload]
    assert c.is_client(data[0], client)  # the ClientHello
    out = []
    for s in data[1:]:
        if c.is_client(s, client):
            break
        out.append(s.origin)
    assert out
    return out


def _cut(pcap: Path, frames: list[int], out: Path) -> Path:
    require("editcap")
    subprocess.run(["editcap", str(pcap), str(out), *map(str, frames)], check=True, capture_output=True)
    return out


def _export(pcap: Path, keys: Path, folder: Path) -> tuple[dict[str, str], list[DecodeEvent]]:
    with (
        PlaintextExporter(folder) as exporter,
        decode_capture(pcap, load_keys(pcap, [keys]), app_data_sink=exporter) as decoding,
    ):
        events = list(decoding)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.bin"))}
    return digests, events


@pytest.mark.parametrize(
    "name", ["tls13-aes128gcm", "tls13-aes256gcm", "tls13-chacha20", "gnutls-tls13", "tls13-large-transfer"]
)
def test_tls13_without_the_server_first_flight(tmp_path: Path, name: str) -> None:
    pcap, keys = c.fixture(name)
    want, _ = _export(pcap, keys, tmp_path / "original")
    assert want and all(want.values())
    cut = _cut(pcap, _first_flight(pcap), tmp_path / "cut.pcap")
    got, events = _export(cut, keys, tmp_path / "cut")
    assert got == want
    recovered = {(e.from_, e.label) for e in events if isinstance(e, RecoveredEvent)}
    # The client's Finished opens with its handshake secret; the server's first records after
    # the hole with its first traffic secret.
    assert ("client", "CLIENT_HANDSHAKE_TRAFFIC_SECRET") in recovered
    assert ("server", "SERVER_TRAFFIC_SECRET_0") in recovered
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]
    # Triage says what was lost, not that the handshake did not finish.
    (report,) = triage_capture(cut, load_keys(cut, [keys])).reports
    codes = {v.code for v in report.verdicts}
    assert "capture_incomplete" in codes and "handshake_incomplete" not in codes
    # The version and suite are those the secrets proved, as the whole capture shows them.
    (whole,) = triage_capture(pcap, load_keys(pcap, [keys])).reports
    assert whole.version == "TLS 1.3" and whole.cipher_suite is not None
    assert (report.version, report.cipher_suite) == (whole.version, whole.cipher_suite)


def test_tls12_without_the_server_first_flight_says_why(tmp_path: Path) -> None:
    # TLS 1.2 keys need the ServerHello's random: nothing is decrypted, and each direction
    # says why once (it used to show the records as undecrypted without a word).
    pcap, keys = c.fixture("python-tls12")
    cut = _cut(pcap, _first_flight(pcap), tmp_path / "cut.pcap")
    got, events = _export(cut, keys, tmp_path / "cut")
    assert not got
    reasons = [(e.from_, e.reason) for e in events if isinstance(e, UndecryptableEvent)]
    assert sorted(reasons) == [("client", "no_handshake"), ("server", "no_handshake")]
