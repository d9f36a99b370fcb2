"""What the TLS engine needs from X.509 beyond :mod:`capdebug.crypto.x509`: loading its own
credential once, client-certificate path validation (RFC 5280 with the clientAuth profile),
and which signature schemes fit a key.

Kept apart so that ``x509.py`` (shared with the capture decoder) is not edited from the
engine's side; it is small enough to fold into ``x509.py`` later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509 import verification

from ..errors import UsageError
from .x509 import (
    CertificateUnknownCA,
    PrivateKey,
    _load_peer_chain,
    _load_private_key,
    _utc,
    load_certificates,
    run_verifier,
)

__all__ = [
    "compatible_schemes",
    "load_credential",
    "load_pem_certificates",
    "load_private_key",
    "verify_client_chain",
]

# SignatureScheme code points (RFC 8446 section 4.2.3).
_ECDSA_BY_CURVE = {"secp256r1": 0x0403, "secp384r1": 0x0503, "secp521r1": 0x0603}
_RSA_PSS_RSAE = (0x0804, 0x0805, 0x0806)
_ED25519 = 0x0807


def load_private_key(pem_or_der: bytes) -> PrivateKey:
    """A PEM or DER private key the engine can sign with: RSA, ECDSA or Ed25519 (no Ed448, for
    which :func:`compatible_schemes` has no scheme)."""
    key = _load_private_key(pem_or_der)
    if isinstance(key, ed448.Ed448PrivateKey):
        raise UsageError(f"unsupported private key type {type(key).__name__}")
    return key


def load_pem_certificates(data: bytes) -> list[bytes]:
    """DER certificates of a PEM bundle (or one DER certificate), in file order."""
    return [c.public_bytes(serialization.Encoding.DER) for c in load_certificates(data)]


def load_credential(chain_pem: bytes, key_pem: bytes) -> tuple[tuple[bytes, ...], PrivateKey]:
    """A certificate chain (leaf first) and its key, checked to belong together."""
    chain = tuple(load_pem_certificates(chain_pem))
    if not chain:
        raise UsageError("no certificate in the chain file")
    key = load_private_key(key_pem)
    leaf_public = x509.load_der_x509_certificate(chain[0]).public_key()
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if key.public_key().public_bytes(*fmt) != leaf_public.public_bytes(*fmt):
        raise UsageError("the private key does not belong to the first certificate of the chain")
    return chain, key


def compatible_schemes(key: PrivateKey) -> tuple[int, ...]:
    """Signature schemes this key can sign CertificateVerify with in TLS 1.3, preferred first
    (ECDSA schemes are bound to their curve; RSA keys use RSASSA-PSS, never PKCS#1 v1.5)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        scheme = _ECDSA_BY_CURVE.get(key.curve.name)
        return (scheme,) if scheme is not None else ()
    if isinstance(key, rsa.RSAPrivateKey):
        return _RSA_PSS_RSAE
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return (_ED25519,)
    return ()


def verify_client_chain(
    leaf_der: bytes, intermediates_der: Sequence[bytes], roots_der: Sequence[bytes], at: datetime
) -> None:
    """Validate a client certificate chain at ``at`` (server side of mutual TLS).

    Raises the same :class:`~capdebug.crypto.x509.CertificateVerifyError` subclasses and
    :class:`~capdebug.crypto.x509.CertificateDecodeError` as ``verify_chain`` (no host name is
    checked: a client names no host).
    """
    at = _utc(at)
    leaf, *intermediates = _load_peer_chain(leaf_der, intermediates_der)
    roots = load_certificates(list(roots_der))
    if not roots:
        raise CertificateUnknownCA("no trust roots configured for client certificates")
    verifier = verification.PolicyBuilder().store(verification.Store(roots)).time(at).build_client_verifier()
    run_verifier(verifier, leaf, intermediates, roots, None, at)
