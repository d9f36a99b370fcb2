"""Handshake messages (RFC 8446 section 4, RFC 5246 section 7.4, RFC 8422, RFC 5077).

Each message has a frozen dataclass and a ``pull_x(buf) -> X`` / ``push_x(buf, x)`` pair for
its *body*; :func:`pull_handshake` / :func:`push_handshake` add the 4-byte header
(``HandshakeType msg_type; uint24 length``) and dispatch on the type. Decoding then
re-encoding gives back the same bytes, which the transcript hash depends on: extensions stay
raw and in order (see :mod:`capdebug.wire.extensions` for their bodies), optional trailing
fields remember whether they were present.

Three messages changed shape between TLS 1.2 and 1.3 (Certificate, CertificateRequest,
NewSessionTicket). Callers that know the version pass ``tls13``; with ``tls13=None`` the
decoder tries the TLS 1.3 form and falls back to the TLS 1.2 one, which is what a capture
decoder needs before it has seen a ServerHello.

Nothing here parses X.509 or checks signatures (that is ``crypto/``'s job), and nothing names
fields for people (``analysis/describe.py`` does, at render time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from .._buffer import Buffer
from ..errors import DecodeError
from .constants import (
    HandshakeType,
    ProtocolVersion,
    name_of,
)
from .extensions import (
    CertificateStatus,
    Extension,
    pull_extensions,
    push_extensions,
)
from .handshake12 import (
    CertificateRequest12,
    ClientKeyExchange,
    HelloRequest,
    NewSessionTicket12,
    ServerHelloDone,
    ServerKeyExchange,
    either_form,
    parse_whole,
    pull_certificate_request12,
    pull_client_key_exchange,
    pull_new_session_ticket12,
    pull_server_key_exchange,
    push_certificate_request12,
    push_client_key_exchange,
    push_new_session_ticket12,
    push_server_key_exchange,
)

__all__ = [
    "DOWNGRADE_TLS11",
    "DOWNGRADE_TLS12",
    "HANDSHAKE_HEADER_SIZE",
    "HRR_RANDOM",
    "Certificate",
    "CertificateEntry",
    "CertificateRequest",
    "CertificateRequest12",
    "CertificateVerify",
    "ClientHello",
    "ClientKeyExchange",
    "CompressedCertificate",
    "EncryptedExtensions",
    "EndOfEarlyData",
    "Finished",
    "HandshakeMessage",
    "HelloRequest",
    "KeyUpdate",
    "NewSessionTicket",
    "NewSessionTicket12",
    "ServerHello",
    "ServerHelloDone",
    "ServerKeyExchange",
    "UnknownHandshake",
    "encode_handshake",
    "frame_handshake",
    "handshake_name",
    "pull_certificate",
    "pull_certificate_request",
    "pull_certificate_verify",
    "pull_client_hello",
    "pull_compressed_certificate",
    "pull_encrypted_extensions",
    "pull_finished",
    "pull_handshake",
    "pull_key_update",
    "pull_new_session_ticket",
    "pull_server_hello",
    "push_certificate",
    "push_certificate_request",
    "push_certificate_verify",
    "push_client_hello",
    "push_compressed_certificate",
    "push_encrypted_extensions",
    "push_finished",
    "push_handshake",
    "push_key_update",
    "push_new_session_ticket",
    "push_server_hello",
]

T = TypeVar("T")

HANDSHAKE_HEADER_SIZE: Final = 4

#: ServerHello.random of a HelloRetryRequest: SHA-256("HelloRetryRequest") (RFC 8446 4.1.3).
HRR_RANDOM: Final = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
#: Last 8 bytes of ServerHello.random of a TLS 1.3 server negotiating TLS 1.2 / below
#: (RFC 8446 section 4.1.3): a client that offered TLS 1.3 must abort on seeing them.
DOWNGRADE_TLS12: Final = b"DOWNGRD\x01"
DOWNGRADE_TLS11: Final = b"DOWNGRD\x00"


def frame_handshake(
    data: bytes | bytearray | memoryview, offset: int = 0
) -> tuple[list[tuple[int, int, int]], int]:
    """Find the complete handshake messages in ``data[offset:]`` (RFC 8446 section 4).

    Returns ``([(msg_type, header_offset, body_length), ...], consumed)``; the body starts 4
    bytes after ``header_offset`` (an index into ``data``), and ``consumed`` counts bytes from
    ``offset`` to the end of the last complete message. The caller concatenates handshake
    record fragments first (a message may span records; a record may hold several messages)
    and should bound how much it buffers: the format allows 2^24-1 bytes per message.
    """
    if isinstance(data, memoryview) and data.format != "B":
        data = data.cast("B")
    end = len(data)
    pos = offset
    messages: list[tuple[int, int, int]] = []
    append = messages.append
    while pos + HANDSHAKE_HEADER_SIZE <= end:
        length = (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]
        next_pos = pos + HANDSHAKE_HEADER_SIZE + length
        if next_pos > end:
            break
        append((data[pos], pos, length))
        pos = next_pos
    return messages, pos - offset


def handshake_name(msg_type: int) -> str:
    """``"client_hello"``, or ``"unknown(0x0063)"``."""
    return name_of(HandshakeType, msg_type)


def _pull_session_id(buf: Buffer) -> bytes:
    n = buf.pull_uint8()
    if n > 32:
        raise DecodeError(f"legacy_session_id of {n} bytes (at most 32)")
    return buf.pull_bytes(n)


# -- ClientHello / ServerHello (RFC 8446 4.1.2-4.1.4, RFC 5246 7.4.1) -------------------------


@dataclass(frozen=True, slots=True)
class ClientHello:
    @property
    def msg_type(self) -> int:
        return HandshakeType.client_hello

    legacy_version: int
    """0x0303 for TLS 1.2 and 1.3 clients (the real offer is in supported_versions)."""
    random: bytes
    """32 bytes; the key-log index (NSS key logs are keyed by client_random)."""
    legacy_session_id: bytes
    """0..32 bytes; TLS 1.3 clients in compatibility mode send 32 random bytes."""
    cipher_suites: tuple[int, ...]
    legacy_compression_methods: bytes
    """One byte per method; b"\\x00" (null) for every modern client."""
    extensions: tuple[Extension, ...] = ()
    """In wire order, unknown and GREASE ones included."""
    extensions_present: bool = True
    """False when the message ended before the extensions block (pre-TLS 1.2 clients)."""


def pull_client_hello(buf: Buffer) -> ClientHello:
    """The ClientHello body; ``buf`` must end where the message ends."""
    legacy_version = buf.pull_uint16()
    random = buf.pull_bytes(32)
    session_id = _pull_session_id(buf)
    cipher_suites = tuple(buf.pull_list(2, 2))
    compression = buf.pull_opaque(1)
    if buf.eof():
        return ClientHello(legacy_version, random, session_id, cipher_suites, compression, (), False)
    return ClientHello(legacy_version, random, session_id, cipher_suites, compression, pull_extensions(buf))


def push_client_hello(buf: Buffer, msg: ClientHello) -> None:
    buf.push_uint16(msg.legacy_version)
    buf.push_bytes(msg.random)
    buf.push_opaque(1, msg.legacy_session_id)
    buf.push_list(2, 2, msg.cipher_suites)
    buf.push_opaque(1, msg.legacy_compression_methods)
    if msg.extensions or msg.extensions_present:
        push_extensions(buf, msg.extensions)


@dataclass(frozen=True, slots=True)
class ServerHello:
    """ServerHello, and HelloRetryRequest, which is a ServerHello with :data:`HRR_RANDOM`."""

    @property
    def msg_type(self) -> int:
        return HandshakeType.server_hello

    legacy_version: int
    random: bytes
    legacy_session_id_echo: bytes
    cipher_suite: int
    legacy_compression_method: int
    extensions: tuple[Extension, ...] = ()
    extensions_present: bool = True
    """False when the message ended before the extensions block."""

    @property
    def is_hello_retry_request(self) -> bool:
        return self.random == HRR_RANDOM

    @property
    def downgrade_sentinel(self) -> int | None:
        """0x0303 or 0x0302 if the random ends with a RFC 8446 4.1.3 downgrade marker."""
        tail = self.random[-8:]
        if tail == DOWNGRADE_TLS12:
            return ProtocolVersion.TLS1_2
        if tail == DOWNGRADE_TLS11:
            return ProtocolVersion.TLS1_1
        return None


def pull_server_hello(buf: Buffer) -> ServerHello:
    legacy_version = buf.pull_uint16()
    random = buf.pull_bytes(32)
    session_id = _pull_session_id(buf)
    cipher_suite = buf.pull_uint16()
    compression = buf.pull_uint8()
    if buf.eof():
        return ServerHello(legacy_version, random, session_id, cipher_suite, compression, (), False)
    return ServerHello(legacy_version, random, session_id, cipher_suite, compression, pull_extensions(buf))


def push_server_hello(buf: Buffer, msg: ServerHello) -> None:
    buf.push_uint16(msg.legacy_version)
    buf.push_bytes(msg.random)
    buf.push_opaque(1, msg.legacy_session_id_echo)
    buf.push_uint16(msg.cipher_suite)
    buf.push_uint8(msg.legacy_compression_method)
    if msg.extensions or msg.extensions_present:
        push_extensions(buf, msg.extensions)


# -- EncryptedExtensions (RFC 8446 4.3.1) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncryptedExtensions:
    @property
    def msg_type(self) -> int:
        return HandshakeType.encrypted_extensions

    extensions: tuple[Extension, ...]


def pull_encrypted_extensions(buf: Buffer) -> EncryptedExtensions:
    return EncryptedExtensions(pull_extensions(buf))


def push_encrypted_extensions(buf: Buffer, msg: EncryptedExtensions) -> None:
    push_extensions(buf, msg.extensions)


# -- Certificate (RFC 8446 4.4.2, RFC 5246 7.4.2) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateEntry:
    cert_data: bytes
    """DER X.509 certificate (or a RawPublicKey SubjectPublicKeyInfo, RFC 7250)."""
    extensions: tuple[Extension, ...] = ()
    """TLS 1.3 only: status_request (OCSP staple), signed_certificate_timestamp, ..."""


@dataclass(frozen=True, slots=True)
class Certificate:
    """Both forms: TLS 1.3 (``tls13=True``: request context, per-entry extensions) and
    TLS 1.2 and below (a plain ``ASN.1Cert certificate_list<0..2^24-1>``)."""

    @property
    def msg_type(self) -> int:
        return HandshakeType.certificate

    certificate_request_context: bytes
    """TLS 1.3: empty in the server's Certificate, echoes the CertificateRequest otherwise."""
    certificate_list: tuple[CertificateEntry, ...]
    """End-entity certificate first."""
    tls13: bool = True

    @property
    def der_list(self) -> tuple[bytes, ...]:
        return tuple(e.cert_data for e in self.certificate_list)


