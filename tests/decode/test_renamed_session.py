"""A TLS 1.3 session that the key log names by another client_random than its ClientHello's on
the wire, as with Encrypted Client Hello (the key schedule runs on the inner ClientHello, whose
random is encrypted; the key log holds that one). No stack here speaks ECH (OpenSSL 3.0, GnuTLS
and Python's ssl do not), so a real TLS 1.3 capture (tests/fixtures, OpenSSL on the loopback)
has its ClientHello.random rewritten on the wire, and, for the ECH case, one of its
extensions renamed encrypted_client_hello (0xfe0d): what the key log says no longer matches
the wire, exactly as with ECH."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw
from scapy.utils import rdpcap, wrpcap

from capdebug.analysis.events import AppDataEvent, RecoveredEvent, UndecryptableEvent
from tests.decode import craft as c
from tests.oracle import by_frame, capdebug_rows, tshark_rows
from tests.tools import require

NAME = "tls13-aes128gcm"
SESSION_TICKET_EMPTY = b"\x00\x23\x00\x00"
"""An empty session_ticket extension (RFC 5077): renamed encrypted_client_hello for the ECH case."""


def _rewritten(tmp_path: Path, *, ech: bool) -> Path:
    packets = rdpcap(str(c.fixture(NAME)[0]))
    for p in packets:
        data = bytes(p[Raw]) if p.haslayer(Raw) else b""
        if data[:1] == b"\x16" and data[5:6] == b"\x01":
            hello = bytearray(data)
            hello[11:43] = bytes(range(32))  # ClientHello.random (RFC 8446 4.1.2)
            if ech:
                at = hello.index(SESSION_TICKET_EMPTY)
                hello[at : at + 2] = b"\xfe\x0d"
            p[Raw].load = bytes(hello)
            del p[TCP].chksum, p[IP].chksum
            break
    else:
        raise AssertionError("no ClientHello in the fixture")
    out = tmp_path / f"renamed{'-ech' if ech else ''}.pcap"
    wrpcap(str(out), packets)
    return out


def test_handshake_secrets_under_another_random_open_the_session(tmp_path: Path) -> None:
    require("tshark")
    pcap, keys = c.fixture(NAME)
    renamed = _rewritten(tmp_path, ech=True)
    events = c.decode(renamed, keys)
    assert not [e for e in events if isinstance(e, UndecryptableEvent)]
    (found,) = [e for e in events if isinstance(e, RecoveredEvent)]
    original = keys.read_text().split("CLIENT_HANDSHAKE_TRAFFIC_SECRET ")[1].split()[0]
    assert (found.from_, found.label, found.client_random) == (
        "server",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        original,
    )
    # Every record reads as in the untouched capture, which tshark decrypts (it cannot decrypt
    # the renamed one: it looks secrets up by the ClientHello's random only).
    assert by_frame(capdebug_rows(events)) == by_frame(tshark_rows(pcap, keys))
    app = [e for e in events if isinstance(e, AppDataEvent)]
    assert app and all(e.decrypted for e in app)


def test_without_the_session_in_the_key_log_ech_is_named(tmp_path: Path) -> None:
    renamed = _rewritten(tmp_path, ech=True)
    other = c.fixture("tls13-chacha20")[1]
    events = c.decode(renamed, other)
    reasons = [e.message for e in events if isinstance(e, UndecryptableEvent)]
    assert reasons and any("Encrypted Client Hello" in m for m in reasons)
    assert not [e for e in events if isinstance(e, RecoveredEvent)]
    # Without ECH offered, the reason does not speak of it.
    plain = c.decode(_rewritten(tmp_path, ech=False), other)
    assert not any("Encrypted Client Hello" in e.message for e in plain if isinstance(e, UndecryptableEvent))
