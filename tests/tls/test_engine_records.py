"""The engine's records go through the shared record layer and the wire codecs.

Rather than grep the source for literal header bytes, these tests watch what the engine does:
every byte it sends must have come out of :meth:`RecordDirection.seal` (the one place that
frames, protects and numbers records), and what it sends must parse with the wire codecs.
"""

from __future__ import annotations

import dataclasses

import pytest

from capdebug._buffer import Buffer
from capdebug.crypto import record as crypto_record
from capdebug.crypto.record import RecordDirection
from capdebug.errors import TLSError
from capdebug.tls.connection import Connection
from capdebug.wire.alert import Alert, pull_alert
from capdebug.wire.constants import AlertDescription, AlertLevel, ContentType, ExtensionType
from capdebug.wire.extensions import Extension, push_supported_groups
from capdebug.wire.handshake import ClientHello, encode_handshake, pull_handshake
from capdebug.wire.record import CCS_BODY, RecordHeader, frame_records, pull_record_header

from ._pki import NOW, Pki, client_config, drain, server_config


def _records(data: bytes) -> list[tuple[RecordHeader, bytes]]:
    found, consumed = frame_records(data)
    assert consumed == len(data)
    out = []
    for _, at, length in found:
        header = pull_record_header(Buffer(data[at : at + 5]))
        out.append((header, data[at + 5 : at + 5 + length]))
    return out


def test_every_byte_sent_comes_from_the_record_layer(pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    sealed: list[bytes] = []
    seal = RecordDirection.seal

    def watching_seal(self: RecordDirection, *args: object, **kwargs: object) -> bytes:
        record = seal(self, *args, **kwargs)  # type: ignore[arg-type]
        sealed.append(record)
        return record

    monkeypatch.setattr(crypto_record.RecordDirection, "seal", watching_seal)
    client = Connection(client_config(pki, record_padding=64), is_client=True, now=NOW)
    server = Connection(server_config(pki, groups=(0x0017,)), is_client=False, now=NOW)  # HRR
    client.start_handshake()
    sent: list[bytes] = []

    def pump() -> None:
        for _ in range(20):
            a, b = client.data_to_send(), server.data_to_send()
            sent.extend((a, b))
            if a:
                server.receive_data(a)
            if b:
                client.receive_data(b)
            if not a and not b:
                return

    pump()
    assert client.handshake_complete and server.handshake_complete and client.hello_retry
    client.send_application_data(b"x" * 40000)
    client.key_update(request=True)
    client.send_application_data(b"after update")
    pump()
    client.close()
    server.close()
    pump()
    drain(client)
    drain(server)
    assert sealed and b"".join(sent) == b"".join(sealed)
    # The first ClientHello says 0x0301 (RFC 8446 5.1); everything else 0x0303.
    all_records = _records(b"".join(sealed))
    assert all_records[0][0].legacy_version == 0x0301
    assert {h.legacy_version for h, _ in all_records[1:]} == {0x0303}
    ccs = [body for h, body in all_records if h.content_type == ContentType.change_cipher_spec]
    assert ccs and all(body == CCS_BODY for body in ccs)


def test_a_plaintext_alert_is_the_alert_codec(pki: Pki) -> None:
    server = Connection(server_config(pki), is_client=False, now=NOW)
    server.receive_data(b"\x16\x03\x01\x00\x04\x02\x00\x00\x00")  # a ServerHello to a server
    with pytest.raises(TLSError):
        drain(server)
    ((header, body),) = _records(server.data_to_send())
    assert (header.content_type, header.legacy_version, header.length) == (ContentType.alert, 0x0303, 2)
    assert pull_alert(Buffer(body)) == Alert(AlertLevel.fatal, AlertDescription.unexpected_message)


@pytest.mark.parametrize("ext_type", [ExtensionType.supported_groups, 0x1A1A])
def test_a_duplicate_extension_is_illegal_parameter(pki: Pki, ext_type: int) -> None:
    """RFC 8446 4.2: duplicates are detected once, in the wire codec, and the engine answers
    illegal_parameter (as OpenSSL does), whether or not it reads that extension."""
    client = Connection(client_config(pki), is_client=True, now=NOW)
    client.start_handshake()
    ((_, body),) = _records(client.data_to_send())
    hello = pull_handshake(Buffer(body), tls13=True)
    assert isinstance(hello, ClientHello)
    extra = Extension(ext_type, push_supported_groups((0x001D,)))
    if ext_type != ExtensionType.supported_groups:
        extra = Extension(ext_type, b"")
    hello = dataclasses.replace(hello, extensions=(extra, *hello.extensions, extra))
    server = Connection(server_config(pki), is_client=False, now=NOW)
    server.receive_data(RecordDirection().seal(ContentType.handshake, encode_handshake(hello)))
    with pytest.raises(TLSError) as info:
        drain(server)
    assert info.value.name == "ERR_ILLEGAL_PARAMETER"
    ((_, alert),) = _records(server.data_to_send())
    assert pull_alert(Buffer(alert)).description == AlertDescription.illegal_parameter


def test_a_protected_record_over_the_limit_is_record_overflow(pki: Pki) -> None:
    client = Connection(client_config(pki), is_client=True, now=NOW)
    server = Connection(server_config(pki), is_client=False, now=NOW)
    client.start_handshake()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    drain(client)
    # Under handshake keys now: 2^14 + 257 bytes is one too many (RFC 8446 5.2).
    length = (1 << 14) + 257
    server.receive_data(
        bytes((ContentType.application_data, 3, 3)) + length.to_bytes(2, "big") + bytes(length)
    )
    with pytest.raises(TLSError) as info:
        drain(server)
    assert info.value.name == "ERR_RECORD_OVERFLOW"
    assert info.value.alert == AlertDescription.record_overflow