def _pull_certificate(buf: Buffer, tls13: bool) -> Certificate:
    context = buf.pull_opaque(1) if tls13 else b""
    entries: list[CertificateEntry] = []
    with buf.pull_block(3):
        while not buf.eof():
            cert = buf.pull_opaque(3)
            if not cert:
                raise DecodeError(f"empty {'cert_data' if tls13 else 'ASN.1Cert'} in Certificate")
            entries.append(CertificateEntry(cert, pull_extensions(buf) if tls13 else ()))
    return Certificate(context, tuple(entries), tls13)


def pull_certificate(buf: Buffer, tls13: bool | None = True) -> Certificate:
    """``tls13=None`` tries the TLS 1.3 form, then the TLS 1.2 form."""
    if tls13 is None:
        return either_form(buf, lambda b: _pull_certificate(b, True), lambda b: _pull_certificate(b, False))
    return _pull_certificate(buf, tls13)


def push_certificate(buf: Buffer, msg: Certificate) -> None:
    if msg.tls13:
        buf.push_opaque(1, msg.certificate_request_context)
    elif msg.certificate_request_context or any(e.extensions for e in msg.certificate_list):
        raise ValueError("a TLS 1.2 Certificate has no request context and no entry extensions")
    with buf.push_block(3):
        for entry in msg.certificate_list:
            buf.push_opaque(3, entry.cert_data)
            if msg.tls13:
                push_extensions(buf, entry.extensions)


