"""Certificates, signatures and key exchange: the public-key side of TLS.

* Certificate summaries for reports and ``hostname_matches`` (RFC 6125 section 6.4).
* ``verify_chain``: path validation by ``cryptography.x509.verification`` (RFC 5280 with the
  CA/Browser Forum profile), with the failure classified into a stable ``reason``.
* ``sign`` / ``verify_signature``: CertificateVerify and ServerKeyExchange signatures by
  SignatureScheme (RFC 8446 section 4.2.3).
* ``generate_key_share`` / ``shared_secret``: (EC)DHE for the NamedGroups of RFC 8446
  section 4.2.7, with the public value encodings of section 4.2.8.2.

Every ``cryptography`` exception is wrapped into the capdebug tree with its cause.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa, x448, x25519
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification

from ..errors import CryptoError, DecodeError, UsageError
from .certinfo import CertSummary, _parse_ip, hostname_matches

__all__ = [
    "MAX_CHAIN_CERTIFICATES",
    "CertSummary",
    "CertificateChainTooLong",
    "CertificateDecodeError",
    "CertificateExpired",
    "CertificateHostnameMismatch",
    "CertificateInvalid",
    "CertificateNotYetValid",
    "CertificateUnknownCA",
    "CertificateVerifyError",
    "KeyExchangeError",
    "KeySharePrivateKey",
    "SignatureError",
    "generate_key_share",
    "hostname_matches",
    "load_certificates",
    "shared_secret",
    "sign",
    "summarize_certificate",
    "verify_chain",
    "verify_signature",
]


class CertificateDecodeError(DecodeError):
    """Certificate bytes are not a parseable X.509 certificate."""


class CertificateVerifyError(CryptoError):
    """A certificate chain did not verify; ``reason`` is a stable snake_case code."""

    reason = "invalid"


class CertificateUnknownCA(CertificateVerifyError):  # noqa: N818 (names fixed by the API)
    """No path from the leaf to a trusted root (unknown_ca, RFC 8446 section 6.2)."""

    reason = "unknown_ca"


class CertificateExpired(CertificateVerifyError):  # noqa: N818 (names fixed by the API)
    """A certificate of the chain is past its notAfter at the verification time."""

    reason = "expired"


class CertificateNotYetValid(CertificateVerifyError):  # noqa: N818 (names fixed by the API)
    """A certificate of the chain is before its notBefore at the verification time."""

    reason = "not_yet_valid"


class CertificateHostnameMismatch(CertificateVerifyError):  # noqa: N818 (names fixed by the API)
    """The leaf does not name the host (RFC 6125)."""

    reason = "hostname_mismatch"


class CertificateInvalid(CertificateVerifyError):  # noqa: N818 (names fixed by the API)
    """Any other path validation failure (bad signature, EKU, basic constraints, ...)."""

    reason = "invalid"


class CertificateChainTooLong(CertificateVerifyError):  # noqa: N818 (names fixed by the API)
    """The chain holds more certificates than :data:`MAX_CHAIN_CERTIFICATES`, or explaining its
    failure needs more issuer checks than the budget allows: rejected before any work."""

    reason = "chain_too_long"


#: Most certificates a peer's chain may hold, leaf included. RFC 8446 sets no limit, but real
#: verifiers bound path building (cryptography's builder stops at depth 8, OpenSSL's default
#: verify depth is 100 with a per-chain budget): without a bound, 640 certificates that all
#: claim to issue each other cost minutes of CPU. Public chains are 2 to 4 certificates long.
MAX_CHAIN_CERTIFICATES = 16

#: Issuer signature checks :func:`_reaches_root` may spend explaining one failed chain.
_MAX_ISSUER_CHECKS = 64

# What ``cryptography`` raises on certificate fields that parse lazily (found by fuzzing: a
# mangled name raises ValueError or KeyError, a repeated extension DuplicateExtension, an
# unknown key type UnsupportedAlgorithm).
_PARSE_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    UnsupportedAlgorithm,
    x509.DuplicateExtension,
    x509.InvalidVersion,
)


class SignatureError(CryptoError):
    """A signature did not verify, or the key does not fit the signature scheme."""


class KeyExchangeError(CryptoError):
    """A key share is malformed or the (EC)DH computation failed (illegal_parameter)."""


# -- certificate summaries -------------------------------------------------------------------


def _load_der(der: bytes) -> x509.Certificate:
    try:
        with warnings.catch_warnings():
            # Certificates seen on the wire are not ours to fix: a non-positive serial is shown,
            # not warned about on every parse.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is not a ValueError
        raise CertificateDecodeError(f"malformed certificate: {exc}") from exc


def _load_peer_chain(leaf_der: bytes, intermediates_der: Sequence[bytes]) -> list[x509.Certificate]:
    """A peer's chain, leaf first, bounded and with every field path validation reads parsed
    now: cryptography parses names and validity lazily, and a malformed one would otherwise
    raise a bare ValueError from deep inside the verifier or :func:`_classify`."""
    if 1 + len(intermediates_der) > MAX_CHAIN_CERTIFICATES:
        raise CertificateChainTooLong(
            f"certificate chain of {1 + len(intermediates_der)} certificates: at most "
            f"{MAX_CHAIN_CERTIFICATES} are accepted"
        )
    chain = [_load_der(leaf_der), *(_load_der(d) for d in intermediates_der)]
    for i, cert in enumerate(chain):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                cert.subject.rfc4514_string()
                cert.issuer.rfc4514_string()
                _ = cert.not_valid_before_utc, cert.not_valid_after_utc
                _ = cert.extensions
        except _PARSE_ERRORS as exc:
            raise CertificateDecodeError(f"malformed certificate {i} of the chain: {exc!r}") from exc
    return chain


def load_certificates(data: bytes | Sequence[bytes]) -> list[x509.Certificate]:
    """Certificates from one PEM bundle, one DER certificate, or a sequence of either."""
    items = [data] if isinstance(data, bytes | bytearray) else list(data)
    out: list[x509.Certificate] = []
    for item in items:
        if bytes(item[:64]).lstrip().startswith(b"-----BEGIN"):
            try:
                out.extend(x509.load_pem_x509_certificates(bytes(item)))
            except (ValueError, x509.InvalidVersion) as exc:
                raise CertificateDecodeError(f"malformed PEM certificate: {exc}") from exc
        else:
            out.append(_load_der(bytes(item)))
    return out


def _key_description(cert: x509.Certificate) -> tuple[str, int]:
    try:
        key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return f"unsupported ({cert.public_key_algorithm_oid.dotted_string})", 0
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}", key.key_size
    return type(key).__name__, 0


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    return name if isinstance(name, str) and name != "Unknown OID" else oid.dotted_string


def _is_self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Names match but the signature cannot be checked (unsupported key or algorithm):
        # the names are the best evidence available.
        return True
    return True


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    out: list[str] = []
    for name in ext.value:
        if isinstance(name, x509.DNSName):
            out.append(name.value)
        elif isinstance(name, x509.IPAddress):
            out.append(str(name.value))
    return tuple(out)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _eku(cert: x509.Certificate) -> tuple[str, ...] | None:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return tuple(_oid_name(u) for u in usages)


def summarize_certificate(der: bytes) -> CertSummary:
    """Summarise a DER certificate; malformed input raises :class:`CertificateDecodeError`."""
    cert = _load_der(der)
    # cryptography parses lazily: malformed names or extensions surface on access.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return _summary(cert, der)
    except (ValueError, KeyError, TypeError, x509.DuplicateExtension) as exc:
        # Seen from fuzzing: a mangled name makes rfc4514_string() raise KeyError, and a repeated
        # extension raises DuplicateExtension (not a ValueError) on the first extension lookup.
        raise CertificateDecodeError(f"malformed certificate: {exc!r}") from exc


def _summary(cert: x509.Certificate, der: bytes) -> CertSummary:
    key_type, key_bits = _key_description(cert)
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=_sans(cert),
        key_type=key_type,
        key_bits=key_bits,
        self_signed=_is_self_signed(cert),
        is_ca=_is_ca(cert),
        signature_algorithm=_oid_name(cert.signature_algorithm_oid),
        sha256_fingerprint=hashlib.sha256(der).hexdigest(),
        extended_key_usage=_eku(cert),
    )


# -- chain verification ----------------------------------------------------------------------


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def verify_chain(
    leaf_der: bytes,
    intermediates_der: Sequence[bytes],
    roots_der_or_pem: bytes | Sequence[bytes],
    hostname: str,
    at: datetime,
) -> None:
    """Validate the server chain for ``hostname`` at time ``at`` (naive means UTC).

    Raises a :class:`CertificateVerifyError` subclass naming the reason: unknown CA, expired,
    not yet valid, hostname mismatch, or otherwise invalid.
    """
    at = _utc(at)
    leaf, *intermediates = _load_peer_chain(leaf_der, intermediates_der)
    roots = load_certificates(roots_der_or_pem)
    ip = _parse_ip(hostname)
    try:
        subject: x509.DNSName | x509.IPAddress = (
            x509.IPAddress(ip) if ip is not None else x509.DNSName(hostname.rstrip("."))
        )
    except ValueError as exc:
        raise CertificateHostnameMismatch(f"{hostname!r} is not a valid host name") from exc
    try:
        verifier = (
            verification.PolicyBuilder()
            .store(verification.Store(roots))
            .time(at)
            .build_server_verifier(subject)
        )
    except ValueError as exc:
        raise UsageError(f"cannot build certificate verifier: {exc}") from exc
    run_verifier(verifier, leaf, intermediates, roots, hostname, at)


def run_verifier(
    verifier: verification.ServerVerifier | verification.ClientVerifier,
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    hostname: str | None,
    at: datetime,
) -> None:
    """Run ``verifier`` on a peer chain from :func:`_load_peer_chain`; every failure, expected
    or not, ends as a :class:`CertificateVerifyError` or :class:`CertificateDecodeError`."""
    try:
        try:
            verifier.verify(leaf, intermediates)
        except verification.VerificationError as exc:
            raise _classify(leaf, intermediates, roots, hostname, at, str(exc)) from exc
    except _PARSE_ERRORS as exc:
        # A field the eager parse did not reach (an extension's contents, a key): still the
        # peer's malformed certificate, never an escaped exception.
        raise CertificateDecodeError(f"malformed certificate in the chain: {exc!r}") from exc


def _classify(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    hostname: str | None,
    at: datetime,
    detail: str,
) -> CertificateVerifyError:
    """Turn the verifier's message into a reason by re-checking the likely causes ourselves:
    the verifier's wording is not a stable interface. ``hostname`` is None for a client chain."""
    for cert in (leaf, *intermediates):
        if at > cert.not_valid_after_utc:
            return CertificateExpired(
                f"certificate {_describe(cert)} expired at {cert.not_valid_after_utc.isoformat()}"
            )
        if at < cert.not_valid_before_utc:
            return CertificateNotYetValid(
                f"certificate {_describe(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}"
            )
    if hostname is not None and not hostname_matches(
        summarize_certificate(leaf.public_bytes(serialization.Encoding.DER)), hostname
    ):
        return CertificateHostnameMismatch(f"certificate {_describe(leaf)} does not name {hostname!r}")
    if not _reaches_root(leaf, intermediates, roots):
        return CertificateUnknownCA(
            f"no trusted root issued {_describe(leaf)}'s chain (issuer {leaf.issuer.rfc4514_string()})"
        )
    return CertificateInvalid(f"certificate chain of {_describe(leaf)} is invalid: {detail}")


