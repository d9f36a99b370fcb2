"""The prelude tracker on the bytes of each protocol's upgrade (RFC examples and what real
servers send), fed in pieces as TCP may cut them; the real exchanges are in the other tests."""

from __future__ import annotations

import pytest

from capdebug.analysis.prelude import MAX_PRELUDE, Prelude, Upgrade, classify, preview

HELLO = bytes.fromhex("160301002e010000") + bytes(0x2A)  # a ClientHello record's start


def run(steps: list[tuple[str, bytes]]) -> tuple[list[Upgrade], Prelude, bytearray, bytearray]:
    """Feed ``(who, bytes)`` steps one byte-chunk at a time; the upgrades seen, in order."""
    p, client, server, seen = Prelude(), bytearray(), bytearray(), []
    for frame, (who, data) in enumerate(steps, 1):
        for i in range(0, len(data), 7):  # cut in 7-byte pieces: lines span segments
            (client if who == "c" else server).extend(data[i : i + 7])
            got = p.advance(client, server, frame, frame * 1000)
            if got is not None:
                seen.append(got)
    return seen, p, client, server


def test_smtp_multiline_ehlo_then_starttls_220() -> None:
    seen, _p, client, server = run(
        [
            ("s", b"220 mx ESMTP\r\n"),
            ("c", b"EHLO me\r\n"),
            ("s", b"250-mx\r\n250-STARTTLS\r\n250 HELP\r\n"),
            ("c", b"STARTTLS\r\n"),
            ("s", b"220 2.0.0 Ready to start TLS\r\n"),
            ("c", HELLO),
        ]
    )
    (u,) = seen
    assert (u.protocol, u.command, u.reply, u.accepted) == (
        "smtp",
        "STARTTLS",
        "220 2.0.0 Ready to start TLS",
        True,
    )
    assert (u.command_frame, u.reply_frame) == (4, 5)
    assert client[u.client_at :] == HELLO and u.server_at == len(server)


def test_imap_skips_untagged_and_pop3_err_is_refused() -> None:
    seen, *_ = run(
        [
            ("s", b"* OK ready\r\n"),
            ("c", b"a1 STARTTLS\r\n"),
            ("s", b"* BYE not really\r\na1 OK Begin TLS negotiation now\r\n"),
        ]
    )
    assert [(u.protocol, u.reply, u.accepted) for u in seen] == [
        ("imap", "a1 OK Begin TLS negotiation now", True)
    ]
    seen, p, *_ = run([("s", b"+OK hi\r\n"), ("c", b"STLS\r\n"), ("s", b"-ERR no TLS here\r\n")])
    assert [(u.protocol, u.accepted) for u in seen] == [("pop3", False)] and p.refusals and not p.done


def test_ftp_auth_tls_234_and_multiline_reply() -> None:
    seen, *_ = run(
        [("s", b"220-Welcome\r\n220 FTP ready\r\n"), ("c", b"AUTH TLS\r\n"), ("s", b"234 AUTH TLS ok.\r\n")]
    )
    assert [(u.protocol, u.reply, u.accepted) for u in seen] == [("ftp", "234 AUTH TLS ok.", True)]


def test_postgresql_sslrequest_s_and_n() -> None:
    req = bytes.fromhex("0000000804d2162f")
    seen, *_ = run([("c", req), ("s", b"S"), ("c", HELLO)])
    assert [(u.protocol, u.reply, u.accepted, u.client_at, u.server_at) for u in seen] == [
        ("postgresql", "S", True, 8, 1)
    ]
    seen, *_ = run([("c", req), ("s", b"N")])
    assert [(u.reply, u.accepted) for u in seen] == [("N", False)]


def test_ldap_starttls_extended_operation() -> None:
    oid = b"1.3.6.1.4.1.1466.20037"
    req = (
        b"\x30"
        + bytes([5 + 2 + len(oid)])
        + b"\x02\x01\x01\x77"
        + bytes([2 + len(oid)])
        + b"\x80"
        + bytes([len(oid)])
        + oid
    )
    ok = bytes.fromhex("300c02010178070a010004000400")
    seen, *_ = run([("c", req), ("s", ok)])
    assert [(u.protocol, u.reply, u.accepted, u.client_at, u.server_at) for u in seen] == [
        ("ldap", "resultCode 0", True, len(req), len(ok))
    ]
    busy = bytes.fromhex("300c02010178070a013404000400")  # unavailable (52)
    seen, *_ = run([("c", req), ("s", busy)])
    assert [(u.reply, u.accepted) for u in seen] == [("resultCode 52", False)]


