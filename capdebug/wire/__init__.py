"""TLS wire codecs: bytes <-> frozen dataclasses. No state, no crypto, no I/O.

Shared by the capture decoder (``analysis/``) and the TLS engine (``tls/``): one codec, two
users. Every structure has a matched ``pull_x(buf) -> X`` / ``push_x(buf, x)`` pair over
:class:`capdebug._buffer.Buffer` that round-trips exactly. Truncated input raises
:class:`~capdebug.errors.NeedData`, malformed input :class:`~capdebug.errors.DecodeError`.

Modules: :mod:`.constants` (code points and names), :mod:`.record` (record framing,
TLSInnerPlaintext, SSLv2 ClientHello), :mod:`.handshake` (handshake messages),
:mod:`.extensions` (extension bodies), :mod:`.alert`.
"""

from __future__ import annotations

from .alert import Alert, alert_name, pull_alert, push_alert
from .constants import (
    AlertDescription,
    AlertLevel,
    CipherSuite,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
    is_grease,
    name_of,
    version_name,
)
from .extensions import Extension, KeyShareEntry, ext
from .handshake import (
    HRR_RANDOM,
    Certificate,
    ClientHello,
    HandshakeMessage,
    ServerHello,
    UnknownHandshake,
    encode_handshake,
    frame_handshake,
    handshake_name,
    pull_handshake,
    push_handshake,
)
from .record import (
    RecordHeader,
    build_inner_plaintext,
    frame_records,
    looks_like_tls,
    parse_sslv2_client_hello,
    split_inner_plaintext,
)

__all__ = [
    "HRR_RANDOM",
    "Alert",
    "AlertDescription",
    "AlertLevel",
    "Certificate",
    "CipherSuite",
    "ClientHello",
    "ContentType",
    "Extension",
    "ExtensionType",
    "HandshakeMessage",
    "HandshakeType",
    "KeyShareEntry",
    "NamedGroup",
    "ProtocolVersion",
    "RecordHeader",
    "ServerHello",
    "SignatureScheme",
    "UnknownHandshake",
    "alert_name",
    "build_inner_plaintext",
    "encode_handshake",
    "ext",
    "frame_handshake",
    "frame_records",
    "handshake_name",
    "is_grease",
    "looks_like_tls",
    "name_of",
    "parse_sslv2_client_hello",
    "pull_alert",
    "pull_handshake",
    "push_alert",
    "push_handshake",
    "split_inner_plaintext",
    "version_name",
]