def _reaches_root(
    leaf: x509.Certificate, intermediates: list[x509.Certificate], roots: list[x509.Certificate]
) -> bool:
    """Is there a chain of issuer names (with matching signatures) from the leaf to a root?

    Each certificate is expanded once and at most :data:`_MAX_ISSUER_CHECKS` signatures are
    checked: a chain whose certificates all claim to issue each other cannot make this
    quadratic in signatures (:class:`CertificateChainTooLong` past the budget)."""
    root_set = set(roots)
    frontier = [leaf]
    seen: set[x509.Certificate] = set()
    checks = 0
    while frontier:
        cert = frontier.pop()
        if cert in root_set:
            return True
        if cert in seen:
            continue
        seen.add(cert)
        for candidate in (*roots, *intermediates):
            if candidate in seen or candidate.subject != cert.issuer:
                continue
            checks += 1
            if checks > _MAX_ISSUER_CHECKS:
                raise CertificateChainTooLong(
                    f"certificate chain of {_describe(leaf)}: more than {_MAX_ISSUER_CHECKS} candidate "
                    "issuers to check"
                )
            try:
                cert.verify_directly_issued_by(candidate)
            except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
                continue
            if candidate in root_set:
                return True
            frontier.append(candidate)
    return False


# -- signatures ------------------------------------------------------------------------------

