"""TLS 1.2 key exchange pieces that need a public-key primitive (the engine's side).

* The ServerKeyExchange signature input: RFC 5246 section 7.4.3 and RFC 8422 section 5.4
  (client_random + server_random + the ServerECDHParams).
* The static-RSA premaster secret (RFC 5246 section 7.4.7.1), kept apart because it is legacy:
  no forward secrecy. The server's decryption follows the RFC's countermeasure to
  Bleichenbacher's attack: any failure (padding, length) silently yields a random premaster, so
  the handshake fails later at Finished with the same alert as a wrong key, never earlier.
"""

from __future__ import annotations

import os
import warnings

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.utils import CryptographyDeprecationWarning

from ..errors import CryptoError
from .x509 import PrivateKey

__all__ = [
    "PREMASTER_LEN",
    "certificate_key_kind",
    "private_key_kind",
    "rsa_decrypt_premaster",
    "rsa_encrypt_premaster",
]

PREMASTER_LEN = 48


def _public_key(cert_der: bytes) -> object:
    try:
        with warnings.catch_warnings():
            # A peer's certificate is not ours to fix: no warning per parse (as crypto.x509).
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(cert_der).public_key()
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion) as exc:
        # InvalidVersion is not a ValueError: a peer's certificate must not escape as one.
        raise CryptoError(f"cannot read the certificate's key: {exc}") from exc


def certificate_key_kind(cert_der: bytes) -> str:
    """``"RSA"``, ``"ECDSA"`` or another name: which TLS 1.2 suites' authentication the
    certificate's key can serve (RFC 5246 7.4.2, RFC 8422 5.3)."""
    key = _public_key(cert_der)
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    return type(key).__name__


def private_key_kind(key: PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ECDSA"
    return type(key).__name__


def rsa_encrypt_premaster(cert_der: bytes, premaster: bytes) -> bytes:
    """RSAES-PKCS1-v1_5 encryption of the premaster under the server certificate's key."""
    key = _public_key(cert_der)
    if not isinstance(key, rsa.RSAPublicKey):
        raise CryptoError("the server certificate has no RSA key for the RSA key exchange")
    return key.encrypt(premaster, padding.PKCS1v15())


def rsa_decrypt_premaster(private_key: PrivateKey, encrypted: bytes, client_version: int) -> bytes:
    """The premaster secret, or a random one when decryption fails (RFC 5246 7.4.7.1)."""
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise CryptoError("the RSA key exchange needs an RSA server key")
    fallback = client_version.to_bytes(2, "big") + os.urandom(PREMASTER_LEN - 2)
    try:
        message = private_key.decrypt(encrypted, padding.PKCS1v15())
    except ValueError:
        return fallback
    if len(message) != PREMASTER_LEN:
        return fallback
    # The version check is folded in, as the RFC asks: a mismatch gives a premaster that
    # fails Finished like any other wrong key.
    return client_version.to_bytes(2, "big") + message[2:]
