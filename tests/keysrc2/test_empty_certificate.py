"""A client with no certificate for the server's CertificateRequest sends an empty Certificate
(RFC 8446 4.4.2.4, RFC 5246 7.4.6): shown as empty, in TLS 1.2 (in the clear) and TLS 1.3
(decrypted), and without keys in TLS 1.3 named by its size. tshark (with the key log) is the
oracle for the message being a Certificate from the client with an empty list."""

from __future__ import annotations

from pathlib import Path

import pytest

from capdebug.analysis.describe import handshake_fields, text_detail
from capdebug.analysis.events import HandshakeEvent
from tests.keysrc2._capture import events, session, tshark_fields
from tests.tools import require, require_root


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_empty_client_certificate_is_shown_empty(tmp_path: Path, version: str) -> None:
    require("tcpdump", "tshark", "openssl")
    require_root()
    capture, keylog, _ = session(tmp_path, server_args=[version, "-verify", "1"])
    rows = tshark_fields(
        capture,
        ["frame.number", "tls.handshake.type", "tls.handshake.certificates_length"],
        "-o",
        f"tls.keylog_file:{keylog}",
        "-Y",
        "tls.handshake.type == 11",
    )
    # tshark: two Certificate messages, the server's with certificates, the client's empty.
    lengths = sorted(int(row[2].split(",")[-1]) for row in rows)
    assert len(rows) == 2 and lengths[0] == 0 < lengths[1], rows
    client_frame = next(int(r[0]) for r in rows if r[2].split(",")[-1] == "0")

    evs = events(capture, keylog)
    (cert,) = [e for e in evs if isinstance(e, HandshakeEvent) and e.type == 11 and e.from_ == "client"]
    assert cert.frame == client_frame
    assert cert.encrypted == (version == "-tls1_3")
    assert handshake_fields(cert)["count"] == 0
    assert "empty (no certificate)" in text_detail(cert)

    if version == "-tls1_3":
        # Without keys: the client's first protected record has an empty Certificate's size.
        hidden = [
            e
            for e in events(capture, None)
            if isinstance(e, HandshakeEvent) and e.type == -1 and e.from_ == "client"
        ]
        assert hidden[0].frame == client_frame and hidden[0].length == 25
        assert "empty Certificate" in text_detail(hidden[0])
        assert "empty" not in text_detail(hidden[1])  # its Finished