PrivateKey = (
    rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey
)

# SignatureScheme (RFC 8446 section 4.2.3) -> (kind, hash, curve the scheme binds in TLS 1.3).
_SCHEMES: dict[int, tuple[str, type[hashes.HashAlgorithm] | None, str | None]] = {
    0x0201: ("pkcs1", hashes.SHA1, None),  # rsa_pkcs1_sha1 (TLS 1.2 only)
    0x0401: ("pkcs1", hashes.SHA256, None),  # rsa_pkcs1_sha256
    0x0501: ("pkcs1", hashes.SHA384, None),  # rsa_pkcs1_sha384
    0x0601: ("pkcs1", hashes.SHA512, None),  # rsa_pkcs1_sha512
    0x0203: ("ecdsa", hashes.SHA1, None),  # ecdsa_sha1 (TLS 1.2 only)
    0x0403: ("ecdsa", hashes.SHA256, "secp256r1"),  # ecdsa_secp256r1_sha256
    0x0503: ("ecdsa", hashes.SHA384, "secp384r1"),  # ecdsa_secp384r1_sha384
    0x0603: ("ecdsa", hashes.SHA512, "secp521r1"),  # ecdsa_secp521r1_sha512
    0x0804: ("pss", hashes.SHA256, None),  # rsa_pss_rsae_sha256
    0x0805: ("pss", hashes.SHA384, None),  # rsa_pss_rsae_sha384
    0x0806: ("pss", hashes.SHA512, None),  # rsa_pss_rsae_sha512
    0x0809: ("pss", hashes.SHA256, None),  # rsa_pss_pss_sha256
    0x080A: ("pss", hashes.SHA384, None),  # rsa_pss_pss_sha384
    0x080B: ("pss", hashes.SHA512, None),  # rsa_pss_pss_sha512
    0x0807: ("ed25519", None, None),
    0x0808: ("ed448", None, None),
}