# -- CertificateRequest (RFC 8446 4.3.2, RFC 5246 7.4.4) ----------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """TLS 1.3 form."""

    @property
    def msg_type(self) -> int:
        return HandshakeType.certificate_request

    certificate_request_context: bytes
    extensions: tuple[Extension, ...]
    """signature_algorithms is mandatory; certificate_authorities, oid_filters, ..."""


def pull_certificate_request(buf: Buffer) -> CertificateRequest:
    context = buf.pull_opaque(1)
    return CertificateRequest(context, pull_extensions(buf))


def push_certificate_request(buf: Buffer, msg: CertificateRequest) -> None:
    buf.push_opaque(1, msg.certificate_request_context)
    push_extensions(buf, msg.extensions)


# -- CertificateVerify (RFC 8446 4.4.3, RFC 5246 7.4.8) -----------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateVerify:
    @property
    def msg_type(self) -> int:
        return HandshakeType.certificate_verify

    algorithm: int | None
    """SignatureScheme; None in the TLS 1.0/1.1 form, which has no algorithm field."""
    signature: bytes


def pull_certificate_verify(buf: Buffer) -> CertificateVerify:
    """``SignatureScheme algorithm; opaque signature<0..2^16-1>``, or the TLS 1.0/1.1 form
    (signature only), told apart by which one consumes the body exactly."""
    if buf.remaining >= 4:
        mark = buf.pos
        buf.pull_uint16()
        n = buf.pull_uint16()
        if n == buf.remaining:
            buf.pos = mark
            algorithm = buf.pull_uint16()
            return CertificateVerify(algorithm, buf.pull_opaque(2))
        buf.pos = mark
    return CertificateVerify(None, buf.pull_opaque(2))