def test_xmpp_proceed_and_http_connect_407() -> None:
    seen, *_ = run(
        [
            ("c", b"<stream:stream to='x'>"),
            ("s", b"<stream:stream><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            ("c", b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
            ("s", b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
        ]
    )
    assert [(u.protocol, u.accepted) for u in seen] == [("xmpp", True)]
    seen, *_ = run(
        [
            ("c", b"CONNECT h:443 HTTP/1.1\r\nHost: h\r\n\r\n"),
            ("s", b"HTTP/1.1 407 Proxy Auth Required\r\n\r\n"),
        ]
    )
    assert [(u.protocol, u.command, u.accepted) for u in seen] == [
        ("http-connect", "CONNECT h:443 HTTP/1.1", False)
    ]


def test_mysql_client_ssl_capability() -> None:
    greeting = b"\x0a5.7.0\x00" + bytes(40)
    server = len(greeting).to_bytes(3, "little") + b"\x00" + greeting
    ssl_request = (32).to_bytes(3, "little") + b"\x01" + (0x0800 | 0x0200).to_bytes(4, "little") + bytes(28)
    seen, *_ = run([("s", server), ("c", ssl_request + HELLO)])
    assert [(u.protocol, u.accepted, u.client_at, u.server_at) for u in seen] == [
        ("mysql", True, 36, len(server))
    ]


def _mysql_greeting(capabilities: int) -> bytes:
    """A protocol-10 greeting as MariaDB 10.11 sends it, up to the low capability flags."""
    body = b"\x0a5.5.5-10.11.19-MariaDB\x00" + (4).to_bytes(4, "little") + b"bUezV}62\x00"
    body += capabilities.to_bytes(2, "little") + bytes(20)
    return len(body).to_bytes(3, "little") + b"\x00" + body


@pytest.mark.parametrize(
    ("capabilities", "client", "refused"),
    [
        (0xF7FE, b"", True),  # --skip-ssl, and a client requiring TLS closes without a word
        (0xFFFE, b"", False),  # TLS offered: the client closed for another reason
        (0xF7FE, b"\x20\x00\x00\x01\x84\xa2", False),  # a plaintext login started: not judged
    ],
)
def test_mysql_greeting_without_client_ssl_then_the_client_closes(
    capabilities: int, client: bytes, refused: bool
) -> None:
    greeting = _mysql_greeting(capabilities)
    seen, p, c, s = run([("s", greeting), ("c", client)] if client else [("s", greeting)])
    assert seen == []
    got = p.client_closed(c, s, 9, 9000)
    assert (got is not None) == refused
    if got is not None:
        assert (got.protocol, got.command, got.reply, got.accepted, got.reply_frame) == (
            "mysql", "", "greeting without CLIENT_SSL", False, 9,
        )  # fmt: skip
        assert p.refusals == [got] and p.done and p.client_closed(c, s, 10, 10000) is None
    # A greeting cut short by the capture is no evidence.
    assert Prelude().client_closed(bytearray(), bytearray(greeting[:20]), 9, 9000) is None


def test_client_hello_found_after_unknown_plaintext_and_the_bound() -> None:
    seen, *_ = run([("c", b"HELLO-PROTO v1\n"), ("s", b"OK go\n"), ("c", HELLO)])
    assert [(u.protocol, u.client_at, u.server_at) for u in seen] == [("unknown", 15, 6)]
    seen, p, *_ = run([("c", b"x" * (MAX_PRELUDE + 10))])
    assert seen == [] and p.done


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n", "http"),
        (b"GET / HTTP/1.1\r\n", "http"),
        (b"SSH-2.0-OpenSSH_9.2\r\n", "ssh"),
        (b"220 mx.example ESMTP\r\n", "smtp"),
        (b"220 ProFTPD Server\r\n", "ftp"),
        (HELLO, "tls"),
        (b"\x00\x01\xff", "binary"),
    ],
)
def test_classify(data: bytes, kind: str) -> None:
    assert classify(data) == kind


def test_preview_escapes_control_bytes() -> None:
    assert preview(b"GET /\r\n\x1b[31m") == "GET /\\r\\n\\x1b[31m"
    assert preview(b"a" * 70).endswith("...")


def test_plain_http_and_ssh_are_not_followed_but_connect_is() -> None:
    from capdebug.analysis.prelude import never_upgrades

    assert never_upgrades(b"GET / HTTP/1.1\r\n") and never_upgrades(b"SSH-2.0-x\r\n")
    assert not never_upgrades(b"CONNECT h:443 HTTP/1.1\r\n") and not never_upgrades(b"220 mx\r\n")
