"""Handshake messages of TLS 1.2 and earlier only (RFC 5246 7.4, RFC 8422, RFC 5077):
HelloRequest, ServerHelloDone, the TLS 1.2 CertificateRequest and NewSessionTicket, and the key
exchange messages. ServerKeyExchange and ClientKeyExchange are kept raw in the handshake (their
layout depends on the negotiated suite and version) and read here once the suite is known.
:mod:`capdebug.wire.handshake` dispatches every message type and re-exports these names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from .._buffer import Buffer
from ..errors import DecodeError, NeedData
from .constants import HandshakeType
from .extensions import _check_len

__all__ = [
    "CertificateRequest12",
    "ClientKeyExchange",
    "DheServerParams",
    "EcdheServerParams",
    "HelloRequest",
    "NewSessionTicket12",
    "ServerHelloDone",
    "ServerKeyExchange",
    "either_form",
    "parse_dhe_server_key_exchange",
    "parse_ecdhe_server_key_exchange",
    "parse_whole",
    "pull_certificate_request12",
    "pull_client_key_exchange",
    "pull_dh_client_public",
    "pull_ecdh_client_public",
    "pull_encrypted_premaster",
    "pull_new_session_ticket12",
    "pull_server_key_exchange",
    "push_certificate_request12",
    "push_client_key_exchange",
    "push_new_session_ticket12",
    "push_server_key_exchange",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ServerKeyExchange:
    """Kept raw: its layout depends on the key exchange of the negotiated cipher suite and on
    the version. Decode it with :func:`parse_ecdhe_server_key_exchange` or
    :func:`parse_dhe_server_key_exchange`."""

    msg_type: ClassVar[int] = HandshakeType.server_key_exchange

    body: bytes


def pull_server_key_exchange(buf: Buffer) -> ServerKeyExchange:
    return ServerKeyExchange(buf.pull_bytes(buf.remaining))


def push_server_key_exchange(buf: Buffer, msg: ServerKeyExchange) -> None:
    buf.push_bytes(msg.body)


@dataclass(frozen=True, slots=True)
class EcdheServerParams:
    """ServerKeyExchange of an ECDHE suite (RFC 8422 section 5.4)."""

    curve_type: int
    """ECCurveType; only named_curve(3) is decoded."""
    named_curve: int
    """NamedGroup."""
    public: bytes
    """The server's ephemeral point (or X25519/X448 key)."""
    params_raw: bytes
    """The ServerECDHParams bytes: with both randoms, what the signature covers."""
    signature_algorithm: int | None
    """SignatureScheme (TLS 1.2); None in TLS 1.0/1.1 or when unsigned (anonymous)."""
    signature: bytes


@dataclass(frozen=True, slots=True)
class DheServerParams:
    """ServerKeyExchange of a DHE suite (RFC 5246 section 7.4.3)."""

    dh_p: bytes
    dh_g: bytes
    dh_ys: bytes
    params_raw: bytes
    """The ServerDHParams bytes that the signature covers (after both randoms)."""
    signature_algorithm: int | None
    signature: bytes


def _pull_signature_tail(buf: Buffer, tls12: bool | None) -> tuple[int | None, bytes]:
    """The ``digitally-signed`` struct after the params: TLS 1.2 has a SignatureAndHashAlgorithm
    before the signature, TLS 1.0/1.1 does not; ``None`` tells them apart by exact length."""
    left = buf.remaining
    if left == 0:
        return None, b""  # anonymous key exchange: no signature at all
    if tls12 is None:
        mark = buf.pos
        if left >= 4:
            buf.pull_uint16()
            tls12 = buf.pull_uint16() == left - 4
        else:
            tls12 = False
        buf.pos = mark
    if tls12:
        algorithm: int | None = buf.pull_uint16()
    else:
        algorithm = None
    return algorithm, buf.pull_opaque(2)