def push_certificate_verify(buf: Buffer, msg: CertificateVerify) -> None:
    if msg.algorithm is not None:
        buf.push_uint16(msg.algorithm)
    buf.push_opaque(2, msg.signature)


# -- Finished, KeyUpdate, empty messages --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finished:
    @property
    def msg_type(self) -> int:
        return HandshakeType.finished

    verify_data: bytes
    """Hash length in TLS 1.3 (RFC 8446 4.4.4), 12 bytes in TLS 1.2 (RFC 5246 7.4.9)."""


def pull_finished(buf: Buffer) -> Finished:
    return Finished(buf.pull_bytes(buf.remaining))


def push_finished(buf: Buffer, msg: Finished) -> None:
    buf.push_bytes(msg.verify_data)


@dataclass(frozen=True, slots=True)
class KeyUpdate:
    @property
    def msg_type(self) -> int:
        return HandshakeType.key_update

    request_update: int
    """KeyUpdateRequest: update_not_requested(0) or update_requested(1)."""


def pull_key_update(buf: Buffer) -> KeyUpdate:
    return KeyUpdate(buf.pull_uint8())


def push_key_update(buf: Buffer, msg: KeyUpdate) -> None:
    buf.push_uint8(msg.request_update)


@dataclass(frozen=True, slots=True)
class EndOfEarlyData:
    """RFC 8446 4.5: empty."""

    @property
    def msg_type(self) -> int:
        return HandshakeType.end_of_early_data