def _scheme(scheme: int) -> tuple[str, type[hashes.HashAlgorithm] | None, str | None]:
    try:
        return _SCHEMES[scheme]
    except KeyError:
        raise SignatureError(f"unsupported signature scheme 0x{scheme:04x}") from None


def _pss(hash_cls: type[hashes.HashAlgorithm]) -> padding.PSS:
    # RFC 8446 section 4.2.3: the salt length equals the digest length.
    return padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=padding.PSS.DIGEST_LENGTH)


def _load_private_key(key: bytes | str | PrivateKey) -> PrivateKey:
    if not isinstance(key, bytes | str):
        return key
    data = key.encode() if isinstance(key, str) else key
    try:
        loaded = (
            serialization.load_pem_private_key(data, password=None)
            if data.lstrip().startswith(b"-----")
            else serialization.load_der_private_key(data, password=None)
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"cannot load private key: {exc}") from exc
    if not isinstance(loaded, PrivateKey):
        raise UsageError(f"unsupported private key type {type(loaded).__name__}")
    return loaded


def _mismatch(scheme: int, key: object) -> SignatureError:
    return SignatureError(f"a {type(key).__name__} cannot use signature scheme 0x{scheme:04x}")


def sign(private_key: bytes | str | PrivateKey, scheme: int, data: bytes) -> bytes:
    """Sign ``data`` with ``scheme``; the key is a PEM/DER private key or a key object."""
    kind, hash_cls, curve = _scheme(scheme)
    key = _load_private_key(private_key)
    if kind == "pkcs1" and hash_cls and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hash_cls())
    if kind == "pss" and hash_cls and isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, _pss(hash_cls), hash_cls())
    if kind == "ecdsa" and hash_cls and isinstance(key, ec.EllipticCurvePrivateKey):
        if curve is not None and key.curve.name != curve:
            raise _mismatch(scheme, key)
        return key.sign(data, ec.ECDSA(hash_cls()))
    if kind == "ed25519" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if kind == "ed448" and isinstance(key, ed448.Ed448PrivateKey):
        return key.sign(data)
    raise _mismatch(scheme, key)


