"""Handshake codecs: RFC 8448 golden bytes, exact round trips, framing, fuzzing."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capdebug._buffer import Buffer
from capdebug.analysis.describe import message_fields
from capdebug.errors import DecodeError, NeedData
from capdebug.wire import handshake as hs
from capdebug.wire import handshake12 as hs12
from capdebug.wire.constants import (
    CipherSuite,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from capdebug.wire.extensions import (
    Extension,
    KeyShareEntry,
    ext,
    pull_key_share_client,
    pull_key_share_hrr,
    pull_key_share_server,
    pull_selected_version,
    pull_server_name_list,
    pull_signature_schemes,
    pull_supported_groups,
    pull_supported_versions,
    push_key_share_hrr,
    push_selected_version,
)

from . import rfc8448_vectors as v
from .strategies import messages


def decode(data: bytes, tls13: bool | None = None) -> hs.HandshakeMessage:
    buf = Buffer(data)
    msg = hs.pull_handshake(buf, tls13)
    assert buf.eof()
    return msg


def test_vectors_are_the_rfc_ones() -> None:
    # RFC 8448 prints these transcript hashes; a mistyped byte above would change them.
    assert hashlib.sha256(v.CLIENT_HELLO + v.SERVER_HELLO).digest() == v.TRANSCRIPT_CH_SH
    flight = v.CLIENT_HELLO + v.SERVER_HELLO + v.SERVER_FLIGHT
    assert hashlib.sha256(flight).digest() == v.TRANSCRIPT_CH_SF


def test_rfc8448_client_hello() -> None:
    ch = decode(v.CLIENT_HELLO)
    assert isinstance(ch, hs.ClientHello)
    assert ch.legacy_version == ProtocolVersion.TLS1_2
    assert ch.random.hex().startswith("cb34ecb1e78163ba")
    assert ch.legacy_session_id == b""
    assert ch.cipher_suites == (
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_AES_256_GCM_SHA384,
    )
    assert ch.legacy_compression_methods == b"\x00"
    assert [e.type for e in ch.extensions] == [0, 0xFF01, 10, 35, 51, 43, 13, 45, 28]
    assert pull_server_name_list(ext(ch, ExtensionType.server_name) or b"") == ("server",)
    assert pull_supported_versions(ext(ch, ExtensionType.supported_versions) or b"") == (0x0304,)
    groups = pull_supported_groups(ext(ch, ExtensionType.supported_groups) or b"")
    assert groups[:4] == (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1, NamedGroup.secp521r1)
    (share,) = pull_key_share_client(ext(ch, ExtensionType.key_share) or b"")
    assert share.group == NamedGroup.x25519
    assert share.key_exchange.hex().startswith("99381de560e4bd43")
    schemes = pull_signature_schemes(ext(ch, ExtensionType.signature_algorithms) or b"")
    assert schemes[0] == SignatureScheme.ecdsa_secp256r1_sha256 and len(schemes) == 15
    assert hs.encode_handshake(ch) == v.CLIENT_HELLO


def test_rfc8448_server_hello() -> None:
    sh = decode(v.SERVER_HELLO)
    assert isinstance(sh, hs.ServerHello)
    assert not sh.is_hello_retry_request
    assert sh.downgrade_sentinel is None
    assert sh.cipher_suite == CipherSuite.TLS_AES_128_GCM_SHA256
    assert pull_selected_version(ext(sh, ExtensionType.supported_versions) or b"") == 0x0304
    share = pull_key_share_server(ext(sh, ExtensionType.key_share) or b"")
    assert share.group == NamedGroup.x25519
    assert share.key_exchange.hex().endswith("4e751f0f")
    assert hs.encode_handshake(sh) == v.SERVER_HELLO
    s = message_fields(sh)
    assert s["version"] == "TLS 1.3" and s["cipher_suite"] == "TLS_AES_128_GCM_SHA256"
    assert s["key_share_group"] == "x25519" and s["hello_retry_request"] is False


def test_rfc8448_server_flight() -> None:
    frames, consumed = hs.frame_handshake(v.SERVER_FLIGHT)
    assert consumed == len(v.SERVER_FLIGHT)
    assert [f[0] for f in frames] == [8, 11, 15, 20]
    buf = Buffer(v.SERVER_FLIGHT)
    ee, cert, cv, fin = (hs.pull_handshake(buf) for _ in range(4))
    assert buf.eof()
    assert isinstance(ee, hs.EncryptedExtensions)
    assert [e.type for e in ee.extensions] == [10, 28, 0]
    assert isinstance(cert, hs.Certificate) and cert.tls13
    assert cert.certificate_request_context == b""
    (entry,) = cert.certificate_list
    assert entry.cert_data[:4] == bytes.fromhex("308201ac") and len(entry.cert_data) == 0x1B0
    assert entry.extensions == ()
    assert isinstance(cv, hs.CertificateVerify)
    assert cv.algorithm == SignatureScheme.rsa_pss_rsae_sha256 and len(cv.signature) == 128
    assert isinstance(fin, hs.Finished) and len(fin.verify_data) == 32
    rebuilt = b"".join(hs.encode_handshake(m) for m in (ee, cert, cv, fin))
    assert rebuilt == v.SERVER_FLIGHT
    shown = message_fields(cert)
    assert shown["count"] == 1
    assert [c["sha256"] for c in shown["certificates"]] == [hashlib.sha256(entry.cert_data).hexdigest()]


def test_certificate_forms_are_told_apart() -> None:
    body = v.SERVER_FLIGHT[40 + 4 : 40 + 4 + 441]
    with pytest.raises(DecodeError):
        # The TLS 1.3 body is not a valid TLS 1.2 certificate_list.
        hs12.parse_whole(body, "x", lambda b: hs.pull_certificate(b, tls13=False))
    tls12 = hs.Certificate(b"", (hs.CertificateEntry(b"\x30\x03abc"), hs.CertificateEntry(b"xyz")), False)
    data = hs.encode_handshake(tls12)
    assert decode(data) == tls12  # guessed
    assert decode(data, tls13=False) == tls12
    with pytest.raises(DecodeError):
        decode(data, tls13=True)


def test_new_session_ticket_forms() -> None:
    nst13 = hs.NewSessionTicket(7200, 0x01020304, b"\x00", b"ticket", (Extension(42, b"\x00\x00\x40\x00"),))
    nst12 = hs.NewSessionTicket12(300, b"opaque-ticket")
    assert decode(hs.encode_handshake(nst13)) == nst13
    assert decode(hs.encode_handshake(nst12)) == nst12
    assert message_fields(nst13) == {"lifetime": 7200, "ticket_length": 6, "max_early_data_size": 0x4000}
    assert message_fields(nst12) == {"lifetime": 300, "ticket_length": 13}


def test_hello_retry_request_detection() -> None:
    assert hashlib.sha256(b"HelloRetryRequest").digest() == hs.HRR_RANDOM
    hrr = hs.ServerHello(
        0x0303,
        hs.HRR_RANDOM,
        b"",
        CipherSuite.TLS_AES_128_GCM_SHA256,
        0,
        (
            Extension(ExtensionType.supported_versions, push_selected_version(0x0304)),
            Extension(ExtensionType.key_share, push_key_share_hrr(NamedGroup.secp256r1)),
        ),
    )
    back = decode(hs.encode_handshake(hrr))
    assert isinstance(back, hs.ServerHello) and back.is_hello_retry_request
    assert pull_key_share_hrr(ext(back, ExtensionType.key_share) or b"") == NamedGroup.secp256r1
    s = message_fields(back)
    assert s["hello_retry_request"] is True and s["key_share_group"] == "secp256r1"
    other = hs.ServerHello(0x0303, bytes(31) + b"\x01", b"", 0x1301, 0)
    assert not other.is_hello_retry_request


def test_downgrade_sentinel() -> None:
    sh = hs.ServerHello(0x0303, bytes(24) + hs.DOWNGRADE_TLS12, b"", 0xC02F, 0)
    assert sh.downgrade_sentinel == ProtocolVersion.TLS1_2
    assert message_fields(sh)["downgrade_sentinel"] == "TLS 1.2"


def test_extensions_block_absent_round_trips() -> None:
    ch = hs.ClientHello(0x0301, bytes(32), b"", (0x002F,), b"\x00", (), extensions_present=False)
    data = hs.encode_handshake(ch)
    assert data[-1:] == b"\x00" and len(data) == 4 + 2 + 32 + 1 + 4 + 2
    assert decode(data) == ch
    ch_empty = hs.ClientHello(0x0301, bytes(32), b"", (0x002F,), b"\x00", ())
    empty = hs.encode_handshake(ch_empty)
    assert empty[4:] == data[4:] + b"\x00\x00" and empty[3] == data[3] + 2


def test_summary_client_hello_grease_and_malformed() -> None:
    ch = hs.ClientHello(
        0x0303,
        bytes(32),
        bytes(32),
        (0x0A0A, CipherSuite.TLS_AES_128_GCM_SHA256, 0x1234),
        b"\x00",
        (
            Extension(0x2A2A, b""),
            Extension(ExtensionType.key_share, b"\x00\x05\x00\x1d\x00"),  # truncated entry
            Extension(ExtensionType.early_data, b""),
        ),
    )
    s = message_fields(ch)
    assert s["cipher_suites"] == ["GREASE", "TLS_AES_128_GCM_SHA256", "unknown(0x1234)"]
    assert s["extensions"] == ["GREASE", "key_share", "early_data"]
    assert s["malformed_extensions"] == ["key_share"]
    assert s["early_data"] is True and s["session_id_length"] == 32
    assert "sni" not in s


def test_server_key_exchange_ecdhe_and_dhe() -> None:
    point = b"\x04" + bytes(range(64))
    params = b"\x03\x00\x17" + bytes([len(point)]) + point
    body12 = params + b"\x08\x04" + b"\x00\x03sig"
    p12 = hs12.parse_ecdhe_server_key_exchange(body12)
    assert (p12.named_curve, p12.public, p12.params_raw) == (23, point, params)
    assert (p12.signature_algorithm, p12.signature) == (0x0804, b"sig")
    p10 = hs12.parse_ecdhe_server_key_exchange(params + b"\x00\x03sig")
    assert (p10.signature_algorithm, p10.signature) == (None, b"sig")
    assert hs12.parse_ecdhe_server_key_exchange(params).signature == b""
    with pytest.raises(DecodeError):
        hs12.parse_ecdhe_server_key_exchange(params + b"\x00\x09sig")
    with pytest.raises(DecodeError):
        hs12.parse_ecdhe_server_key_exchange(b"\x01" + params[1:])  # explicit curve
    assert message_fields(hs.ServerKeyExchange(body12))["group"] == "secp256r1"
    dh = b"\x00\x02\xff\xfb" + b"\x00\x01\x02" + b"\x00\x02\x12\x34"
    dhe = hs12.parse_dhe_server_key_exchange(dh + b"\x04\x01\x00\x01s")
    assert (dhe.dh_p, dhe.dh_g, dhe.dh_ys, dhe.params_raw) == (b"\xff\xfb", b"\x02", b"\x12\x34", dh)
    assert message_fields(hs.ServerKeyExchange(dh + b"\x04\x01\x00\x01s"))["kx"] == "DHE"


def test_client_key_exchange_helpers() -> None:
    assert hs12.pull_ecdh_client_public(b"\x03abc") == b"abc"
    assert hs12.pull_encrypted_premaster(b"\x00\x02xy") == b"xy"
    assert hs12.pull_dh_client_public(b"\x00\x01z") == b"z"
    for bad in (b"\x04abc", b"\x00", b""):
        with pytest.raises(DecodeError):
            hs12.pull_ecdh_client_public(bad)
    with pytest.raises(DecodeError):
        hs12.pull_encrypted_premaster(b"\x00\x02xyz")


def test_unknown_type_and_names() -> None:
    msg = decode(b"\x63\x00\x00\x02hi")
    assert msg == hs.UnknownHandshake(0x63, b"hi")
    assert hs.handshake_name(1) == "client_hello"
    assert hs.handshake_name(HandshakeType.message_hash) == "message_hash"
    assert hs.handshake_name(0x63) == "unknown(0x0063)"


def test_session_id_longer_than_32_is_malformed() -> None:
    ch = hs.encode_handshake(hs.ClientHello(0x0303, bytes(32), bytes(32), (0x1301,), b"\x00"))
    bad = bytearray(ch)
    bad[4 + 2 + 32] = 33
    with pytest.raises(DecodeError) as info:
        decode(bytes(bad))
    assert not isinstance(info.value, NeedData)


@settings(max_examples=400, deadline=None)
@given(messages)
def test_round_trip(item: tuple[hs.HandshakeMessage, bool | None]) -> None:
    msg, tls13 = item
    data = hs.encode_handshake(msg)
    assert decode(data, tls13) == msg
    assert hs.encode_handshake(decode(data, tls13)) == data
    message_fields(msg)  # never raises on a well-formed message


@settings(max_examples=150, deadline=None)
@given(messages)
def test_every_prefix_is_need_data(item: tuple[hs.HandshakeMessage, bool | None]) -> None:
    msg, tls13 = item
    data = hs.encode_handshake(msg)
    for cut in range(len(data)):
        with pytest.raises(NeedData):
            hs.pull_handshake(Buffer(data[:cut]), tls13)


@settings(max_examples=150, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_frame_handshake_byte_at_a_time(
    items: list[tuple[hs.HandshakeMessage, bool | None]], data: st.DataObject
) -> None:
    stream = b"".join(hs.encode_handshake(m) for m, _ in items)
    expected, consumed = hs.frame_handshake(stream)
    assert consumed == len(stream) and len(expected) == len(items)
    got: list[tuple[int, int, int]] = []
    pending = bytearray()
    base = 0
    step = data.draw(st.integers(1, 7))
    for i in range(0, len(stream), step):
        pending += stream[i : i + step]
        frames, used = hs.frame_handshake(pending)
        got.extend((t, base + off, n) for t, off, n in frames)
        del pending[:used]
        base += used
    assert got == expected
    assert not pending


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([None, True, False]))
def test_random_bytes_parse_or_decode_error(data: bytes, tls13: bool | None) -> None:
    buf = Buffer(data)
    try:
        msg = hs.pull_handshake(buf, tls13)
    except DecodeError:
        return
    # Whatever parses re-encodes to exactly the bytes it came from.
    assert hs.encode_handshake(msg) == data[: buf.pos]
    message_fields(msg)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([v.CLIENT_HELLO, v.SERVER_HELLO, v.SERVER_FLIGHT[:40]]), st.data())
def test_mutated_golden_messages(golden: bytes, data: st.DataObject) -> None:
    mutated = bytearray(golden)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(mutated) - 1))
        mutated[at] = data.draw(st.integers(0, 255))
    buf = Buffer(bytes(mutated))
    try:
        msg = hs.pull_handshake(buf)
    except DecodeError:
        return
    assert hs.encode_handshake(msg) == bytes(mutated[: buf.pos])
    message_fields(msg)


def test_key_share_entry_is_a_value() -> None:
    """Equal fields make equal, interchangeable entries (dict keys, set members); the entry is
    immutable; a different group or key is a different entry."""
    a, b = KeyShareEntry(29, b"k"), KeyShareEntry(29, bytes([0x6B]))
    assert a is not b and a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != KeyShareEntry(23, b"k") and a != KeyShareEntry(29, b"j")
    with pytest.raises(AttributeError):
        a.group = 23  # type: ignore[misc]
