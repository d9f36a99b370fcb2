"""What a report shows of a certificate, and RFC 6125 name matching: plain data, importable
without ``cryptography.x509`` (whose import costs more than decoding a small capture; it is
loaded by :mod:`capdebug.crypto.x509` only when a certificate is parsed).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime

__all__ = ["CertSummary", "hostname_matches"]


@dataclass(frozen=True, slots=True)
class CertSummary:
    """What a report shows of one certificate."""

    subject: str
    """RFC 4514 string."""
    issuer: str
    serial: str
    """Serial number in lowercase hex."""
    not_before: datetime
    """UTC, timezone aware."""
    not_after: datetime
    sans: tuple[str, ...]
    """subjectAltName DNS names and IP addresses, in certificate order."""
    key_type: str
    """e.g. "EC secp256r1", "RSA 2048", "Ed25519"."""
    key_bits: int
    self_signed: bool
    """Subject equals issuer and, where the key type allows checking, the signature verifies
    with the certificate's own key."""
    is_ca: bool
    signature_algorithm: str
    sha256_fingerprint: str
    """Lowercase hex of SHA-256 over the DER."""
    extended_key_usage: tuple[str, ...] | None = None
    """Extended key usage purposes ("serverAuth", "clientAuth", ...; RFC 5280 4.2.1.12), None
    when the certificate has no such extension (any purpose is then allowed)."""


def _parse_ip(hostname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(hostname.strip("[]"))
    except ValueError:
        return None


def _dns_match(pattern: str, hostname: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern == hostname:
        return True
    # RFC 6125 section 6.4.3: a wildcard is only the whole leftmost label, matches exactly one
    # label, and (as CAs and browsers require) must leave at least two labels after it.
    if not pattern.startswith("*.") or pattern.count(".") < 2:
        return False
    host_label, sep, host_rest = hostname.partition(".")
    return bool(sep) and bool(host_label) and host_rest == pattern[2:]


def hostname_matches(summary: CertSummary, hostname: str) -> bool:
    """Does the certificate name ``hostname``? IP addresses match only IP SANs, DNS names only
    DNS SANs (no Common Name fallback, as RFC 6125 section 6.4.4 allows and browsers do)."""
    ip = _parse_ip(hostname)
    if ip is not None:
        return any(_parse_ip(san) == ip for san in summary.sans)
    host = hostname.lower().rstrip(".")
    if not host:
        return False
    return any(_dns_match(san, host) for san in summary.sans if _parse_ip(san) is None)