def verify_signature(
    cert_der: bytes, scheme: int, data: bytes, signature: bytes, *, strict_curve: bool = True
) -> None:
    """Verify ``signature`` over ``data`` with the certificate's key; raise :class:`SignatureError`.

    ``strict_curve`` enforces the curve that TLS 1.3 binds to ECDSA schemes; TLS 1.2 callers
    verifying ServerKeyExchange pass False (there the scheme names only the hash).
    """
    kind, hash_cls, curve = _scheme(scheme)
    try:
        key = _load_der(cert_der).public_key()
    except (UnsupportedAlgorithm, ValueError, CertificateDecodeError) as exc:
        # The peer's certificate (unverified when verification is off): a SignatureError,
        # which the engine answers with an alert, never an escaped exception.
        raise SignatureError(f"cannot use the certificate's key: {exc}") from exc
    try:
        if kind == "pkcs1" and hash_cls and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), hash_cls())
        elif kind == "pss" and hash_cls and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _pss(hash_cls), hash_cls())
        elif kind == "ecdsa" and hash_cls and isinstance(key, ec.EllipticCurvePublicKey):
            if strict_curve and curve is not None and key.curve.name != curve:
                raise _mismatch(scheme, key)
            key.verify(signature, data, ec.ECDSA(hash_cls()))
        elif kind == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif kind == "ed448" and isinstance(key, ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            raise _mismatch(scheme, key)
    except InvalidSignature as exc:
        raise SignatureError(f"signature (scheme 0x{scheme:04x}) does not verify") from exc
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:  # e.g. a PSS hash too big for the key
        raise SignatureError(f"signature (scheme 0x{scheme:04x}) cannot be checked: {exc}") from exc


# -- key exchange ----------------------------------------------------------------------------

KeySharePrivateKey = x25519.X25519PrivateKey | x448.X448PrivateKey | ec.EllipticCurvePrivateKey

_CURVES: dict[int, type[ec.EllipticCurve]] = {
    0x0017: ec.SECP256R1,
    0x0018: ec.SECP384R1,
    0x0019: ec.SECP521R1,
}
_X25519, _X448 = 0x001D, 0x001E


def generate_key_share(group: int) -> tuple[KeySharePrivateKey, bytes]:
    """A fresh private key for NamedGroup ``group`` and its KeyShareEntry.key_exchange bytes
    (RFC 8446 section 4.2.8.2: raw for X25519/X448, uncompressed point for NIST curves)."""
    if group == _X25519:
        x = x25519.X25519PrivateKey.generate()
        return x, x.public_key().public_bytes_raw()
    if group == _X448:
        y = x448.X448PrivateKey.generate()
        return y, y.public_key().public_bytes_raw()
    curve = _CURVES.get(group)
    if curve is None:
        raise UsageError(f"unsupported key exchange group 0x{group:04x}")
    e = ec.generate_private_key(curve())
    return e, e.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def shared_secret(group: int, private: KeySharePrivateKey, peer_public: bytes) -> bytes:
    """The (EC)DHE shared secret with the peer's key_exchange bytes (RFC 8446 section 7.4.2)."""
    try:
        if group == _X25519 and isinstance(private, x25519.X25519PrivateKey):
            return private.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
        if group == _X448 and isinstance(private, x448.X448PrivateKey):
            return private.exchange(x448.X448PublicKey.from_public_bytes(peer_public))
        curve = _CURVES.get(group)
        if curve is not None and isinstance(private, ec.EllipticCurvePrivateKey):
            if not isinstance(private.curve, curve):
                raise UsageError(f"private key is on {private.curve.name}, not group 0x{group:04x}")
            coord = (private.curve.key_size + 7) // 8
            # Only the uncompressed form is allowed in TLS 1.3 (section 4.2.8.2).
            if len(peer_public) != 1 + 2 * coord or peer_public[0] != 4:
                raise KeyExchangeError(f"group 0x{group:04x} key share is not an uncompressed point")
            peer = ec.EllipticCurvePublicKey.from_encoded_point(curve(), peer_public)
            return private.exchange(ec.ECDH(), peer)
    except ValueError as exc:
        # Wrong length, a point not on the curve, or an all-zero X25519 result (low-order point).
        raise KeyExchangeError(f"bad key share for group 0x{group:04x}: {exc}") from exc
    raise UsageError(f"private key {type(private).__name__} does not fit group 0x{group:04x}")
