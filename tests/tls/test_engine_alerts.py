"""Strict alerts: one table of malformed or unexpected inputs and the alert each calls for.

Each row cites the RFC sentence that prescribes the alert (in the style of s2n-tls's alert
protocol tests). A row builds a connection in the right state, feeds it the bad bytes and checks
three things: the named error, the alert description in it, and that very alert on the wire
(opened the way the peer would open it). Every input comes from a peer, so nothing but the
engine's TLSError may escape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from capdebug._buffer import Buffer
from capdebug.crypto.record import RecordDirection
from capdebug.errors import TLSError
from capdebug.tls.connection import Connection
from capdebug.wire import extensions as wx
from capdebug.wire.alert import pull_alert
from capdebug.wire.constants import AlertDescription, CipherSuite, ContentType, ExtensionType, ProtocolVersion
from capdebug.wire.handshake import (
    ClientHello,
    Finished,
    KeyUpdate,
    ServerHello,
    UnknownHandshake,
    encode_handshake,
    pull_handshake,
)
from capdebug.wire.record import frame_records

from ._pki import NOW, Pki, client_config, drain, pump, server_config

AD = AlertDescription
CS = CipherSuite
TLS12 = ProtocolVersion.TLS1_2
HS, CCS, APP, ALERT = ContentType.handshake, ContentType.change_cipher_spec, ContentType.application_data, 21


def record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    return bytes((content_type,)) + version.to_bytes(2, "big") + len(body).to_bytes(2, "big") + body


@dataclass
class Case:
    """The victim, its read direction as the peer sees our alerts, and the bytes to feed."""

    victim: Connection
    data: bytes
    peer_rx: RecordDirection | None = None
    """How the peer opens what the victim sends (None: the victim's alert is in the clear)."""


# ---------------------------------------------------------------- builders


def client_hello(pki: Pki, **changes: object) -> ClientHello:
    c = Connection(client_config(pki), is_client=True, now=NOW)
    c.start_handshake()
    out = c.data_to_send()
    hello = pull_handshake(Buffer(out[5:]))
    assert isinstance(hello, ClientHello)
    return dataclasses.replace(hello, **changes)  # type: ignore[arg-type]


def to_server(pki: Pki, hello: ClientHello | bytes, **config: object) -> Case:
    body = encode_handshake(hello) if isinstance(hello, ClientHello) else hello
    return Case(Connection(server_config(pki, **config), is_client=False, now=NOW), record(HS, body))


def server_hello(**changes: object) -> ServerHello:
    base = ServerHello(TLS12, bytes(32), b"", CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0, ())
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def to_client(pki: Pki, hello: ServerHello, **config: object) -> Case:
    c = Connection(client_config(pki, **config), is_client=True, now=NOW)
    c.start_handshake()
    c.data_to_send()
    return Case(c, record(HS, encode_handshake(hello)))


def connected13(pki: Pki) -> tuple[Connection, Connection]:
    c = Connection(client_config(pki), is_client=True, now=NOW)
    s = Connection(server_config(pki), is_client=False, now=NOW)
    c.start_handshake()
    pump(c, s)
    drain(c), drain(s)
    assert c.handshake_complete and s.handshake_complete
    return c, s


def connected12(pki: Pki, **config: object) -> tuple[Connection, Connection]:
    c = Connection(client_config(pki, max_version=TLS12, **config), is_client=True, now=NOW)
    s = Connection(server_config(pki, **config), is_client=False, now=NOW)
    c.start_handshake()
    pump(c, s)
    drain(c), drain(s)
    assert c.handshake_complete and s.handshake_complete
    return c, s


def from_client13(pki: Pki, content_type: int, content: bytes, padding: int = 0) -> Case:
    """A protected record from the client, sealed with the client's own write direction."""
    c, s = connected13(pki)
    data = c._tx.seal(content_type, content, padding=padding)
    return Case(s, data, c._rx)


def inner_all_padding(pki: Pki) -> Case:
    c, s = connected13(pki)
    # A TLSInnerPlaintext of zeros only: no content type (sealed below the record layer's API).
    protection = c._tx.protection
    assert protection is not None
    data = protection.seal_record(APP, bytes(16), c._tx.seq)
    return Case(s, data, c._rx)


def oversized13(pki: Pki) -> Case:
    c, s = connected13(pki)
    return Case(s, record(APP, bytes((1 << 14) + 256 + 1)), c._rx)


def oversized12(pki: Pki) -> Case:
    c, s = connected12(pki)
    return Case(s, record(APP, bytes((1 << 14) + 2048 + 1)), c._rx)


def tampered(pki: Pki, version: str) -> Case:
    c, s = connected13(pki) if version == "1.3" else connected12(pki)
    data = bytearray(c._tx.seal(APP, b"tamper me"))
    data[-1] ^= 1
    return Case(s, bytes(data), c._rx)


def at_server_finished12(pki: Pki, replace: Callable[[Connection], bytes]) -> Case:
    """The client's last flight (CKE, CCS, Finished) with its Finished replaced."""
    c = Connection(client_config(pki, max_version=TLS12), is_client=True, now=NOW)
    s = Connection(server_config(pki), is_client=False, now=NOW)
    c.start_handshake()
    s.receive_data(c.data_to_send())
    c.receive_data(s.data_to_send())
    flight = c.data_to_send()
    found, _ = frame_records(flight)
    assert [t for t, _, _ in found] == [HS, CCS, HS]
    keep = flight[: found[-1][1]]
    assert c._tx.protection is not None
    fresh = RecordDirection(c._tx.protection, version="1.2", epoch="application")  # seq 0 again
    return Case(s, keep + fresh.seal(HS, replace(c)), c._rx)


def at_server_cke12(pki: Pki, data: bytes) -> Case:
    c = Connection(client_config(pki, max_version=TLS12), is_client=True, now=NOW)
    s = Connection(server_config(pki), is_client=False, now=NOW)
    c.start_handshake()
    s.receive_data(c.data_to_send())
    s.data_to_send()
    return Case(s, data)


def finished13_wrong_length(pki: Pki) -> Case:
    c = Connection(client_config(pki), is_client=True, now=NOW)
    s = Connection(server_config(pki), is_client=False, now=NOW)
    c.start_handshake()
    s.receive_data(c.data_to_send())
    s.data_to_send()
    assert s.suite is not None
    tx = RecordDirection.tls13(s.suite, s._client_hs_secret, "handshake")
    rx = RecordDirection.tls13(s.suite, s._server_ap_secret, "application")
    return Case(s, tx.seal(HS, encode_handshake(Finished(bytes(31)))), rx)


def odd_cipher_suites_hello() -> bytes:
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x03\x13\x01\x00" + b"\x01\x00"
    return b"\x01" + len(body).to_bytes(3, "big") + body


def alert_of_three_bytes(p: Pki) -> Case:
    return Case(Connection(server_config(p), is_client=False, now=NOW), record(ALERT, b"\x02\x28\x00"))


def with_ext(ext_type: int, data: bytes) -> tuple[wx.Extension, ...]:
    return (wx.Extension(ext_type, data),)


# ---------------------------------------------------------------- the table

Row = tuple[str, str, Callable[[Pki], Case], str, int]

ROWS: list[Row] = [
    # --- protocol_version
    (
        "client_hello_legacy_version_ssl3",
        "RFC 8446 D.5: Any endpoint receiving a Hello message with ClientHello.legacy_version or "
        "ServerHello.legacy_version set to 0x0300 MUST abort the handshake with a protocol_version alert.",
        lambda p: to_server(p, client_hello(p, legacy_version=0x0300, extensions=())),
        "ERR_PROTOCOL_VERSION",
        AD.protocol_version,
    ),
    (
        "client_hello_only_tls11",
        "RFC 5246 E.1: If server supports (or is willing to use) only versions greater than "
        "client_version, it MUST send a protocol_version alert message and close the connection.",
        lambda p: to_server(p, client_hello(p, legacy_version=0x0302, extensions=())),
        "ERR_NO_SHARED_VERSION",
        AD.protocol_version,
    ),
    (
        "server_hello_tls11",
        "RFC 5246 E.1: If the version chosen by the server is not supported by the client (or not "
        "acceptable), the client MUST send a protocol_version alert message and close the connection.",
        lambda p: to_client(p, server_hello(legacy_version=0x0302)),
        "ERR_NO_SHARED_VERSION",
        AD.protocol_version,
    ),
    (
        "server_hello_tls12_to_tls13_only_client",
        "RFC 8446 4.2.1: A client that only supports TLS 1.3 ... MUST abort with a protocol_version alert "
        "(if the ServerHello does not select TLS 1.3).",
        lambda p: to_client(p, server_hello(), min_version=ProtocolVersion.TLS1_3),
        "ERR_NO_SHARED_VERSION",
        AD.protocol_version,
    ),
    # --- inappropriate_fallback
    (
        "fallback_scsv_below_our_highest",
        "RFC 7507 3: If TLS_FALLBACK_SCSV appears in ClientHello.cipher_suites and the highest protocol "
        "version supported by the server is higher than the version indicated in ClientHello.client_version, "
        "the server MUST respond with a fatal inappropriate_fallback alert.",
        lambda p: to_server(
            p,
            client_hello(
                p,
                legacy_session_id=b"",
                cipher_suites=(CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, CS.TLS_FALLBACK_SCSV),
                extensions=tuple(
                    e for e in client_hello(p).extensions if e.type != ExtensionType.supported_versions
                ),
            ),
        ),
        "ERR_INAPPROPRIATE_FALLBACK",
        AD.inappropriate_fallback,
    ),
    # --- illegal_parameter
    (
        "tls13_client_hello_compression",
        "RFC 8446 4.1.2: If a TLS 1.3 ClientHello is received with any other value in this field "
        "[legacy_compression_methods], the server MUST abort the handshake with an illegal_parameter alert.",
        lambda p: to_server(p, client_hello(p, legacy_compression_methods=b"\x01\x00")),
        "ERR_ILLEGAL_PARAMETER",
        AD.illegal_parameter,
    ),
    (
        "server_hello_suite_not_offered",
        "RFC 8446 4.1.3: A client which receives a cipher suite that was not offered MUST abort the "
        "handshake with an illegal_parameter alert.",
        lambda p: to_client(p, server_hello(cipher_suite=CS.TLS_RSA_WITH_AES_128_GCM_SHA256)),
        "ERR_ILLEGAL_PARAMETER",
        AD.illegal_parameter,
    ),
    (
        "server_hello_downgrade_sentinel",
        "RFC 8446 4.1.3: TLS 1.3 clients receiving a ServerHello indicating TLS 1.2 or below MUST check "
        "that the last 8 bytes are not equal to either of these values ... If a match is found, the client "
        "MUST abort the handshake with an illegal_parameter alert.",
        lambda p: to_client(p, server_hello(random=bytes(24) + b"DOWNGRD\x01")),
        "ERR_DOWNGRADE_DETECTED",
        AD.illegal_parameter,
    ),
    (
        "key_update_bad_request",
        "RFC 8446 4.6.3: If an implementation receives any other value [of request_update], it MUST "
        "terminate the connection with an illegal_parameter alert.",
        lambda p: from_client13(p, HS, encode_handshake(KeyUpdate(2))),
        "ERR_ILLEGAL_PARAMETER",
        AD.illegal_parameter,
    ),
    # --- unsupported_extension
    (
        "tls12_server_hello_unrequested_extension",
        "RFC 5246 7.4.1.4: If a client receives an extension type in ServerHello that it did not request "
        "in the associated ClientHello, it MUST abort the handshake with an unsupported_extension "
        "fatal alert.",
        lambda p: to_client(p, server_hello(extensions=with_ext(ExtensionType.heartbeat, b"\x01"))),
        "ERR_UNSUPPORTED_EXTENSION",
        AD.unsupported_extension,
    ),
    # --- decode_error
    (
        "client_hello_odd_cipher_suites_length",
        "RFC 8446 6.2: decode_error: A message could not be decoded because some field was out of the "
        "specified range or the length of the message was incorrect.",
        lambda p: to_server(p, odd_cipher_suites_hello()),
        "ERR_DECODE",
        AD.decode_error,
    ),
    (
        "key_update_trailing_bytes",
        "RFC 8446 6.2: decode_error ... the length of the message was incorrect "
        "(KeyUpdate is one byte, 4.6.3).",
        lambda p: from_client13(p, HS, bytes.fromhex("1800000200") + b"\x00"),
        "ERR_DECODE",
        AD.decode_error,
    ),
    (
        "tls13_finished_wrong_length",
        "RFC 8446 4.4.4: verify_data is Hash.length bytes; RFC 8446 6.2: decode_error ... the length of "
        "the message was incorrect.",
        finished13_wrong_length,
        "ERR_DECODE",
        AD.decode_error,
    ),
    (
        "tls12_finished_wrong_length",
        "RFC 5246 7.4.9: verify_data[verify_data_length] (12 bytes); RFC 5246 7.2.2: decode_error: A message "
        "could not be decoded because some field was out of the specified range or the length of the "
        "message was incorrect.",
        lambda p: at_server_finished12(p, lambda c: encode_handshake(Finished(bytes(11)))),
        "ERR_DECODE",
        AD.decode_error,
    ),
    (
        "tls12_change_cipher_spec_body",
        "RFC 5246 7.1: The message consists of a single byte of value 1; RFC 5246 7.2.2 decode_error.",
        lambda p: at_server_cke12(p, record(CCS, b"\x02")),
        "ERR_DECODE",
        AD.decode_error,
    ),
    (
        "alert_of_three_bytes",
        "RFC 8446 6.2 / RFC 5246 7.2.2: decode_error ... the length of the message was incorrect "
        "(an Alert is two bytes, RFC 8446 6).",
        alert_of_three_bytes,
        "ERR_DECODE",
        AD.decode_error,
    ),
    # --- record_overflow
    (
        "plaintext_record_over_2_14",
        "RFC 8446 5.1: The length MUST NOT exceed 2^14 bytes. An endpoint that receives a record that "
        "exceeds this length MUST terminate the connection with a record_overflow alert.",
        lambda p: Case(
            Connection(server_config(p), is_client=False, now=NOW), record(HS, bytes((1 << 14) + 1))
        ),
        "ERR_RECORD_OVERFLOW",
        AD.record_overflow,
    ),
    (
        "tls13_ciphertext_over_2_14_plus_256",
        "RFC 8446 5.2: The length MUST NOT exceed 2^14 + 256 bytes. An endpoint that receives a record that "
        "exceeds this length MUST terminate the connection with a record_overflow alert.",
        oversized13,
        "ERR_RECORD_OVERFLOW",
        AD.record_overflow,
    ),
    (
        "tls12_ciphertext_over_2_14_plus_2048",
        "RFC 5246 6.2.3: The length MUST NOT exceed 2^14 + 2048; RFC 5246 7.2.2: record_overflow: A "
        "TLSCiphertext record was received that had a length more than 2^14+2048 bytes.",
        oversized12,
        "ERR_RECORD_OVERFLOW",
        AD.record_overflow,
    ),
    # --- unexpected_message
    (
        "inner_plaintext_all_padding",
        "RFC 8446 5.4: If a receiving implementation does not find a non-zero octet in the cleartext, it "
        "MUST terminate the connection with an unexpected_message alert.",
        inner_all_padding,
        "ERR_UNEXPECTED_MESSAGE",
        AD.unexpected_message,
    ),
    (
        "application_data_before_handshake",
        "RFC 8446 5: If a TLS implementation receives an unexpected record type, it MUST terminate the "
        "connection with an unexpected_message alert.",
        lambda p: Case(Connection(server_config(p), is_client=False, now=NOW), record(APP, b"early")),
        "ERR_UNEXPECTED_MESSAGE",
        AD.unexpected_message,
    ),
    (
        "certificate_as_first_message",
        "RFC 8446 6.2 / RFC 5246 7.2.2: unexpected_message: An inappropriate message was received.",
        lambda p: to_server(p, encode_handshake(UnknownHandshake(11, b"\x00\x00\x00"))),
        "ERR_UNEXPECTED_MESSAGE",
        AD.unexpected_message,
    ),
    (
        "tls12_change_cipher_spec_before_key_exchange",
        "RFC 5246 7.2.2: unexpected_message: An inappropriate message was received (ChangeCipherSpec "
        "before ClientKeyExchange, RFC 5246 7.3).",
        lambda p: at_server_cke12(p, record(CCS, b"\x01")),
        "ERR_UNEXPECTED_MESSAGE",
        AD.unexpected_message,
    ),
    (
        "tls13_key_update_in_tls12",
        "RFC 5246 7.2.2: unexpected_message (KeyUpdate does not exist in TLS 1.2).",
        lambda p: (lambda cs: Case(cs[1], cs[0]._tx.seal(HS, bytes.fromhex("1800000100")), cs[0]._rx))(
            connected12(p)
        ),
        "ERR_UNEXPECTED_MESSAGE",
        AD.unexpected_message,
    ),
    # --- bad_record_mac
    (
        "tls13_tampered_record",
        "RFC 8446 5.2: If the decryption fails, the receiver MUST terminate the connection with a "
        "bad_record_mac alert.",
        lambda p: tampered(p, "1.3"),
        "ERR_BAD_RECORD_MAC",
        AD.bad_record_mac,
    ),
    (
        "tls12_tampered_record",
        "RFC 5246 7.2.2: bad_record_mac: This alert is returned if a record is received with an incorrect "
        "MAC. This alert also MUST be returned if an alert is sent because a TLSCiphertext decrypted in "
        "an invalid way.",
        lambda p: tampered(p, "1.2"),
        "ERR_BAD_RECORD_MAC",
        AD.bad_record_mac,
    ),
    # --- decrypt_error
    (
        "tls12_finished_does_not_verify",
        "RFC 5246 7.2.2: decrypt_error: A handshake cryptographic operation failed, including being unable "
        "to correctly verify a signature or validate a Finished message.",
        lambda p: at_server_finished12(p, lambda c: encode_handshake(Finished(bytes(12)))),
        "ERR_BAD_FINISHED",
        AD.decrypt_error,
    ),
    # --- handshake_failure
    (
        "no_shared_cipher_suite",
        "RFC 8446 4.1.1: If the server is unable to negotiate a supported set of parameters ..., it MUST "
        "abort the handshake with either a handshake_failure or insufficient_security fatal alert.",
        lambda p: to_server(p, client_hello(p, cipher_suites=(0x0005,))),
        "ERR_NO_SHARED_CIPHER",
        AD.handshake_failure,
    ),
]


def sent_alert(case: Case) -> int:
    """The description of the last record the victim sent, opened as its peer would."""
    out = case.victim.data_to_send()
    found, consumed = frame_records(out)
    assert found and consumed == len(out)
    content_type, at, length = found[-1]
    header, fragment = out[at : at + 5], out[at + 5 : at + 5 + length]
    if content_type == ALERT and (case.peer_rx is None or not case.peer_rx.protected):
        body = fragment
    else:
        assert case.peer_rx is not None, "an encrypted alert needs the peer's read keys"
        seq = case.peer_rx.seq
        inner_type, content = case.peer_rx.open_at(header, fragment, seq)
        assert inner_type == ALERT
        body = bytes(content)
    alert = pull_alert(Buffer(body))
    assert alert.level == 2  # fatal
    return alert.description


@pytest.mark.parametrize(("name", "rfc", "build", "error", "alert"), ROWS, ids=[r[0] for r in ROWS])
def test_alert_table(
    pki: Pki, name: str, rfc: str, build: Callable[[Pki], Case], error: str, alert: int
) -> None:
    case = build(pki)
    case.victim.receive_data(case.data)
    with pytest.raises(TLSError) as exc:
        drain(case.victim)
    assert exc.value.name == error, f"{name}: {exc.value} (expected per {rfc})"
    assert exc.value.alert == alert
    assert sent_alert(case) == alert


def test_rows_cite_an_rfc_and_have_unique_names() -> None:
    assert len({r[0] for r in ROWS}) == len(ROWS)
    for row in ROWS:
        assert "RFC " in row[1]
