"""A throwaway test PKI: a CA, server and client certificates, and deliberately broken ones.

Material for reproducing certificate failures on demand: an expired leaf, a not-yet-valid
leaf, a leaf for the wrong host name, a self-signed leaf, ECDSA, RSA and Ed25519 keys. Nothing
here is meant for production; keys are generated fresh on every call.

Time is a parameter (``now``), so tests make certificates valid "yesterday" or "next year"
without touching the clock. Certificates follow the CA/B-style profile that both OpenSSL and
cryptography's verifier insist on (RFC 5280 section 4.2): the CA has basicConstraints CA:TRUE
and keyCertSign, leaves have subjectAltName (the CN is not used for host names, RFC 6125 6.4.4),
extendedKeyUsage serverAuth or clientAuth, and authority/subject key identifiers.
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .._files import atomic_output

__all__ = ["PKI_LAYOUT", "Issued", "KeyType", "LeafOptions", "make_ca", "make_leaf", "make_test_pki"]

_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


class KeyType(enum.Enum):
    ECDSA_P256 = "ecdsa"
    ECDSA_P384 = "ecdsa-p384"
    RSA_2048 = "rsa"
    ED25519 = "ed25519"


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate and its private key."""

    cert_der: bytes
    key_pem: bytes = field(repr=False)
    """PKCS#8 PEM, unencrypted."""
    subject: str

    @property
    def cert_pem(self) -> bytes:
        return x509.load_der_x509_certificate(self.cert_der).public_bytes(serialization.Encoding.PEM)

    def private_key(self) -> _PrivateKey:
        key = serialization.load_pem_private_key(self.key_pem, password=None)
        assert isinstance(key, _PrivateKey)
        return key


@dataclass(frozen=True, slots=True)
class LeafOptions:
    """How a leaf certificate should be (mis)made."""

    hostnames: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    """DNS names and IP addresses for the subjectAltName."""
    key_type: KeyType = KeyType.ECDSA_P256
    client: bool = False
    """clientAuth instead of serverAuth extended key usage."""
    expired: bool = False
    """Validity ended yesterday."""
    not_yet_valid: bool = False
    """Validity starts tomorrow."""
    self_signed: bool = False
    """Signed by its own key instead of the CA's."""


def _new_key(key_type: KeyType) -> _PrivateKey:
    if key_type is KeyType.ECDSA_P256:
        return ec.generate_private_key(ec.SECP256R1())
    if key_type is KeyType.ECDSA_P384:
        return ec.generate_private_key(ec.SECP384R1())
    if key_type is KeyType.RSA_2048:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ed25519.Ed25519PrivateKey.generate()


def _hash_for(key: _PrivateKey) -> hashes.SHA256 | hashes.SHA384 | None:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None  # Ed25519 signs the message itself (RFC 8410 section 6)
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _pem(key: _PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(hostnames: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for h in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return x509.SubjectAlternativeName(names)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: _PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    ca: bool,
) -> x509.CertificateBuilder:
    """What every certificate here starts with: basicConstraints and keyUsage, both critical
    (RFC 5280 sections 4.2.1.9 and 4.2.1.3). Only a CA signs certificates and CRLs; an RSA leaf
    also allows keyEncipherment for TLS 1.2 RSA key exchange."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not ca and isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


def make_ca(
    now: dt.datetime, common_name: str = "capdebug test CA", key_type: KeyType = KeyType.ECDSA_P256
) -> Issued:
    """A self-signed root CA valid from a day before ``now`` for ten years."""
    key = _new_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, name, key, now - dt.timedelta(days=1), now + dt.timedelta(days=3650), ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, _hash_for(key))
    )
    return Issued(cert.public_bytes(serialization.Encoding.DER), _pem(key), common_name)


def make_leaf(ca: Issued, now: dt.datetime, options: LeafOptions = LeafOptions()) -> Issued:
    """A leaf certificate signed by ``ca`` (or by itself with ``options.self_signed``)."""
    key = _new_key(options.key_type)
    cn = options.hostnames[0] if options.hostnames else "capdebug test leaf"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    if options.expired:
        not_before, not_after = now - dt.timedelta(days=30), now - dt.timedelta(days=1)
    elif options.not_yet_valid:
        not_before, not_after = now + dt.timedelta(days=1), now + dt.timedelta(days=30)
    else:
        not_before, not_after = now - dt.timedelta(days=1), now + dt.timedelta(days=365)
    signer: _PrivateKey = key if options.self_signed else ca.private_key()
    issuer = subject if options.self_signed else x509.load_der_x509_certificate(ca.cert_der).subject
    eku = ExtendedKeyUsageOID.CLIENT_AUTH if options.client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        _builder(subject, issuer, key, not_before, not_after, ca=False)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if options.hostnames:
        builder = builder.add_extension(_san(options.hostnames), critical=False)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key())
    builder = builder.add_extension(aki, critical=False)
    cert = builder.sign(signer, _hash_for(signer))
    return Issued(cert.public_bytes(serialization.Encoding.DER), _pem(key), cn)


def _write(path: Path, data: bytes, private: bool) -> None:
    # A new file renamed into place: a private key is 0600 from its first byte, and a symlink
    # at the path is replaced, not written through.
    with atomic_output(path, private=private) as f:
        f.write(data)


#: What ``make_test_pki`` writes besides the CA: file stem -> leaf options.
PKI_LAYOUT: dict[str, LeafOptions] = {
    "server-ecdsa": LeafOptions(),
    "server-rsa": LeafOptions(key_type=KeyType.RSA_2048),
    "server-ed25519": LeafOptions(key_type=KeyType.ED25519),
    "client-ecdsa": LeafOptions(hostnames=("capdebug client",), client=True),
    "client-rsa": LeafOptions(hostnames=("capdebug client",), client=True, key_type=KeyType.RSA_2048),
    "server-expired": LeafOptions(expired=True),
    "server-not-yet-valid": LeafOptions(not_yet_valid=True),
    "server-wrong-host": LeafOptions(hostnames=("wrong.example",)),
    "server-self-signed": LeafOptions(self_signed=True),
}


def make_test_pki(
    directory: str | os.PathLike[str], now: dt.datetime, only: tuple[str, ...] | None = None
) -> dict[str, Path]:
    """Write ``ca.pem``/``ca.key`` and, for each entry of :data:`PKI_LAYOUT` (or ``only``),
    ``<name>.pem`` (leaf then CA, as servers send it) and ``<name>.key`` (0600).

    Returns the written paths by name (``"ca"``, ``"server-ecdsa"``, ``"server-ecdsa.key"``...).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ca = make_ca(now)
    paths: dict[str, Path] = {"ca": out / "ca.pem", "ca.key": out / "ca.key"}
    _write(paths["ca"], ca.cert_pem, private=False)
    _write(paths["ca.key"], ca.key_pem, private=True)
    names = PKI_LAYOUT.keys() if only is None else only
    for name in names:
        options = PKI_LAYOUT[name]
        leaf = make_leaf(ca, now, options)
        chain = leaf.cert_pem if options.self_signed else leaf.cert_pem + ca.cert_pem
        paths[name] = out / f"{name}.pem"
        paths[f"{name}.key"] = out / f"{name}.key"
        _write(paths[name], chain, private=False)
        _write(paths[f"{name}.key"], leaf.key_pem, private=True)
    return paths
