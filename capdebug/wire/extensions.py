"""Extensions (RFC 8446 section 4.2): the raw list, and typed codecs for the bodies that matter.

Messages keep their extensions raw, as ``tuple[Extension, ...]`` in wire order, unknown and
GREASE ones included, so that re-encoding is exact and the transcript hash is right. The
functions here decode one extension's ``extension_data`` on demand:
``pull_<name>(data) -> value`` and ``push_<name>(value) -> bytes``. The extension data is
always complete, so running short inside it is a :class:`DecodeError` (never
:class:`NeedData`), as are bytes left over and vectors below their RFC minimum length.

Extensions whose body needs no codec: ``session_ticket`` (the data is the ticket itself,
RFC 5077 section 3.2), and the empty ones (``extended_master_secret``, ``encrypt_then_mac``,
``post_handshake_auth``; checked with :func:`pull_empty`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from .._buffer import Buffer
from ..errors import DecodeError, NeedData
from .constants import CertificateStatusType, ExtensionType, HandshakeType, NameType, name_of

__all__ = [
    "CertificateStatus",
    "DuplicateExtension",
    "Extension",
    "HasExtensions",
    "KeyShareEntry",
    "OfferedPsks",
    "PskIdentity",
    "StatusRequest",
    "binders_size",
    "ext",
    "pull_alpn_protocols",
    "pull_certificate_authorities",
    "pull_certificate_status",
    "pull_compress_certificate",
    "pull_cookie",
    "pull_early_data",
    "pull_ec_point_formats",
    "pull_empty",
    "pull_extensions",
    "pull_key_share_client",
    "pull_key_share_hrr",
    "pull_key_share_server",
    "pull_max_fragment_length",
    "pull_offered_psks",
    "pull_padding",
    "pull_psk_key_exchange_modes",
    "pull_record_size_limit",
    "pull_renegotiation_info",
    "pull_selected_identity",
    "pull_selected_version",
    "pull_server_name_list",
    "pull_signature_schemes",
    "pull_status_request",
    "pull_supported_groups",
    "pull_supported_versions",
    "push_alpn_protocols",
    "push_certificate_authorities",
    "push_certificate_status",
    "push_compress_certificate",
    "push_cookie",
    "push_early_data",
    "push_ec_point_formats",
    "push_empty",
    "push_extensions",
    "push_key_share_client",
    "push_key_share_hrr",
    "push_key_share_server",
    "push_max_fragment_length",
    "push_offered_psks",
    "push_padding",
    "push_psk_key_exchange_modes",
    "push_record_size_limit",
    "push_renegotiation_info",
    "push_selected_identity",
    "push_selected_version",
    "push_server_name_list",
    "push_signature_schemes",
    "push_status_request",
    "push_supported_groups",
    "push_supported_versions",
]

T = TypeVar("T")

Data = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Extension:
    """One extension as sent (RFC 8446 section 4.2)."""

    type: int
    """ExtensionType code point (may be unknown or GREASE)."""
    data: bytes
    """extension_data, undecoded."""


class HasExtensions(Protocol):
    @property
    def extensions(self) -> tuple[Extension, ...]: ...


class DuplicateExtension(DecodeError):  # noqa: N818 - a kind of DecodeError, named for what is wrong
    """Two extensions of one type in one list: forbidden by RFC 8446 section 4.2 ("There MUST
    NOT be more than one extension of the same type in a given extension block") and RFC 5246
    section 7.4.1.4. An endpoint answers with illegal_parameter, as OpenSSL does."""

    def __init__(self, ext_type: int) -> None:
        super().__init__(f"duplicate extension {name_of(ExtensionType, ext_type)}")
        self.ext_type = ext_type


def pull_extensions(buf: Buffer) -> tuple[Extension, ...]:
    """``Extension extensions<0..2^16-1>``: the list, in order.

    A type that occurs twice is a :class:`DuplicateExtension` (a :class:`DecodeError`), so
    that a decoded list holds each type at most once and :func:`ext` is the one lookup.
    """
    out: list[Extension] = []
    seen: set[int] = set()
    with buf.pull_block(2):
        while not buf.eof():
            ext_type = buf.pull_uint16()
            if ext_type in seen:
                raise DuplicateExtension(ext_type)
            seen.add(ext_type)
            out.append(Extension(ext_type, buf.pull_opaque(2)))
    return tuple(out)


def push_extensions(buf: Buffer, extensions: tuple[Extension, ...]) -> None:
    with buf.push_block(2):
        for e in extensions:
            buf.push_uint16(e.type)
            buf.push_opaque(2, e.data)


def ext(msg: HasExtensions | tuple[Extension, ...], ext_type: int) -> bytes | None:
    """The data of the extension of type ``ext_type`` in ``msg``, or None if absent.

    The one extension lookup of capdebug. Lists decoded by :func:`pull_extensions` hold each
    type once (duplicates are a :class:`DuplicateExtension` there); for a list built by hand
    with duplicates, the first wins.
    """
    extensions = msg if isinstance(msg, tuple) else msg.extensions
    for e in extensions:
        if e.type == ext_type:
            return e.data
    return None


# -- helpers --------------------------------------------------------------------------------


def _decode(data: Data, what: str, reader: Callable[[Buffer], T]) -> T:
    buf = Buffer(data)
    try:
        value = reader(buf)
    except NeedData as exc:
        raise DecodeError(f"{what}: truncated extension data: {exc}") from exc
    if not buf.eof():
        raise DecodeError(f"{what}: {buf.remaining} bytes left over in extension data")
    return value


def _encode(writer: Callable[[Buffer], None]) -> bytes:
    buf = Buffer()
    writer(buf)
    return buf.data()


def _check_len(what: str, n: int, minimum: int, maximum: int) -> None:
    if not minimum <= n <= maximum:
        raise DecodeError(f"{what}: vector of {n} bytes outside <{minimum}..{maximum}>")


def _pull_uints(
    data: Data, what: str, length_size: int, item_size: int, minimum: int, maximum: int
) -> tuple[int, ...]:
    def reader(buf: Buffer) -> tuple[int, ...]:
        n = int.from_bytes(buf.pull_view(length_size), "big")
        _check_len(what, n, minimum, maximum)
        if n % item_size:
            raise DecodeError(f"{what}: vector of {n} bytes is not a multiple of {item_size}")
        raw = buf.pull_view(n)
        return tuple(int.from_bytes(raw[i : i + item_size], "big") for i in range(0, n, item_size))

    return _decode(data, what, reader)


def _push_uints(length_size: int, item_size: int, items: tuple[int, ...]) -> bytes:
    return _encode(lambda buf: buf.push_list(length_size, item_size, items))


def _pull_uint(data: Data, what: str, size: int) -> int:
    if len(data) != size:
        raise DecodeError(f"{what}: extension data of {len(data)} bytes, expected {size}")
    return int.from_bytes(data, "big")


def _pull_opaque_exact(buf: Buffer, what: str, length_size: int, minimum: int, maximum: int) -> bytes:
    n = int.from_bytes(buf.pull_view(length_size), "big")
    _check_len(what, n, minimum, maximum)
    return buf.pull_bytes(n)


# -- server_name (RFC 6066 section 3) -------------------------------------------------------


def pull_server_name_list(data: Data) -> tuple[str, ...]:
    """Host names from ``ServerNameList``; empty data (a server's acknowledgement) gives ().

    Names are decoded as Latin-1 so that any bytes round-trip (host names are ASCII A-labels;
    anything else is a client bug worth seeing rather than an exception).
    """
    if len(data) == 0:
        return ()

    def reader(buf: Buffer) -> tuple[str, ...]:
        names: list[str] = []
        with buf.pull_block(2) as n:
            _check_len("server_name", n, 1, 0xFFFF)
            while not buf.eof():
                name_type = buf.pull_uint8()
                if name_type != NameType.host_name:
                    # The body of any other type has no defined format to skip by.
                    raise DecodeError(f"server_name: unknown name type {name_type}")
                names.append(_pull_opaque_exact(buf, "server_name", 2, 1, 0xFFFF).decode("latin-1"))
        return tuple(names)

    return _decode(data, "server_name", reader)


def push_server_name_list(names: tuple[str, ...]) -> bytes:
    """The client's ``ServerNameList``; () gives the empty acknowledgement of a server."""
    if not names:
        return b""

    def writer(buf: Buffer) -> None:
        with buf.push_block(2):
            for name in names:
                buf.push_uint8(NameType.host_name)
                buf.push_opaque(2, name.encode("latin-1"))

    return _encode(writer)


# -- supported_versions (RFC 8446 section 4.2.1) --------------------------------------------


def pull_supported_versions(data: Data) -> tuple[int, ...]:
    """ClientHello form: ``ProtocolVersion versions<2..254>``."""
    return _pull_uints(data, "supported_versions", 1, 2, 2, 254)


def push_supported_versions(versions: tuple[int, ...]) -> bytes:
    return _push_uints(1, 2, versions)


def pull_selected_version(data: Data) -> int:
    """ServerHello / HelloRetryRequest form: one ``ProtocolVersion``."""
    return _pull_uint(data, "supported_versions", 2)


def push_selected_version(version: int) -> bytes:
    return version.to_bytes(2, "big")


# -- supported_groups, signature_algorithms(_cert), compress_certificate, ec_point_formats ----


def pull_supported_groups(data: Data) -> tuple[int, ...]:
    """``NamedGroup named_group_list<2..2^16-1>`` (RFC 8446 section 4.2.7)."""
    return _pull_uints(data, "supported_groups", 2, 2, 2, 0xFFFF)


def push_supported_groups(groups: tuple[int, ...]) -> bytes:
    return _push_uints(2, 2, groups)


def pull_signature_schemes(data: Data) -> tuple[int, ...]:
    """signature_algorithms and signature_algorithms_cert:
    ``SignatureScheme supported_signature_algorithms<2..2^16-2>`` (RFC 8446 section 4.2.3).
    """
    return _pull_uints(data, "signature_algorithms", 2, 2, 2, 0xFFFE)


def push_signature_schemes(schemes: tuple[int, ...]) -> bytes:
    return _push_uints(2, 2, schemes)


def pull_compress_certificate(data: Data) -> tuple[int, ...]:
    """``CertificateCompressionAlgorithm algorithms<2..2^8-2>`` (RFC 8879 section 3)."""
    return _pull_uints(data, "compress_certificate", 1, 2, 2, 254)


def push_compress_certificate(algorithms: tuple[int, ...]) -> bytes:
    return _push_uints(1, 2, algorithms)


def pull_ec_point_formats(data: Data) -> tuple[int, ...]:
    """``ECPointFormat ec_point_format_list<1..2^8-1>`` (RFC 8422 section 5.1.2)."""
    return _pull_uints(data, "ec_point_formats", 1, 1, 1, 255)


def push_ec_point_formats(formats: tuple[int, ...]) -> bytes:
    return _push_uints(1, 1, formats)


def pull_psk_key_exchange_modes(data: Data) -> tuple[int, ...]:
    """``PskKeyExchangeMode ke_modes<1..255>`` (RFC 8446 section 4.2.9)."""
    return _pull_uints(data, "psk_key_exchange_modes", 1, 1, 1, 255)


def push_psk_key_exchange_modes(modes: tuple[int, ...]) -> bytes:
    return _push_uints(1, 1, modes)


# -- key_share (RFC 8446 section 4.2.8) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyShareEntry:
    """One offered or chosen key share."""

    group: int
    """NamedGroup."""
    key_exchange: bytes
    """The public value: an X25519 key, an uncompressed point, a KEM key or ciphertext."""


def _pull_key_share_entry(buf: Buffer) -> KeyShareEntry:
    group = buf.pull_uint16()
    return KeyShareEntry(group, _pull_opaque_exact(buf, "key_share", 2, 1, 0xFFFF))


def _push_key_share_entry(buf: Buffer, entry: KeyShareEntry) -> None:
    buf.push_uint16(entry.group)
    buf.push_opaque(2, entry.key_exchange)


def pull_key_share_client(data: Data) -> tuple[KeyShareEntry, ...]:
    """ClientHello form: ``KeyShareEntry client_shares<0..2^16-1>``."""

    def reader(buf: Buffer) -> tuple[KeyShareEntry, ...]:
        entries: list[KeyShareEntry] = []
        with buf.pull_block(2):
            while not buf.eof():
                entries.append(_pull_key_share_entry(buf))
        return tuple(entries)

    return _decode(data, "key_share", reader)


def push_key_share_client(entries: tuple[KeyShareEntry, ...]) -> bytes:
    def writer(buf: Buffer) -> None:
        with buf.push_block(2):
            for entry in entries:
                _push_key_share_entry(buf, entry)

    return _encode(writer)


def pull_key_share_server(data: Data) -> KeyShareEntry:
    """ServerHello form: one ``KeyShareEntry server_share``."""
    return _decode(data, "key_share", _pull_key_share_entry)


def push_key_share_server(entry: KeyShareEntry) -> bytes:
    return _encode(lambda buf: _push_key_share_entry(buf, entry))


def pull_key_share_hrr(data: Data) -> int:
    """HelloRetryRequest form: ``NamedGroup selected_group``."""
    return _pull_uint(data, "key_share", 2)


def push_key_share_hrr(group: int) -> bytes:
    return group.to_bytes(2, "big")


# -- application_layer_protocol_negotiation (RFC 7301 section 3.1) ---------------------------


def pull_alpn_protocols(data: Data) -> tuple[bytes, ...]:
    """``ProtocolName protocol_name_list<2..2^16-1>``; a server sends exactly one name."""

    def reader(buf: Buffer) -> tuple[bytes, ...]:
        names: list[bytes] = []
        with buf.pull_block(2) as n:
            _check_len("alpn", n, 2, 0xFFFF)
            while not buf.eof():
                names.append(_pull_opaque_exact(buf, "alpn", 1, 1, 255))
        return tuple(names)

    return _decode(data, "alpn", reader)


def push_alpn_protocols(protocols: tuple[bytes, ...]) -> bytes:
    def writer(buf: Buffer) -> None:
        with buf.push_block(2):
            for name in protocols:
                buf.push_opaque(1, name)

    return _encode(writer)


# -- pre_shared_key (RFC 8446 section 4.2.11) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class PskIdentity:
    identity: bytes
    """A ticket, or an external PSK identity."""
    obfuscated_ticket_age: int
    """Ticket age in ms plus ticket_age_add, mod 2^32 (0 for external PSKs)."""


@dataclass(frozen=True, slots=True)
class OfferedPsks:
    """The ClientHello form of pre_shared_key (always the last extension)."""

    identities: tuple[PskIdentity, ...]
    binders: tuple[bytes, ...]
    """One HMAC per identity, over the ClientHello truncated before the binders."""


def binders_size(offered: OfferedPsks) -> int:
    """Bytes the ``binders`` vector takes at the end of the ClientHello, length prefix included.

    The binders are computed over the ClientHello up to that point (RFC 8446 section 4.2.11.2).
    """
    return 2 + sum(1 + len(b) for b in offered.binders)


def pull_offered_psks(data: Data) -> OfferedPsks:
    def reader(buf: Buffer) -> OfferedPsks:
        identities: list[PskIdentity] = []
        with buf.pull_block(2) as n:
            _check_len("pre_shared_key identities", n, 7, 0xFFFF)
            while not buf.eof():
                identity = _pull_opaque_exact(buf, "pre_shared_key identity", 2, 1, 0xFFFF)
                identities.append(PskIdentity(identity, buf.pull_uint32()))
        binders: list[bytes] = []
        with buf.pull_block(2) as n:
            _check_len("pre_shared_key binders", n, 33, 0xFFFF)
            while not buf.eof():
                binders.append(_pull_opaque_exact(buf, "pre_shared_key binder", 1, 32, 255))
        return OfferedPsks(tuple(identities), tuple(binders))

    return _decode(data, "pre_shared_key", reader)


def push_offered_psks(offered: OfferedPsks) -> bytes:
    def writer(buf: Buffer) -> None:
        with buf.push_block(2):
            for ident in offered.identities:
                buf.push_opaque(2, ident.identity)
                buf.push_uint32(ident.obfuscated_ticket_age)
        with buf.push_block(2):
            for binder in offered.binders:
                buf.push_opaque(1, binder)

    return _encode(writer)


def pull_selected_identity(data: Data) -> int:
    """ServerHello form: ``uint16 selected_identity``."""
    return _pull_uint(data, "pre_shared_key", 2)


def push_selected_identity(index: int) -> bytes:
    return index.to_bytes(2, "big")


# -- small bodies ------------------------------------------------------------------------------


def pull_early_data(data: Data) -> int | None:
    """early_data (RFC 8446 section 4.2.10): empty in ClientHello and EncryptedExtensions (None);
    ``uint32 max_early_data_size`` in NewSessionTicket.
    """
    if len(data) == 0:
        return None
    return _pull_uint(data, "early_data", 4)


def push_early_data(max_early_data_size: int | None) -> bytes:
    return b"" if max_early_data_size is None else max_early_data_size.to_bytes(4, "big")


def pull_cookie(data: Data) -> bytes:
    """``opaque cookie<1..2^16-1>`` (RFC 8446 section 4.2.2)."""
    return _decode(data, "cookie", lambda buf: _pull_opaque_exact(buf, "cookie", 2, 1, 0xFFFF))


def push_cookie(cookie: bytes) -> bytes:
    return _encode(lambda buf: buf.push_opaque(2, cookie))


def pull_empty(data: Data) -> None:
    """An extension whose data must be empty (extended_master_secret, encrypt_then_mac,
    post_handshake_auth, and server acknowledgements)."""
    if len(data) != 0:
        raise DecodeError(f"extension data of {len(data)} bytes where none is allowed")


def push_empty() -> bytes:
    return b""


def pull_renegotiation_info(data: Data) -> bytes:
    """``opaque renegotiated_connection<0..255>`` (RFC 5746 section 3.2): empty on a first
    handshake, the previous verify_data on a renegotiation."""
    return _decode(data, "renegotiation_info", lambda buf: buf.pull_opaque(1))


def push_renegotiation_info(renegotiated_connection: bytes) -> bytes:
    return _encode(lambda buf: buf.push_opaque(1, renegotiated_connection))


def pull_record_size_limit(data: Data) -> int:
    """``uint16 RecordSizeLimit`` (RFC 8449 section 4)."""
    return _pull_uint(data, "record_size_limit", 2)


def push_record_size_limit(limit: int) -> bytes:
    return limit.to_bytes(2, "big")


def pull_max_fragment_length(data: Data) -> int:
    """``MaxFragmentLength`` enum, 1..4 for 2^9..2^12 (RFC 6066 section 4)."""
    return _pull_uint(data, "max_fragment_length", 1)


def push_max_fragment_length(code: int) -> bytes:
    return code.to_bytes(1, "big")


def pull_padding(data: Data) -> int:
    """The padding length (RFC 7685). Non-zero padding is tolerated: only its size matters."""
    return len(data)


def push_padding(length: int) -> bytes:
    return bytes(length)


def pull_certificate_authorities(data: Data) -> tuple[bytes, ...]:
    """``DistinguishedName authorities<3..2^16-1>``, each DER ``opaque<1..2^16-1>``
    (RFC 8446 section 4.2.4)."""

    def reader(buf: Buffer) -> tuple[bytes, ...]:
        names: list[bytes] = []
        with buf.pull_block(2) as n:
            _check_len("certificate_authorities", n, 3, 0xFFFF)
            while not buf.eof():
                names.append(_pull_opaque_exact(buf, "certificate_authorities", 2, 1, 0xFFFF))
        return tuple(names)

    return _decode(data, "certificate_authorities", reader)


def push_certificate_authorities(names: tuple[bytes, ...]) -> bytes:
    def writer(buf: Buffer) -> None:
        with buf.push_block(2):
            for name in names:
                buf.push_opaque(2, name)

    return _encode(writer)


# -- status_request (RFC 6066 section 8) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """The ClientHello (and TLS 1.3 CertificateRequest) form of status_request, type ocsp."""

    responder_id_list: tuple[bytes, ...]
    """DER ResponderIDs; usually empty (the responder is known to the server)."""
    request_extensions: bytes
    """DER OCSP request extensions; usually empty."""
    status_type: int = CertificateStatusType.ocsp


def pull_status_request(data: Data) -> StatusRequest | None:
    """None for the empty form a TLS 1.2 server sends to say it will staple."""
    if len(data) == 0:
        return None

    def reader(buf: Buffer) -> StatusRequest:
        status_type = buf.pull_uint8()
        if status_type != CertificateStatusType.ocsp:
            raise DecodeError(f"status_request: unknown status type {status_type}")
        ids: list[bytes] = []
        with buf.pull_block(2):
            while not buf.eof():
                ids.append(_pull_opaque_exact(buf, "status_request responder_id", 2, 1, 0xFFFF))
        return StatusRequest(tuple(ids), buf.pull_opaque(2), status_type)

    return _decode(data, "status_request", reader)


def push_status_request(request: StatusRequest | None) -> bytes:
    if request is None:
        return b""

    def writer(buf: Buffer) -> None:
        buf.push_uint8(request.status_type)
        with buf.push_block(2):
            for rid in request.responder_id_list:
                buf.push_opaque(2, rid)
        buf.push_opaque(2, request.request_extensions)

    return _encode(writer)


@dataclass(frozen=True, slots=True)
class CertificateStatus:
    """A stapled OCSP response: the TLS 1.2 certificate_status message body and the TLS 1.3
    status_request extension of a CertificateEntry (RFC 6066 section 8, RFC 8446 4.4.2.1)."""

    @property
    def msg_type(self) -> int:
        return HandshakeType.certificate_status

    status_type: int
    response: bytes
    """DER OCSPResponse, ``opaque<1..2^24-1>``."""


def pull_certificate_status(data: Data) -> CertificateStatus:
    def reader(buf: Buffer) -> CertificateStatus:
        status_type = buf.pull_uint8()
        return CertificateStatus(status_type, _pull_opaque_exact(buf, "ocsp_response", 3, 1, 0xFFFFFF))

    return _decode(data, "certificate_status", reader)


def push_certificate_status(status: CertificateStatus) -> bytes:
    def writer(buf: Buffer) -> None:
        buf.push_uint8(status.status_type)
        buf.push_opaque(3, status.response)

    return _encode(writer)