# -- NewSessionTicket (RFC 8446 4.6.1, RFC 5077 3.3) --------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSessionTicket:
    """TLS 1.3 form."""

    @property
    def msg_type(self) -> int:
        return HandshakeType.new_session_ticket

    ticket_lifetime: int
    """Seconds, at most 604800 (7 days)."""
    ticket_age_add: int
    ticket_nonce: bytes
    ticket: bytes
    extensions: tuple[Extension, ...] = ()
    """early_data carries max_early_data_size."""


def pull_new_session_ticket(buf: Buffer) -> NewSessionTicket:
    lifetime = buf.pull_uint32()
    age_add = buf.pull_uint32()
    nonce = buf.pull_opaque(1)
    ticket = buf.pull_opaque(2)
    if not ticket:
        raise DecodeError("empty ticket in NewSessionTicket")
    return NewSessionTicket(lifetime, age_add, nonce, ticket, pull_extensions(buf))


def push_new_session_ticket(buf: Buffer, msg: NewSessionTicket) -> None:
    buf.push_uint32(msg.ticket_lifetime)
    buf.push_uint32(msg.ticket_age_add)
    buf.push_opaque(1, msg.ticket_nonce)
    buf.push_opaque(2, msg.ticket)
    push_extensions(buf, msg.extensions)


# -- CompressedCertificate (RFC 8879 section 4) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompressedCertificate:
    @property
    def msg_type(self) -> int:
        return HandshakeType.compressed_certificate

    algorithm: int
    """CertificateCompressionAlgorithm."""
    uncompressed_length: int
    compressed_certificate_message: bytes


def pull_compressed_certificate(buf: Buffer) -> CompressedCertificate:
    algorithm = buf.pull_uint16()
    uncompressed_length = buf.pull_uint24()
    data = buf.pull_opaque(3)
    if not data:
        raise DecodeError("empty compressed_certificate_message")
    return CompressedCertificate(algorithm, uncompressed_length, data)


def push_compressed_certificate(buf: Buffer, msg: CompressedCertificate) -> None:
    buf.push_uint16(msg.algorithm)
    buf.push_uint24(msg.uncompressed_length)
    buf.push_opaque(3, msg.compressed_certificate_message)


# -- generic message ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UnknownHandshake:
    """A message type this module does not decode (kept whole, so it re-encodes exactly)."""

    msg_type: int
    body: bytes


HandshakeMessage = (
    ClientHello
    | ServerHello
    | EncryptedExtensions
    | Certificate
    | CertificateRequest
    | CertificateRequest12
    | CertificateVerify
    | Finished
    | NewSessionTicket
    | NewSessionTicket12
    | KeyUpdate
    | EndOfEarlyData
    | HelloRequest
    | ServerHelloDone
    | ServerKeyExchange
    | ClientKeyExchange
    | CompressedCertificate
    | CertificateStatus
    | UnknownHandshake
)


def _pull_certificate_status_msg(buf: Buffer) -> CertificateStatus:
    status_type = buf.pull_uint8()
    response = buf.pull_opaque(3)
    if not response:
        raise DecodeError("empty OCSP response in CertificateStatus")
    return CertificateStatus(status_type, response)


def _push_certificate_status_msg(buf: Buffer, msg: CertificateStatus) -> None:
    buf.push_uint8(msg.status_type)
    buf.push_opaque(3, msg.response)


