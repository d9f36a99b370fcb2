"""Handshake messages for display: framing a handshake stream and the fields worth showing.

The parsing is ``wire.handshake``'s (the engine uses the same codecs); this module only adds
what a capture reader wants on top: certificate details from ``crypto.x509``, and tolerance:
a message that does not parse is shown with its error, never dropped.
"""

from __future__ import annotations

import functools
from typing import Any

from .._buffer import Buffer
from ..crypto.x509 import summarize_certificate
from ..errors import CapdebugError, DecodeError
from ..wire.handshake import Certificate, ClientHello, ServerHello, handshake_name, pull_handshake, summary

__all__ = ["describe_handshake"]


def describe_handshake(message: bytes, version: str | None) -> tuple[dict[str, Any], Any]:
    """Decode one message, its 4-byte header included: (JSON-friendly fields, parsed message
    or None when malformed)."""
    msg_type = message[0]
    buf = Buffer(message)
    try:
        msg = pull_handshake(buf, tls13=None if version is None else version == "1.3")
    except DecodeError as exc:
        return {"error": f"malformed {handshake_name(msg_type)}: {exc}"}, None
    fields: dict[str, Any] = dict(summary(msg))
    if isinstance(msg, ClientHello):
        fields["random"] = msg.random.hex()
    elif isinstance(msg, ServerHello) and msg.is_hello_retry_request:
        fields["name"] = "hello_retry_request"
    elif isinstance(msg, Certificate):
        fields.pop("certificates", None)
        certs = []
        for der in msg.der_list:
            cert = dict(_certificate_fields(der))
            if "sans" in cert:
                cert["sans"] = list(cert["sans"])  # the cached value stays immutable
            certs.append(cert)
        fields["certificates"] = certs
    return fields, msg


@functools.lru_cache(maxsize=1024)
def _certificate_fields(der: bytes) -> tuple[tuple[str, Any], ...]:
    """What to show of one certificate. Cached: a capture repeats the same few server chains
    thousands of times, and parsing (with its signature check) costs ~0.3 ms."""
    try:
        s = summarize_certificate(der)
    except CapdebugError as exc:
        return (("error", str(exc)),)
    return (
        ("subject", s.subject),
        ("issuer", s.issuer),
        ("sans", s.sans),
        ("not_before", s.not_before.isoformat()),
        ("not_after", s.not_after.isoformat()),
        ("key", s.key_type),
        ("self_signed", s.self_signed),
        ("sha256", s.sha256_fingerprint),
    )
