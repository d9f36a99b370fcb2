"""Without keys, TLS 1.3 records that can only be handshake by where they stand are shown as
``encrypted_handshake`` and not counted as application bytes (analysis/decode/content.py).

Oracle: tshark with the key log says which protected records were handshake messages; capdebug
without any key must name the same records, one per message (OpenSSL sends each message of
a flight in its own record), leaving NewSessionTicket (post-handshake, unknowable) counted as
data. Three real OpenSSL sessions: no client authentication, a CertificateRequest answered
with an empty Certificate, and one answered with a certificate (Certificate, CertificateVerify,
Finished)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from capdebug.analysis.events import AppDataEvent, ConnectionEvent, HandshakeEvent
from capdebug.analysis.triage import triage
from tests.keysrc.peers import rsa_identity
from tests.keysrc2._capture import events, session, tshark_fields
from tests.tools import require, require_root

#: Handshake types only ever protected in TLS 1.3 and part of the handshake proper.
_HANDSHAKE_PROTECTED = {8, 11, 13, 15, 20}


def _variant(tmp_path: Path, variant: str) -> tuple[Path, Path]:
    if variant == "plain":
        capture, keylog, _ = session(tmp_path, server_args=["-tls1_3"])
    elif variant == "empty-certificate":
        capture, keylog, _ = session(tmp_path, server_args=["-tls1_3", "-verify", "1"])
    else:
        cert, key = rsa_identity(tmp_path / "client-id")
        capture, keylog, _ = session(
            tmp_path,
            server_args=["-tls1_3", "-verify", "1"],
            client_args=["-cert", str(cert), "-key", str(key)],
        )
    return capture, keylog


@pytest.mark.parametrize("variant", ["plain", "empty-certificate", "client-certificate"])
def test_hidden_handshake_records_are_tshark_s_handshake(tmp_path: Path, variant: str) -> None:
    require("tcpdump", "tshark", "openssl")
    require_root()
    capture, keylog = _variant(tmp_path, variant)
    conn = next(e for e in events(capture, None) if isinstance(e, ConnectionEvent))
    client_port = int(conn.client.rsplit(":", 1)[1])
    expected: Counter[tuple[int, str]] = Counter()
    for frame, sport, types in tshark_fields(
        capture, ["frame.number", "tcp.srcport", "tls.handshake.type"], "-o", f"tls.keylog_file:{keylog}"
    ):
        for t in filter(None, types.split(",")):
            if int(t) in _HANDSHAKE_PROTECTED:
                expected[(int(frame), "client" if int(sport) == client_port else "server")] += 1
    assert sum(expected.values()) >= {"plain": 5, "empty-certificate": 7, "client-certificate": 8}[variant]

    evs = events(capture, None)
    hidden = Counter((e.frame, e.from_) for e in evs if isinstance(e, HandshakeEvent) and e.type == -1)
    assert hidden == expected

    # Bytes: what stays counted is every other protected record, exactly.
    protected = Counter[str]()
    for _, sport, lengths, opaque in tshark_fields(
        capture, ["frame.number", "tcp.srcport", "tls.record.length", "tls.record.opaque_type"]
    ):
        if not opaque:
            continue
        who = "client" if int(sport) == client_port else "server"
        # Records of a frame in order; the first ones may be in the clear (hello, CCS).
        sizes = [int(x) for x in lengths.split(",")]
        protected[who] += sum(sizes[len(sizes) - len(opaque.split(",")) :])
    hidden_bytes = Counter[str]()
    for e in evs:
        if isinstance(e, HandshakeEvent) and e.type == -1:
            hidden_bytes[e.from_] += e.length
    (report,) = triage(evs)
    assert report.bytes_client == protected["client"] - hidden_bytes["client"]
    assert report.bytes_server == protected["server"] - hidden_bytes["server"]
    # And the application's own bytes are among them (the request, the page).
    app = [e for e in evs if isinstance(e, AppDataEvent)]
    assert any(e.from_ == "client" for e in app) and any(e.from_ == "server" for e in app)