def parse_whole(body: bytes | bytearray | memoryview, what: str, reader: Callable[[Buffer], T]) -> T:
    """``reader`` over all of ``body``: truncation and bytes left over are a :class:`DecodeError`
    naming ``what``."""
    buf = Buffer(body)
    try:
        value = reader(buf)
    except NeedData as exc:
        raise DecodeError(f"{what}: truncated: {exc}") from exc
    if not buf.eof():
        raise DecodeError(f"{what}: {buf.remaining} bytes left over")
    return value


def parse_ecdhe_server_key_exchange(
    body: bytes | bytearray | memoryview, tls12: bool | None = None
) -> EcdheServerParams:
    """Decode an ECDHE ServerKeyExchange body; ``tls12=None`` guesses the signature form."""

    def reader(buf: Buffer) -> EcdheServerParams:
        curve_type = buf.pull_uint8()
        if curve_type != 3:
            raise DecodeError(f"ServerKeyExchange curve_type {curve_type} is not named_curve")
        named_curve = buf.pull_uint16()
        public = buf.pull_opaque(1)
        if not public:
            raise DecodeError("empty ECDH public point in ServerKeyExchange")
        params_raw = bytes(body[: buf.pos])
        algorithm, signature = _pull_signature_tail(buf, tls12)
        return EcdheServerParams(curve_type, named_curve, public, params_raw, algorithm, signature)

    return parse_whole(body, "ECDHE ServerKeyExchange", reader)


def parse_dhe_server_key_exchange(
    body: bytes | bytearray | memoryview, tls12: bool | None = None
) -> DheServerParams:
    """Decode a DHE ServerKeyExchange body; ``tls12=None`` guesses the signature form."""

    def reader(buf: Buffer) -> DheServerParams:
        p = buf.pull_opaque(2)
        g = buf.pull_opaque(2)
        ys = buf.pull_opaque(2)
        if not (p and g and ys):
            raise DecodeError("empty DH parameter in ServerKeyExchange")
        params_raw = bytes(body[: buf.pos])
        algorithm, signature = _pull_signature_tail(buf, tls12)
        return DheServerParams(p, g, ys, params_raw, algorithm, signature)

    return parse_whole(body, "DHE ServerKeyExchange", reader)


@dataclass(frozen=True, slots=True)
class ClientKeyExchange:
    """Kept raw; read it with :func:`pull_ecdh_client_public`, :func:`pull_dh_client_public`
    or :func:`pull_encrypted_premaster` according to the cipher suite."""

    msg_type: ClassVar[int] = HandshakeType.client_key_exchange

    body: bytes


def pull_client_key_exchange(buf: Buffer) -> ClientKeyExchange:
    return ClientKeyExchange(buf.pull_bytes(buf.remaining))


def push_client_key_exchange(buf: Buffer, msg: ClientKeyExchange) -> None:
    buf.push_bytes(msg.body)


def pull_ecdh_client_public(body: bytes | bytearray | memoryview) -> bytes:
    """``ECPoint ecdh_Yc``: ``opaque point<1..2^8-1>`` (RFC 8422 section 5.7)."""

    def reader(buf: Buffer) -> bytes:
        point = buf.pull_opaque(1)
        if not point:
            raise DecodeError("empty ECDH public point in ClientKeyExchange")
        return point

    return parse_whole(body, "ECDHE ClientKeyExchange", reader)


def pull_dh_client_public(body: bytes | bytearray | memoryview) -> bytes:
    """``opaque dh_Yc<1..2^16-1>`` (RFC 5246 section 7.4.7.2)."""

    def reader(buf: Buffer) -> bytes:
        yc = buf.pull_opaque(2)
        if not yc:
            raise DecodeError("empty dh_Yc in ClientKeyExchange")
        return yc

    return parse_whole(body, "DHE ClientKeyExchange", reader)


def pull_encrypted_premaster(body: bytes | bytearray | memoryview) -> bytes:
    """``EncryptedPreMasterSecret``, ``opaque<0..2^16-1>`` (RFC 5246 section 7.4.7.1; SSL 3.0
    omitted the length and is not supported)."""
    return parse_whole(body, "RSA ClientKeyExchange", lambda buf: buf.pull_opaque(2))


