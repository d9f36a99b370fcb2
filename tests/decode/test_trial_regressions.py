"""Regressions found by the differential trial against tshark (scripts/trial_matrix.py).

A capture that starts after the ClientHello (here: a real openssl session with its first four
frames cut away) shows the ServerHello but not the client_random. The server's direction was
explained ("no application traffic secret in the key log decrypts these records") at the
ServerHello, and from then on its records were counted unopened, never tried: the key log's
SERVER_TRAFFIC_SECRET_0 decrypts them. Every application-stage record must be decrypted, with
the plaintext lengths tshark shows for the complete capture.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.oracle import capdebug_events
from tests.tools import require

FIXTURES = Path(__file__).parent.parent / "fixtures" / "trial"
LATE = FIXTURES / "tls13-after-client-hello.pcap"
FULL = FIXTURES / "tls13-full.pcap"
KEYS = FIXTURES / "tls13-after-client-hello.keys"
CUT = 4
"""Frames cut from the front of the complete capture."""


def _tshark_plaintexts(capture: Path) -> list[tuple[int, str, int]]:
    """(frame, sender port, plaintext length) of each decrypted application-data record."""
    argv = ["tshark", "-n", "-r", str(capture), "-o", f"tls.keylog_file:{KEYS}", "-Y", "data", "-T", "fields"]
    argv += ["-e", "frame.number", "-e", "tcp.srcport", "-e", "data.len"]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        frame, port, lens = line.split("\t")
        rows += [(int(frame), port, int(n)) for n in lens.split(",")]
    return rows


def test_server_direction_recovered_after_a_late_start() -> None:
    events = [e.to_json() for e in capdebug_events(LATE, KEYS)]
    recovered = {e["from"]: e for e in events if e["event"] == "recovered"}
    assert set(recovered) == {"client", "server"}
    assert recovered["server"]["label"] == "SERVER_TRAFFIC_SECRET_0"
    app = [e for e in events if e["event"] == "app_data"]
    assert app and all(e["decrypted"] for e in app), app
    # The server's NewSessionTickets come out of the same records.
    assert [e["from"] for e in events if e["event"] == "handshake" and e["name"] == "new_session_ticket"] == [
        "server",
        "server",
    ]
    # Both close_notify alerts are read, not guessed.
    closes = [(e["from"], e["description"]) for e in events if e["event"] == "alert"]
    assert closes == [("client", 0), ("server", 0)]


@pytest.mark.tools
def test_plaintext_lengths_match_tshark_on_the_complete_capture() -> None:
    require("tshark")
    conn = next(e for e in (x.to_json() for x in capdebug_events(LATE, KEYS)) if e["event"] == "connection")
    client_port = conn["client"].rsplit(":", 1)[1]
    ours = [
        (e["frame"] + CUT, e["from"], e["length"])
        for e in (x.to_json() for x in capdebug_events(LATE, KEYS))
        if e["event"] == "app_data"
    ]
    theirs = [
        (f, "client" if port == client_port else "server", n) for f, port, n in _tshark_plaintexts(FULL)
    ]
    assert ours == theirs
    assert {who for _, who, _ in theirs} == {"client", "server"}
