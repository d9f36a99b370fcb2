"""What the engine's modules share: the error constructor, alert and trace shorthands, and
the TLS 1.3 constants of the handshake (RFC 8446 4.1.2, 4.4.3)."""

from __future__ import annotations

import ipaddress
import os
import sys

from ..errors import ErrorKind, TLSError
from ..wire.constants import AlertDescription, ProtocolVersion
from .trace import TraceCategory

__all__ = [
    "AD",
    "CV_CLIENT",
    "CV_PAD",
    "CV_SERVER",
    "LEGACY_VERSION",
    "TLS12",
    "TLS13",
    "T",
    "err",
    "fmt",
    "is_ip",
    "select_alpn",
]

TLS13 = ProtocolVersion.TLS1_3
TLS12 = ProtocolVersion.TLS1_2
LEGACY_VERSION = ProtocolVersion.TLS1_2  # RFC 8446 4.1.2: legacy_version is always 0x0303
CV_PAD = b"\x20" * 64  # RFC 8446 4.4.3
CV_SERVER = b"TLS 1.3, server CertificateVerify\x00"
CV_CLIENT = b"TLS 1.3, client CertificateVerify\x00"

T = TraceCategory


def err(name: str, message: str, alert: int | None, kind: ErrorKind = ErrorKind.PROTOCOL) -> TLSError:
    frame = sys._getframe(1)
    debug = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}"
    """A TLSError whose ``debug`` names the line that raised it (s2n-style)."""
    return TLSError(name, kind, message, alert=alert, debug=debug)


AD = AlertDescription


def select_alpn(ours: tuple[str, ...], offered: tuple[bytes, ...]) -> str | None:
    """The server's ALPN choice (RFC 7301 3.2): ours in order, the first the client also offers;
    None when either side has none; no common protocol is no_application_protocol."""
    if not (offered and ours):
        return None
    chosen = next((p for p in ours if p.encode() in offered), None)
    if chosen is None:
        raise err(
            "ERR_NO_APPLICATION_PROTOCOL",
            f"no common ALPN protocol (client: {offered!r})",
            AD.no_application_protocol,
        )
    return chosen


def is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def fmt(value: object) -> str:
    """Trace formatting of a message field: lists joined, byte strings as their lengths only
    (a ticket nonce or a verify_data is nobody's business in a log)."""
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], bytes | bytearray):
            return f"[{len(value)} items]"
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return str(value)
