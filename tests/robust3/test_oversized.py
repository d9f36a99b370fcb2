"""A handshake message declaring 16 MB (issue 15): said as what it is, an oversized declared
length with the reason ``oversized_handshake``, not "the capture started mid-connection"."""

from __future__ import annotations

from pathlib import Path

from capdebug.analysis.decode.content import MAX_HANDSHAKE_MESSAGE
from capdebug.api import load_keys, triage_capture
from tests.decode import craft as c


def _crafted(tmp_path: Path, length: int) -> tuple[Path, Path]:
    pcap, keys = c.fixture("tls13-aes128gcm")
    segs = c.read_segments(pcap)
    client = c.client_of(segs)
    # Bytes 6-8 of the client's stream: the ClientHello's uint24 length (after the 5-byte
    # record header and its msg_type, RFC 8446 4).
    out = c.set_bytes(segs, client, True, 6, length.to_bytes(3, "big"))
    return c.write(tmp_path / "big.pcap", out), keys


def test_client_hello_declaring_16_mb(tmp_path: Path) -> None:
    cap, keys = _crafted(tmp_path, 0xFFFFFF)
    events = c.as_json(c.decode(cap, keys))
    hello = next(e for e in events if e["event"] == "handshake" and e["from"] == "client")
    assert hello["name"] == "client_hello" and hello["frame"] == 4
    assert "16777215" in hello["error"] and str(MAX_HANDSHAKE_MESSAGE) in hello["error"]
    reasons = {(e["from"], e["reason"]["code"]) for e in events if e["event"] == "undecryptable"}
    assert ("client", "oversized_handshake") in reasons
    assert ("server", "oversized_handshake") in reasons
    assert not any(code == "no_handshake" for _, code in reasons)
    assert not any(
        "mid-connection" in e["reason"]["message"] for e in events if e["event"] == "undecryptable"
    )
    report = triage_capture(cap, load_keys(cap, [keys])).reports[0]
    details = " ".join(v.detail for v in report.verdicts)
    assert "oversized_handshake" in details and "mid-connection" not in details


def test_a_length_within_the_bound_still_waits_for_its_bytes(tmp_path: Path) -> None:
    """Just under the bound, the message is a (truncated) message like any other: no oversized
    report, and it never completes."""
    cap, keys = _crafted(tmp_path, MAX_HANDSHAKE_MESSAGE)
    events = c.as_json(c.decode(cap, keys))
    assert not any(
        e["event"] == "undecryptable" and e["reason"]["code"] == "oversized_handshake" for e in events
    )
    # The hello never completes (the client's later records are only encrypted_handshake).
    assert not any(e["event"] == "handshake" and e["from"] == "client" and e["type"] != -1 for e in events)