# -- HelloRequest, ServerHelloDone (RFC 5246 7.4.1.1, 7.4.5) -----------------------------------


@dataclass(frozen=True, slots=True)
class HelloRequest:
    """RFC 5246 7.4.1.1: empty; asks the client to renegotiate."""

    msg_type: ClassVar[int] = HandshakeType.hello_request


@dataclass(frozen=True, slots=True)
class ServerHelloDone:
    """RFC 5246 7.4.5: empty."""

    msg_type: ClassVar[int] = HandshakeType.server_hello_done


# -- CertificateRequest, TLS 1.2 form (RFC 5246 7.4.4) -------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateRequest12:
    """TLS 1.2 form (and TLS 1.0/1.1, which lack supported_signature_algorithms)."""

    msg_type: ClassVar[int] = HandshakeType.certificate_request

    certificate_types: tuple[int, ...]
    """ClientCertificateType: rsa_sign(1), ecdsa_sign(64), ..."""
    supported_signature_algorithms: tuple[int, ...] | None
    """None for the TLS 1.0/1.1 form."""
    certificate_authorities: tuple[bytes, ...]
    """DER DistinguishedNames."""


def _pull_certificate_request12(buf: Buffer, with_signature_algorithms: bool) -> CertificateRequest12:
    types = buf.pull_opaque(1)
    _check_len("certificate_types", len(types), 1, 255)
    sig_algs: tuple[int, ...] | None = None
    if with_signature_algorithms:
        sig_algs = tuple(buf.pull_list(2, 2))
        _check_len("supported_signature_algorithms", 2 * len(sig_algs), 2, 0xFFFE)
    authorities: list[bytes] = []
    with buf.pull_block(2):
        while not buf.eof():
            authorities.append(buf.pull_opaque(2))
    return CertificateRequest12(tuple(types), sig_algs, tuple(authorities))


def pull_certificate_request12(buf: Buffer) -> CertificateRequest12:
    """Tries the TLS 1.2 form, then the TLS 1.0/1.1 form."""
    return either_form(
        buf,
        lambda b: _pull_certificate_request12(b, True),
        lambda b: _pull_certificate_request12(b, False),
    )


def push_certificate_request12(buf: Buffer, msg: CertificateRequest12) -> None:
    buf.push_opaque(1, bytes(msg.certificate_types))
    if msg.supported_signature_algorithms is not None:
        buf.push_list(2, 2, msg.supported_signature_algorithms)
    with buf.push_block(2):
        for dn in msg.certificate_authorities:
            buf.push_opaque(2, dn)


# -- NewSessionTicket, TLS 1.2 form (RFC 5077 3.3) -----------------------------------------------


@dataclass(frozen=True, slots=True)
class NewSessionTicket12:
    """TLS 1.2 form (RFC 5077 section 3.3)."""

    msg_type: ClassVar[int] = HandshakeType.new_session_ticket

    ticket_lifetime_hint: int
    ticket: bytes


def pull_new_session_ticket12(buf: Buffer) -> NewSessionTicket12:
    lifetime_hint = buf.pull_uint32()
    return NewSessionTicket12(lifetime_hint, buf.pull_opaque(2))


def push_new_session_ticket12(buf: Buffer, msg: NewSessionTicket12) -> None:
    buf.push_uint32(msg.ticket_lifetime_hint)
    buf.push_opaque(2, msg.ticket)


def either_form(buf: Buffer, first: Callable[[Buffer], T], second: Callable[[Buffer], T]) -> T:
    """Parse the rest of ``buf`` with ``first``, or else with ``second`` (both must consume it):
    for messages whose shape depends on a version the caller does not know yet."""
    start = buf.pos
    try:
        value = parse_whole(buf.pull_view(buf.remaining), "", first)
    except DecodeError:
        buf.pos = start
    else:
        return value
    return second(buf)