_PULL_FIXED: dict[int, Callable[[Buffer], HandshakeMessage]] = {
    HandshakeType.hello_request: lambda buf: HelloRequest(),
    HandshakeType.client_hello: pull_client_hello,
    HandshakeType.server_hello: pull_server_hello,
    HandshakeType.end_of_early_data: lambda buf: EndOfEarlyData(),
    HandshakeType.encrypted_extensions: pull_encrypted_extensions,
    HandshakeType.server_key_exchange: pull_server_key_exchange,
    HandshakeType.server_hello_done: lambda buf: ServerHelloDone(),
    HandshakeType.certificate_verify: pull_certificate_verify,
    HandshakeType.client_key_exchange: pull_client_key_exchange,
    HandshakeType.finished: pull_finished,
    HandshakeType.certificate_status: _pull_certificate_status_msg,
    HandshakeType.key_update: pull_key_update,
    HandshakeType.compressed_certificate: pull_compressed_certificate,
}


def _pull_body(msg_type: int, buf: Buffer, tls13: bool | None) -> HandshakeMessage:
    reader = _PULL_FIXED.get(msg_type)
    if reader is not None:
        return reader(buf)
    if msg_type == HandshakeType.certificate:
        return pull_certificate(buf, tls13)
    if msg_type == HandshakeType.certificate_request:
        if tls13 is None:
            cr13: Callable[[Buffer], HandshakeMessage] = pull_certificate_request
            return either_form(buf, cr13, pull_certificate_request12)
        return pull_certificate_request(buf) if tls13 else pull_certificate_request12(buf)
    if msg_type == HandshakeType.new_session_ticket:
        if tls13 is None:
            nst13: Callable[[Buffer], HandshakeMessage] = pull_new_session_ticket
            return either_form(buf, nst13, pull_new_session_ticket12)
        return pull_new_session_ticket(buf) if tls13 else pull_new_session_ticket12(buf)
    return UnknownHandshake(msg_type, buf.pull_bytes(buf.remaining))


def pull_handshake(buf: Buffer, tls13: bool | None = None) -> HandshakeMessage:
    """One handshake message, header included.

    :class:`NeedData` if ``buf`` ends before the message does; :class:`DecodeError` if the
    complete message is malformed. ``tls13`` picks the form of the version-dependent messages
    (None: try TLS 1.3, then TLS 1.2).
    """
    msg_type = buf.pull_uint8()
    length = buf.pull_uint24()
    body = buf.pull_view(length)
    what = handshake_name(msg_type)
    return parse_whole(body, what, lambda b: _pull_body(msg_type, b, tls13))


def _push_body(buf: Buffer, msg: HandshakeMessage) -> None:
    match msg:
        case ClientHello():
            push_client_hello(buf, msg)
        case ServerHello():
            push_server_hello(buf, msg)
        case EncryptedExtensions():
            push_encrypted_extensions(buf, msg)
        case Certificate():
            push_certificate(buf, msg)
        case CertificateRequest():
            push_certificate_request(buf, msg)
        case CertificateRequest12():
            push_certificate_request12(buf, msg)
        case CertificateVerify():
            push_certificate_verify(buf, msg)
        case Finished():
            push_finished(buf, msg)
        case NewSessionTicket():
            push_new_session_ticket(buf, msg)
        case NewSessionTicket12():
            push_new_session_ticket12(buf, msg)
        case KeyUpdate():
            push_key_update(buf, msg)
        case EndOfEarlyData() | HelloRequest() | ServerHelloDone():
            pass
        case ServerKeyExchange():
            push_server_key_exchange(buf, msg)
        case ClientKeyExchange():
            push_client_key_exchange(buf, msg)
        case CompressedCertificate():
            push_compressed_certificate(buf, msg)
        case CertificateStatus():
            _push_certificate_status_msg(buf, msg)
        case UnknownHandshake():
            buf.push_bytes(msg.body)


def push_handshake(buf: Buffer, msg: HandshakeMessage) -> None:
    """Write ``msg`` with its 4-byte header."""
    buf.push_uint8(msg.msg_type)
    with buf.push_block(3):
        _push_body(buf, msg)


def encode_handshake(msg: HandshakeMessage) -> bytes:
    """``msg`` as bytes, header included: what goes into the transcript hash."""
    buf = Buffer()
    push_handshake(buf, msg)
    return buf.data()
