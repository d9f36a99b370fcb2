"""Decoding real captures agrees with tshark, frame by frame, with the same keys.

The fixtures are real openssl / GnuTLS / Python ssl conversations captured by tcpdump
(scripts/make_fixtures.py). For each, the sequence of (frame, connection, sender, handshake
type | alert description | application-data record) must equal what tshark shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.oracle import by_frame, capdebug_events, capdebug_rows, tshark_rows
from tests.tools import require

FIXTURES = Path(__file__).parent.parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
NAMES = [f["name"] for f in MANIFEST]


@pytest.mark.tools
@pytest.mark.parametrize("name", NAMES)
def test_matches_tshark_with_keys(name: str) -> None:
    require("tshark")
    pcap, keys = FIXTURES / f"{name}.pcap", FIXTURES / f"{name}.keys"
    events = capdebug_events(pcap, keys)
    ours = by_frame(capdebug_rows(events))
    theirs = by_frame(tshark_rows(pcap, keys))
    assert ours == theirs
    # With keys, nothing is left undecrypted in these complete captures.
    undecryptable = [e.to_json() for e in events if e.to_json()["event"] == "undecryptable"]
    assert undecryptable == []


@pytest.mark.tools
@pytest.mark.parametrize("name", ["tls13-aes128gcm", "tls12-ecdhe-aes128gcm", "tls13-hrr"])
def test_matches_tshark_without_keys(name: str) -> None:
    require("tshark")
    pcap = FIXTURES / f"{name}.pcap"
    events = capdebug_events(pcap, None)
    assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(pcap, None))
    reasons = {e.to_json()["reason"]["code"] for e in events if e.to_json()["event"] == "undecryptable"}
    assert reasons == {"no_key"}
