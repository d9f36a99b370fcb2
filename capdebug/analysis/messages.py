"""Typed facts of handshake messages, as a capture reader needs them.

The parsing is ``wire.handshake``'s (the engine uses the same codecs); this module adds the
tolerance of a passive observer (a message that does not parse is kept with its error, an
extension that does not decode reads as absent) and certificate summaries from ``crypto.x509``.
Everything returns typed values (ints, bytes, :class:`~capdebug.crypto.x509.CertSummary`);
strings for people are made in :mod:`capdebug.analysis.describe` only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final, TypeVar

from .._buffer import Buffer
from ..crypto.certinfo import CertSummary
from ..errors import CapdebugError, DecodeError
from ..wire.constants import ExtensionType, ProtocolVersion
from ..wire.extensions import (
    ext,
    pull_alpn_protocols,
    pull_key_share_hrr,
    pull_selected_identity,
    pull_selected_version,
    pull_server_name_list,
    pull_supported_groups,
    pull_supported_versions,
)
from ..wire.handshake import (
    Certificate,
    ClientHello,
    EncryptedExtensions,
    HandshakeMessage,
    ServerHello,
    pull_handshake,
)

__all__ = [
    "alpn",
    "certificate_summary",
    "certificates",
    "early_data",
    "hrr_group",
    "negotiated_version",
    "offered_groups",
    "offered_versions",
    "parse_handshake",
    "psk_selected",
    "server_name",
]

T = TypeVar("T")

_TLS13: Final = ProtocolVersion.TLS1_3


def parse_handshake(message: bytes, version: int | None) -> tuple[HandshakeMessage | None, str | None]:
    """Decode one message, its 4-byte header included: ``(message, None)``, or ``(None, why)``
    when it is malformed (shown with its error, never dropped)."""
    try:
        return pull_handshake(Buffer(message), tls13=None if version is None else version == _TLS13), None
    except DecodeError as exc:
        return None, str(exc)


def _decoded(data: bytes | None, decode: Callable[[bytes], T]) -> T | None:
    """An extension's decoded value; None when absent or malformed."""
    if data is None:
        return None
    try:
        return decode(data)
    except DecodeError:
        return None


def text(raw: bytes) -> str:
    """A peer-chosen name (SNI, ALPN) as text: non-ASCII bytes escaped, never decoded."""
    return raw.decode("ascii", "backslashreplace")


def server_name(msg: ClientHello) -> str | None:
    """The first server_name of the ClientHello (RFC 6066 3)."""
    names = _decoded(ext(msg, ExtensionType.server_name), pull_server_name_list)
    return next(iter(names), None) if names is not None else None


def offered_versions(msg: ClientHello) -> tuple[int, ...] | None:
    """supported_versions (RFC 8446 4.2.1); None when absent or malformed."""
    return _decoded(ext(msg, ExtensionType.supported_versions), pull_supported_versions)


def offered_groups(msg: ClientHello) -> tuple[int, ...] | None:
    return _decoded(ext(msg, ExtensionType.supported_groups), pull_supported_groups)


def negotiated_version(msg: ServerHello) -> int:
    """supported_versions' selected version (RFC 8446 4.2.1), else legacy_version."""
    selected = _decoded(ext(msg, ExtensionType.supported_versions), pull_selected_version)
    return msg.legacy_version if selected is None else selected


def alpn(msg: ServerHello | EncryptedExtensions) -> str | None:
    """The protocol the server selected (RFC 7301 3.1)."""
    protocols = _decoded(ext(msg, ExtensionType.application_layer_protocol_negotiation), pull_alpn_protocols)
    return next((text(p) for p in protocols), None) if protocols is not None else None


def early_data(msg: ClientHello | EncryptedExtensions) -> bool:
    """early_data offered (ClientHello) or accepted (EncryptedExtensions), RFC 8446 4.2.10."""
    return ext(msg, ExtensionType.early_data) is not None


def psk_selected(msg: ServerHello) -> int | None:
    """The PSK identity the server accepted (RFC 8446 4.2.11), or None."""
    return _decoded(ext(msg, ExtensionType.pre_shared_key), pull_selected_identity)


def hrr_group(msg: ServerHello) -> int | None:
    """The group a HelloRetryRequest asks for (RFC 8446 4.2.8)."""
    return _decoded(ext(msg, ExtensionType.key_share), pull_key_share_hrr)


@functools.lru_cache(maxsize=1024)
def certificate_summary(der: bytes) -> CertSummary | str:
    """One certificate's summary, or why it does not parse. Cached: a capture repeats the same
    few server chains thousands of times, and parsing (with its signature check) costs ~0.3 ms."""
    # Imported here: cryptography.x509 costs more to import than a small capture takes to
    # decode, and most commands never see a certificate.
    from ..crypto.x509 import summarize_certificate

    try:
        return summarize_certificate(der)
    except CapdebugError as exc:
        return str(exc)


def certificates(msg: Certificate) -> tuple[CertSummary | str, ...]:
    """The chain as sent, leaf first: a summary per certificate, or its parse error."""
    return tuple(certificate_summary(der) for der in msg.der_list)
